//! Losses with mean reduction; each returns a 1-element tensor.

use super::{matrix, same_shape};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

pub fn mse_loss<B: Backend>(tape: &mut Tape<B>, pred: Var, target: Var) -> Result<Var> {
    same_shape("mse_loss", tape.shape(pred), tape.shape(target))?;
    let l = tape.backend.mse_forward(&tape.value(pred).buf, &tape.value(target).buf)?;
    Ok(tape.record(
        &[pred, target],
        Tensor::new(vec![], l),
        Box::new(|ctx, dl| {
            let be = ctx.backend;
            let dp = be.mse_backward(&ctx.input(0).buf, &ctx.input(1).buf, dl)?;
            // d/dtarget = −d/dpred.
            let mut dt = dp.clone();
            be.scale_assign(&mut dt, -1.0)?;
            Ok(vec![Some(dp), Some(dt)])
        }),
    ))
}

pub fn l1_loss<B: Backend>(tape: &mut Tape<B>, pred: Var, target: Var) -> Result<Var> {
    same_shape("l1_loss", tape.shape(pred), tape.shape(target))?;
    let l = tape.backend.l1_forward(&tape.value(pred).buf, &tape.value(target).buf)?;
    Ok(tape.record(
        &[pred, target],
        Tensor::new(vec![], l),
        Box::new(|ctx, dl| {
            let be = ctx.backend;
            let dp = be.l1_backward(&ctx.input(0).buf, &ctx.input(1).buf, dl)?;
            let mut dt = dp.clone();
            be.scale_assign(&mut dt, -1.0)?;
            Ok(vec![Some(dp), Some(dt)])
        }),
    ))
}

/// Softmax cross-entropy of [rows, classes] logits against integer labels.
pub fn cross_entropy<B: Backend>(tape: &mut Tape<B>, logits: Var, labels: &[u32]) -> Result<Var> {
    let (rows, classes) = matrix("cross_entropy", tape.shape(logits))?;
    if labels.len() != rows {
        return Err(Error::shape("cross_entropy", format!("{} labels for {rows} rows", labels.len())));
    }
    if let Some(bad) = labels.iter().find(|&&l| l as usize >= classes) {
        return Err(Error::Invalid(format!("cross_entropy: label {bad} out of range for {classes} classes")));
    }
    let be = tape.backend.clone();
    let lab = be.upload_index(labels)?;
    let l = be.cross_entropy_forward(&tape.value(logits).buf, &lab, rows, classes)?;
    Ok(tape.record(
        &[logits],
        Tensor::new(vec![], l),
        Box::new(move |ctx, dl| {
            Ok(vec![Some(ctx.backend.cross_entropy_backward(&ctx.input(0).buf, &lab, rows, classes, dl)?)])
        }),
    ))
}
