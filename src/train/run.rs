//! One training run end to end, as `moodgrad train`, `demo` and `compare` run it: the data
//! opened (and preprocessed if needed), the lyrics side built, the session trained by `fit`, then
//! the test split's predictions and the report.

use super::config::{Config, Modality};
use super::dataset::{self, SongRecord, TrainData};
use super::fit::{FitSummary, fit};
use super::infer::predict;
use super::init_weights::{self, InitWeights};
use super::lyrics::LyricsSide;
use super::lyrics_encoder::{self, LyricsPlaces};
use super::outputs::write_report;
use super::predictions::PredictionRow;
use super::report::TrainingSummary;
use super::run_dir::RunDir;
use super::session::Session;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::params::ParamStore;
use std::path::Path;
use std::sync::Arc;

/// The lyrics half for this config over `data`'s songs (see `train::lyrics_encoder`).
pub fn lyrics_side<B: Backend>(
    cfg: &Config,
    store: &mut ParamStore<B>,
    data: &TrainData,
    places: &LyricsPlaces,
    say: &mut dyn FnMut(&str),
) -> Result<Box<dyn LyricsSide<B>>> {
    if cfg.model.modality != Modality::Audio && !cfg.lyrics.vectors.is_empty() {
        return Ok(Box::new(lyrics_encoder::vectors_from_file(cfg, &data.songs)?));
    }
    // `build` gives audio-only models no lyrics side; only the others read their lyric files.
    let texts =
        if cfg.model.modality == Modality::Audio { Vec::new() } else { lyrics_encoder::read_texts(&data.songs, say)? };
    lyrics_encoder::build(cfg, store, texts, &data.splits.train, places, say)
}

/// Where a run starts: fresh (the seed's initialisation, or `init` weights) or resumed from
/// its checkpoint.
#[derive(Clone, Debug, Default)]
pub struct RunStart {
    pub resume: bool,
    pub init: Option<InitWeights>,
}

impl RunStart {
    pub fn fresh() -> Self {
        RunStart::default()
    }
    pub fn resume(resume: bool) -> Self {
        RunStart { resume, init: None }
    }
}

/// Trains `cfg` on `data_dir` into `out` (or resumes it) and evaluates the test split; returns
/// the test predictions. `say` receives the progress lines. Nothing is written to `out` until the
/// data, the lyrics side and any initial weights have loaded: a run that cannot start leaves the
/// folder as it was.
pub fn train_run<B: Backend>(
    be: B,
    cfg: Config,
    data_dir: &Path,
    out: &Path,
    start: &RunStart,
    say: &mut dyn FnMut(&str),
) -> Result<Vec<PredictionRow>> {
    let resume = start.resume;
    if resume && start.init.is_some() {
        return Err(Error::Invalid(
            "--init-weights starts a new run, --resume continues one from its checkpoint: give one of them".into(),
        ));
    }
    let run = RunDir::new(out);
    say(&format!("moodgrad train: preset {} → {} on {}", cfg.preset, out.display(), be.name()));
    // Before any work: a lyrics model that cannot be found stops the run here.
    lyrics_encoder::check_model(&cfg)?;
    let data = dataset::open(data_dir, cfg.data.preprocessing, cfg.data.split)?;
    for n in &data.notes {
        say(&format!("  {n}"));
    }
    run.check(&cfg, resume)?;
    let songs = Arc::new(data.songs.clone());
    let mut store = ParamStore::new(be);
    let files = run.encoder_files();
    let places = LyricsPlaces { cache: Some(&data.cache), encoder_files: &files, learn: !resume };
    let lyrics = lyrics_side(&cfg, &mut store, &data, &places, say)?;
    let mut s = Session::new(cfg.clone(), store, lyrics, data.splits.train.len())?;
    let init = match &start.init {
        Some(w) => {
            let record = init_weights::apply(&mut s, w)?;
            for l in &record.lines {
                say(&format!("  {l}"));
            }
            Some(record.json)
        }
        None => None,
    };
    if !resume {
        run.create(&cfg)?;
        s.lyrics.save_learned(&files)?;
    }
    write_info(&run, data_dir, &data, &s, init)?;
    if resume {
        let ck = super::checkpoint::load(&run.checkpoint())?;
        s.restore(&run.checkpoint(), &ck, Some(&run.best()))?;
        say(&format!("  resumed after epoch {}", s.epochs_done));
    }
    say(&format!(
        "  {} parameters; songs: train {} / validate {} / test {}; lyrics: {}",
        s.store.num_params(),
        data.splits.train.len(),
        data.splits.validate.len(),
        data.splits.test.len(),
        s.lyrics.describe()
    ));
    let summary = fit(&mut s, &data, &songs, &run, say)?;
    finish(&run, &mut s, &data, &songs, &summary, say)
}

