//! Central finite differences in f64 against the tape's gradients: per op and per network.

use crate::backend::Backend;
use crate::backend::cpu::Cpu;
use crate::device::Device;
use crate::error::Result;
use crate::nn::{ModelConfig, SeedNet};
use crate::ops;
use crate::params::{ParamStore, Slot};
use crate::rng::Rng;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;
use crate::train::{Batch, forward_backward, forward_loss};

type C64 = Cpu<f64>;

/// |a − n| / max(|a| + |n|, floor): relative where the gradient is sizeable, absolute (scaled
/// by 1/floor) where it is zero up to rounding.
pub fn rel_err(analytic: f64, numeric: f64, floor: f64) -> f64 {
    (analytic - numeric).abs() / (analytic.abs() + numeric.abs()).max(floor)
}

/// Checks `f` (inputs -> any tensor) by projecting its output on a fixed random direction
/// R, so the scalar is Σ out·R. Returns the max relative error per input, over every element.
pub fn check_op(
    shapes: &[Vec<usize>],
    seed: u64,
    h: f64,
    f: impl Fn(&mut Tape<C64>, &[Var]) -> Result<Var>,
) -> Result<Vec<f64>> {
    let be = C64::new();
    let mut rng = Rng::new(seed);
    let inputs: Vec<Vec<f64>> =
        shapes.iter().map(|s| (0..s.iter().product::<usize>()).map(|_| rng.normal()).collect()).collect();
    let eval = |vals: &[Vec<f64>], rdir: Option<&Vec<f64>>| -> Result<(Tape<C64>, Vec<Var>, Var, usize)> {
        let mut tape = Tape::new(be);
        let vars: Vec<Var> = vals
            .iter()
            .zip(shapes)
            .map(|(v, s)| Ok(tape.input(Tensor::from_f64(&be, s, v)?, true)))
            .collect::<Result<_>>()?;
        let out = f(&mut tape, &vars)?;
        let n = tape.value(out).numel();
        let flat = ops::reshape(&mut tape, out, &[1, n])?;
        let r = match rdir {
            Some(r) => r.clone(),
            None => vec![0.0; n],
        };
        let rv = tape.input(Tensor::from_f64(&be, &[1, n], &r)?, false);
        let s = ops::linear(&mut tape, flat, rv, None)?;
        Ok((tape, vars, s, n))
    };
    let (_, _, _, n_out) = eval(&inputs, None)?;
    let rdir: Vec<f64> = (0..n_out).map(|_| rng.normal()).collect();
    let (tape, vars, s, _) = eval(&inputs, Some(&rdir))?;
    let mut store = ParamStore::new(be);
    let grads = tape.backward(s, &mut store)?;
    let scalar = |vals: &[Vec<f64>]| -> Result<f64> {
        let (t, _, s, _) = eval(vals, Some(&rdir))?;
        Ok(t.value(s).to_f64(&be)?[0])
    };
    let mut worst = Vec::new();
    for (i, v) in vars.iter().enumerate() {
        let an = match grads.get(*v) {
            Some(g) => be.download(g)?,
            None => vec![0.0; inputs[i].len()],
        };
        let mut w: f64 = 0.0;
        for j in 0..inputs[i].len() {
            let mut p = inputs.clone();
            p[i][j] += h;
            let lp = scalar(&p)?;
            p[i][j] -= 2.0 * h;
            let lm = scalar(&p)?;
            let num = (lp - lm) / (2.0 * h);
            w = w.max(rel_err(an[j], num, 1e-6));
        }
        worst.push(w);
    }
    Ok(worst)
}

/// One row of a network gradient check.
#[derive(Debug, Clone)]
pub struct ParamCheck {
    pub name: String,
    pub checked: usize,
    pub max_rel_err: f64,
}

