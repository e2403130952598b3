//! The squeeze-and-excitation block as one op: forward, two passes over the activation (the
//! squeeze reads x, the scale reads x and writes y) around one excitation launch; backward, two
//! passes (dy and x in for the gate's gradient; dy in, dx out) around one excitation-backward
//! launch (see kernels/se.cu, kernels/excite.cu).

use super::{matrix, nchw};
use crate::backend::{Backend, ChannelGeom, ExciteGeom};
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
    let eg = ExciteGeom { n, c, hid };
    let squeezed = be.global_avgpool_forward(x.buf(), &g)?;
    let (hidden, gate) = be.excite_forward(&squeezed, w1.buf(), w2.buf(), &eg)?;
    let y = be.channel_scale_forward(x.buf(), &gate, &g)?;
    let (xs, w1s, w2s) = (x.buf().clone(), w1.buf().clone(), w2.buf().clone());
    Ok(tape.record("squeeze_excite", &[x, w1, w2], Tensor::new(vec![n, c, h, w], y)?, move |be, dy| {
        // Pass 1 over the activation: the gate's gradient.
        let dgate = be.channel_dot(&dy, &xs, &g)?;
        let (dsqueezed, dw1, dw2) = be.excite_backward(&dgate, &squeezed, &hidden, &gate, &w1s, &w2s, &eg)?;
        // Pass 2: the input gradient from both paths at once.
        let dx = be.se_backward_input(&dy, &gate, &dsqueezed, &g)?;
        Ok(vec![Some(dx), Some(dw1), Some(dw2)])
    }))
}
