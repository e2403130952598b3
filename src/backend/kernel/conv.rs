//! Implicit-GEMM convolution and the bias gradient: kernels/conv.cu.

use super::conv_cin1::{cin1_forward_supported, cin1_wgrad_supported};
use super::norm::{channel_chunks, channel_grid};
use super::{Arg, B1, DevBuf, KernelBackend, ew, i, p};
use crate::backend::{ChannelGeom, Conv, ConvGeom, Precision};
use crate::error::Result;

/// Output tile of the implicit-GEMM convolution kernels (rows × columns per block).
const CONV_TILE: usize = 64;
/// conv2d_backward_weight splits its N·OH·OW reduction (split-K) until the grid has about this
/// many blocks: ~4 per SM on a 132-SM H100, so every SM has work even for 64-channel layers.
const CONV_WGRAD_TARGET_BLOCKS: usize = 512;
/// …but never into chunks shorter than this, where storing and re-adding each partial tile would
/// dominate.
const CONV_WGRAD_MIN_CHUNK: usize = 256;
/// …and never into more split slots than fit this many floats (16 MiB): the partial tiles live in
/// a workspace of splits·K·C·R·S floats. The two rules above already keep it below this (more
/// than one split needs tiles < 512, so splits·K·CRS ≤ splits·tiles·64² < (512 + tiles)·64² <
/// 2²²); the cap states the bound and holds it should the targets change.
const CONV_WGRAD_MAX_WORKSPACE: usize = 1 << 22;

fn conv_args(g: &ConvGeom) -> Result<Vec<Arg>> {
    [g.n, g.c_in, g.h, g.w, g.c_out, g.kh, g.kw, g.stride, g.pad, g.out_h(), g.out_w()].into_iter().map(i).collect()
}

impl Conv for KernelBackend {
    fn conv2d_forward(&self, x: &DevBuf, w: &DevBuf, b: Option<&DevBuf>, g: &ConvGeom) -> Result<DevBuf> {
        g.check_forward(x.len(), w.len(), b.map(|b| b.len()))?;
        g.check_i32("conv2d_forward")?;
        // The first layer's direct kernel (FP32, exact) serves either precision: the tensor-core
        // GEMM would pad its 9-tap reduction to 32.
        if cin1_forward_supported(g) {
            return self.conv_cin1_forward(x, w, b, g);
        }
        if self.conv_precision == Precision::Tf32 {
            return self.conv2d_forward_tf32(x, w, b, g);
        }
        let y = self.buf(g.output_len())?;
        let cols = g.n * g.out_h() * g.out_w();
        let grid = [cols.div_ceil(CONV_TILE) as u32, g.c_out.div_ceil(CONV_TILE) as u32, 1];
        let mut args = vec![p(x), p(w), Arg::Ptr(b.map_or(0, |b| b.ptr())), p(&y)];
        args.extend(conv_args(g)?);
        self.launch("conv2d_forward", grid, B1, 0, &args)?;
        Ok(y)
    }
    fn conv2d_backward_input(&self, dy: &DevBuf, w: &DevBuf, g: &ConvGeom) -> Result<DevBuf> {
        g.check_backward_input(dy.len(), w.len())?;
        g.check_i32("conv2d_backward_input")?;
        if self.conv_precision == Precision::Tf32 {
            return self.conv2d_backward_input_tf32(dy, w, g);
        }
        let dx = self.buf(g.input_len())?;
        let cols = g.n * g.h * g.w;
        let grid = [cols.div_ceil(CONV_TILE) as u32, g.c_in.div_ceil(CONV_TILE) as u32, 1];
        let mut args = vec![p(dy), p(w), p(&dx)];
        args.extend(conv_args(g)?);
        self.launch("conv2d_backward_input", grid, B1, 0, &args)?;
        Ok(dx)
    }
    fn conv2d_backward_weight(&self, dy: &DevBuf, x: &DevBuf, g: &ConvGeom) -> Result<DevBuf> {
        g.check_backward_weight(dy.len(), x.len())?;
        g.check_i32("conv2d_backward_weight")?;
        if cin1_wgrad_supported(g) {
            return self.conv_cin1_backward_weight(dy, x, g);
        }
        if self.conv_precision == Precision::Tf32 {
            return self.conv2d_backward_weight_tf32(dy, x, g);
        }
        let positions = g.n * g.out_h() * g.out_w();
        let crs = g.c_in * g.kh * g.kw;
        let wlen = g.weight_len();
        let tiles = crs.div_ceil(CONV_TILE) * g.c_out.div_ceil(CONV_TILE);
        let splits = CONV_WGRAD_TARGET_BLOCKS
            .div_ceil(tiles)
            .clamp(1, positions.div_ceil(CONV_WGRAD_MIN_CHUNK).max(1))
            .min((CONV_WGRAD_MAX_WORKSPACE / wlen.max(1)).max(1));
        let chunk = positions.div_ceil(splits).max(1);
        let splits = positions.div_ceil(chunk).max(1); // slots actually used (≤ the request)
        let grid = [crs.div_ceil(CONV_TILE) as u32, g.c_out.div_ceil(CONV_TILE) as u32, splits as u32];
        // One split: the kernel's single slot is dw. Otherwise a slot per split, then the
        // fixed-order sum (no atomics: the same bits on every run).
        let dw = self.buf(wlen)?;
        let partials = if splits == 1 { dw.clone() } else { self.buf(splits * wlen)? };
        let mut args = vec![p(dy), p(x), p(&partials)];
        args.extend(conv_args(g)?);
        args.push(i(chunk)?);
        self.launch("conv2d_backward_weight", grid, B1, 0, &args)?;
        if splits > 1 {
            self.launch("splitk_sum", ew(wlen), B1, 0, &[p(&partials), p(&dw), i(splits)?, i(wlen)?])?;
        }
        Ok(dw)
    }
    fn channel_sums(&self, dy: &DevBuf, g: &ChannelGeom) -> Result<DevBuf> {
        g.check("channel_sums", &[("dy", dy.len())], &[], &[])?;
        g.check_i32("channel_sums")?;
        let chunks = channel_chunks(g);
        let parts = self.doubles(g.c * chunks)?;
        let args = [p(dy), p(&parts), i(g.n)?, i(g.c)?, i(g.hw)?];
        self.launch("channel_sums", channel_grid(g, chunks), B1, 0, &args)?;
        let out = self.buf(g.c)?;
        self.launch("channel_sums_combine", ew(g.c), B1, 0, &[p(&parts), i(chunks)?, p(&out), i(g.c)?])?;
        Ok(out)
    }
}
