//! Elementwise products and sums, dropout, concatenation and reshapes.

use super::{matrix, same_shape};
use crate::backend::{Backend, ConcatGeom};
use crate::error::{Error, Result};
use crate::tape::{Tape, Var};
use crate::tensor::{Tensor, numel};

pub fn mul<B: Backend>(tape: &mut Tape<B>, a: &Var<B>, b: &Var<B>) -> Result<Var<B>> {
    same_shape("mul", a.shape(), b.shape())?;
    let y = Tensor::new(a.shape(), tape.backend.mul(a.buf(), b.buf())?)?;
    // Each side's gradient reads the other side's value.
    let saved_b = a.tracked().then(|| b.buf().clone());
    let saved_a = b.tracked().then(|| a.buf().clone());
    Ok(tape.record("mul", &[a, b], y, move |be, dy| {
        let da = saved_b.map(|b| be.mul(&dy, &b)).transpose()?;
        let db = saved_a.map(|a| be.mul(&dy, &a)).transpose()?;
        Ok(vec![da, db])
    }))
}

pub fn add<B: Backend>(tape: &mut Tape<B>, a: &Var<B>, b: &Var<B>) -> Result<Var<B>> {
    same_shape("add", a.shape(), b.shape())?;
    let y = Tensor::new(a.shape(), tape.backend.add(a.buf(), b.buf())?)?;
    Ok(tape.record("add", &[a, b], y, |_, dy| Ok(vec![Some(dy.clone()), Some(dy)])))
}

/// Inverted dropout: zeroes with probability p and scales survivors by 1/(1-p) in training;
/// the identity in eval or when p = 0. The mask is drawn from `seed` (see `Pointwise::dropout_mask`).
pub fn dropout<B: Backend>(tape: &mut Tape<B>, x: &Var<B>, p: f64, train: bool, seed: u64) -> Result<Var<B>> {
    if !(0.0..1.0).contains(&p) {
        return Err(Error::Invalid(format!("dropout probability must be in [0, 1), got {p}")));
    }
    if !train || p == 0.0 {
        return Ok(x.clone());
    }
    let be = tape.backend.clone();
    let n = x.value().numel();
    let y = Tensor::new(x.shape(), be.mul(x.buf(), &be.dropout_mask(n, p, seed)?)?)?;
    // The mask is a function of (seed, index): the backward draws it again instead of keeping a
    // full-size f32 copy alive until then.
    Ok(tape.record("dropout", &[x], y, move |be, dy| Ok(vec![Some(be.mul(&dy, &be.dropout_mask(n, p, seed)?)?)])))
}

/// [r, a] ++ [r, b] along dim 1.
pub fn concat_cols<B: Backend>(tape: &mut Tape<B>, a: &Var<B>, b: &Var<B>) -> Result<Var<B>> {
    let (ra, ca) = matrix("concat", a.shape())?;
    let (rb, cb) = matrix("concat", b.shape())?;
    if ra != rb {
        return Err(Error::shape("concat", format!("row counts differ: {ra} vs {rb}")));
    }
    let g = ConcatGeom { rows: ra, left: ca, right: cb };
    let y = Tensor::new(vec![ra, ca + cb], tape.backend.concat_cols(a.buf(), b.buf(), &g)?)?;
    Ok(tape.record("concat", &[a, b], y, move |be, dy| {
        let (da, db) = be.split_cols(&dy, &g)?;
        Ok(vec![Some(da), Some(db)])
    }))
}

/// Same data, new shape (flatten is `reshape(x, [n, rest])`); shares the buffer.
pub fn reshape<B: Backend>(tape: &mut Tape<B>, x: &Var<B>, shape: &[usize]) -> Result<Var<B>> {
    if numel(shape) != x.value().numel() {
        return Err(Error::shape("reshape", format!("cannot view {:?} as {shape:?}", x.shape())));
    }
    let y = x.value().clone().reshape(shape)?;
    Ok(tape.record("reshape", &[x], y, |_, dy| Ok(vec![Some(dy)])))
}
