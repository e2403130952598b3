//! BatchNorm2d: batch statistics in training (running statistics updated), running ones in eval.

use super::nchw;
use crate::backend::{Backend, BnParams, ChannelGeom};
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
    x: &Var<B>,
    gamma: &Var<B>,
    beta: &Var<B>,
    state: BatchNormState<'_, B>,
    train: bool,
) -> Result<Var<B>> {
    let shape = x.shape().to_vec();
    let (n, c, h, w) = nchw("batchnorm2d", &shape)?;
    for (what, v) in [("weight", gamma), ("bias", beta)] {
        if v.shape() != [c] {
            return Err(Error::shape("batchnorm2d", format!("{what} shape {:?}, expected [{c}]", v.shape())));
        }
    }
    let g = ChannelGeom { n, c, hw: h * w };
    if train && n * g.hw < 2 {
        return Err(Error::Invalid(format!(
            "batchnorm2d in training needs more than one value per channel, got input {shape:?}"
        )));
    }
    let be = tape.backend.clone();
    if !train {
        let (rm, rv) = (state.running_mean.buf().clone(), state.running_var.buf().clone());
        let y = be.batchnorm_forward_eval(x.buf(), gamma.buf(), beta.buf(), &rm, &rv, &g, state.eps)?;
        return Ok(eval_record(tape, x, gamma, beta, Tensor::new(shape, y)?, rm, rv, g, state.eps));
    }
    let p = BnParams { momentum: state.momentum, eps: state.eps };
    let (y, mean, invstd) = be.batchnorm_forward_train(
        x.buf(),
        gamma.buf(),
        beta.buf(),
        state.running_mean.buf_mut(),
        state.running_var.buf_mut(),
        &g,
        &p,
    )?;
    let (xs, gs) = (x.buf().clone(), gamma.buf().clone());
    Ok(tape.record("batchnorm2d", &[x, gamma, beta], Tensor::new(shape, y)?, move |be, dy| {
        let (dx, dg, db) = be.batchnorm_backward(&dy, &xs, &gs, &mean, &invstd, &g)?;
        Ok(vec![Some(dx), Some(dg), Some(db)])
    }))
}

/// Eval mode is an affine map per channel: y = x̂·γ + β with x̂ = (x − μ)/sqrt(σ² + eps) fixed.
#[allow(clippy::too_many_arguments)]
fn eval_record<B: Backend>(
    tape: &mut Tape<B>,
    x: &Var<B>,
    gamma: &Var<B>,
    beta: &Var<B>,
    y: Tensor<B>,
    rm: B::Buf,
    rv: B::Buf,
    g: ChannelGeom,
    eps: f64,
) -> Var<B> {
    let (xs, gs) = (x.buf().clone(), gamma.buf().clone());
    tape.record("batchnorm2d (eval)", &[x, gamma, beta], y, move |be, dy| {
        let c = g.c;
        let (ones_c, zeros_c, ones_nc) = (be.fill(c, 1.0)?, be.zeros(c)?, be.fill(g.planes(), 1.0)?);
        let xhat = be.batchnorm_forward_eval(&xs, &ones_c, &zeros_c, &rm, &rv, &g, eps)?;
        // dx = dy·γ/σ: the same affine map with the shift removed.
        let dx = be.batchnorm_forward_eval(&dy, &gs, &zeros_c, &zeros_c, &rv, &g, eps)?;
        let (_, dg) = be.channel_scale_backward(&dy, &xhat, &ones_nc, &g)?;
        let dg = be.sum_rows(&dg, &crate::backend::RowsGeom { rows: g.n, cols: c })?;
        let db = be.channel_sums(&dy, &g)?;
        Ok(vec![Some(dx), Some(dg), Some(db)])
    })
}
