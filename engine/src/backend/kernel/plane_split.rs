//! The plane reductions of the SE squeeze and backward (Σ x, Σ dy·x per plane): one block per
//! plane (pool.cu, se.cu) when there are enough planes to fill the GPU, else each plane split
//! over several blocks (kernels/plane_split.cu) and the partial sums added in chunk order.

use super::{Arg, B1, DevBuf, KernelBackend, at, ew, i, p};
use crate::backend::ChannelGeom;
use crate::error::Result;

/// Blocks that fill an H100/H200: 132 SMs × 8 resident 256-thread blocks, rounded up.
const FILL_BLOCKS: usize = 1056;
/// The least a split block reads (64 KiB of floats): below this a block's start-up and its
/// combine cost more than the parallelism gains.
const MIN_CHUNK: usize = 16 * 1024;
/// CUDA's limit on gridDim.y (and x, as the kernels use it).
const MAX_GRID_YZ: usize = 65535;

/// (splits, chunk) for `planes` planes of `hw` floats: 1 split when one block per plane fills
/// the GPU or the planes are small; chunk is a multiple of 4 floats, so each chunk starts at
/// the plane's own 16-byte phase and the float4 body covers all but its ends.
pub fn split_plan(planes: usize, hw: usize) -> (usize, usize) {
    if planes == 0 || planes >= FILL_BLOCKS || hw < 2 * MIN_CHUNK {
        return (1, hw);
    }
    let want = FILL_BLOCKS.div_ceil(planes).min(hw / MIN_CHUNK).clamp(1, MAX_GRID_YZ);
    let chunk = hw.div_ceil(want).next_multiple_of(4);
    (hw.div_ceil(chunk), chunk)
}

/// What is reduced over each plane.
#[derive(Clone, Copy)]
pub enum PlaneSum<'a> {
    /// The mean of x (the squeeze, global average pooling).
    Mean(&'a DevBuf),
    /// Σ a·b (the SE gate's gradient).
    Dot(&'a DevBuf, &'a DevBuf),
}

impl KernelBackend {
    /// One value per plane, per batch part; the caller has checked the lengths.
    pub(super) fn plane_reduce(&self, op: &'static str, what: PlaneSum<'_>, g: &ChannelGeom) -> Result<DevBuf> {
        let out = self.buf(g.planes())?;
        for (part, x_at, plane_at) in self.plane_parts(op, g)? {
            let input = match what {
                PlaneSum::Mean(x) => vec![at(x, x_at)],
                PlaneSum::Dot(a, b) => vec![at(a, x_at), at(b, x_at)],
            };
            self.plane_reduce_part(what, input, at(&out, plane_at), &part)?;
        }
        Ok(out)
    }

    /// One launch (or split launch and combine) of `plane_reduce` over a batch part: `input` at
    /// its first element, `out` at its first plane.
    fn plane_reduce_part(&self, what: PlaneSum<'_>, input: Vec<Arg>, out: Arg, g: &ChannelGeom) -> Result<()> {
        let planes = g.planes();
        let (splits, chunk) = split_plan(planes, g.hw);
        let grid_x = planes.clamp(1, MAX_GRID_YZ) as u32;
        let sizes = [i(planes)?, i(g.hw)?];
        let mean = matches!(what, PlaneSum::Mean(_));
        if splits == 1 {
            let name = if mean { "global_avgpool_forward" } else { "channel_dot" };
            let args = [&input[..], &[out], &sizes].concat();
            return self.launch(name, [grid_x, 1, 1], B1, 0, &args);
        }
        // Double partials in a float buffer of twice the length (the pool's blocks are aligned
        // far beyond 8 bytes).
        let part = self.buf(2 * planes * splits)?;
        let (name, div) = if mean { ("plane_sum_partial", g.hw) } else { ("plane_dot_partial", 1) };
        let args = [&input[..], &[p(&part)], &sizes, &[i(chunk)?]].concat();
        self.launch(name, [grid_x, splits as u32, 1], B1, 0, &args)?;
        let combine = [p(&part), out, i(planes)?, i(splits)?, i(div)?];
        self.launch("plane_partials_combine", ew(planes), B1, 0, &combine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_only_few_large_planes_into_aligned_chunks() {
        // The model's SE map (16 × 512 planes of 2576): one block per plane.
        assert_eq!(split_plan(16 * 512, 2576), (1, 2576));
        // Few planes but small: not worth splitting.
        assert_eq!(split_plan(3, 2 * MIN_CHUNK - 1), (1, 2 * MIN_CHUNK - 1));
        for (planes, hw) in [(2, 32771), (1, 1 << 22), (7, 100_003), (1000, 50_000)] {
            let (splits, chunk) = split_plan(planes, hw);
            assert!(splits > 1 && chunk % 4 == 0 && chunk >= MIN_CHUNK, "{planes}x{hw}: {splits} of {chunk}");
            assert!((splits - 1) * chunk < hw && splits * chunk >= hw, "{planes}x{hw}: chunks cover the plane");
            assert!(planes * splits <= FILL_BLOCKS + planes, "{planes}x{hw}: no more blocks than needed");
        }
    }
}
