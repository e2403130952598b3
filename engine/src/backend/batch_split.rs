//! Splitting a launch so that no kernel index can wrap. The CUDA kernels index with 32-bit
//! `int`s (cheaper registers and address arithmetic in every inner loop); a tensor that passes
//! 2³¹ elements (MODEL_3's first block at batch 256 of the seed's 128 × 1292 input holds
//! 256 × 64 × 128 × 1292 = 2.7·10⁹) is therefore never given to one launch: the launcher runs the
//! kernel on batch parts, each small enough, at pointer offsets into the whole tensors, and merges
//! what crosses samples (BatchNorm statistics, weight and bias gradients) over the parts in a
//! fixed order. The plan depends on the geometry alone, so it is tested without allocating.

use super::geom::MAX_KERNEL_INDEX;
use crate::error::{Error, Result};
use std::ops::Range;

/// What one launch may cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchCaps {
    /// Elements any one tensor of a launch may hold (the kernels' 32-bit index range).
    pub index: usize,
    /// Samples one launch may cover. Unlimited in use; a test lowers it to run every split path
    /// (offsets, cross-part merges) on tensors small enough to compare with the CPU.
    pub samples: usize,
    /// Elements one elementwise launch may cover (`index` in use; lowered by the same tests).
    pub flat: usize,
}

impl Default for LaunchCaps {
    fn default() -> Self {
        LaunchCaps { index: MAX_KERNEL_INDEX, samples: usize::MAX, flat: MAX_KERNEL_INDEX }
    }
}

/// Samples [start, start + n) of a batch, one launch's share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchPart {
    pub start: usize,
    pub n: usize,
}

impl LaunchCaps {
    /// The batch of `n` samples cut into parts of near-equal size, in order, such that
    /// part.n × `per_sample` ≤ the index cap (and part.n ≤ the sample cap). `per_sample` is the
    /// largest extent one sample gives any tensor the op's kernels index. One part when all
    /// fits (also when n = 0). Fails, naming the op, when a single sample is already too large:
    /// no split of the batch can help then.
    pub fn batch_parts(&self, op: &'static str, n: usize, per_sample: usize) -> Result<Vec<BatchPart>> {
        if per_sample > self.index {
            return Err(Error::Invalid(format!(
                "{op}: one sample spans {per_sample} elements, beyond the CUDA kernels' 32-bit indices ({}); \
                 splitting the batch cannot help: use shorter clips or fewer channels",
                self.index
            )));
        }
        let max_n = (self.index / per_sample.max(1)).min(self.samples).max(1);
        let parts = n.div_ceil(max_n).max(1);
        // The first n mod parts parts take one sample more: sizes differ by at most one, and
        // none exceeds max_n (parts·max_n ≥ n).
        let (base, extra) = (n / parts, n % parts);
        let mut start = 0;
        Ok((0..parts)
            .map(|k| {
                let part = BatchPart { start, n: base + usize::from(k < extra) };
                start += part.n;
                part
            })
            .collect())
    }

