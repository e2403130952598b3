//! Pointwise activations.

use crate::backend::{Backend, Unary};
use crate::error::Result;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// Sigmoid and tanh are differentiated through their output, the GELUs through their input.
pub fn unary<B: Backend>(tape: &mut Tape<B>, op: Unary, x: &Var<B>) -> Result<Var<B>> {
    if op == Unary::Relu {
        return relu(tape, x);
    }
    let y: Tensor<B> = Tensor::new(x.shape(), tape.backend.unary_forward(op, x.buf())?)?;
    let (xs, ys) = (x.buf().clone(), y.buf().clone());
    Ok(tape.record("unary", &[x], y, move |be, dy| Ok(vec![Some(be.unary_backward(op, &xs, &ys, &dy)?)])))
}

/// ReLU saves a byte mask (x > 0), a quarter of the f32 output PyTorch keeps, and writes its
/// gradient over the incoming one.
pub fn relu<B: Backend>(tape: &mut Tape<B>, x: &Var<B>) -> Result<Var<B>> {
    if !tape.needs_grad(&[x]) {
        // Nothing will read a mask: the plain map, so inference holds no extra byte per element.
        let y = tape.backend.unary_forward(Unary::Relu, x.buf())?;
        return Ok(tape.constant(Tensor::new(x.shape(), y)?));
    }
    let (y, mask) = tape.backend.relu_forward(x.buf())?;
    let y = Tensor::new(x.shape(), y)?;
    Ok(tape.record("relu", &[x], y, move |be, dy| {
        let mut dx = be.relu_backward(dy, &mask)?;
        if crate::fault::injected("relu_backward") {
            be.scale_assign(&mut dx, 1.0 + 1e-3)?;
        }
        Ok(vec![Some(dx)])
    }))
}
pub fn sigmoid<B: Backend>(tape: &mut Tape<B>, x: &Var<B>) -> Result<Var<B>> {
    unary(tape, Unary::Sigmoid, x)
}
pub fn tanh<B: Backend>(tape: &mut Tape<B>, x: &Var<B>) -> Result<Var<B>> {
    unary(tape, Unary::Tanh, x)
}
pub fn gelu<B: Backend>(tape: &mut Tape<B>, x: &Var<B>) -> Result<Var<B>> {
    unary(tape, Unary::Gelu, x)
}
/// GELU's tanh form (transformers' `gelu_new`).
pub fn gelu_tanh<B: Backend>(tape: &mut Tape<B>, x: &Var<B>) -> Result<Var<B>> {
    unary(tape, Unary::GeluTanh, x)
}
