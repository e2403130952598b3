//! The TF32 tensor-core convolutions: kernels/conv_tc.cu, chosen by `conv2d_*` in conv.rs when the
//! backend's convolution precision is TF32.

use super::conv::{SplitRule, conv_args};
use super::{Arg, B1, DevBuf, KernelBackend, i, p};
use crate::backend::ConvGeom;
use crate::error::Result;

/// Block tile columns of the tensor-core kernels.
const TILE: usize = 128;
/// Reduction tile: split-K chunks are whole multiples of it.
const BK: usize = 32;

/// The kernel variant for a GEMM with `rows` output rows: 128-row tiles, or the `_m64_` kernels
/// with 64-row tiles where a 128-row tile would be at least half padding.
#[derive(Clone, Copy)]
struct Variant {
    rows: usize,
    /// 3 pipeline stages × (A rows × 36 + B 128 × 36 floats): above the 48 KiB a launch gets by
    /// default (110592 or 82944 bytes), so the launcher opts each kernel in first.
    shared: u32,
}

impl Variant {
    fn for_rows(rows: usize) -> Self {
        let r = if rows <= 64 { 64 } else { 128 };
        Variant { rows: r, shared: (3 * (r * 36 + 128 * 36) * 4) as u32 }
    }
    fn kernel(self, wide: &'static str, narrow: &'static str) -> &'static str {
        if self.rows == 64 { narrow } else { wide }
    }
}
/// The weight gradient's split-K: until the grid has about 264 blocks (2 resident per SM, as
/// registers and shared memory allow, on a 132-SM H100/H200), in chunks of at least 16 reduction
/// tiles (so a split's pipeline runs long enough to hide its prologue) that are whole tiles, into
/// at most 16 M floats (64 MiB) of split slots.
const WGRAD_SPLIT: SplitRule =
    SplitRule { target_blocks: 264, min_chunk: 16 * BK, max_workspace: 16 << 20, chunk_multiple: BK };

/// (splits, chunk) of the weight gradient's reduction over `positions` for a `k × crs` output.
fn wgrad_split(positions: usize, k: usize, crs: usize) -> (usize, usize) {
    let tiles = k.div_ceil(Variant::for_rows(k).rows) * crs.div_ceil(TILE);
    WGRAD_SPLIT.split(positions, tiles, k * crs)
}

impl KernelBackend {
    fn launch_tc(&self, kernel: &'static str, v: Variant, grid: [u32; 3], args: &[Arg]) -> Result<()> {
        // The attribute is per function; setting it again is one driver call, negligible next
        // to a convolution.
        self.dev.set_max_dynamic_shared(kernel, v.shared)?;
        self.launch(kernel, grid, B1, v.shared, args)
    }

    pub(super) fn conv2d_forward_tf32(
        &self,
        x: &DevBuf,
        w: &DevBuf,
        b: Option<&DevBuf>,
        g: &ConvGeom,
    ) -> Result<DevBuf> {
        let y = self.buf(g.output_len())?;
        let cols = g.n * g.out_h() * g.out_w();
        let v = Variant::for_rows(g.c_out);
        let grid = [cols.div_ceil(TILE) as u32, g.c_out.div_ceil(v.rows) as u32, 1];
        let mut args = vec![p(x), p(w), Arg::Ptr(b.map_or(0, |b| b.ptr())), p(&y)];
        args.extend(conv_args(g)?);
        self.launch_tc(v.kernel("conv2d_forward_tf32", "conv2d_forward_m64_tf32"), v, grid, &args)?;
        Ok(y)
    }

    pub(super) fn conv2d_backward_input_tf32(&self, dy: &DevBuf, w: &DevBuf, g: &ConvGeom) -> Result<DevBuf> {
        let dx = self.buf(g.input_len())?;
        let cols = g.n * g.h * g.w;
        let v = Variant::for_rows(g.c_in);
        let grid = [cols.div_ceil(TILE) as u32, g.c_in.div_ceil(v.rows) as u32, 1];
        let mut args = vec![p(dy), p(w), p(&dx)];
        args.extend(conv_args(g)?);
        self.launch_tc(v.kernel("conv2d_backward_input_tf32", "conv2d_backward_input_m64_tf32"), v, grid, &args)?;
        Ok(dx)
    }

    pub(super) fn conv2d_backward_weight_tf32(&self, dy: &DevBuf, x: &DevBuf, g: &ConvGeom) -> Result<DevBuf> {
        let positions = g.n * g.out_h() * g.out_w();
        let crs = g.c_in * g.kh * g.kw;
        let (splits, chunk) = wgrad_split(positions, g.c_out, crs);
        let v = Variant::for_rows(g.c_out);
        let grid = [crs.div_ceil(TILE) as u32, g.c_out.div_ceil(v.rows) as u32, splits as u32];
        let kernel = v.kernel("conv2d_backward_weight_tf32", "conv2d_backward_weight_m64_tf32");
        self.split_k(g.weight_len(), splits, |slots| {
            let mut args = vec![p(dy), p(x), p(slots)];
            args.extend(conv_args(g)?);
            args.push(i(chunk)?);
            self.launch_tc(kernel, v, grid, &args)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weight_gradient_split_covers_every_position_in_whole_tiles() {
        for (positions, k, crs) in
            [(1, 1, 1), (31, 5, 27), (2_646_016, 64, 9), (661_504, 128, 576), (41_216, 512, 2304), (100_000, 7, 7)]
        {
            let (splits, chunk) = wgrad_split(positions, k, crs);
            assert_eq!(chunk % BK, 0);
            assert!(splits * chunk >= positions && (splits - 1) * chunk < positions, "{positions}: {splits}×{chunk}");
            assert!(splits * k * crs <= WGRAD_SPLIT.max_workspace.max(k * crs));
        }
        // The first layer (64 × 9 outputs, one 64-row tile) is split ~264 ways; block 4 (512 ×
        // 2304, 72 tiles) into 4.
        assert_eq!(wgrad_split(2_646_016, 64, 9).0, 264);
        assert_eq!(wgrad_split(41_216, 512, 2304).0, 4);
    }
}
