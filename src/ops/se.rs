//! The squeeze-and-excitation block as one op, so its backward makes two passes over the
//! activation instead of five (see kernels/se.cu).

use super::{matrix, nchw};
use crate::backend::{Backend, Unary};
use crate::error::{Error, Result};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// y = x · sigmoid(W2 · relu(W1 · mean_hw(x))) per channel; W1 [C/r, C], W2 [C, C/r], no biases
/// (SEAttention of the seed guide).
pub fn squeeze_excite<B: Backend>(tape: &mut Tape<B>, x: Var, w1: Var, w2: Var) -> Result<Var> {
    let (n, c, h, w) = nchw("squeeze_excite", tape.shape(x))?;
    let (hid, c1) = matrix("squeeze_excite fc1", tape.shape(w1))?;
    let (c2, hid2) = matrix("squeeze_excite fc2", tape.shape(w2))?;
    if c1 != c || c2 != c || hid2 != hid {
        return Err(Error::shape(
            "squeeze_excite",
            format!("weights {:?} and {:?} do not fit {c} channels", tape.shape(w1), tape.shape(w2)),
        ));
    }
    let hw = h * w;
    let be = tape.backend.clone();
    let xb = &tape.value(x).buf;
    let squeezed = be.global_avgpool_forward(xb, n, c, hw)?;
    let hidden = be.unary_forward(Unary::Relu, &be.matmul(&squeezed, &tape.value(w1).buf, n, c, hid, false, true)?)?;
    let gate = be.unary_forward(Unary::Sigmoid, &be.matmul(&hidden, &tape.value(w2).buf, n, hid, c, false, true)?)?;
    let y = be.channel_scale_forward(xb, &gate, n, c, hw)?;
    Ok(tape.record(
        &[x, w1, w2],
        Tensor::new(vec![n, c, h, w], y),
        Box::new(move |ctx, dy| {
            let be = ctx.backend;
            let (xb, w1b, w2b) = (&ctx.input(0).buf, &ctx.input(1).buf, &ctx.input(2).buf);
            // Pass 1 over the activation: the gate's gradient.
            let dgate = be.channel_dot(dy, xb, n, c, hw)?;
            let dz = be.unary_backward(Unary::Sigmoid, &dgate, &gate, &dgate)?;
            let dw2 = be.matmul(&dz, &hidden, c, n, hid, true, false)?;
            let dhidden = be.matmul(&dz, w2b, n, c, hid, false, false)?;
            let dpre = be.unary_backward(Unary::Relu, &hidden, &hidden, &dhidden)?;
            let dw1 = be.matmul(&dpre, &squeezed, hid, n, c, true, false)?;
            let dsqueezed = be.matmul(&dpre, w1b, n, hid, c, false, false)?;
            // Pass 2: the input gradient from both paths at once.
            let dx = be.se_backward_input(dy, &gate, &dsqueezed, n, c, hw)?;
            Ok(vec![Some(dx), Some(dw1), Some(dw2)])
        }),
    ))
}
