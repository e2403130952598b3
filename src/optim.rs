//! Adam / AdamW as `torch.optim`, and global gradient-norm clipping as
//! `torch.nn.utils.clip_grad_norm_(max_norm, norm_type=2)`.

use crate::backend::{AdamStep, Backend};
use crate::error::{Error, Result};
use crate::params::{ParamId, ParamStore};

/// Hyper-parameters, PyTorch's defaults but lr (the seed's 1e-3 is also PyTorch's).
#[derive(Clone, Copy, Debug)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// AdamW (decoupled decay) instead of Adam's L2 term.
    pub decoupled: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, decoupled: false }
    }
}

/// First and second moments and the step count of one parameter.
type Moments<B> = (<B as Backend>::Buf, <B as Backend>::Buf, u64);

/// Per-parameter moments, created on a parameter's first update.
pub struct Adam<B: Backend> {
    pub config: AdamConfig,
    /// Per-parameter learning rates (parameter groups); `config.lr` where absent.
    pub lr_override: Vec<(ParamId, f64)>,
    state: Vec<Option<Moments<B>>>,
}

impl<B: Backend> Adam<B> {
    pub fn new(config: AdamConfig) -> Self {
        Adam { config, lr_override: Vec::new(), state: Vec::new() }
    }

    /// Updates every trainable parameter that has a gradient; `grad_scale` (the clip coefficient)
    /// multiplies each gradient inside the same pass.
    pub fn step(&mut self, store: &mut ParamStore<B>, grad_scale: f64) -> Result<()> {
        let be = store.backend.clone();
        let ids = store.param_ids();
        if self.state.len() < store.entries().len() {
            self.state.resize_with(store.entries().len(), || None);
        }
        for id in ids {
            let Some(g) = store.grad(id).cloned() else { continue };
            let lr = self.lr_override.iter().find(|(p, _)| *p == id).map_or(self.config.lr, |x| x.1);
            let slot = &mut self.state[id.0];
            if slot.is_none() {
                let n = be.len(&g);
                *slot = Some((be.zeros(n)?, be.zeros(n)?, 0));
            }
            let (m, v, t) = slot.as_mut().expect("moments were just created");
            *t += 1;
            let c = &self.config;
            let hp = AdamStep {
                lr,
                beta1: c.beta1,
                beta2: c.beta2,
                eps: c.eps,
                weight_decay: c.weight_decay,
                decoupled: c.decoupled,
                step: *t,
                grad_scale,
            };
            be.adam_update(&mut store.value_mut(id).buf, &g, m, v, &hp)?;
        }
        Ok(())
    }
}

/// The global L2 norm over all gradients. A non-finite norm is an error naming the first
/// parameter whose gradient holds NaN or Inf, so training stops before any weight changes.
pub fn grad_norm<B: Backend>(store: &ParamStore<B>) -> Result<f64> {
    let be = &store.backend;
    let grads: Vec<&B::Buf> = store.param_ids().into_iter().filter_map(|id| store.grad(id)).collect();
    let norm = be.sum_squares_many(&grads)?.sqrt();
    if !norm.is_finite() {
        for id in store.param_ids() {
            if let Some(g) = store.grad(id)
                && !be.all_finite(g)?
            {
                return Err(Error::NonFinite(format!(
                    "the gradient of `{}` contains NaN or Inf; no weights were changed \
                         (check the inputs for NaN/Inf or lower the learning rate)",
                    store.name(id)
                )));
            }
        }
        return Err(Error::NonFinite(format!("gradient norm overflowed to {norm}; no weights were changed")));
    }
    Ok(norm)
}

/// clip_grad_norm_'s coefficient: max_norm / (norm + 1e-6), applied only when below 1.
pub fn clip_coefficient(norm: f64, max_norm: f64) -> f64 {
    let coef = max_norm / (norm + 1e-6);
    coef.min(1.0)
}

/// StepLR: lr · gamma^(epoch / step_size).
pub fn step_lr(base: f64, epoch: usize, step_size: usize, gamma: f64) -> f64 {
    base * gamma.powi((epoch / step_size.max(1)) as i32)
}
