//! Implicit-GEMM convolution and the bias gradient: kernels/conv.cu.

use super::conv_cin1::{cin1_forward_supported, cin1_wgrad_supported};
use super::norm::channel_grid;
use super::profile::DeviceProfile;
use super::{Arg, B1, DevBuf, KernelBackend, at, ew, i, p};
use crate::backend::geom::check_i32;
use crate::backend::{ChannelGeom, Conv, ConvGeom, Pointwise, Precision};
use crate::error::Result;

/// Output tile of the implicit-GEMM convolution kernels (rows × columns per block).
const CONV_TILE: usize = 64;
/// conv2d_backward_weight's split-K: until the grid has about 4 blocks per SM (528 on a 132-SM
/// H100, so every SM has work even for 64-channel layers); never into chunks shorter than 256
/// positions, where storing and re-adding each partial tile would dominate; never into more split
/// slots than fit 2²² floats (16 MiB), a cap that holds whatever the card's SM count.
fn conv_wgrad_split(card: &DeviceProfile) -> SplitRule {
    SplitRule { target_blocks: 2 * card.target_blocks(), min_chunk: 256, max_workspace: 1 << 22, chunk_multiple: 1 }
}

/// The geometry as the convolution kernels' trailing `int` arguments (conv.cu and conv_tc.cu).
pub(super) fn conv_args(g: &ConvGeom) -> Result<Vec<Arg>> {
    [g.n, g.c_in, g.h, g.w, g.c_out, g.kh, g.kw, g.stride, g.pad, g.out_h(), g.out_w()].into_iter().map(i).collect()
}

/// How a weight gradient's reduction over N·OH·OW positions is split (split-K), per kernel family.
#[derive(Clone, Copy)]
pub(super) struct SplitRule {
    /// Split until the grid has about this many blocks…
    pub target_blocks: usize,
    /// …in chunks of at least this many positions…
    pub min_chunk: usize,
    /// …into at most this many floats of split slots (splits·K·C·R·S)…
    pub max_workspace: usize,
    /// …with chunks a multiple of this (the kernel's reduction tile).
    pub chunk_multiple: usize,
}

impl SplitRule {
    /// (splits, chunk) for `positions` over `tiles` output tiles of a `len`-float gradient:
    /// splits·chunk ≥ positions > (splits − 1)·chunk, splits ≤ 65535 (the grid's z limit).
    pub(super) fn split(&self, positions: usize, tiles: usize, len: usize) -> (usize, usize) {
        let want = self
            .target_blocks
            .div_ceil(tiles.max(1))
            .min(positions.div_ceil(self.min_chunk))
            .min(self.max_workspace / len.max(1))
            .clamp(1, 65535);
        let chunk = positions.div_ceil(want).div_ceil(self.chunk_multiple).max(1) * self.chunk_multiple;
        (positions.div_ceil(chunk).max(1), chunk)
    }
}

impl KernelBackend {
    /// A `len`-float weight gradient from a split-K launch: `launch(slots)` writes one slot of
    /// `len` floats per split; with one split the slot is the result itself, otherwise the
    /// slots are added in split order by splitk_sum (fixed order, no atomics: the same bits on
    /// every run).
    pub(super) fn split_k(
        &self,
        len: usize,
        splits: usize,
        launch: impl FnOnce(&DevBuf) -> Result<()>,
    ) -> Result<DevBuf> {
        let dw = self.buf(len)?;
        if splits == 1 {
            launch(&dw)?;
            return Ok(dw);
        }
        let slots = self.buf(splits * len)?;
        launch(&slots)?;
        self.launch("splitk_sum", ew(len), B1, 0, &[p(&slots), p(&dw), i(splits)?, i(len)?])?;
        Ok(dw)
    }
}

impl KernelBackend {
    /// The batch parts of a convolution (one unless a tensor passes the launch caps).
    fn conv_parts(&self, op: &'static str, g: &ConvGeom) -> Result<Vec<(ConvGeom, usize, usize)>> {
        check_i32(op, "the weight", g.weight_len(), 0)?;
        self.batch_parts(op, g.n, g.sample_lens(), |n| ConvGeom { n, ..*g }, |part| part.check_i32(op))
    }

    /// One launch's forward: x and y at a batch part's first sample.
    fn conv2d_forward_part(&self, x: Arg, w: &DevBuf, b: Option<&DevBuf>, y: Arg, g: &ConvGeom) -> Result<()> {
        // The first layer's direct kernel (FP32, exact) serves either precision: the tensor-core
        // GEMM would pad its 9-tap reduction to 32.
        if cin1_forward_supported(g) {
            return self.conv_cin1_forward(x, w, b, y, g);
        }
        if self.conv_precision == Precision::Tf32 {
            return self.conv2d_forward_tf32(x, w, b, y, g);
        }
        let cols = g.n * g.out_h() * g.out_w();
        let grid = [cols.div_ceil(CONV_TILE) as u32, g.c_out.div_ceil(CONV_TILE) as u32, 1];
        let mut args = vec![x, p(w), Arg::Ptr(b.map_or(0, |b| b.ptr())), y];
        args.extend(conv_args(g)?);
        self.launch("conv2d_forward", grid, B1, 0, &args)
    }

