//! One optimisation step of the seed network: forward, MSE, backward, clip, Adam.

pub mod baselines;
pub mod bootstrap;
pub mod compare;
pub mod config;
pub mod dataset;
pub mod early_stop;
pub mod fit;
pub mod infer;
pub mod loader;
pub mod log;
pub mod lyrics;
pub mod lyrics_encoder;
pub mod metrics;
pub mod outputs;
pub mod plot;
pub mod predictions;
pub mod report;
pub mod run_dir;
pub mod schedule;
pub mod session;

use crate::backend::Backend;
use crate::cputime::{PhaseTime, timed};
use crate::error::{Error, Result};
use crate::nn::SeedNet;
use crate::ops;
use crate::optim::{Adam, clip_coefficient, grad_norm};
use crate::params::ParamStore;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// A batch: spectrograms [B, 1, H, W], lyrics vectors [B, T], targets [B, 2] (valence, arousal).
pub struct Batch<B: Backend> {
    pub audio: Tensor<B>,
    pub lyrics: Tensor<B>,
    pub target: Tensor<B>,
}

impl<B: Backend> Batch<B> {
    /// Reads `audio`, `lyrics` and `target` from a safetensors batch file, refusing, by tensor and
    /// file, anything that does not fit `net` (so a bad file fails here, not deep inside an op).
    pub fn from_file(be: &B, path: &std::path::Path, net: &crate::nn::ModelConfig) -> Result<Self> {
        let file = crate::io::read(path)?;
        let audio = crate::io::tensor_from_file(be, path, &file, "audio", 4)?;
        let lyrics = crate::io::tensor_from_file(be, path, &file, "lyrics", 2)?;
        let target = crate::io::tensor_from_file(be, path, &file, "target", 2)?;
        let b = audio.shape()[0];
        let refuse = |name: &str, shape: &[usize], want: String| {
            Err(Error::file(path, format!("tensor `{name}` has shape {shape:?} but this model needs {want}")))
        };
        if audio.shape()[1] != 1 || b == 0 {
            return refuse("audio", audio.shape(), "[B ≥ 1, 1, H, W] (one-channel spectrograms)".into());
        }
        if lyrics.shape() != [b, net.lyrics_dim] {
            return refuse("lyrics", lyrics.shape(), format!("[{b}, {}] (one lyrics vector per clip)", net.lyrics_dim));
        }
        if target.shape() != [b, 2] {
            return refuse("target", target.shape(), format!("[{b}, 2] (valence, arousal per clip)"));
        }
        Ok(Batch { audio, lyrics, target })
    }
}

#[derive(Clone, Copy, Debug)]
pub struct StepReport {
    /// The loss before this step's update.
    pub loss: f64,
    /// The global gradient norm before clipping.
    pub grad_norm: f64,
    /// The most bytes the backend held at once during the step (buffers and workspaces).
    pub peak_bytes: usize,
    /// Wall and CPU time of the forward (to the loss), the backward and the optimiser (gradient
    /// norm, clipping, Adam). A kernel backend queues work asynchronously, so its phases are only
    /// meaningful after a synchronise, which `train_step` does not add.
    pub phases: StepPhases,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct StepPhases {
    pub forward: PhaseTime,
    pub backward: PhaseTime,
    pub optimizer: PhaseTime,
}

/// Forward + backward (gradients left in `store`, replacing old ones); returns the loss.
pub fn forward_backward<B: Backend>(
    net: &SeedNet,
    store: &mut ParamStore<B>,
    batch: &Batch<B>,
    train: bool,
    seed: u64,
) -> Result<f64> {
    store.zero_grad();
    let mut tape = Tape::new(store.backend.clone());
    let (loss, lv) = record_loss(&mut tape, net, store, batch, train, seed)?;
    tape.backward(&loss, store)?;
    Ok(lv)
}

/// The loss alone, recording nothing.
pub fn forward_loss<B: Backend>(
    net: &SeedNet,
    store: &mut ParamStore<B>,
    batch: &Batch<B>,
    train: bool,
    seed: u64,
) -> Result<f64> {
    let mut tape = Tape::no_grad(store.backend.clone());
    Ok(record_loss(&mut tape, net, store, batch, train, seed)?.1)
}

fn record_loss<B: Backend>(
    tape: &mut Tape<B>,
    net: &SeedNet,
    store: &mut ParamStore<B>,
    batch: &Batch<B>,
    train: bool,
    seed: u64,
) -> Result<(Var<B>, f64)> {
    let be = store.backend.clone();
    let a = tape.input(batch.audio.clone(), false);
    let l = tape.input(batch.lyrics.clone(), false);
    let t = tape.input(batch.target.clone(), false);
    let out = net.forward(tape, store, &a, &l, train, seed)?;
    let loss = ops::mse_loss(tape, &out.pred, &t)?;
    let lv = loss.value().to_f64(&be)?[0];
    if !lv.is_finite() {
        return Err(Error::NonFinite(format!(
            "the loss is {lv}; no weights were changed (check the batch for NaN/Inf, or lower the learning rate)"
        )));
    }
    Ok((loss, lv))
}

/// One training step; `clip` is the max global gradient norm (None: no clipping).
pub fn train_step<B: Backend>(
    net: &SeedNet,
    store: &mut ParamStore<B>,
    opt: &mut Adam<B>,
    batch: &Batch<B>,
    clip: Option<f64>,
    seed: u64,
) -> Result<StepReport> {
    store.backend.reset_peak();
    store.zero_grad();
    let mut tape = Tape::new(store.backend.clone());
    let (fwd, forward) = timed(|| record_loss(&mut tape, net, store, batch, true, seed));
    let (loss, lv) = fwd?;
    let (bwd, backward) = timed(|| tape.backward(&loss, store));
    bwd?;
    drop(loss);
    let (norm, optimizer) = timed(|| -> Result<f64> {
        let norm = grad_norm(store)?;
        let scale = clip.map_or(1.0, |c| clip_coefficient(norm, c));
        opt.step(store, scale)?;
        Ok(norm)
    });
    let phases = StepPhases { forward, backward, optimizer };
    Ok(StepReport { loss: lv, grad_norm: norm?, peak_bytes: store.backend.memory().peak_bytes, phases })
}
