//! Max-pool, global average pool and per-channel scaling.

use super::{nchw, same_shape};
use crate::backend::{Backend, PoolGeom};
use crate::error::{Error, Result};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// MaxPool2d(k, stride), floor mode: odd trailing rows/columns are dropped.
pub fn maxpool2d<B: Backend>(tape: &mut Tape<B>, x: Var, k: usize, stride: usize) -> Result<Var> {
    let (n, c, h, w) = nchw("maxpool2d", tape.shape(x))?;
    if k == 0 || stride == 0 || h < k || w < k {
        return Err(Error::shape("maxpool2d", format!("{h}x{w} input too small for a {k}x{k} window")));
    }
    let g = PoolGeom { n, c, h, w, k, stride };
    let (y, idx) = tape.backend.maxpool2d_forward(&tape.value(x).buf, &g)?;
    let y = Tensor::new(vec![n, c, g.out_h(), g.out_w()], y);
    Ok(tape.record(&[x], y, Box::new(move |ctx, dy| Ok(vec![Some(ctx.backend.maxpool2d_backward(dy, &idx, &g)?)]))))
}

/// AdaptiveAvgPool2d(1): [N, C, H, W] -> [N, C, 1, 1].
pub fn global_avgpool<B: Backend>(tape: &mut Tape<B>, x: Var) -> Result<Var> {
    let (n, c, h, w) = nchw("global_avgpool", tape.shape(x))?;
    let y = tape.backend.global_avgpool_forward(&tape.value(x).buf, n, c, h * w)?;
    Ok(tape.record(
        &[x],
        Tensor::new(vec![n, c, 1, 1], y),
        Box::new(move |ctx, dy| Ok(vec![Some(ctx.backend.global_avgpool_backward(dy, n, c, h * w)?)])),
    ))
}

/// y[n, c, h, w] = x[n, c, h, w] · s[n, c] (the SE block's gate); s is [N, C].
pub fn channel_scale<B: Backend>(tape: &mut Tape<B>, x: Var, s: Var) -> Result<Var> {
    let (n, c, h, w) = nchw("channel_scale", tape.shape(x))?;
    same_shape("channel_scale", tape.shape(s), &[n, c])?;
    let hw = h * w;
    let y = tape.backend.channel_scale_forward(&tape.value(x).buf, &tape.value(s).buf, n, c, hw)?;
    Ok(tape.record(
        &[x, s],
        Tensor::new(vec![n, c, h, w], y),
        Box::new(move |ctx, dy| {
            let (dx, ds) = ctx.backend.channel_scale_backward(dy, &ctx.input(0).buf, &ctx.input(1).buf, n, c, hw)?;
            Ok(vec![Some(dx), Some(ds)])
        }),
    ))
}
