//! The squeeze-and-excitation block as one op, so its backward makes two passes over the
//! activation instead of five (see kernels/se.cu).

use super::{matrix, nchw};
use crate::backend::{Backend, ChannelGeom, MatmulGeom, Unary};
use crate::error::{Error, Result};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// y = x · sigmoid(W2 · relu(W1 · mean_hw(x))) per channel; W1 [C/r, C], W2 [C, C/r], no biases
/// (SEAttention of the seed guide).
pub fn squeeze_excite<B: Backend>(tape: &mut Tape<B>, x: &Var<B>, w1: &Var<B>, w2: &Var<B>) -> Result<Var<B>> {
    let (n, c, h, w) = nchw("squeeze_excite", x.shape())?;
    let (hid, c1) = matrix("squeeze_excite fc1", w1.shape())?;
    let (c2, hid2) = matrix("squeeze_excite fc2", w2.shape())?;
    if c1 != c || c2 != c || hid2 != hid {
        return Err(Error::shape(
            "squeeze_excite",
            format!("weights {:?} and {:?} do not fit {c} channels", w1.shape(), w2.shape()),
        ));
    }
    let g = ChannelGeom { n, c, hw: h * w };
    let be = tape.backend.clone();
    let squeezed = be.global_avgpool_forward(x.buf(), &g)?;
    let hidden = be.matmul(&squeezed, w1.buf(), &MatmulGeom { m: n, k: c, n: hid, ta: false, tb: true })?;
    let hidden = be.unary_forward(Unary::Relu, &hidden)?;
    let gate = be.matmul(&hidden, w2.buf(), &MatmulGeom { m: n, k: hid, n: c, ta: false, tb: true })?;
    let gate = be.unary_forward(Unary::Sigmoid, &gate)?;
    let y = be.channel_scale_forward(x.buf(), &gate, &g)?;
    let (xs, w1s, w2s) = (x.buf().clone(), w1.buf().clone(), w2.buf().clone());
    Ok(tape.record("squeeze_excite", &[x, w1, w2], Tensor::new(vec![n, c, h, w], y)?, move |be, dy| {
        // Pass 1 over the activation: the gate's gradient.
        let dgate = be.channel_dot(&dy, &xs, &g)?;
        let dz = be.unary_backward(Unary::Sigmoid, &dgate, &gate, &dgate)?;
        let dw2 = be.matmul(&dz, &hidden, &MatmulGeom { m: c, k: n, n: hid, ta: true, tb: false })?;
        let dhidden = be.matmul(&dz, &w2s, &MatmulGeom::nn(n, c, hid))?;
        let dpre = be.unary_backward(Unary::Relu, &hidden, &hidden, &dhidden)?;
        let dw1 = be.matmul(&dpre, &squeezed, &MatmulGeom { m: hid, k: n, n: c, ta: true, tb: false })?;
        let dsqueezed = be.matmul(&dpre, &w1s, &MatmulGeom::nn(n, hid, c))?;
        // Pass 2: the input gradient from both paths at once.
        let dx = be.se_backward_input(&dy, &gate, &dsqueezed, &g)?;
        Ok(vec![Some(dx), Some(dw1), Some(dw2)])
    }))
}