/// `run.json`: what a later `evaluate`/`predict` needs to find again.
/// A resumed run keeps the initial weights its first start recorded.
fn write_info<B: Backend>(
    run: &RunDir,
    data_arg: &Path,
    data: &TrainData,
    s: &Session<B>,
    init: Option<serde_json::Value>,
) -> Result<()> {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()).display().to_string();
    let init = match init {
        Some(v) => v,
        None => std::fs::read(run.info())
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("init_weights").cloned())
            .unwrap_or(serde_json::Value::Null),
    };
    let info = serde_json::json!({
        "moodgrad": env!("CARGO_PKG_VERSION"),
        "data": abs(data_arg),
        "cache": abs(&data.cache),
        "lyrics": s.lyrics.describe(),
        "lyrics_dim": s.lyrics.dim(),
        "device": s.store.backend.name(),
        "songs": {"train": data.splits.train.len(), "validate": data.splits.validate.len(), "test": data.splits.test.len()},
        "init_weights": init,
    });
    crate::io::write_atomic(&run.info(), serde_json::to_string_pretty(&info).expect("JSON").as_bytes())
}

fn finish<B: Backend>(
    run: &RunDir,
    s: &mut Session<B>,
    data: &TrainData,
    songs: &Arc<Vec<SongRecord>>,
    f: &FitSummary,
    say: &mut dyn FnMut(&str),
) -> Result<Vec<PredictionRow>> {
    match f.best {
        Some((e, l)) => say(&format!(
            "best epoch {e} (validation loss {l:.5}); the run ends with the weights of epoch {} ({})",
            f.restored_epoch.unwrap_or(e),
            if s.keeps_best() {
                "a deep copy of the best epoch"
            } else {
                "legacy: the last epoch, the seed's shallow copy"
            }
        )),
        None => say("no epoch had a finite validation loss"),
    }
    let bs = s.cfg.train.batch_size;
    let (rows, _) = predict(s, songs, &data.splits.test, bs)?;
    let report = super::predictions::evaluate("test", &rows);
    let training = TrainingSummary {
        epochs_run: s.epochs_done,
        max_epochs: s.cfg.train.epochs,
        best: f.best,
        restored_epoch: f.restored_epoch,
        stopped_early: f.stopped_early,
        seconds: f.seconds,
        samples_per_s: mean_samples_per_s(run),
    };
    let model = describe(&s.cfg);
    let path = write_report(run, &model, "test", data, &rows, training, s.cfg.train.seed)?;
    say(&format!(
        "test: valence MAE {:.4} R² {:.3} | arousal MAE {:.4} R² {:.3} | quadrant accuracy {:.3}",
        report.valence.mae, report.valence.r2, report.arousal.mae, report.arousal.r2, report.quadrant.accuracy
    ));
    say(&format!("report: {}", path.display()));
    Ok(rows)
}

/// One line naming what was trained, for reports.
pub fn describe(cfg: &Config) -> String {
    format!(
        "preset {}, {} conv(s) per block, channels {:?}, {} attention, {} preprocessing, modality {}, lyrics {} ({})",
        cfg.preset,
        cfg.model.convs_per_block,
        cfg.model.channels,
        cfg.model.attention.name(),
        cfg.data.preprocessing.name(),
        cfg.model.modality.name(),
        cfg.lyrics.model,
        cfg.lyrics.mode.name()
    )
}

/// Mean training throughput over the run's logged epochs.
fn mean_samples_per_s(run: &RunDir) -> f64 {
    let recs = super::log::read_log(&run.log()).unwrap_or_default();
    if recs.is_empty() { 0.0 } else { recs.iter().map(|r| r.samples_per_s).sum::<f64>() / recs.len() as f64 }
}
