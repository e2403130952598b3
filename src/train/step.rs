//! The training step — forward, objective, backward, global-norm clip, Adam — and the objective,
//! each written once: `fit` (so `moodgrad train`), `moodgrad step`, `bench kernels --op step`, the
//! PyTorch goldens and the determinism tests all run `train_step`, so what they prove is what a
//! run trains with.

use super::config::{Loss, TrainSection};
use super::lyrics::LyricsSide;
use crate::backend::Backend;
use crate::cputime::{PhaseTime, timed};
use crate::error::{Error, Result};
use crate::nn::{Outputs, SeedNet};
use crate::ops;
use crate::optim::{Adam, clip_coefficient, grad_norm};
use crate::params::ParamStore;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// What training minimises: `loss` (MSE or L1) on (valence, arousal), plus `quadrant_weight` ×
/// the quadrant head's cross-entropy when the network has that head.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Objective {
    pub loss: Loss,
    pub quadrant_weight: f64,
}

impl Objective {
    /// The seed's objective: MSE alone.
    pub const MSE: Objective = Objective { loss: Loss::Mse, quadrant_weight: 0.0 };

    /// The objective a config's `[train]` section names.
    pub fn of(train: &TrainSection) -> Objective {
        Objective { loss: train.loss, quadrant_weight: train.quadrant_loss }
    }

    /// The objective of `out` against `target` ([B, 2]) on `tape`; `quadrant` holds each song's
    /// quadrant index (0-3) and is read only when the network has a quadrant head.
    pub fn record<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        out: &Outputs<B>,
        target: &Var<B>,
        quadrant: &[u32],
    ) -> Result<Var<B>> {
        let mut loss = match self.loss {
            Loss::Mse => ops::mse_loss(tape, &out.pred, target)?,
            Loss::L1 => ops::l1_loss(tape, &out.pred, target)?,
        };
        if let Some(logits) = &out.quadrant {
            let rows = logits.value().shape()[0];
            if quadrant.len() != rows {
                return Err(Error::Invalid(format!(
                    "the quadrant head needs one quadrant label per song: {} labels for a batch of {rows}",
                    quadrant.len()
                )));
            }
            let ce = ops::cross_entropy(tape, logits, quadrant)?;
            let w = tape.constant(Tensor::from_f64(&tape.backend, &[], &[self.quadrant_weight])?);
            let ce = ops::mul(tape, &ce, &w)?;
            loss = ops::add(tape, &loss, &ce)?;
        }
        Ok(loss)
    }
}

/// Where a batch's lyrics vectors come from.
pub enum BatchLyrics<B: Backend> {
    /// None (an audio-only network).
    None,
    /// [B, dim] vectors given as data (a batch file, a golden, a benchmark): a constant.
    Vectors(Tensor<B>),
    /// These songs of the run (indices into its song list): the run's `LyricsSide` gives their
    /// vectors, from its table or recorded on the tape when the encoder trains.
    Songs(Vec<usize>),
}

/// One batch on the device: the step's (and evaluation's) only batch type.
pub struct Batch<B: Backend> {
    /// [B, 1, n_mels, frames] spectrograms (None for a lyrics-only network).
    pub audio: Option<Tensor<B>>,
    pub lyrics: BatchLyrics<B>,
    /// [B, 2] valence, arousal (None: predictions only).
    pub target: Option<Tensor<B>>,
    /// Each song's quadrant index (0-3), for the quadrant head; empty when the network has none.
    pub quadrant: Vec<u32>,
}

