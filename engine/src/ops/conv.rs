//! 2-D convolution (PyTorch Conv2d semantics: cross-correlation, OIHW weights).

use super::nchw;
use crate::backend::{Backend, ConvGeom};
use crate::error::{Error, Result};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

pub fn conv2d<B: Backend>(
    tape: &mut Tape<B>,
    x: &Var<B>,
    w: &Var<B>,
    bias: Option<&Var<B>>,
    stride: usize,
    pad: usize,
) -> Result<Var<B>> {
    let g = conv_geom("conv2d", x, w, bias, stride, pad)?;
    let y = tape.backend.conv2d_forward(x.buf(), w.buf(), bias.map(|b| b.buf()), &g)?;
    let y = Tensor::new(vec![g.n, g.c_out, g.out_h(), g.out_w()], y)?;
    let (need_x, need_w, need_b) = (x.tracked(), w.tracked(), bias.is_some_and(|b| b.tracked()));
    // The input gradient reads the weight; the weight gradient reads the input.
    let saved_w = need_x.then(|| w.buf().clone());
    let saved_x = need_w.then(|| x.buf().clone());
    let mut inputs = vec![x, w];
    inputs.extend(bias);
    let has_bias = bias.is_some();
    Ok(tape.record("conv2d", &inputs, y, move |be, dy| {
        let dx = saved_w.map(|w| be.conv2d_backward_input(&dy, &w, &g)).transpose()?;
        let dw = saved_x.map(|x| be.conv2d_backward_weight(&dy, &x, &g)).transpose()?;
        let mut grads = vec![dx, dw];
        if has_bias {
            grads.push(if need_b { Some(be.channel_sums(&dy, &g.output_channels())?) } else { None });
        }
        Ok(grads)
    }))
}

/// The convolution's geometry from its operands' shapes, or a shape error naming `op`.
pub(crate) fn conv_geom<B: Backend>(
    op: &'static str,
    x: &Var<B>,
    w: &Var<B>,
    bias: Option<&Var<B>>,
    stride: usize,
    pad: usize,
) -> Result<ConvGeom> {
    let (n, c_in, h, wd) = nchw(op, x.shape())?;
    let (c_out, wc, kh, kw) = nchw(op, w.shape())?;
    if wc != c_in {
        return Err(Error::shape(
            op,
            format!("input has {c_in} channels but the weight expects {wc} (weight {:?})", w.shape()),
        ));
    }
    if stride == 0 || h + 2 * pad < kh || wd + 2 * pad < kw {
        return Err(Error::shape(op, format!("{h}x{wd} input too small for a {kh}x{kw} kernel")));
    }
    if let Some(b) = bias
        && b.shape() != [c_out]
    {
        return Err(Error::shape(op, format!("bias shape {:?}, expected [{c_out}]", b.shape())));
    }
    Ok(ConvGeom { n, c_in, h, w: wd, c_out, kh, kw, stride, pad })
}
