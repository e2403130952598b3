//! Elementwise products and sums, dropout, concatenation and reshapes.

use super::{matrix, same_shape};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tape::{Tape, Var};
use crate::tensor::{Tensor, numel};

pub fn mul<B: Backend>(tape: &mut Tape<B>, a: Var, b: Var) -> Result<Var> {
    same_shape("mul", tape.shape(a), tape.shape(b))?;
    let y = tape.backend.mul(&tape.value(a).buf, &tape.value(b).buf)?;
    let shape = tape.shape(a).to_vec();
    Ok(tape.record(
        &[a, b],
        Tensor::new(shape, y),
        Box::new(move |ctx, dy| {
            let be = ctx.backend;
            Ok(vec![Some(be.mul(dy, &ctx.input(1).buf)?), Some(be.mul(dy, &ctx.input(0).buf)?)])
        }),
    ))
}

pub fn add<B: Backend>(tape: &mut Tape<B>, a: Var, b: Var) -> Result<Var> {
    same_shape("add", tape.shape(a), tape.shape(b))?;
    let y = tape.backend.add(&tape.value(a).buf, &tape.value(b).buf)?;
    let shape = tape.shape(a).to_vec();
    Ok(tape.record(&[a, b], Tensor::new(shape, y), Box::new(|_, dy| Ok(vec![Some(dy.clone()), Some(dy.clone())]))))
}

/// Inverted dropout: zeroes with probability p and scales survivors by 1/(1-p) in training;
/// the identity in eval or when p = 0. The mask is drawn from `seed` (see `Backend::dropout_mask`).
pub fn dropout<B: Backend>(tape: &mut Tape<B>, x: Var, p: f64, train: bool, seed: u64) -> Result<Var> {
    if !(0.0..1.0).contains(&p) {
        return Err(Error::Invalid(format!("dropout probability must be in [0, 1), got {p}")));
    }
    if !train || p == 0.0 {
        return Ok(x);
    }
    let be = tape.backend.clone();
    let mask = be.dropout_mask(tape.value(x).numel(), p, seed)?;
    let y = be.mul(&tape.value(x).buf, &mask)?;
    let shape = tape.shape(x).to_vec();
    Ok(tape.record(&[x], Tensor::new(shape, y), Box::new(move |ctx, dy| Ok(vec![Some(ctx.backend.mul(dy, &mask)?)]))))
}

/// [r, a] ++ [r, b] along dim 1.
pub fn concat_cols<B: Backend>(tape: &mut Tape<B>, a: Var, b: Var) -> Result<Var> {
    let (ra, ca) = matrix("concat", tape.shape(a))?;
    let (rb, cb) = matrix("concat", tape.shape(b))?;
    if ra != rb {
        return Err(Error::shape("concat", format!("row counts differ: {ra} vs {rb}")));
    }
    let y = tape.backend.concat_cols(&tape.value(a).buf, &tape.value(b).buf, ra, ca, cb)?;
    Ok(tape.record(
        &[a, b],
        Tensor::new(vec![ra, ca + cb], y),
        Box::new(move |ctx, dy| {
            let (da, db) = ctx.backend.split_cols(dy, ra, ca, cb)?;
            Ok(vec![Some(da), Some(db)])
        }),
    ))
}

/// Same data, new shape (flatten is `reshape(x, [n, rest])`).
pub fn reshape<B: Backend>(tape: &mut Tape<B>, x: Var, shape: &[usize]) -> Result<Var> {
    if numel(shape) != tape.value(x).numel() {
        return Err(Error::shape("reshape", format!("cannot view {:?} as {shape:?}", tape.shape(x))));
    }
    let y = Tensor::new(shape.to_vec(), tape.value(x).buf.clone());
    Ok(tape.record(&[x], y, Box::new(|_, dy| Ok(vec![Some(dy.clone())]))))
}
