//! Pointwise activations.

use crate::backend::{Backend, Unary};
use crate::error::Result;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

pub fn unary<B: Backend>(tape: &mut Tape<B>, op: Unary, x: Var) -> Result<Var> {
    let xv = tape.value(x);
    let y = Tensor::new(xv.shape.clone(), tape.backend.unary_forward(op, &xv.buf)?);
    Ok(tape.record(
        &[x],
        y,
        Box::new(move |ctx, dy| {
            let dx = ctx.backend.unary_backward(op, &ctx.input(0).buf, &ctx.output().buf, dy)?;
            Ok(vec![Some(dx)])
        }),
    ))
}

pub fn relu<B: Backend>(tape: &mut Tape<B>, x: Var) -> Result<Var> {
    unary(tape, Unary::Relu, x)
}
pub fn sigmoid<B: Backend>(tape: &mut Tape<B>, x: Var) -> Result<Var> {
    unary(tape, Unary::Sigmoid, x)
}
pub fn tanh<B: Backend>(tape: &mut Tape<B>, x: Var) -> Result<Var> {
    unary(tape, Unary::Tanh, x)
}
pub fn gelu<B: Backend>(tape: &mut Tape<B>, x: Var) -> Result<Var> {
    unary(tape, Unary::Gelu, x)
}
