//! The TF32 tensor-core convolutions: kernels/conv_tc.cu, chosen by `conv2d_*` in conv.rs when the
//! backend's convolution precision is TF32.

use super::conv::{SplitRule, conv_args};
use super::profile::DeviceProfile;
use super::{Arg, B1, DevBuf, KernelBackend, i, p};
use crate::backend::ConvGeom;
use crate::error::{Error, Result};

/// Block tile columns of the tensor-core kernels.
const TILE: usize = 128;
/// Reduction tile: split-K chunks are whole multiples of it.
const BK: usize = 32;

/// The kernel variant for a GEMM with `rows` output rows: 128-row tiles, or the `_m64_` kernels
/// with 64-row tiles where a 128-row tile would be at least half padding or would not fit the
/// card's shared memory (sm_86/sm_89 allow 99 KiB per block).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Variant {
    rows: usize,
    /// 3 pipeline stages × (A rows × 36 + B 128 × 36 floats): above the 48 KiB a launch gets by
    /// default (110592 or 82944 bytes), so the launcher opts each kernel in first.
    shared: u32,
}

impl Variant {
    const fn of(rows: usize) -> Self {
        Variant { rows, shared: (3 * (rows * 36 + TILE * 36) * 4) as u32 }
    }
    fn for_rows(rows: usize, card: &DeviceProfile) -> Result<Self> {
        let (wide, narrow) = (Variant::of(128), Variant::of(64));
        let v = if rows > 64 && wide.shared <= card.shared_per_block_optin { wide } else { narrow };
        if v.shared > card.shared_per_block_optin {
            return Err(Error::Device(format!(
                "the TF32 convolutions need {} bytes of shared memory per block and {} ({}) allows {}: use \
                 --precision fp32",
                v.shared,
                card.name,
                card.arch_name(),
                card.shared_per_block_optin
            )));
        }
        Ok(v)
    }
    fn kernel(self, wide: &'static str, narrow: &'static str) -> &'static str {
        if self.rows == 64 { narrow } else { wide }
    }
}
/// The weight gradient's split-K: until the grid has about two blocks per SM (as registers and
/// shared memory allow: 264 on a 132-SM H100/H200), in chunks of at least 16 reduction tiles (so
/// a split's pipeline runs long enough to hide its prologue) that are whole tiles, into at most
/// 16 M floats (64 MiB) of split slots.
fn wgrad_split_rule(card: &DeviceProfile) -> SplitRule {
    SplitRule { target_blocks: card.target_blocks(), min_chunk: 16 * BK, max_workspace: 16 << 20, chunk_multiple: BK }
}

/// (splits, chunk) of the weight gradient's reduction over `positions` for a `k × crs` output.
fn wgrad_split(positions: usize, k: usize, crs: usize, card: &DeviceProfile) -> Result<(usize, usize)> {
    let tiles = k.div_ceil(Variant::for_rows(k, card)?.rows) * crs.div_ceil(TILE);
    Ok(wgrad_split_rule(card).split(positions, tiles, k * crs))
}

impl KernelBackend {
    fn launch_tc(&self, kernel: &'static str, v: Variant, grid: [u32; 3], args: &[Arg]) -> Result<()> {
        // The attribute is per function; setting it again is one driver call, negligible next
        // to a convolution.
        self.dev.set_max_dynamic_shared(kernel, v.shared)?;
        self.launch(kernel, grid, B1, v.shared, args)
    }

    /// The forward of one launch (x and y at a batch part's first sample).
    pub(super) fn conv2d_forward_tf32(
        &self,
        x: Arg,
        w: &DevBuf,
        b: Option<&DevBuf>,
        y: Arg,
        g: &ConvGeom,
    ) -> Result<()> {
        let cols = g.n * g.out_h() * g.out_w();
        let v = Variant::for_rows(g.c_out, self.profile())?;
        let grid = [cols.div_ceil(TILE) as u32, g.c_out.div_ceil(v.rows) as u32, 1];
        let mut args = vec![x, p(w), Arg::Ptr(b.map_or(0, |b| b.ptr())), y];
        args.extend(conv_args(g)?);
        self.launch_tc(v.kernel("conv2d_forward_tf32", "conv2d_forward_m64_tf32"), v, grid, &args)
    }

