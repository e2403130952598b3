//! The SE block followed by global average pooling, folded into one op: since the
//! gate is constant over each channel's plane, GAP(x · g) = g · mean(x). The forward reads x once
//! (its channel means) and writes only [N, C]; the SE output map is never formed, x is not saved,
//! and the backward makes one pass over the activation (writing dx) instead of three (GAP's
//! broadcast, the gate's channel dot, the SE input gradient).

use super::{matrix, nchw};
use crate::backend::{Backend, ChannelGeom, ExciteGeom};
use crate::error::{Error, Result};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// y[n, c, 1, 1] = sigmoid(W2 · relu(W1 · m))[n, c] · m[n, c] with m = mean_hw(x): what
/// `global_avgpool(squeeze_excite(x, w1, w2))` computes, W1 [C/r, C], W2 [C, C/r].
pub fn squeeze_excite_pool<B: Backend>(tape: &mut Tape<B>, x: &Var<B>, w1: &Var<B>, w2: &Var<B>) -> Result<Var<B>> {
    let (n, c, h, w) = nchw("squeeze_excite_pool", x.shape())?;
    let (hid, c1) = matrix("squeeze_excite_pool fc1", w1.shape())?;
    let (c2, hid2) = matrix("squeeze_excite_pool fc2", w2.shape())?;
    if c1 != c || c2 != c || hid2 != hid {
        return Err(Error::shape(
            "squeeze_excite_pool",
            format!("weights {:?} and {:?} do not fit {c} channels", w1.shape(), w2.shape()),
        ));
    }
    let g = ChannelGeom { n, c, hw: h * w };
    let be = tape.backend.clone();
    let eg = ExciteGeom { n, c, hid };
    let mean = be.global_avgpool_forward(x.buf(), &g)?;
    let (hidden, gate) = be.excite_forward(&mean, w1.buf(), w2.buf(), &eg)?;
    let y = be.mul(&gate, &mean)?;
    let (need_x, need_w1, need_w2) = (x.tracked(), w1.tracked(), w2.tracked());
    let (w1s, w2s) = (w1.buf().clone(), w2.buf().clone());
    let out = Tensor::new(vec![n, c, 1, 1], y)?;
    Ok(tape.record("squeeze_excite_pool", &[x, w1, w2], out, move |be, dy| {
        // Through the gate: dgate = dy · m, then the excitation MLP's backward (all [N, ·]).
        let dgate = be.mul(&dy, &mean)?;
        let (dsq, dw1, dw2) = be.excite_backward(&dgate, &mean, &hidden, &gate, &w1s, &w2s, &eg)?;
        // dm = dy · g + the gate path's input gradient; dx = dm / hw over each plane (the one
        // pass over the activation).
        let dx = if need_x {
            let mut dm = dsq;
            be.add_assign(&mut dm, &be.mul(&dy, &gate)?)?;
            Some(be.global_avgpool_backward(&dm, &g)?)
        } else {
            None
        };
        let (dw1, dw2) = (need_w1.then_some(dw1), need_w2.then_some(dw2));
        Ok(vec![dx, dw1, dw2])
    }))
}