impl<B: Backend> Batch<B> {
    /// A bimodal batch with lyrics vectors given as data.
    pub fn with_vectors(audio: Tensor<B>, lyrics: Tensor<B>, target: Tensor<B>) -> Self {
        Batch { audio: Some(audio), lyrics: BatchLyrics::Vectors(lyrics), target: Some(target), quadrant: vec![] }
    }

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
        Ok(Batch::with_vectors(audio, lyrics, target))
    }

    /// The lyrics vectors when they are given as data.
    pub fn lyrics_vectors(&self) -> Option<&Tensor<B>> {
        match &self.lyrics {
            BatchLyrics::Vectors(v) => Some(v),
            _ => None,
        }
    }

    /// The same batch on another backend (through f64 on the host).
    pub fn to_backend<C: Backend>(&self, from: &B, to: &C) -> Result<Batch<C>> {
        let copy = |t: &Tensor<B>| Tensor::from_f64(to, t.shape(), &t.to_f64(from)?);
        Ok(Batch {
            audio: self.audio.as_ref().map(copy).transpose()?,
            lyrics: match &self.lyrics {
                BatchLyrics::None => BatchLyrics::None,
                BatchLyrics::Vectors(v) => BatchLyrics::Vectors(copy(v)?),
                BatchLyrics::Songs(s) => BatchLyrics::Songs(s.clone()),
            },
            target: self.target.as_ref().map(copy).transpose()?,
            quadrant: self.quadrant.clone(),
        })
    }
}

/// A forward pass of one batch: the network's outputs and, when the batch has targets, the
/// objective.
pub struct Forward<B: Backend> {
    pub out: Outputs<B>,
    pub loss: Option<Var<B>>,
}

/// The batch's inputs on `tape`, one forward, and `objective` when the batch has targets.
/// `lyrics` serves `BatchLyrics::Songs`; the lyrics encoder draws its dropout from `seed` mixed
/// with a constant of its own, the network from `seed` itself.
#[allow(clippy::too_many_arguments)]
pub fn record_forward<B: Backend>(
    tape: &mut Tape<B>,
    net: &SeedNet,
    store: &mut ParamStore<B>,
    lyrics: &mut dyn LyricsSide<B>,
    batch: &Batch<B>,
    objective: &Objective,
    train: bool,
    seed: u64,
) -> Result<Forward<B>> {
    let audio = batch.audio.as_ref().map(|a| tape.input(a.clone(), false));
    let lyrics = match &batch.lyrics {
        BatchLyrics::None => None,
        BatchLyrics::Vectors(v) => Some(tape.input(v.clone(), false)),
        BatchLyrics::Songs(songs) => lyrics.batch(tape, store, songs, train, seed ^ 0x6c79_7269)?,
    };
    let out = net.forward_inputs(tape, store, audio.as_ref(), lyrics.as_ref(), train, seed)?;
    drop((audio, lyrics));
    let loss = match &batch.target {
        None => None,
        Some(t) => {
            let target = tape.input(t.clone(), false);
            Some(objective.record(tape, &out, &target, &batch.quadrant)?)
        }
    };
    Ok(Forward { out, loss })
}

/// The objective's value, refusing a non-finite one before anything is updated.
fn loss_value<B: Backend>(loss: &Var<B>, be: &B) -> Result<f64> {
    let lv = loss.value().to_f64(be)?[0];
    if !lv.is_finite() {
        return Err(Error::NonFinite(format!(
            "the loss is {lv}; no weights were changed (check the batch for NaN/Inf, or lower the learning rate)"
        )));
    }
    Ok(lv)
}

fn needs_target<B: Backend>(f: Forward<B>) -> Result<(Outputs<B>, Var<B>)> {
    let loss = f.loss.ok_or_else(|| Error::Invalid("a training step needs a batch with targets".into()))?;
    Ok((f.out, loss))
}

/// How one step runs: the objective, the clip and the dropout seed.
#[derive(Clone, Copy, Debug)]
pub struct StepOptions {
    pub objective: Objective,
    /// The max global gradient norm (None: no clipping).
    pub clip: Option<f64>,
    pub seed: u64,
}

impl StepOptions {
    /// The seed's objective (MSE) with `clip` and dropout seed `seed`.
    pub fn mse(clip: Option<f64>, seed: u64) -> Self {
        StepOptions { objective: Objective::MSE, clip, seed }
    }
}