/// Finite differences through the whole seed network in f64 on the CPU, against the analytic
/// gradients that `device` computes (`None`: the CPU backend in f64), training mode with dropout
/// off. Checks `per_tensor` elements of each parameter tensor: the largest-gradient one and random
/// others.
pub fn check_network(
    mut config: ModelConfig,
    input: [usize; 4],
    seed: u64,
    per_tensor: usize,
    h: f64,
    device: Option<&Device>,
) -> Result<Vec<ParamCheck>> {
    config.dropout = 0.0;
    let be = C64::new();
    let mut rng = Rng::new(seed);
    let mut store = ParamStore::new(be);
    let net = SeedNet::new(config.clone(), &mut store, &mut rng)?;
    let [b, c, hh, ww] = input;
    let normal = |rng: &mut Rng, n: usize| -> Vec<f64> { (0..n).map(|_| rng.normal()).collect() };
    let audio = normal(&mut rng, b * c * hh * ww);
    let lyrics = normal(&mut rng, b * config.lyrics_dim);
    let target: Vec<f64> = (0..b * 2).map(|_| rng.uniform()).collect();
    let host = HostBatch { input, lyrics_dim: config.lyrics_dim, audio, lyrics, target };
    let batch = host.upload(&be)?;
    let weights: Vec<Vec<f64>> = store.entries().iter().map(|e| weights_of(&be, &e.slot)).collect::<Result<_>>()?;
    let grads = match device {
        None => analytic(be, &config, &weights, &host, seed)?,
        Some(d) => crate::on_device!(d, |b| analytic(Clone::clone(b), &config, &weights, &host, seed))?,
    };
    let ids = store.param_ids();
    let mut rows = Vec::new();
    for (k, &id) in ids.iter().enumerate() {
        let g = &grads[k];
        let n = g.len();
        let mut picks = vec![(0..n).max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs())).unwrap_or(0)];
        while picks.len() < per_tensor.min(n) {
            picks.push(rng.below(n));
        }
        let mut worst: f64 = 0.0;
        for &j in &picks {
            let orig = store.value(id).buf[j];
            let at = |x: f64, store: &mut ParamStore<C64>| -> Result<f64> {
                store.value_mut(id).buf[j] = x;
                forward_loss(&net, store, &batch, true, seed)
            };
            let lp = at(orig + h, &mut store)?;
            let lm = at(orig - h, &mut store)?;
            store.value_mut(id).buf[j] = orig;
            let num = (lp - lm) / (2.0 * h);
            // Floor 1e-5: conv biases that feed BatchNorm have a true gradient of exactly 0,
            // where the difference quotient is pure rounding, ε·|L|/h ≈ 1e-11.
            worst = worst.max(rel_err(g[j], num, 1e-5));
        }
        rows.push(ParamCheck { name: store.name(id).to_string(), checked: picks.len(), max_rel_err: worst });
    }
    Ok(rows)
}

/// A batch on the host, uploadable to any backend.
struct HostBatch {
    input: [usize; 4],
    lyrics_dim: usize,
    audio: Vec<f64>,
    lyrics: Vec<f64>,
    target: Vec<f64>,
}

impl HostBatch {
    fn upload<B: Backend>(&self, be: &B) -> Result<Batch<B>> {
        let b = self.input[0];
        Ok(Batch {
            audio: Tensor::from_f64(be, &self.input, &self.audio)?,
            lyrics: Tensor::from_f64(be, &[b, self.lyrics_dim], &self.lyrics)?,
            target: Tensor::from_f64(be, &[b, 2], &self.target)?,
        })
    }
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
    be: B,
    config: &ModelConfig,
    weights: &[Vec<f64>],
    host: &HostBatch,
    seed: u64,
) -> Result<Vec<Vec<f64>>> {
    let mut store = ParamStore::new(be.clone());
    let net = SeedNet::new(config.clone(), &mut store, &mut Rng::new(0))?;
    for (e, w) in store.entries_mut().iter_mut().zip(weights) {
        if let Slot::Param { value, .. } | Slot::Buffer { value } = &mut e.slot {
            value.buf = be.upload_f64(w)?;
        }
    }
    let batch = host.upload(&be)?;
    forward_backward(&net, &mut store, &batch, true, seed)?;
    store
        .param_ids()
        .iter()
        .map(|&id| store.grad(id).map_or(Ok(vec![0.0; store.value(id).numel()]), |g| be.download_f64(g)))
        .collect()
}
