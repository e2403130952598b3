//! The VGG unit as one op: conv (no bias) → BatchNorm → ReLU → optional 2×2 max-pool.
//!
//! The conv bias is folded away: BatchNorm subtracts the batch mean, so in training the bias
//! changes nothing and its true gradient is exactly 0 (PyTorch's f32 autograd returns rounding
//! noise there). The parameter stays, for state_dict compatibility, and is used where it matters:
//! the running mean tracks mean(z) + bias, as PyTorch's tracks the biased conv output, and
//! evaluation normalises z + bias. Saved for the backward: z (the conv output) and the per-channel
//! statistics, plus the unit's input when the weight needs a gradient and the weight when the
//! input does. The ReLU mask, the pool's arg-max and the normalised map are recomputed from z;
//! the unfused chain saves z, a byte mask and a byte arg-max and writes three more full maps.

use super::conv::conv_geom;
use super::norm::BatchNormState;
use crate::backend::{Backend, BnParams, UnitAffine, UnitGeom};
use crate::error::{Error, Result};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// The unit's parameters as tape variables (PyTorch's Conv2d and BatchNorm2d tensors).
pub struct UnitVars<'a, B: Backend> {
    pub weight: &'a Var<B>,
    pub bias: Option<&'a Var<B>>,
    pub gamma: &'a Var<B>,
    pub beta: &'a Var<B>,
}

/// What `relu(batchnorm2d(conv2d(x, w, b, stride, pad)))` computes, followed by
/// `maxpool2d(·, 2, 2)` when `pool`. In `train` the batch statistics normalise and the running
/// ones are updated; otherwise the running statistics normalise.
pub fn vgg_unit<B: Backend>(
    tape: &mut Tape<B>,
    x: &Var<B>,
    p: UnitVars<'_, B>,
    state: BatchNormState<'_, B>,
    (stride, pad): (usize, usize),
    train: bool,
    pool: bool,
) -> Result<Var<B>> {
    let op = "vgg_unit";
    let cg = conv_geom(op, x, p.weight, p.bias, stride, pad)?;
    let c = cg.c_out;
    for (what, v) in [("BatchNorm weight", p.gamma), ("BatchNorm bias", p.beta)] {
        if v.shape() != [c] {
            return Err(Error::shape(op, format!("{what} shape {:?}, expected [{c}]", v.shape())));
        }
    }
    let ug = UnitGeom { n: cg.n, c, h: cg.out_h(), w: cg.out_w(), pool };
    if pool && (ug.h < 2 || ug.w < 2) {
        return Err(Error::shape(op, format!("a {}x{} map is too small for the 2x2 max-pool", ug.h, ug.w)));
    }
    if train && cg.n * ug.h * ug.w < 2 {
        return Err(Error::Invalid(format!(
            "{op}: BatchNorm in training needs more than one value per channel, got a {}x{}x{} conv output",
            cg.n, ug.h, ug.w
        )));
    }
    let be = tape.backend.clone();
    let z = be.conv2d_forward(x.buf(), p.weight.buf(), None, &cg)?;
    let bias = p.bias.map(|b| b.buf());
    let (mean, invstd) = if train {
        let bp = BnParams { momentum: state.momentum, eps: state.eps };
        be.unit_batch_stats(&z, bias, state.running_mean.buf_mut(), state.running_var.buf_mut(), &ug.channels(), &bp)?
    } else {
        be.unit_running_stats(bias, state.running_mean.buf(), state.running_var.buf(), c, state.eps)?
    };
    let (gamma, beta) = (p.gamma.buf().clone(), p.beta.buf().clone());
    let affine = UnitAffine { mean: &mean, invstd: &invstd, gamma: &gamma, beta: &beta };
    let y = be.unit_forward(&z, &affine, &ug)?;
    let y = Tensor::new(vec![ug.n, c, ug.out_h(), ug.out_w()], y)?;

    let (need_x, need_w) = (x.tracked(), p.weight.tracked());
    let need_b = p.bias.is_some_and(|b| b.tracked());
    let saved_w = need_x.then(|| p.weight.buf().clone());
    let saved_x = need_w.then(|| x.buf().clone());
    let mut inputs = vec![x, p.weight];
    inputs.extend(p.bias);
    inputs.extend([p.gamma, p.beta]);
    let has_bias = p.bias.is_some();
    Ok(tape.record(op, &inputs, y, move |be, dy| {
        let affine = UnitAffine { mean: &mean, invstd: &invstd, gamma: &gamma, beta: &beta };
        let (dz, dgamma, dbeta) = be.unit_backward(&dy, &z, &affine, &ug, train)?;
        drop((z, dy));
        let dx = saved_w.map(|w| be.conv2d_backward_input(&dz, &w, &cg)).transpose()?;
        let dw = saved_x.map(|x| be.conv2d_backward_weight(&dz, &x, &cg)).transpose()?;
        let mut grads = vec![dx, dw];
        if has_bias {
            // Training: BatchNorm removes any per-channel constant, so exactly 0. Evaluation: the
            // bias shifts the normalised value, dz summed per channel.
            let db = match (need_b, train) {
                (false, _) => None,
                (true, true) => Some(be.zeros(c)?),
                (true, false) => Some(be.channel_sums(&dz, &ug.channels())?),
            };
            grads.push(db);
        }
        grads.extend([Some(dgamma), Some(dbeta)]);
        Ok(grads)
    }))
}
