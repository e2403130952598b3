//! The model in evaluation mode over a list of songs (an evaluation tape: every intermediate
//! dies at its last use), through the same forward and objective as the training step.

use super::dataset::SongRecord;
use super::dist::Group;
use super::dist::comm::{bytes_f64, f64_bytes};
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
            loss_sum += finite_loss(l.value().to_f64(&s.store.backend)?[0], songs, &b.songs)?;
            n_batches += 1;
        }
        push_rows(&mut rows, songs, &b.songs, &pred);
    }
    Ok((rows, if n_batches > 0 { loss_sum / n_batches as f64 } else { f64::NAN }))
}

/// A batch's evaluation loss, or an error naming its songs when it is not finite.
fn finite_loss(v: f64, songs: &[SongRecord], batch: &[usize]) -> Result<f64> {
    if v.is_finite() {
        return Ok(v);
    }
    let ids: Vec<&str> = batch.iter().map(|&i| songs[i].id.as_str()).collect();
    Err(Error::NonFinite(format!("the evaluation loss is {v} on songs {}", ids.join(", "))))
}

/// One row per song of `batch`, its prediction pred[2k], pred[2k + 1].
fn push_rows(rows: &mut Vec<PredictionRow>, songs: &[SongRecord], batch: &[usize], pred: &[f64]) {
    for (k, &i) in batch.iter().enumerate() {
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

/// `predict` shared between the ranks of `group`: the same batches as one process (so the same
/// bits for each song and each batch loss), batch k on rank k mod N, every rank ending with all
/// the rows in order and the same mean of batch losses, summed in batch order as `predict` sums
/// them (sums and counts, not a mean of means).
pub fn predict_shared<B: Backend>(
    s: &mut Session<B>,
    songs: &Arc<Vec<SongRecord>>,
    which: &[usize],
    batch_size: usize,
    group: &Group,
) -> Result<(Vec<PredictionRow>, f64)> {
    let (rank, size) = (group.rank(), group.size());
    if size == 1 {
        return predict(s, songs, which, batch_size);
    }
    let plan = batches(which, batch_size);
    let mine: Vec<Vec<usize>> = plan.iter().skip(rank).step_by(size).cloned().collect();
    // Per batch: whether it has a loss, the loss, then its predictions.
    let mut out = Vec::new();
    for b in Prefetch::new(songs.clone(), mine) {
        let b = b?;
        let mut tape = Tape::no_grad(s.store.backend.clone());
        let f = forward_batch(s, &mut tape, songs, &b, false, 0)?;
        let mut vals = match &f.loss {
            Some(l) => vec![1.0, l.value().to_f64(&s.store.backend)?[0]],
            None => vec![0.0, 0.0],
        };
        vals.extend(f.out.pred.value().to_f64(&s.store.backend)?);
        out.push(vals);
    }
    let mut blob = Vec::new();
    for v in &out {
        blob.extend((v.len() as u64).to_le_bytes());
        blob.extend(f64_bytes(v));
    }
    let per_rank: Vec<Vec<Vec<f64>>> = group.comm.all_gather(&blob)?.iter().map(|b| unpack(b)).collect();
    let (mut rows, mut loss_sum, mut n_batches) = (Vec::with_capacity(which.len()), 0.0, 0usize);
    for (k, b) in plan.iter().enumerate() {
        let vals = per_rank.get(k % size).and_then(|r| r.get(k / size)).filter(|v| v.len() == 2 + 2 * b.len());
        let vals = vals.ok_or_else(|| {
            Error::Invalid(format!("rank {} did not send the predictions of evaluation batch {k}", k % size))
        })?;
        if vals[0] == 1.0 {
            loss_sum += finite_loss(vals[1], songs, b)?;
            n_batches += 1;
        }
        push_rows(&mut rows, songs, b, &vals[2..]);
    }
    Ok((rows, if n_batches > 0 { loss_sum / n_batches as f64 } else { f64::NAN }))
}

/// Length-prefixed f64 records back from bytes.
fn unpack(b: &[u8]) -> Vec<Vec<f64>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= b.len() {
        let n = u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes")) as usize;
        at += 8;
        let end = (at + 8 * n).min(b.len());
        out.push(bytes_f64(&b[at..end]));
        at = end;
    }
    out
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
