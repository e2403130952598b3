//! 2-D convolution (PyTorch Conv2d semantics: cross-correlation, OIHW weights).

use super::nchw;
use crate::backend::{Backend, ConvGeom};
use crate::error::{Error, Result};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

pub fn conv2d<B: Backend>(
    tape: &mut Tape<B>,
    x: Var,
    w: Var,
    bias: Option<Var>,
    stride: usize,
    pad: usize,
) -> Result<Var> {
    let (n, c_in, h, wd) = nchw("conv2d", tape.shape(x))?;
    let (c_out, wc, kh, kw) = nchw("conv2d weight", tape.shape(w))?;
    if wc != c_in {
        return Err(Error::shape(
            "conv2d",
            format!("input has {c_in} channels but the weight expects {wc} (weight {:?})", tape.shape(w)),
        ));
    }
    if stride == 0 || h + 2 * pad < kh || wd + 2 * pad < kw {
        return Err(Error::shape("conv2d", format!("{h}x{wd} input too small for a {kh}x{kw} kernel")));
    }
    if let Some(b) = bias
        && tape.shape(b) != [c_out]
    {
        return Err(Error::shape("conv2d", format!("bias shape {:?}, expected [{c_out}]", tape.shape(b))));
    }
    let g = ConvGeom { n, c_in, h, w: wd, c_out, kh, kw, stride, pad };
    let be = &tape.backend;
    let y = be.conv2d_forward(&tape.value(x).buf, &tape.value(w).buf, bias.map(|b| &tape.value(b).buf), &g)?;
    let y = Tensor::new(vec![n, c_out, g.out_h(), g.out_w()], y);
    let mut inputs = vec![x, w];
    inputs.extend(bias);
    let (need_x, need_w) = (tape.needs_grad(x), tape.needs_grad(w));
    let need_b = bias.is_some_and(|b| tape.needs_grad(b));
    Ok(tape.record(
        &inputs,
        y,
        Box::new(move |ctx, dy| {
            let be = ctx.backend;
            let dx = if need_x { Some(be.conv2d_backward_input(dy, &ctx.input(1).buf, &g)?) } else { None };
            let dw = if need_w { Some(be.conv2d_backward_weight(dy, &ctx.input(0).buf, &g)?) } else { None };
            let mut out = vec![dx, dw];
            if need_b {
                out.push(Some(be.channel_sums(dy, g.n, g.c_out, g.out_h() * g.out_w())?));
            }
            Ok(out)
        }),
    ))
}
