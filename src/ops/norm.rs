//! BatchNorm2d: batch statistics in training (running statistics updated), running ones in eval.

use super::nchw;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// The running statistics a BatchNorm layer carries between batches.
pub struct BatchNormState<'a, B: Backend> {
    pub running_mean: &'a mut Tensor<B>,
    pub running_var: &'a mut Tensor<B>,
    pub momentum: f64,
    pub eps: f64,
}

/// In `train`, normalises with the batch mean and biased variance and updates the running
/// statistics (unbiased variance, as PyTorch); otherwise normalises with the running statistics.
pub fn batchnorm2d<B: Backend>(
    tape: &mut Tape<B>,
    x: Var,
    gamma: Var,
    beta: Var,
    state: BatchNormState<'_, B>,
    train: bool,
) -> Result<Var> {
    let shape = tape.shape(x).to_vec();
    let (n, c, h, w) = nchw("batchnorm2d", &shape)?;
    for (what, v) in [("weight", gamma), ("bias", beta)] {
        if tape.shape(v) != [c] {
            return Err(Error::shape("batchnorm2d", format!("{what} shape {:?}, expected [{c}]", tape.shape(v))));
        }
    }
    let hw = h * w;
    if train && n * hw < 2 {
        return Err(Error::Invalid(format!(
            "batchnorm2d in training needs more than one value per channel, got input {shape:?}"
        )));
    }
    let be = tape.backend.clone();
    let (xb, gb, bb) = (&tape.value(x).buf, &tape.value(gamma).buf, &tape.value(beta).buf);
    if !train {
        let y = be.batchnorm_forward_eval(
            xb,
            gb,
            bb,
            &state.running_mean.buf,
            &state.running_var.buf,
            n,
            c,
            hw,
            state.eps,
        )?;
        return eval_record(tape, x, gamma, beta, Tensor::new(shape, y), state, n, c, hw);
    }
    let (y, mean, invstd) = be.batchnorm_forward_train(
        xb,
        gb,
        bb,
        &mut state.running_mean.buf,
        &mut state.running_var.buf,
        n,
        c,
        hw,
        state.momentum,
        state.eps,
    )?;
    Ok(tape.record(
        &[x, gamma, beta],
        Tensor::new(shape, y),
        Box::new(move |ctx, dy| {
            let (dx, dg, db) =
                ctx.backend.batchnorm_backward(dy, &ctx.input(0).buf, &ctx.input(1).buf, &mean, &invstd, n, c, hw)?;
            Ok(vec![Some(dx), Some(dg), Some(db)])
        }),
    ))
}

/// Eval mode is an affine map per channel: y = x̂·γ + β with x̂ = (x − μ)/sqrt(σ² + eps) fixed.
#[allow(clippy::too_many_arguments)]
fn eval_record<B: Backend>(
    tape: &mut Tape<B>,
    x: Var,
    gamma: Var,
    beta: Var,
    y: Tensor<B>,
    state: BatchNormState<'_, B>,
    n: usize,
    c: usize,
    hw: usize,
) -> Result<Var> {
    let (rm, rv, eps) = (state.running_mean.buf.clone(), state.running_var.buf.clone(), state.eps);
    Ok(tape.record(
        &[x, gamma, beta],
        y,
        Box::new(move |ctx, dy| {
            let be = ctx.backend;
            let (ones_c, zeros_c, ones_nc) = (be.fill(c, 1.0)?, be.zeros(c)?, be.fill(n * c, 1.0)?);
            let xhat = be.batchnorm_forward_eval(&ctx.input(0).buf, &ones_c, &zeros_c, &rm, &rv, n, c, hw, eps)?;
            // dx = dy·γ/σ: the same affine map with the shift removed.
            let gamma = &ctx.input(1).buf;
            let zero_mean = be.zeros(c)?;
            let dx = be.batchnorm_forward_eval(dy, gamma, &zeros_c, &zero_mean, &rv, n, c, hw, eps)?;
            let (_, dg) = be.channel_scale_backward(dy, &xhat, &ones_nc, n, c, hw)?;
            let dg = be.sum_rows(&dg, n, c)?;
            let db = be.channel_sums(dy, n, c, hw)?;
            Ok(vec![Some(dx), Some(dg), Some(db)])
        }),
    ))
}
