//! The last SE block's channel weights averaged per quadrant over a split (`evaluate --explain`
//! and the run report): which channels the attention turns up for each kind of song. Songs are
//! grouped twice, by their true quadrant (the metadata's label) and by the quadrant of the
//! model's own (valence, arousal) prediction; each group's figure is the plain mean per channel.

use super::dataset::{SongRecord, TrainData};
use super::explain::GateStats;
use super::loader::{Prefetch, batches};
use super::metrics::Quadrant;
use super::plot_explain::{QuadrantSeries, se_quadrant_plot};
use super::predictions::PredictionRow;
use super::session::Session;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tape::Tape;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Per quadrant (Q1..Q4 in order): the songs' gates grouped by true and by predicted quadrant.
#[derive(Clone, Debug, Default)]
pub struct QuadrantGates {
    pub split: String,
    pub by_true: [GateStats; 4],
    pub by_predicted: [GateStats; 4],
}

/// Why a model has no SE gates to show: no audio tower at all, or one without SE attention.
pub fn no_se_gates(cfg: &super::config::Config) -> &'static str {
    if cfg.model.modality == super::config::Modality::Lyrics {
        "this model has no audio tower (modality `lyrics`), so no SE block"
    } else {
        "this model has no SE block (attention `se`)"
    }
}

/// The gates of `split`'s songs (`which`, indices into `data.songs`), grouped by true quadrant
/// and by the quadrant of `rows`' prediction for the song. None when the model has no SE block.
/// In eval mode, in batches of the run's batch size: each song's gates are its own (BatchNorm uses
/// running statistics), so they equal `predict --explain`'s for the same spectrogram.
pub fn se_by_quadrant<B: Backend>(
    s: &mut Session<B>,
    data: &TrainData,
    which: &[usize],
    rows: &[PredictionRow],
    split: &str,
) -> Result<Option<QuadrantGates>> {
    let predicted: HashMap<&str, Quadrant> = rows.iter().map(|r| (r.song.as_str(), r.predicted_quadrant())).collect();
    let songs: Arc<Vec<SongRecord>> = Arc::new(data.songs.clone());
    let be = s.store.backend.clone();
    let mut out = QuadrantGates { split: split.to_string(), ..Default::default() };
    for b in Prefetch::new(songs.clone(), batches(which, s.cfg.train.batch_size.max(1))) {
        let b = b?;
        let batch = b.upload(&be, &songs, s.net.config.inputs)?;
        let Some(audio) = batch.audio else { return Ok(None) };
        let mut tape = Tape::no_grad(be.clone());
        let x = tape.input(audio, false);
        let Some(g) = s.net.se_gates(&mut tape, &mut s.store, &x)? else { return Ok(None) };
        let g = g.value().to_f64(&be)?;
        let c = g.len() / b.songs.len().max(1);
        for (k, &i) in b.songs.iter().enumerate() {
            let song = &songs[i];
            let gates = &g[k * c..(k + 1) * c];
            out.by_true[song.quadrant.index()].add(gates);
            let p = predicted.get(song.id.as_str()).ok_or_else(|| {
                Error::Invalid(format!("song {} has no prediction to group its SE weights by", song.id))
            })?;
            out.by_predicted[p.index()].add(gates);
        }
    }
    Ok(Some(out))
}

impl QuadrantGates {
    fn channels(&self) -> usize {
        self.by_true.iter().map(|g| g.sum.len()).max().unwrap_or(0)
    }

    /// {"split", "songs", "channels", "grouping", "by_true_quadrant": {"Q1": {"songs", "mean"}…},
    /// "by_predicted_quadrant": …}; a quadrant without songs has 0 songs and no mean.
    pub fn to_json(&self) -> serde_json::Value {
        let group = |stats: &[GateStats; 4]| {
            let mut m = serde_json::Map::new();
            for q in Quadrant::ALL {
                let g = &stats[q.index()];
                let mean = (g.n > 0).then(|| g.mean());
                m.insert(q.name().to_string(), serde_json::json!({"songs": g.n, "mean": mean}));
            }
            serde_json::Value::Object(m)
        };
        serde_json::json!({
            "split": self.split,
            "songs": self.by_true.iter().map(|g| g.n).sum::<usize>(),
            "channels": self.channels(),
            "grouping": "mean over the split's songs of the last SE block's sigmoid gate per channel, \
                         grouped by the true quadrant (metadata label) and by the predicted quadrant",
            "by_true_quadrant": group(&self.by_true),
            "by_predicted_quadrant": group(&self.by_predicted),
        })
    }

    /// One row per channel: channel, true_Q1..true_Q4, predicted_Q1..predicted_Q4 (empty where a
    /// quadrant has no songs).
    pub fn to_csv(&self) -> String {
        let mut s = String::from("channel");
        for side in ["true", "predicted"] {
            for q in Quadrant::ALL {
                s += &format!(",{side}_{}", q.name());
            }
        }
        s.push('\n');
        let means: Vec<Vec<f64>> = self.by_true.iter().chain(&self.by_predicted).map(|g| g.mean()).collect();
        for c in 0..self.channels() {
            s += &c.to_string();
            for (m, g) in means.iter().zip(self.by_true.iter().chain(&self.by_predicted)) {
                s.push(',');
                if g.n > 0 {
                    s += &m[c].to_string();
                }
            }
            s.push('\n');
        }
        s
    }

    /// `<dir>/se_quadrants_<split>.{png,json,csv}`; returns the PNG's path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        crate::data::create_dir(dir)?;
        let stem = dir.join(format!("se_quadrants_{}", self.split));
        let json = serde_json::to_string_pretty(&self.to_json())
            .map_err(|e| Error::Invalid(format!("SE weights per quadrant: {e}")))?;
        crate::io::write_atomic(&stem.with_extension("json"), json.as_bytes())?;
        crate::io::write_atomic(&stem.with_extension("csv"), self.to_csv().as_bytes())?;
        let panel = |stats: &[GateStats; 4]| -> Vec<QuadrantSeries> {
            Quadrant::ALL
                .iter()
                .filter(|q| stats[q.index()].n > 0)
                .map(|q| {
                    let g = &stats[q.index()];
                    (q.index(), format!("{} ({} song{})", q.name(), g.n, if g.n == 1 { "" } else { "s" }), g.mean())
                })
                .collect()
        };
        let png = stem.with_extension("png");
        se_quadrant_plot(
            &png,
            &[
                (
                    format!("Last SE block's mean channel weight by true quadrant ({} split)", self.split),
                    panel(&self.by_true),
                ),
                (format!("… by predicted quadrant ({} split)", self.split), panel(&self.by_predicted)),
            ],
        )?;
        Ok(png)
    }
}
