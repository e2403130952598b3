//! The model in eval mode over a list of songs (no tape: every intermediate dies at its last use),
//! and the training objective shared with the loop.

use super::config::Loss;
use super::dataset::SongRecord;
use super::loader::{HostBatch, Prefetch, batches};
use super::predictions::PredictionRow;
use super::session::Session;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::ops;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;
use std::sync::Arc;

/// A forward pass of one batch: the predictions and, when targets are given, the objective.
pub struct Forward<B: Backend> {
    pub pred: Var<B>,
    pub loss: Option<Var<B>>,
}

/// The batch's inputs on `tape`, one forward, and the objective: MSE or L1 on (valence, arousal)
/// plus `quadrant_loss` × the quadrant head's cross-entropy against the metadata's quadrant. A
/// batch without targets (`target` empty) gives the predictions alone.
pub fn forward_batch<B: Backend>(
    s: &mut Session<B>,
    tape: &mut Tape<B>,
    songs: &[SongRecord],
    b: &HostBatch,
    train: bool,
    seed: u64,
) -> Result<Forward<B>> {
    let be = s.store.backend.clone();
    let n = b.songs.len();
    let audio = if s.net.config.inputs == crate::nn::Inputs::Lyrics {
        None
    } else {
        let a = Tensor::new(vec![n, 1, b.n_mels, b.frames], be.upload_f32(&b.audio)?)?;
        Some(tape.input(a, false))
    };
    let lyrics = s.lyrics.batch(tape, &mut s.store, &b.songs, train, seed ^ 0x6c79_7269)?;
    let out = s.net.forward_inputs(tape, &mut s.store, audio.as_ref(), lyrics.as_ref(), train, seed)?;
    drop((audio, lyrics));
    // No targets (`moodgrad predict`): predictions only.
    if b.target.is_empty() {
        return Ok(Forward { pred: out.pred, loss: None });
    }
    let target = tape.input(Tensor::new(vec![n, 2], be.upload_f32(&b.target)?)?, false);
    let mut loss = match s.cfg.train.loss {
        Loss::Mse => ops::mse_loss(tape, &out.pred, &target)?,
        Loss::L1 => ops::l1_loss(tape, &out.pred, &target)?,
    };
    if let Some(q) = &out.quadrant {
        let labels: Vec<u32> = b.songs.iter().map(|&i| songs[i].quadrant.index() as u32).collect();
        let ce = ops::cross_entropy(tape, q, &labels)?;
        let w = tape.constant(Tensor::from_f64(&be, &[], &[s.cfg.train.quadrant_loss])?);
        let ce = ops::mul(tape, &ce, &w)?;
        loss = ops::add(tape, &loss, &ce)?;
    }
    Ok(Forward { pred: out.pred, loss: Some(loss) })
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
        let pred = f.pred.value().to_f64(&s.store.backend)?;
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
