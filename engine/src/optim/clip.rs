//! Global gradient-norm clipping, as `clip_grad_norm_`.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::params::ParamStore;

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
