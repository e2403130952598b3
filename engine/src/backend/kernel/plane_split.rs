//! The plane reductions of the SE squeeze and backward (Σ x, Σ dy·x per plane): one block per
//! plane (pool.cu, se.cu) when there are enough planes to fill the GPU, else each plane split
//! over several blocks (kernels/plane_split.cu) and the partial sums added in chunk order.

use super::{B1, DevBuf, KernelBackend, ew, i, p};
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
    /// One value per plane; the caller has checked the lengths and the 32-bit extents.
    pub(super) fn plane_reduce(&self, what: PlaneSum<'_>, g: &ChannelGeom) -> Result<DevBuf> {
        let planes = g.planes();
        let out = self.buf(planes)?;
        let (splits, chunk) = split_plan(planes, g.hw);
        let grid_x = planes.clamp(1, MAX_GRID_YZ) as u32;
        let sizes = [i(planes)?, i(g.hw)?];
        if splits == 1 {
            let (name, mut args) = match what {
                PlaneSum::Mean(x) => ("global_avgpool_forward", vec![p(x), p(&out)]),
                PlaneSum::Dot(a, b) => ("channel_dot", vec![p(a), p(b), p(&out)]),
            };
            args.extend(sizes);
            self.launch(name, [grid_x, 1, 1], B1, 0, &args)?;
            return Ok(out);
        }
        // Double partials in a float buffer of twice the length (the pool's blocks are aligned
        // far beyond 8 bytes).
        let part = self.buf(2 * planes * splits)?;
        let (name, mut args, div) = match what {
            PlaneSum::Mean(x) => ("plane_sum_partial", vec![p(x), p(&part)], g.hw),
            PlaneSum::Dot(a, b) => ("plane_dot_partial", vec![p(a), p(b), p(&part)], 1),
        };
        args.extend(sizes);
        args.push(i(chunk)?);
        self.launch(name, [grid_x, splits as u32, 1], B1, 0, &args)?;
        let combine = [p(&part), p(&out), i(planes)?, i(splits)?, i(div)?];
        self.launch("plane_partials_combine", ew(planes), B1, 0, &combine)?;
        Ok(out)
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
