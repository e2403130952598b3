//! Direct convolution kernels for one input channel (the spectrogram layer): kernels/conv_cin1.cu.
//! `Conv::conv2d_forward` and `conv2d_backward_weight` (conv.rs) send the shapes these support
//! here; everything else goes to the implicit-GEMM kernels.

use super::{Arg, B1, DevBuf, KernelBackend, ew, i, p};
use crate::backend::ConvGeom;
use crate::error::Result;

/// Output tile of a block: 8 rows (one per warp) × 128 columns (4 per lane).
const TILE_H: usize = 8;
const TILE_W: usize = 128;
/// Channels per pass of the forward (the weights are staged zero-padded to a multiple of this).
const FORWARD_CHANNEL_GROUP: usize = 8;
/// Dynamic shared memory one block may use without the opt-in (and the sim's limit).
const MAX_SHARED_BYTES: usize = 48 * 1024;
/// The kernels loop over any R × S and stride; dispatch is limited to the range the tests cover.
const MAX_KERNEL_SIDE: usize = 7;
const MAX_STRIDE: usize = 2;
/// The weight gradient cuts its tiles into about this many chunks (each one block's partial
/// sums, then added in a fixed order): ~8 per SM of a 132-SM H100 at 2 blocks per SM, and the
/// partials (chunks × K·R·S floats; 2.4 MB for 64 3×3 filters) stay small.
const WGRAD_TARGET_CHUNKS: usize = 1024;

fn tiles(g: &ConvGeom) -> usize {
    g.n * g.out_h().div_ceil(TILE_H) * g.out_w().div_ceil(TILE_W)
}

/// Floats of one block's staged input patch.
fn patch_floats(g: &ConvGeom) -> usize {
    ((TILE_H - 1) * g.stride + g.kh) * ((TILE_W - 1) * g.stride + g.kw)
}

fn forward_shared_bytes(g: &ConvGeom) -> usize {
    let weights = g.kh * g.kw * g.c_out.div_ceil(FORWARD_CHANNEL_GROUP) * FORWARD_CHANNEL_GROUP;
    4 * (weights + patch_floats(g))
}

/// The patch, which the end of each chunk reuses for its lane sums (256 threads × 9 taps).
fn wgrad_shared_bytes(g: &ConvGeom) -> usize {
    const LANE_SUMS: usize = 256 * 9;
    4 * patch_floats(g).max(LANE_SUMS)
}

fn common_supported(g: &ConvGeom) -> bool {
    g.c_in == 1
        && g.n > 0
        && g.c_out > 0
        && g.kh <= MAX_KERNEL_SIDE
        && g.kw <= MAX_KERNEL_SIDE
        && (1..=MAX_STRIDE).contains(&g.stride)
}

/// Whether `conv2d_forward` runs `conv_cin1_forward` for this geometry.
pub(super) fn cin1_forward_supported(g: &ConvGeom) -> bool {
    common_supported(g) && forward_shared_bytes(g) <= MAX_SHARED_BYTES
}

/// Whether `conv2d_backward_weight` runs `conv_cin1_backward_weight` for this geometry.
pub(super) fn cin1_wgrad_supported(g: &ConvGeom) -> bool {
    common_supported(g) && wgrad_shared_bytes(g) <= MAX_SHARED_BYTES
}

fn geom_args(g: &ConvGeom) -> Result<Vec<Arg>> {
    [g.n, g.h, g.w, g.c_out, g.kh, g.kw, g.stride, g.pad, g.out_h(), g.out_w()].into_iter().map(i).collect()
}

fn shared(bytes: usize) -> u32 {
    u32::try_from(bytes).expect("checked against MAX_SHARED_BYTES")
}

impl KernelBackend {
    /// The forward of a supported geometry (`cin1_forward_supported`), x and y at a batch part's
    /// first sample; the caller has checked the lengths and the 32-bit extents.
    pub(super) fn conv_cin1_forward(&self, x: Arg, w: &DevBuf, b: Option<&DevBuf>, y: Arg, g: &ConvGeom) -> Result<()> {
        let mut args = vec![x, p(w), Arg::Ptr(b.map_or(0, |b| b.ptr())), y];
        args.extend(geom_args(g)?);
        // tiles ≤ N·OH·OW, which check_i32 bounds.
        let grid = [tiles(g) as u32, 1, 1];
        self.launch("conv_cin1_forward", grid, B1, shared(forward_shared_bytes(g)), &args)
    }

    /// The weight gradient of a supported geometry (`cin1_wgrad_supported`): per-chunk partials,
    /// then their fixed-order sum.
    pub(super) fn conv_cin1_backward_weight(&self, dy: Arg, x: Arg, g: &ConvGeom) -> Result<DevBuf> {
        let tiles = tiles(g);
        let per_chunk = tiles.div_ceil(WGRAD_TARGET_CHUNKS);
        let chunks = tiles.div_ceil(per_chunk);
        let len = g.weight_len();
        let partials = self.buf(chunks * len)?;
        i(chunks * len)?; // the partials' offsets are kernel ints too
        let mut args = vec![dy, x, p(&partials)];
        args.extend(geom_args(g)?);
        args.push(i(per_chunk)?);
        self.launch("conv_cin1_backward_weight", [chunks as u32, 1, 1], B1, shared(wgrad_shared_bytes(g)), &args)?;
        let dw = self.buf(len)?;
        // The chunks added in order (reduce.cu's fixed-order split-K sum, in double).
        self.launch("splitk_sum", ew(len), B1, 0, &[p(&partials), p(&dw), i(chunks)?, i(len)?])?;
        Ok(dw)
    }
}