    /// One launch's input gradient: dy and dx at a batch part's first sample.
    fn conv2d_backward_input_part(&self, dy: Arg, w: &DevBuf, dx: Arg, g: &ConvGeom) -> Result<()> {
        if self.conv_precision == Precision::Tf32 {
            return self.conv2d_backward_input_tf32(dy, w, dx, g);
        }
        let cols = g.n * g.h * g.w;
        let grid = [cols.div_ceil(CONV_TILE) as u32, g.c_in.div_ceil(CONV_TILE) as u32, 1];
        let mut args = vec![dy, p(w), dx];
        args.extend(conv_args(g)?);
        self.launch("conv2d_backward_input", grid, B1, 0, &args)
    }

    /// One launch's weight gradient over a batch part (dy and x at its first sample).
    fn conv2d_backward_weight_part(&self, dy: Arg, x: Arg, g: &ConvGeom) -> Result<DevBuf> {
        if cin1_wgrad_supported(g) {
            return self.conv_cin1_backward_weight(dy, x, g);
        }
        if self.conv_precision == Precision::Tf32 {
            return self.conv2d_backward_weight_tf32(dy, x, g);
        }
        let positions = g.n * g.out_h() * g.out_w();
        let crs = g.c_in * g.kh * g.kw;
        let tiles = crs.div_ceil(CONV_TILE) * g.c_out.div_ceil(CONV_TILE);
        let (splits, chunk) = conv_wgrad_split(self.profile()).split(positions, tiles, g.weight_len());
        let grid = [crs.div_ceil(CONV_TILE) as u32, g.c_out.div_ceil(CONV_TILE) as u32, splits as u32];
        self.split_k(g.weight_len(), splits, |slots| {
            let mut args = vec![dy, x, p(slots)];
            args.extend(conv_args(g)?);
            args.push(i(chunk)?);
            self.launch("conv2d_backward_weight", grid, B1, 0, &args)
        })
    }
}

impl Conv for KernelBackend {
    fn conv2d_forward(&self, x: &DevBuf, w: &DevBuf, b: Option<&DevBuf>, g: &ConvGeom) -> Result<DevBuf> {
        g.check_forward(x.len(), w.len(), b.map(|b| b.len()))?;
        let parts = self.conv_parts("conv2d_forward", g)?;
        let y = self.buf(g.output_len())?;
        for (part, x_at, y_at) in parts {
            self.conv2d_forward_part(at(x, x_at), w, b, at(&y, y_at), &part)?;
        }
        Ok(y)
    }
    fn conv2d_backward_input(&self, dy: &DevBuf, w: &DevBuf, g: &ConvGeom) -> Result<DevBuf> {
        g.check_backward_input(dy.len(), w.len())?;
        let parts = self.conv_parts("conv2d_backward_input", g)?;
        let dx = self.buf(g.input_len())?;
        for (part, dx_at, dy_at) in parts {
            self.conv2d_backward_input_part(at(dy, dy_at), w, at(&dx, dx_at), &part)?;
        }
        Ok(dx)
    }
    fn conv2d_backward_weight(&self, dy: &DevBuf, x: &DevBuf, g: &ConvGeom) -> Result<DevBuf> {
        g.check_backward_weight(dy.len(), x.len())?;
        // The parts' gradients added in batch order: a fixed order, the same bits on every run.
        let mut dw: Option<DevBuf> = None;
        for (part, x_at, dy_at) in self.conv_parts("conv2d_backward_weight", g)? {
            let part_dw = self.conv2d_backward_weight_part(at(dy, dy_at), at(x, x_at), &part)?;
            match dw.as_mut() {
                None => dw = Some(part_dw),
                Some(sum) => self.add_assign(sum, &part_dw)?,
            }
        }
        Ok(dw.expect("at least one batch part"))
    }
    fn channel_sums(&self, dy: &DevBuf, g: &ChannelGeom) -> Result<DevBuf> {
        g.check("channel_sums", &[("dy", dy.len())], &[], &[])?;
        let batch = self.channel_parts("channel_sums", g)?;
        let parts = self.doubles(g.c * batch.slots)?;
        for bp in &batch.parts {
            let args = [at(dy, bp.offset), p(&parts), i(bp.geom.n)?, i(g.c)?, i(g.hw)?, i(bp.slot0)?, i(batch.slots)?];
            self.launch("channel_sums", channel_grid(&bp.geom, bp.chunks), B1, 0, &args)?;
        }
        let out = self.buf(g.c)?;
        let args = [p(&parts), i(batch.slots)?, p(&out), i(g.c)?];
        self.launch("channel_sums_combine", ew(g.c), B1, 0, &args)?;
        Ok(out)
    }
}