    /// The input gradient of one launch (dy and dx at a batch part's first sample).
    pub(super) fn conv2d_backward_input_tf32(&self, dy: Arg, w: &DevBuf, dx: Arg, g: &ConvGeom) -> Result<()> {
        let cols = g.n * g.h * g.w;
        let v = Variant::for_rows(g.c_in, self.profile())?;
        let grid = [cols.div_ceil(TILE) as u32, g.c_in.div_ceil(v.rows) as u32, 1];
        let mut args = vec![dy, p(w), dx];
        args.extend(conv_args(g)?);
        self.launch_tc(v.kernel("conv2d_backward_input_tf32", "conv2d_backward_input_m64_tf32"), v, grid, &args)
    }

    /// The weight gradient of one launch's batch part (dy and x at its first sample).
    pub(super) fn conv2d_backward_weight_tf32(&self, dy: Arg, x: Arg, g: &ConvGeom) -> Result<DevBuf> {
        let positions = g.n * g.out_h() * g.out_w();
        let crs = g.c_in * g.kh * g.kw;
        let (splits, chunk) = wgrad_split(positions, g.c_out, crs, self.profile())?;
        let v = Variant::for_rows(g.c_out, self.profile())?;
        let grid = [crs.div_ceil(TILE) as u32, g.c_out.div_ceil(v.rows) as u32, splits as u32];
        let kernel = v.kernel("conv2d_backward_weight_tf32", "conv2d_backward_weight_m64_tf32");
        self.split_k(g.weight_len(), splits, |slots| {
            let mut args = vec![dy, x, p(slots)];
            args.extend(conv_args(g)?);
            args.push(i(chunk)?);
            self.launch_tc(kernel, v, grid, &args)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::kernel::profile::ARCHES;

    fn card(arch: &str) -> DeviceProfile {
        DeviceProfile::emulated(arch).unwrap()
    }

    #[test]
    fn the_weight_gradient_split_covers_every_position_in_whole_tiles() {
        for arch in ARCHES.iter().skip(1) {
            let c = card(arch);
            for (positions, k, crs) in
                [(1, 1, 1), (31, 5, 27), (2_646_016, 64, 9), (661_504, 128, 576), (41_216, 512, 2304), (100_000, 7, 7)]
            {
                let (splits, chunk) = wgrad_split(positions, k, crs, &c).unwrap();
                assert_eq!(chunk % BK, 0);
                assert!(
                    splits * chunk >= positions && (splits - 1) * chunk < positions,
                    "{positions}: {splits}×{chunk}"
                );
                assert!(splits * k * crs <= wgrad_split_rule(&c).max_workspace.max(k * crs));
            }
        }
        // On a 132-SM H100 the first layer (64 × 9 outputs, one 64-row tile) is split 264 ways,
        // block 4 (512 × 2304, 72 tiles) into 4; on a 58-SM L4, 116 ways, and block 4's 64-row
        // tiles (144 of them) already fill it.
        assert_eq!(wgrad_split(2_646_016, 64, 9, &card("sm_90")).unwrap().0, 264);
        assert_eq!(wgrad_split(41_216, 512, 2304, &card("sm_90")).unwrap().0, 4);
        assert_eq!(wgrad_split(2_646_016, 64, 9, &card("sm_89")).unwrap().0, 116);
        assert_eq!(wgrad_split(41_216, 512, 2304, &card("sm_89")).unwrap().0, 1);
    }

    /// Every TF32 card gets tiles whose shared memory fits its per-block opt-in: the 128-row
    /// tiles (110592 bytes) on sm_80 and sm_90, the 64-row ones (82944) on sm_86 and sm_89, whose
    /// 99 KiB would refuse the launch; pre-Ampere cards have no TF32 kernels to choose.
    #[test]
    fn each_card_gets_tensor_core_tiles_that_fit_its_shared_memory() {
        for (arch, wide_rows) in [("sm_80", 128), ("sm_86", 64), ("sm_89", 64), ("sm_90", 128)] {
            let c = card(arch);
            for rows in [1, 64, 65, 128, 512] {
                let v = Variant::for_rows(rows, &c).unwrap();
                assert!(v.shared <= c.shared_per_block_optin, "{arch}: {} > {}", v.shared, c.shared_per_block_optin);
                assert_eq!(v.rows, if rows <= 64 { 64 } else { wide_rows }, "{arch}, {rows} rows");
            }
        }
        assert_eq!(Variant::of(128).shared, 110_592);
        assert_eq!(Variant::of(64).shared, 82_944);
        let e = Variant::for_rows(128, &card("sm_75")).unwrap_err().to_string();
        assert!(e.contains("sm_75") && e.contains("--precision fp32"), "{e}");
    }
}
