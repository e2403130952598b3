//! Linear layer, PyTorch layout: y = x·Wᵀ + b with W [out, in].

use super::matrix;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

pub fn linear<B: Backend>(tape: &mut Tape<B>, x: Var, w: Var, bias: Option<Var>) -> Result<Var> {
    let (rows, din) = matrix("linear", tape.shape(x))?;
    let (dout, win) = matrix("linear weight", tape.shape(w))?;
    if win != din {
        return Err(Error::shape(
            "linear",
            format!("input has {din} features but the weight {:?} expects {win}", tape.shape(w)),
        ));
    }
    if let Some(b) = bias
        && tape.shape(b) != [dout]
    {
        return Err(Error::shape("linear", format!("bias shape {:?}, expected [{dout}]", tape.shape(b))));
    }
    let be = tape.backend.clone();
    let mut y = be.matmul(&tape.value(x).buf, &tape.value(w).buf, rows, din, dout, false, true)?;
    if let Some(b) = bias {
        be.add_row_bias(&mut y, &tape.value(b).buf, rows)?;
    }
    let mut inputs = vec![x, w];
    inputs.extend(bias);
    let (need_x, need_w) = (tape.needs_grad(x), tape.needs_grad(w));
    let need_b = bias.is_some_and(|b| tape.needs_grad(b));
    Ok(tape.record(
        &inputs,
        Tensor::new(vec![rows, dout], y),
        Box::new(move |ctx, dy| {
            let be = ctx.backend;
            // dx = dy·W [rows, in]; dW = dyᵀ·x [out, in]; db = column sums of dy.
            let dx = if need_x { Some(be.matmul(dy, &ctx.input(1).buf, rows, dout, din, false, false)?) } else { None };
            let dw = if need_w { Some(be.matmul(dy, &ctx.input(0).buf, dout, rows, din, true, false)?) } else { None };
            let mut out = vec![dx, dw];
            if need_b {
                out.push(Some(be.sum_rows(dy, rows, dout)?));
            }
            Ok(out)
        }),
    ))
}
