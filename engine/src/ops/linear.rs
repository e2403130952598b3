//! Linear layer, PyTorch layout: y = x·Wᵀ + b with W [out, in].

use super::matrix;
use crate::backend::{Backend, MatmulGeom, RowsGeom};
use crate::error::{Error, Result};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

pub fn linear<B: Backend>(tape: &mut Tape<B>, x: &Var<B>, w: &Var<B>, bias: Option<&Var<B>>) -> Result<Var<B>> {
    let (rows, din) = matrix("linear", x.shape())?;
    let (dout, win) = matrix("linear weight", w.shape())?;
    if win != din {
        return Err(Error::shape(
            "linear",
            format!("input has {din} features but the weight {:?} expects {win}", w.shape()),
        ));
    }
    if let Some(b) = bias
        && b.shape() != [dout]
    {
        return Err(Error::shape("linear", format!("bias shape {:?}, expected [{dout}]", b.shape())));
    }
    let be = tape.backend.clone();
    let mut y = be.matmul(x.buf(), w.buf(), &MatmulGeom { m: rows, k: din, n: dout, ta: false, tb: true })?;
    let rg = RowsGeom { rows, cols: dout };
    if let Some(b) = bias {
        be.add_row_bias(&mut y, b.buf(), &rg)?;
    }
    let (need_x, need_w, need_b) = (x.tracked(), w.tracked(), bias.is_some_and(|b| b.tracked()));
    let saved_w = need_x.then(|| w.buf().clone());
    let saved_x = need_w.then(|| x.buf().clone());
    let has_bias = bias.is_some();
    let mut inputs = vec![x, w];
    inputs.extend(bias);
    Ok(tape.record("linear", &inputs, Tensor::new(vec![rows, dout], y)?, move |be, dy| {
        // dx = dy·W [rows, in]; dW = dyᵀ·x [out, in]; db = column sums of dy.
        let dx = saved_w.map(|w| be.matmul(&dy, &w, &MatmulGeom::nn(rows, dout, din))).transpose()?;
        let dw = saved_x
            .map(|x| be.matmul(&dy, &x, &MatmulGeom { m: dout, k: rows, n: din, ta: true, tb: false }))
            .transpose()?;
        let mut grads = vec![dx, dw];
        if has_bias {
            grads.push(if need_b { Some(be.sum_rows(&dy, &rg)?) } else { None });
        }
        Ok(grads)
    }))
}
