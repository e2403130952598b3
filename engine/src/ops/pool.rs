//! Max-pool, global average pool and per-channel scaling.

use super::{nchw, same_shape};
use crate::backend::{Backend, ChannelGeom, PoolGeom};
use crate::error::{Error, Result};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// MaxPool2d(k, stride), floor mode: odd trailing rows/columns are dropped. Saves one byte per
/// output (the maximum's place in its window), where PyTorch keeps int64 indices.
pub fn maxpool2d<B: Backend>(tape: &mut Tape<B>, x: &Var<B>, k: usize, stride: usize) -> Result<Var<B>> {
    let (n, c, h, w) = nchw("maxpool2d", x.shape())?;
    if k == 0 || stride == 0 || h < k || w < k {
        return Err(Error::shape("maxpool2d", format!("{h}x{w} input too small for a {k}x{k} window")));
    }
    let g = PoolGeom { n, c, h, w, k, stride };
    let (y, idx) = tape.backend.maxpool2d_forward(x.buf(), &g)?;
    let y = Tensor::new(vec![n, c, g.out_h(), g.out_w()], y)?;
    Ok(tape.record("maxpool2d", &[x], y, move |be, dy| Ok(vec![Some(be.maxpool2d_backward(&dy, &idx, &g)?)])))
}

/// AdaptiveAvgPool2d(1): [N, C, H, W] -> [N, C, 1, 1].
pub fn global_avgpool<B: Backend>(tape: &mut Tape<B>, x: &Var<B>) -> Result<Var<B>> {
    let (n, c, h, w) = nchw("global_avgpool", x.shape())?;
    let g = ChannelGeom { n, c, hw: h * w };
    let y = tape.backend.global_avgpool_forward(x.buf(), &g)?;
    let y = Tensor::new(vec![n, c, 1, 1], y)?;
    Ok(tape.record("global_avgpool", &[x], y, move |be, dy| Ok(vec![Some(be.global_avgpool_backward(&dy, &g)?)])))
}

/// y[n, c, h, w] = x[n, c, h, w] · s[n, c] (the SE block's gate); s is [N, C].
pub fn channel_scale<B: Backend>(tape: &mut Tape<B>, x: &Var<B>, s: &Var<B>) -> Result<Var<B>> {
    let (n, c, h, w) = nchw("channel_scale", x.shape())?;
    same_shape("channel_scale", s.shape(), &[n, c])?;
    let g = ChannelGeom { n, c, hw: h * w };
    let y = tape.backend.channel_scale_forward(x.buf(), s.buf(), &g)?;
    let (xs, ss) = (x.buf().clone(), s.buf().clone());
    Ok(tape.record("channel_scale", &[x, s], Tensor::new(vec![n, c, h, w], y)?, move |be, dy| {
        let (dx, ds) = be.channel_scale_backward(&dy, &xs, &ss, &g)?;
        Ok(vec![Some(dx), Some(ds)])
    }))
}
