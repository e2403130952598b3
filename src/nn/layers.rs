//! Layers that own named parameters: Conv2d, BatchNorm2d, Linear, with PyTorch's default init.

use crate::backend::Backend;
use crate::error::Result;
use crate::ops::{self, BatchNormState};
use crate::params::{ParamId, ParamStore};
use crate::rng::Rng;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// U(±1/sqrt(fan_in)): kaiming_uniform with a = sqrt(5) for weights, and PyTorch's bias rule.
fn uniform_fan_in<B: Backend>(b: &B, rng: &mut Rng, shape: &[usize], fan_in: usize) -> Result<Tensor<B>> {
    let bound = 1.0 / (fan_in as f64).sqrt();
    let n: usize = shape.iter().product();
    let data: Vec<f64> = (0..n).map(|_| rng.uniform_range(-bound, bound)).collect();
    Tensor::from_f64(b, shape, &data)
}

fn join(prefix: &str, leaf: &str) -> String {
    if prefix.is_empty() { leaf.to_string() } else { format!("{prefix}.{leaf}") }
}

pub struct Conv2d {
    pub weight: ParamId,
    pub bias: Option<ParamId>,
    pub stride: usize,
    pub pad: usize,
}

impl Conv2d {
    #[allow(clippy::too_many_arguments)]
    pub fn new<B: Backend>(
        store: &mut ParamStore<B>,
        rng: &mut Rng,
        prefix: &str,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Result<Self> {
        let be = store.backend.clone();
        let fan_in = c_in * k * k;
        let w = uniform_fan_in(&be, rng, &[c_out, c_in, k, k], fan_in)?;
        let weight = store.add_param(join(prefix, "weight"), w);
        let b = uniform_fan_in(&be, rng, &[c_out], fan_in)?;
        let bias = Some(store.add_param(join(prefix, "bias"), b));
        Ok(Conv2d { weight, bias, stride, pad })
    }

    pub fn forward<B: Backend>(&self, tape: &mut Tape<B>, store: &ParamStore<B>, x: &Var<B>) -> Result<Var<B>> {
        let w = tape.param(store, self.weight);
        let b = self.bias.map(|b| tape.param(store, b));
        ops::conv2d(tape, x, &w, b.as_ref(), self.stride, self.pad)
    }
}

pub struct BatchNorm2d {
    pub weight: ParamId,
    pub bias: ParamId,
    pub running_mean: ParamId,
    pub running_var: ParamId,
    pub num_batches_tracked: ParamId,
    pub momentum: f64,
    pub eps: f64,
}

impl BatchNorm2d {
    pub fn new<B: Backend>(store: &mut ParamStore<B>, prefix: &str, c: usize) -> Result<Self> {
        let be = store.backend.clone();
        Ok(BatchNorm2d {
            weight: store.add_param(join(prefix, "weight"), Tensor::new(vec![c], be.fill(c, 1.0)?)?),
            bias: store.add_param(join(prefix, "bias"), Tensor::zeros(&be, &[c])?),
            running_mean: store.add_buffer(join(prefix, "running_mean"), Tensor::zeros(&be, &[c])?),
            running_var: store.add_buffer(join(prefix, "running_var"), Tensor::new(vec![c], be.fill(c, 1.0)?)?),
            num_batches_tracked: store.add_counter(join(prefix, "num_batches_tracked")),
            momentum: 0.1,
            eps: 1e-5,
        })
    }

    pub fn forward<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        store: &mut ParamStore<B>,
        x: &Var<B>,
        train: bool,
    ) -> Result<Var<B>> {
        let (gamma, beta, state) = self.enter(tape, store, train);
        ops::batchnorm2d(tape, x, &gamma, &beta, state, train)
    }

    /// `forward` as SyncBatchNorm: in training the batch statistics are those of every replica's
    /// part of the batch together (`ops::sync_batchnorm2d`); evaluation is `forward`'s.
    pub fn forward_sync<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        store: &mut ParamStore<B>,
        x: &Var<B>,
        train: bool,
        replicas: &std::sync::Arc<dyn ops::Replicas>,
    ) -> Result<Var<B>> {
        if !train {
            return self.forward(tape, store, x, train);
        }
        let (gamma, beta, state) = self.enter(tape, store, train);
        ops::sync_batchnorm2d(tape, x, &gamma, &beta, state, replicas)
    }

    /// γ and β on the tape and the running statistics to normalise with (or update), with
    /// `num_batches_tracked` counted in training: what every op over this layer's state needs.
    fn enter<'s, B: Backend>(
        &self,
        tape: &mut Tape<B>,
        store: &'s mut ParamStore<B>,
        train: bool,
    ) -> (Var<B>, Var<B>, BatchNormState<'s, B>) {
        let (gamma, beta) = (tape.param(store, self.weight), tape.param(store, self.bias));
        if train {
            store.bump_counter(self.num_batches_tracked);
        }
        let (running_mean, running_var) = store.two_mut(self.running_mean, self.running_var);
        (gamma, beta, BatchNormState { running_mean, running_var, momentum: self.momentum, eps: self.eps })
    }
}

/// Conv2d → BatchNorm2d → ReLU (→ 2×2 max-pool) as the one fused op `ops::vgg_unit`, over the
/// two layers' own parameters (the same state_dict entries as the unfused chain).
pub fn vgg_unit_forward<B: Backend>(
    conv: &Conv2d,
    bn: &BatchNorm2d,
    pool: bool,
    tape: &mut Tape<B>,
    store: &mut ParamStore<B>,
    x: &Var<B>,
    train: bool,
) -> Result<Var<B>> {
    let weight = tape.param(store, conv.weight);
    let bias = conv.bias.map(|b| tape.param(store, b));
    let (gamma, beta, state) = bn.enter(tape, store, train);
    let vars = ops::UnitVars { weight: &weight, bias: bias.as_ref(), gamma: &gamma, beta: &beta };
    ops::vgg_unit(tape, x, vars, state, (conv.stride, conv.pad), train, pool)
}

pub struct Linear {
    pub weight: ParamId,
    pub bias: Option<ParamId>,
    pub d_in: usize,
    pub d_out: usize,
}

impl Linear {
    pub fn new<B: Backend>(
        store: &mut ParamStore<B>,
        rng: &mut Rng,
        prefix: &str,
        d_in: usize,
        d_out: usize,
        with_bias: bool,
    ) -> Result<Self> {
        let be = store.backend.clone();
        let weight = store.add_param(join(prefix, "weight"), uniform_fan_in(&be, rng, &[d_out, d_in], d_in)?);
        let bias = if with_bias {
            Some(store.add_param(join(prefix, "bias"), uniform_fan_in(&be, rng, &[d_out], d_in)?))
        } else {
            None
        };
        Ok(Linear { weight, bias, d_in, d_out })
    }

    pub fn forward<B: Backend>(&self, tape: &mut Tape<B>, store: &ParamStore<B>, x: &Var<B>) -> Result<Var<B>> {
        let w = tape.param(store, self.weight);
        let b = self.bias.map(|b| tape.param(store, b));
        ops::linear(tape, x, &w, b.as_ref())
    }
}