/// Called between backward and the update with the parameters (gradients in place, unclipped)
/// and the global gradient norm: how tests read a step's gradients.
pub type GradHook<'a, B> = &'a mut dyn FnMut(&ParamStore<B>, f64) -> Result<()>;

/// What one step did.
pub struct StepReport<B: Backend> {
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
    /// [B, 2] predictions of the forward pass (before the update).
    pub pred: Tensor<B>,
    /// The audio tower's vector of the forward pass (None without an audio tower).
    pub audio: Option<Tensor<B>>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct StepPhases {
    pub forward: PhaseTime,
    pub backward: PhaseTime,
    pub optimizer: PhaseTime,
}

/// One training step: forward in training mode, the objective, backward (gradients replace old
/// ones in `store`), `hook`, the global gradient norm, clipping, Adam.
pub fn train_step<B: Backend>(
    net: &SeedNet,
    store: &mut ParamStore<B>,
    opt: &mut Adam<B>,
    lyrics: &mut dyn LyricsSide<B>,
    batch: &Batch<B>,
    options: &StepOptions,
    hook: Option<GradHook<'_, B>>,
) -> Result<StepReport<B>> {
    train_step_accumulated(net, store, opt, lyrics, std::slice::from_ref(batch), options, hook)
}

/// One training step over `micro` batches (`[train] accumulate`): for each, in order, a forward in
/// training mode (BatchNorm on that micro-batch alone) and a backward whose gradients add to the
/// previous ones; then the gradient is the mean of the micro-batches' (PyTorch's
/// `(loss / K).backward()` per micro-batch, and DistributedDataParallel's average over ranks),
/// its global norm, `hook` (seeing the sum), clipping and Adam. Micro-batch k draws its dropout
/// from `seed` mixed with k (k = 0: `seed` itself, so one micro-batch is exactly `train_step`).
/// The report's loss is the mean of the micro-batches' losses; its predictions are theirs in order.
pub fn train_step_accumulated<B: Backend>(
    net: &SeedNet,
    store: &mut ParamStore<B>,
    opt: &mut Adam<B>,
    lyrics: &mut dyn LyricsSide<B>,
    micro: &[Batch<B>],
    options: &StepOptions,
    hook: Option<GradHook<'_, B>>,
) -> Result<StepReport<B>> {
    if micro.is_empty() {
        return Err(Error::Invalid("a training step needs at least one batch".into()));
    }
    train_step_shared(net, store, opt, lyrics, micro, 0, None, options, hook)
}

/// How the micro-batches of other processes join this one's (data parallelism): called after
/// this process's backwards with the store (holding this process's gradient sum; none when it
/// had no micro-batch) and this process's micro-batch losses, it leaves in the store the sum over
/// every micro-batch of the step, in micro-batch order, and returns all their losses in order.
pub type Exchange<'a, B> = &'a mut dyn FnMut(&mut ParamStore<B>, &[f64]) -> Result<Vec<f64>>;

/// `train_step_accumulated` for one process of several: `micro` are micro-batches `first`,
/// `first` + 1, … of the step (the dropout seeds follow their numbers), `exchange` adds the
/// others' gradients before the mean, the norm and the update, so every process takes the same
/// step as one process running all the micro-batches. `micro` may be empty when `exchange` is
/// given (a batch with fewer songs than processes); the report's predictions are this process's.
#[allow(clippy::too_many_arguments)]
pub fn train_step_shared<B: Backend>(
    net: &SeedNet,
    store: &mut ParamStore<B>,
    opt: &mut Adam<B>,
    lyrics: &mut dyn LyricsSide<B>,
    micro: &[Batch<B>],
    first: usize,
    exchange: Option<Exchange<'_, B>>,
    options: &StepOptions,
    hook: Option<GradHook<'_, B>>,
) -> Result<StepReport<B>> {
    let be = store.backend.clone();
    be.reset_peak();
    store.zero_grad();
    let (mut forward, mut backward) = (PhaseTime::default(), PhaseTime::default());
    let (mut losses, mut preds, mut audios) = (Vec::new(), Vec::new(), Vec::new());
    for (j, batch) in micro.iter().enumerate() {
        let k = first + j;
        let seed = options.seed ^ (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut tape = Tape::new(be.clone());
        let (fwd, f_time) = timed(|| -> Result<_> {
            let f = record_forward(&mut tape, net, store, lyrics, batch, &options.objective, true, seed)?;
            let (out, loss) = needs_target(f)?;
            let lv = loss_value(&loss, &be)?;
            Ok((out, loss, lv))
        });
        let (out, loss, lv) = fwd?;
        // The report keeps the outputs' values (shared handles), not their places on the tape.
        preds.push(out.pred.value().clone());
        audios.push(out.audio.as_ref().map(|a| a.value().clone()));
        drop(out);
        let (bwd, b_time) = timed(|| tape.backward(&loss, store));
        bwd?;
        drop(loss);
        forward.add(f_time);
        backward.add(b_time);
        losses.push(lv);
    }
    let losses = match exchange {
        Some(ex) => ex(store, &losses)?,
        None => losses,
    };
    if losses.is_empty() {
        return Err(Error::Invalid("a training step needs at least one batch".into()));
    }
    let parts = losses.len() as f64;
    let (norm, optimizer) = timed(|| -> Result<f64> {
        // The stored gradients are the micro-batches' sum; the step uses their mean.
        let norm = grad_norm(store)? / parts;
        if let Some(h) = hook {
            h(store, norm)?;
        }
        opt.step(store, options.clip.map_or(1.0, |c| clip_coefficient(norm, c)) / parts)?;
        Ok(norm)
    });
    let phases = StepPhases { forward, backward, optimizer };
    let pred = match preds.is_empty() {
        true => Tensor::from_f64(&be, &[0, 2], &[])?,
        false => concat_rows(&be, preds)?,
    };
    let audio = match !audios.is_empty() && audios.iter().all(Option::is_some) {
        true => Some(concat_rows(&be, audios.into_iter().flatten().collect())?),
        false => None,
    };
    let loss = losses.iter().sum::<f64>() / parts;
    Ok(StepReport { loss, grad_norm: norm?, peak_bytes: be.memory().peak_bytes, phases, pred, audio })
}

/// [n_k, d] tensors stacked into one [Σn_k, d] (the tensor itself when there is one).
fn concat_rows<B: Backend>(be: &B, mut parts: Vec<Tensor<B>>) -> Result<Tensor<B>> {
    if parts.len() == 1 {
        return Ok(parts.remove(0));
    }
    let d = parts[0].shape()[1..].iter().product::<usize>();
    let mut all = Vec::new();
    for t in &parts {
        all.extend(t.to_f64(be)?);
    }
    let mut shape = parts[0].shape().to_vec();
    shape[0] = all.len() / d.max(1);
    Tensor::from_f64(be, &shape, &all)
}

/// The MSE objective on a batch with its lyrics vectors given, for gradient checks: its value
/// and, with `backward`, the gradients (left in `store`, replacing old ones) — `train_step`
/// without the update, or the loss alone on a tape that records nothing.
pub fn mse_objective<B: Backend>(
    net: &SeedNet,
    store: &mut ParamStore<B>,
    batch: &Batch<B>,
    train: bool,
    seed: u64,
    backward: bool,
) -> Result<f64> {
    let be = store.backend.clone();
    let mut tape = if backward { Tape::new(be.clone()) } else { Tape::no_grad(be.clone()) };
    if backward {
        store.zero_grad();
    }
    let f = record_forward(&mut tape, net, store, &mut super::lyrics::NoLyrics, batch, &Objective::MSE, train, seed)?;
    let (_, loss) = needs_target(f)?;
    let lv = loss_value(&loss, &be)?;
    if backward {
        tape.backward(&loss, store)?;
    }
    Ok(lv)
}
