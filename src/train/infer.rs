//! The model in evaluation mode over a list of songs (an evaluation tape: every intermediate
//! dies at its last use), through the same forward and objective as the training step.

use super::dataset::SongRecord;
use super::loader::{HostBatch, Prefetch, batches};
use super::predictions::PredictionRow;
use super::session::Session;
use super::step::{Forward, Objective, record_forward};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tape::Tape;
use std::sync::Arc;

/// One batch of the session's songs on `tape`: the forward and, with targets, the session's
/// objective.
pub fn forward_batch<B: Backend>(
    s: &mut Session<B>,
    tape: &mut Tape<B>,
    songs: &[SongRecord],
    b: &HostBatch,
    train: bool,
    seed: u64,
) -> Result<Forward<B>> {
    let batch = b.upload(&s.store.backend, songs, s.net.config.inputs)?;
    let objective = Objective::of(&s.cfg.train);
    record_forward(tape, &s.net, &mut s.store, s.lyrics.as_mut(), &batch, &objective, train, seed)
}

/// Predictions for `which` songs in eval mode, in their order, and the mean batch loss (the
/// seed's validation loss: the mean over batches of each batch's mean).
pub fn predict<B: Backend>(
    s: &mut Session<B>,
    songs: &Arc<Vec<SongRecord>>,
    which: &[usize],
    batch_size: usize,
) -> Result<(Vec<PredictionRow>, f64)> {
    let mut rows = Vec::with_capacity(which.len());
    let (mut loss_sum, mut n_batches) = (0.0, 0usize);
    for b in Prefetch::new(songs.clone(), batches(which, batch_size)) {
        let b = b?;
        let mut tape = Tape::no_grad(s.store.backend.clone());
        let f = forward_batch(s, &mut tape, songs, &b, false, 0)?;
        let pred = f.out.pred.value().to_f64(&s.store.backend)?;
        if let Some(l) = f.loss {
            let v = l.value().to_f64(&s.store.backend)?[0];
            if !v.is_finite() {
                let ids: Vec<&str> = b.songs.iter().map(|&i| songs[i].id.as_str()).collect();
                return Err(Error::NonFinite(format!("the evaluation loss is {v} on songs {}", ids.join(", "))));
            }
            loss_sum += v;
            n_batches += 1;
        }
        for (k, &i) in b.songs.iter().enumerate() {
            let song = &songs[i];
            rows.push(PredictionRow {
                song: song.id.clone(),
                truth: [song.valence, song.arousal],
                pred: [pred[2 * k], pred[2 * k + 1]],
                quadrant: song.quadrant,
                duration_s: Some(song.duration_s),
            });
        }
    }
    Ok((rows, if n_batches > 0 { loss_sum / n_batches as f64 } else { f64::NAN }))
}

/// (valence, arousal) of each (song index, [n_mels, frames] spectrogram) in eval mode, in batches.
pub fn forward_windows<B: Backend>(
    s: &mut Session<B>,
    songs: &[SongRecord],
    inputs: &[(usize, Vec<f32>)],
    (n_mels, frames): (usize, usize),
) -> Result<Vec<(f64, f64)>> {
    let mut out = Vec::with_capacity(inputs.len());
    for chunk in inputs.chunks(s.cfg.train.batch_size.max(1)) {
        let audio: Vec<f32> = chunk.iter().flat_map(|(_, d)| d.iter().copied()).collect();
        let b = HostBatch { songs: chunk.iter().map(|(i, _)| *i).collect(), audio, n_mels, frames, target: Vec::new() };
        let mut tape = Tape::no_grad(s.store.backend.clone());
        let f = forward_batch(s, &mut tape, songs, &b, false, 0)?;
        let pred = f.out.pred.value().to_f64(&s.store.backend)?;
        for (r, (i, _)) in chunk.iter().enumerate() {
            let (v, ar) = (pred[2 * r], pred[2 * r + 1]);
            if !(v.is_finite() && ar.is_finite()) {
                return Err(Error::NonFinite(format!(
                    "{}: the model predicts ({v}, {ar})",
                    songs[*i].spectrogram.display()
                )));
            }
            out.push((v, ar));
        }
    }
    Ok(out)
}