    /// `len` elements cut into ranges of at most the elementwise cap, in order (none for
    /// len = 0).
    pub fn flat_parts(&self, len: usize) -> Vec<Range<usize>> {
        let cap = self.flat.max(1);
        (0..len.div_ceil(cap)).map(|k| k * cap..(len.min((k + 1) * cap))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{ChannelGeom, ConvGeom, UnitGeom};

    fn covers(parts: &[BatchPart], n: usize) {
        let mut next = 0;
        for p in parts {
            assert_eq!(p.start, next, "{parts:?}");
            next += p.n;
        }
        assert_eq!(next, n, "{parts:?}");
    }

    /// The seed's VGG tower at batch 256 on its 1 × 128 × 1292 input, layer by layer (channels
    /// 64, 128, 256, 512; a 2×2 pool after blocks 1-3), with one conv per block (MODEL_3) and two
    /// (MODEL_4): the layers whose tensors pass 2³¹ elements are cut into parts that each fit, the
    /// batch covered exactly once, in order; the others stay whole.
    fn split_layers(convs_per_block: usize) -> Vec<(usize, usize, usize)> {
        let caps = LaunchCaps::default();
        let (mut h, mut w, mut c_in) = (128, 1292, 1);
        let mut split = Vec::new();
        for (block, c_out) in [64, 128, 256, 512].into_iter().enumerate() {
            for conv in 0..convs_per_block {
                let g = ConvGeom { n: 256, c_in, h, w, c_out, kh: 3, kw: 3, stride: 1, pad: 1 };
                let (x_len, y_len) = g.sample_lens();
                let parts = caps.batch_parts("conv2d_forward", g.n, x_len.max(y_len)).unwrap();
                covers(&parts, 256);
                let pool = conv + 1 == convs_per_block && block < 3;
                for p in &parts {
                    ConvGeom { n: p.n, ..g }.check_i32("conv2d_forward").unwrap();
                    UnitGeom { n: p.n, c: c_out, h, w, pool }.check_i32("unit_forward").unwrap();
                }
                if parts.len() > 1 {
                    split.push((block, conv, parts.len()));
                }
                c_in = c_out;
            }
            (h, w) = (h / 2, w / 2);
        }
        split
    }

    #[test]
    fn the_seeds_towers_at_batch_256_full_size_are_split_only_where_they_must_be() {
        // Block 1 (64 × 128 × 1292 = 10.6M per sample: 202 samples fit) in two parts of 128;
        // block 2 (128 × 64 × 646 = 5.3M per sample) fits whole at 256 (1.35·10⁹).
        assert_eq!(split_layers(1), vec![(0, 0, 2)]);
        assert_eq!(split_layers(2), vec![(0, 0, 2), (0, 1, 2)]);
        let bn = ChannelGeom { n: 256, c: 64, hw: 128 * 1292 };
        let parts = LaunchCaps::default().batch_parts("bn_stats", bn.n, bn.per_sample_extent()).unwrap();
        assert_eq!(parts, vec![BatchPart { start: 0, n: 128 }, BatchPart { start: 128, n: 128 }]);
    }

    #[test]
    fn parts_are_near_equal_and_never_empty() {
        let caps = LaunchCaps { index: 100, ..LaunchCaps::default() };
        for n in 0..40 {
            for per_sample in [1, 7, 33, 50, 100] {
                let parts = caps.batch_parts("op", n, per_sample).unwrap();
                covers(&parts, n);
                let sizes: Vec<usize> = parts.iter().map(|p| p.n).collect();
                assert!(sizes.iter().all(|&s| s * per_sample <= 100), "{n} × {per_sample}: {sizes:?}");
                assert!(n == 0 || sizes.iter().all(|&s| s > 0), "{sizes:?}");
                let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(hi - lo <= 1 || n == 0, "{n} × {per_sample}: {sizes:?}");
                // As few parts as the cap allows.
                assert_eq!(parts.len(), n.div_ceil(100 / per_sample).max(1));
            }
        }
        let one = LaunchCaps { samples: 1, ..LaunchCaps::default() };
        assert_eq!(one.batch_parts("op", 3, 10).unwrap().len(), 3);
    }

    #[test]
    fn a_sample_too_large_for_any_split_is_refused_naming_the_op() {
        let e = LaunchCaps::default().batch_parts("conv2d_forward", 1, 1 << 31).unwrap_err().to_string();
        assert!(e.contains("conv2d_forward") && e.contains("one sample spans 2147483648"), "{e}");
    }

    #[test]
    fn flat_parts_cover_the_range_in_order() {
        let caps = LaunchCaps { flat: 10, ..LaunchCaps::default() };
        assert!(caps.flat_parts(0).is_empty());
        assert_eq!(caps.flat_parts(25), vec![0..10, 10..20, 20..25]);
        assert_eq!(LaunchCaps::default().flat_parts(3_000_000_000).len(), 2);
    }
}
