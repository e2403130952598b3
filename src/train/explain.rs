//! What the model listened to: the saliency of valence and arousal over the input spectrogram
//! (|∂output/∂input| from the tape's own backward), the last SE block's channel weights, and how
//! far the prediction moves when one modality's embedding is replaced by its training mean.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::nn::SeedNet;
use crate::params::ParamStore;
use crate::tape::Tape;
use crate::tensor::Tensor;

/// The prediction and the gradient of each output with respect to every input cell, for one
/// song: `audio` [1, 1, H, W], `lyrics` its [1, dim] vector (None for an audio-only network).
/// Returns ([valence, arousal], [∂valence/∂x, ∂arousal/∂x]) with each gradient [H·W] row-major,
/// signed and unsmoothed. Eval mode (running BatchNorm statistics, no dropout). The parameters
/// are frozen first: an explanation trains nothing, so the backward stops at the input.
pub fn input_gradients<B: Backend>(
    net: &SeedNet,
    store: &mut ParamStore<B>,
    audio: &Tensor<B>,
    lyrics: Option<&Tensor<B>>,
) -> Result<([f64; 2], [Vec<f64>; 2])> {
    if audio.shape().first() != Some(&1) {
        return Err(Error::shape("explain", format!("one song at a time, got audio {:?}", audio.shape())));
    }
    for id in store.param_ids() {
        store.set_trainable(id, false);
    }
    let be = store.backend.clone();
    let mut pred = [0.0; 2];
    let mut grads: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for (k, g) in grads.iter_mut().enumerate() {
        let mut tape = Tape::new(be.clone());
        let x = tape.input(audio.clone(), true);
        let l = lyrics.map(|t| tape.constant(t.clone()));
        let out = net.forward_inputs(&mut tape, store, Some(&x), l.as_ref(), false, 0)?;
        let p = out.pred.value().to_f64(&be)?;
        pred = [p[0], p[1]];
        let mut seed = [0.0; 2];
        seed[k] = 1.0;
        let pred_var = out.pred.clone();
        drop(out);
        let leaves = tape.backward_from(&pred_var, be.upload_f64(&seed)?, store)?;
        *g = match leaves.get(&x) {
            Some(buf) => be.download_f64(buf)?,
            // No path from the input to this output: its gradient is 0 everywhere.
            None => vec![0.0; audio.numel()],
        };
    }
    Ok((pred, grads))
}

/// The last SE block's gate per channel for one song ([C], each in (0, 1)); None without one.
pub fn se_gates<B: Backend>(net: &SeedNet, store: &mut ParamStore<B>, audio: &Tensor<B>) -> Result<Option<Vec<f64>>> {
    let be = store.backend.clone();
    let mut tape = Tape::no_grad(be.clone());
    let x = tape.input(audio.clone(), false);
    net.se_gates(&mut tape, store, &x)?.map(|g| g.value().to_f64(&be)).transpose()
}

/// Standard deviation, in cells (frequency bins and frames), of the Gaussian that smooths a
/// saliency map for display: one cell is 1/128 of the mel range and 23 ms, so 2 cells keeps
/// structure at the scale of a note while removing the conv grid's cell-to-cell checkerboard.
pub const SMOOTH_SIGMA: f64 = 2.0;

/// |gradient| smoothed by a separable Gaussian of σ = `sigma` cells in both directions,
/// truncated at 3σ, each output cell divided by the kernel weight that fell inside the map (so
/// the edges are not darkened). `rows` × `cols` row-major.
pub fn smooth_abs(grad: &[f64], rows: usize, cols: usize, sigma: f64) -> Vec<f64> {
    let r = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f64> = (-r..=r).map(|d| (-(d * d) as f64 / (2.0 * sigma * sigma)).exp()).collect();
    let pass = |src: &[f64], n: usize, at: &dyn Fn(usize, usize) -> usize, lines: usize| -> Vec<f64> {
        let mut out = vec![0.0; src.len()];
        for line in 0..lines {
            for i in 0..n {
                let (mut sum, mut wsum) = (0.0, 0.0);
                for (k, w) in kernel.iter().enumerate() {
                    let j = i as isize + k as isize - r;
                    if j >= 0 && (j as usize) < n {
                        sum += w * src[at(line, j as usize)];
                        wsum += w;
                    }
                }
                out[at(line, i)] = sum / wsum;
            }
        }
        out
    };
    let abs: Vec<f64> = grad.iter().map(|g| g.abs()).collect();
    let along_time = pass(&abs, cols, &|row, c| row * cols + c, rows);
    pass(&along_time, rows, &|col, r| r * cols + col, cols)
}

/// The sum and count of the SE gates of a group of songs, per channel, for their mean.
#[derive(Clone, Debug, Default)]
pub struct GateStats {
    pub n: usize,
    pub sum: Vec<f64>,
}

impl GateStats {
    pub fn add(&mut self, gates: &[f64]) {
        if self.sum.is_empty() {
            self.sum = vec![0.0; gates.len()];
        }
        for (s, g) in self.sum.iter_mut().zip(gates) {
            *s += g;
        }
        self.n += 1;
    }
    pub fn mean(&self) -> Vec<f64> {
        self.sum.iter().map(|s| s / self.n.max(1) as f64).collect()
    }
}
