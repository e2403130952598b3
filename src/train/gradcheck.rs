//! The seed network's gradients against central finite differences in f64 (`moodgrad
//! gradcheck`): every parameter tensor, through the whole network, on the CPU or any device,
//! judged with the engine's kink-aware quotients (`moodgrad_engine::gradcheck`).

use super::{Batch, mse_objective};
use crate::backend::Backend;
use crate::backend::cpu::Cpu;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::gradcheck::{quotients, rel_err};
use crate::nn::{ModelConfig, SeedNet};
use crate::params::{ParamStore, Slot};
use crate::rng::Rng;
use crate::tensor::Tensor;

type C64 = Cpu<f64>;

/// One row of a network gradient check.
#[derive(Debug, Clone)]
pub struct ParamCheck {
    pub name: String,
    /// Elements judged.
    pub checked: usize,
    /// Elements passed over because the loss has a kink within ±h/100 of them.
    pub skipped_kinks: usize,
    /// Judged elements whose ±h interval held a kink, judged with h/10 or h/100 instead.
    pub smaller_step: usize,
    pub max_rel_err: f64,
}

/// How `check_network` judges.
#[derive(Clone, Copy, Debug)]
pub struct NetCheck {
    /// Elements judged per parameter tensor (all of a smaller tensor).
    pub per_tensor: usize,
    /// Central-difference step.
    pub h: f64,
    /// Relative error (see `rel_err`) that fails a tensor; the kink detector is set from it.
    pub tolerance: f64,
}

/// Floor of `rel_err` in network checks: conv biases that feed BatchNorm have a true gradient of
/// exactly 0, where the difference quotient is pure rounding, ε·|L|/h ≈ 1e-11.
const NET_FLOOR: f64 = 1e-5;
/// Give up looking for smooth elements of a tensor after this many draws per wanted element.
const DRAWS_PER_ELEMENT: usize = 20;

/// Finite differences through the whole seed network in f64 on the CPU, against the analytic
/// gradients that `device` computes (`None`: the CPU backend in f64), training mode with dropout
/// off. Judges `per_tensor` elements of each parameter tensor where the loss is smooth: the
/// largest-gradient one and random others, skipping (and counting) points near a kink.
pub fn check_network(
    mut config: ModelConfig,
    input: [usize; 4],
    seed: u64,
    how: NetCheck,
    device: Option<&Device>,
) -> Result<Vec<ParamCheck>> {
    config.dropout = 0.0;
    let be = C64::new();
    let mut rng = Rng::new(seed);
    let mut store = ParamStore::new(be.clone());
    let net = SeedNet::new(config.clone(), &mut store, &mut rng)?;
    let [b, c, hh, ww] = input;
    let normal = |rng: &mut Rng, n: usize| -> Vec<f64> { (0..n).map(|_| rng.normal()).collect() };
    let audio = normal(&mut rng, b * c * hh * ww);
    let lyrics = normal(&mut rng, b * config.lyrics_dim);
    let target: Vec<f64> = (0..b * 2).map(|_| rng.uniform()).collect();
    let batch = Batch::with_vectors(
        Tensor::from_f64(&be, &input, &audio)?,
        Tensor::from_f64(&be, &[b, config.lyrics_dim], &lyrics)?,
        Tensor::from_f64(&be, &[b, 2], &target)?,
    );
    let weights: Vec<Vec<f64>> = store.entries().iter().map(|e| weights_of(&be, &e.slot)).collect::<Result<_>>()?;
    let grads = match device {
        None => analytic(&be, be.clone(), &config, &weights, &batch, seed)?,
        Some(d) => crate::on_device!(d, |b| analytic(&be, Clone::clone(b), &config, &weights, &batch, seed))?,
    };
    let f0 = mse_objective(&net, &mut store, &batch, true, seed, false)?;
    let ids = store.param_ids();
    let mut rows = Vec::new();
    for (k, &id) in ids.iter().enumerate() {
        let g = &grads[k];
        let n = g.len();
        let want = how.per_tensor.min(n);
        let largest = (0..n).max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs())).unwrap_or(0);
        let (mut judged, mut skipped, mut worst, mut draws, mut smaller) = (0, 0, 0.0f64, 0, 0);
        while judged < want && draws < want * DRAWS_PER_ELEMENT {
            // Small tensors are judged whole, in order; larger ones by draws after the largest.
            let j = match (n <= how.per_tensor, draws) {
                (true, d) if d >= n => break,
                (true, d) => d,
                (false, 0) => largest,
                (false, _) => rng.below(n),
            };
            draws += 1;
            let orig = store.value(id).buf()[j];
            let mut at = |d: f64| -> Result<f64> {
                store.value_mut(id).buf_mut().make_mut()[j] = orig + d;
                mse_objective(&net, &mut store, &batch, true, seed, false)
            };
            // A kink at distance δ from the point leaves [x − h, x + h] once h < δ: shrink the
            // step (rounding grows as ε·|L|/h, still far below the tolerance at h/100).
            let mut q = quotients(f0, &mut at, how.h, g[j], how.tolerance, NET_FLOOR)?;
            for shrink in [10.0, 100.0] {
                if q.smooth {
                    break;
                }
                q = quotients(f0, &mut at, how.h / shrink, g[j], how.tolerance, NET_FLOOR)?;
                smaller += q.smooth as usize;
            }
            store.value_mut(id).buf_mut().make_mut()[j] = orig;
            if !q.smooth {
                skipped += 1;
                continue;
            }
            judged += 1;
            worst = worst.max(rel_err(g[j], q.central, NET_FLOOR));
        }
        if judged < want {
            return Err(Error::Invalid(format!(
                "gradcheck could judge only {judged} of {want} elements of `{}`: {skipped} of {draws} draws lie \
                 near a kink of the loss (try another --seed or a smaller step)",
                store.name(id)
            )));
        }
        rows.push(ParamCheck {
            name: store.name(id).to_string(),
            checked: judged,
            skipped_kinks: skipped,
            smaller_step: smaller,
            max_rel_err: worst,
        });
    }
    Ok(rows)
}

fn weights_of(be: &C64, slot: &Slot<C64>) -> Result<Vec<f64>> {
    match slot {
        Slot::Param { value, .. } | Slot::Buffer { value } => value.to_f64(be),
        Slot::Counter(_) => Ok(vec![]),
    }
}

/// The parameter gradients of one training-mode forward/backward on `be`, from the given
/// weights (in state_dict order), as f64.
fn analytic<B: Backend>(
    host: &C64,
    be: B,
    config: &ModelConfig,
    weights: &[Vec<f64>],
    batch: &Batch<C64>,
    seed: u64,
) -> Result<Vec<Vec<f64>>> {
    let mut store = ParamStore::new(be.clone());
    let net = SeedNet::new(config.clone(), &mut store, &mut Rng::new(0))?;
    for (e, w) in store.entries_mut().iter_mut().zip(weights) {
        if let Slot::Param { value, .. } | Slot::Buffer { value } = &mut e.slot {
            value.set_buf(be.upload_f64(w)?)?;
        }
    }
    let batch = batch.to_backend(host, &be)?;
    mse_objective(&net, &mut store, &batch, true, seed, true)?;
    store
        .param_ids()
        .iter()
        .map(|&id| store.grad(id).map_or(Ok(vec![0.0; store.value(id).numel()]), |g| be.download_f64(g)))
        .collect()
}
