//! LayerNorm over the last axis (`torch.nn.LayerNorm(cols, eps)`).

use crate::backend::{Backend, LayerNormGeom};
use crate::error::{Error, Result};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// y = (x − mean)/sqrt(var + eps)·γ + β per row of the last axis (biased variance). Saves x, γ and
/// the per-row mean and 1/std for the backward (only when something needs a gradient).
pub fn layer_norm<B: Backend>(
    tape: &mut Tape<B>,
    x: &Var<B>,
    gamma: &Var<B>,
    beta: &Var<B>,
    eps: f64,
) -> Result<Var<B>> {
    let s = x.shape().to_vec();
    let Some(&cols) = s.last() else {
        return Err(Error::shape("layer_norm", "a scalar has no axis to normalise"));
    };
    for (what, v) in [("weight", gamma), ("bias", beta)] {
        if v.shape() != [cols] {
            return Err(Error::shape("layer_norm", format!("{what} shape {:?}, expected [{cols}]", v.shape())));
        }
    }
    if !(eps > 0.0 && eps.is_finite()) {
        return Err(Error::Invalid(format!("layer_norm: eps must be positive, got {eps}")));
    }
    let g = LayerNormGeom { rows: x.value().numel() / cols.max(1), cols, eps };
    let (y, mean, invstd) = tape.backend.layernorm_forward(x.buf(), gamma.buf(), beta.buf(), &g)?;
    let y = Tensor::new(s, y)?;
    let saved = tape.needs_grad(&[x, gamma, beta]).then(|| (x.buf().clone(), gamma.buf().clone(), mean, invstd));
    Ok(tape.record("layer_norm", &[x, gamma, beta], y, move |be, dy| {
        let Some((xs, gs, mean, invstd)) = saved else { return Ok(vec![None, None, None]) };
        let (dx, dg, db) = be.layernorm_backward(&dy, &xs, &gs, &mean, &invstd, &g)?;
        Ok(vec![Some(dx), Some(dg), Some(db)])
    }))
}
