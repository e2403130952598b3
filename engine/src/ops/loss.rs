//! Losses with mean reduction; each returns a 1-element tensor.

use super::{matrix, same_shape};
use crate::backend::{Backend, RowsGeom};
use crate::error::{Error, Result};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// Mean squared error, or mean absolute error with `l1`.
fn regression<B: Backend>(
    tape: &mut Tape<B>,
    op: &'static str,
    pred: &Var<B>,
    target: &Var<B>,
    l1: bool,
) -> Result<Var<B>> {
    same_shape(op, pred.shape(), target.shape())?;
    let be = &tape.backend;
    let l = if l1 { be.l1_forward(pred.buf(), target.buf())? } else { be.mse_forward(pred.buf(), target.buf())? };
    let (ps, ts) = (pred.buf().clone(), target.buf().clone());
    let need_t = target.tracked();
    Ok(tape.record(op, &[pred, target], Tensor::new(vec![], l)?, move |be, dl| {
        let dp = if l1 { be.l1_backward(&ps, &ts, &dl)? } else { be.mse_backward(&ps, &ts, &dl)? };
        // d/dtarget = −d/dpred.
        let dt = if need_t {
            let mut dt = be.copy(&dp)?;
            be.scale_assign(&mut dt, -1.0)?;
            Some(dt)
        } else {
            None
        };
        Ok(vec![Some(dp), dt])
    }))
}

pub fn mse_loss<B: Backend>(tape: &mut Tape<B>, pred: &Var<B>, target: &Var<B>) -> Result<Var<B>> {
    regression(tape, "mse_loss", pred, target, false)
}

pub fn l1_loss<B: Backend>(tape: &mut Tape<B>, pred: &Var<B>, target: &Var<B>) -> Result<Var<B>> {
    regression(tape, "l1_loss", pred, target, true)
}

/// Softmax cross-entropy of [rows, classes] logits against integer labels.
pub fn cross_entropy<B: Backend>(tape: &mut Tape<B>, logits: &Var<B>, labels: &[u32]) -> Result<Var<B>> {
    let (rows, classes) = matrix("cross_entropy", logits.shape())?;
    if labels.len() != rows {
        return Err(Error::shape("cross_entropy", format!("{} labels for {rows} rows", labels.len())));
    }
    if let Some(bad) = labels.iter().find(|&&l| l as usize >= classes) {
        return Err(Error::Invalid(format!("cross_entropy: label {bad} out of range for {classes} classes")));
    }
    let g = RowsGeom { rows, cols: classes };
    let be = tape.backend.clone();
    let lab = be.upload_index(labels)?;
    let l = be.cross_entropy_forward(logits.buf(), &lab, &g)?;
    let xs = logits.buf().clone();
    Ok(tape.record("cross_entropy", &[logits], Tensor::new(vec![], l)?, move |be, dl| {
        Ok(vec![Some(be.cross_entropy_backward(&xs, &lab, &g, &dl)?)])
    }))
}
