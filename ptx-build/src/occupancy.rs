//! Theoretical occupancy of one kernel on an SM, computed the way CUDA's own calculator does
//! (`cudaOccMaxBlocksPerSMRegsLimit` / `cudaOccMaxBlocksPerSMSmemLimit` in cuda_occupancy.h, CUDA
//! 13.0). Below with sm_90's limits (H100/H200); [`SM_LIMITS`] gives each card's (sm_75: 32 warps,
//! 16 blocks, 64 KiB; sm_80: 164 KiB; sm_86/sm_89: 48 warps, 100 KiB):
//!
//! - warps per block `W = ceil(threads / 32)`; at most 64 warps and 32 blocks per SM;
//! - registers: each warp gets `ceil(regs · 32 / 256) · 256` of the 65536 registers, which sit in
//!   4 sub-partitions of 16384, so `blocks_regs = floor(4 · floor(16384 / regs_per_warp) / W)`;
//!   0 when `regs_per_warp · roundup(W, 4) > 65536` (the launch fails) or regs > 255;
//! - shared memory: each block takes `roundup(static + dynamic + 1024 reserved, 128)` of the
//!   SM's 228 KiB (233472 B; the driver's largest carveout), so `blocks_smem = floor(233472 /
//!   that)`; 0 when static + dynamic > 227 KiB (232448 B, the opt-in per-block maximum; above
//!   48 KiB of dynamic memory the launcher must opt in with cudaFuncSetAttribute);
//! - `blocks = min(32, floor(64 / W), blocks_regs, blocks_smem)`, occupancy = `blocks · W / 64`.

/// sm_90 limits (CUDA C Programming Guide, "Technical Specifications per Compute Capability").
pub const WARP: u32 = 32;
pub const MAX_WARPS_PER_SM: u32 = 64;
pub const MAX_BLOCKS_PER_SM: u32 = 32;
pub const MAX_THREADS_PER_BLOCK: u32 = 1024;
pub const REGS_PER_SM: u32 = 65536;
pub const REG_ALLOC_UNIT: u32 = 256;
pub const SUB_PARTITIONS: u32 = 4;
pub const MAX_REGS_PER_THREAD: u32 = 255;
pub const SHARED_PER_SM: u32 = 228 * 1024;
pub const SHARED_PER_BLOCK_OPTIN: u32 = 227 * 1024;
pub const SHARED_RESERVED_PER_BLOCK: u32 = 1024;
pub const SHARED_ALLOC_UNIT: u32 = 128;

/// What bounds the resident blocks (the first of them, in this order, when several tie).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limiter {
    Warps,
    Registers,
    SharedMemory,
    Blocks,
}

impl Limiter {
    pub fn as_str(self) -> &'static str {
        match self {
            Limiter::Warps => "warps",
            Limiter::Registers => "registers",
            Limiter::SharedMemory => "shared memory",
            Limiter::Blocks => "blocks",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occupancy {
    pub blocks_per_sm: u32,
    pub warps_per_sm: u32,
    pub limiter: Limiter,
}

impl Occupancy {
    /// Resident warps as a fraction of the SM's 64.
    pub fn fraction(&self) -> f64 {
        f64::from(self.warps_per_sm) / f64::from(MAX_WARPS_PER_SM)
    }
}

/// One architecture's per-SM limits, as cuda_occupancy.h (CUDA 13.0) gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmLimits {
    pub arch: &'static str,
    pub max_warps: u32,
    pub max_blocks: u32,
    pub shared_per_sm: u32,
    pub shared_per_block_optin: u32,
    pub shared_reserved_per_block: u32,
    pub shared_alloc_unit: u32,
}

/// The cards the kernels are built for (the registers are the same on all: 65536 per SM in 4
/// sub-partitions, 255 per thread, allocated per warp in units of 256).
pub const SM_LIMITS: [SmLimits; 5] = [
    SmLimits {
        arch: "sm_75",
        max_warps: 32,
        max_blocks: 16,
        shared_per_sm: 64 * 1024,
        shared_per_block_optin: 64 * 1024,
        shared_reserved_per_block: 0,
        shared_alloc_unit: 256,
    },
    SmLimits {
        arch: "sm_80",
        max_warps: 64,
        max_blocks: 32,
        shared_per_sm: 164 * 1024,
        shared_per_block_optin: 163 * 1024,
        shared_reserved_per_block: 1024,
        shared_alloc_unit: 128,
    },
    SmLimits {
        arch: "sm_86",
        max_warps: 48,
        max_blocks: 16,
        shared_per_sm: 100 * 1024,
        shared_per_block_optin: 99 * 1024,
        shared_reserved_per_block: 1024,
        shared_alloc_unit: 128,
    },
    SmLimits {
        arch: "sm_89",
        max_warps: 48,
        max_blocks: 24,
        shared_per_sm: 100 * 1024,
        shared_per_block_optin: 99 * 1024,
        shared_reserved_per_block: 1024,
        shared_alloc_unit: 128,
    },
    SM90,
];

/// sm_90's limits (the constants above).
pub const SM90: SmLimits = SmLimits {
    arch: "sm_90",
    max_warps: MAX_WARPS_PER_SM,
    max_blocks: MAX_BLOCKS_PER_SM,
    shared_per_sm: SHARED_PER_SM,
    shared_per_block_optin: SHARED_PER_BLOCK_OPTIN,
    shared_reserved_per_block: SHARED_RESERVED_PER_BLOCK,
    shared_alloc_unit: SHARED_ALLOC_UNIT,
};

/// Occupancy of a block of `threads` threads using `registers` per thread and `shared_bytes`
/// (static + dynamic) of shared memory; Err when such a block cannot launch on sm_90 at all.
pub fn sm90_occupancy(threads: u32, registers: u32, shared_bytes: u32) -> Result<Occupancy, String> {
    occupancy(&SM90, threads, registers, shared_bytes).map(|(o, _)| o)
}

/// `sm90_occupancy` on the card `sm` describes; also returns the occupancy as a fraction of its
/// warps (`Occupancy::fraction` is sm_90's).
pub fn occupancy(sm: &SmLimits, threads: u32, registers: u32, shared_bytes: u32) -> Result<(Occupancy, f64), String> {
    let arch = sm.arch;
    if threads == 0 || threads > MAX_THREADS_PER_BLOCK {
        return Err(format!("{threads} threads per block: {arch} allows 1 to {MAX_THREADS_PER_BLOCK}"));
    }
    if registers > MAX_REGS_PER_THREAD {
        return Err(format!("{registers} registers per thread: {arch} allows at most {MAX_REGS_PER_THREAD}"));
    }
    if shared_bytes > sm.shared_per_block_optin {
        return Err(format!(
            "{shared_bytes} B shared memory per block: {arch} allows at most {}",
            sm.shared_per_block_optin
        ));
    }
    let warps = threads.div_ceil(WARP);
    let by_warps = sm.max_warps / warps;
    let regs_per_warp = (registers * WARP).div_ceil(REG_ALLOC_UNIT) * REG_ALLOC_UNIT;
    let by_regs = if regs_per_warp == 0 {
        u32::MAX
    } else if regs_per_warp * warps.div_ceil(SUB_PARTITIONS) * SUB_PARTITIONS > REGS_PER_SM {
        return Err(format!("{registers} registers × {threads} threads exceed the SM's {REGS_PER_SM} registers"));
    } else {
        SUB_PARTITIONS * (REGS_PER_SM / SUB_PARTITIONS / regs_per_warp) / warps
    };
    let smem = (shared_bytes + sm.shared_reserved_per_block).div_ceil(sm.shared_alloc_unit) * sm.shared_alloc_unit;
    let by_smem = sm.shared_per_sm / smem.max(1);
    let (blocks, limiter) = [
        (by_warps, Limiter::Warps),
        (by_regs, Limiter::Registers),
        (by_smem, Limiter::SharedMemory),
        (sm.max_blocks, Limiter::Blocks),
    ]
    .into_iter()
    .fold((u32::MAX, Limiter::Warps), |best, (n, l)| if n < best.0 { (n, l) } else { best });
    let o = Occupancy { blocks_per_sm: blocks, warps_per_sm: blocks * warps, limiter };
    Ok((o, f64::from(o.warps_per_sm) / f64::from(sm.max_warps)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn occ(t: u32, r: u32, s: u32) -> (u32, u32, Limiter) {
        let o = sm90_occupancy(t, r, s).unwrap();
        (o.blocks_per_sm, o.warps_per_sm, o.limiter)
    }

    // Expected values worked by hand from the formula in the module comment.
    #[test]
    fn matches_hand_worked_cases() {
        // 256 threads, 32 regs: 8 blocks of 8 warps fill the SM's 64 warps.
        assert_eq!(occ(256, 32, 0), (8, 64, Limiter::Warps));
        // 40 regs → 1280 per warp → 12 warps per sub-partition → 48 warps → 6 blocks of 8.
        assert_eq!(occ(256, 40, 0), (6, 48, Limiter::Registers));
        // 128 regs → 4096 per warp → 4 per sub-partition → 16 warps → 2 blocks of 8.
        assert_eq!(occ(256, 128, 0), (2, 16, Limiter::Registers));
        // 64 threads, 16 regs: 32 blocks of 2 warps → 64 warps, warps and blocks tie → warps.
        assert_eq!(occ(64, 16, 0), (32, 64, Limiter::Warps));
        // 32 threads: 32 blocks of 1 warp → the block limit, half the warps.
        assert_eq!(occ(32, 16, 0), (32, 32, Limiter::Blocks));
        // 64 KiB of shared memory: (65536 + 1024) → 66560 B per block → 3 blocks in 228 KiB.
        assert_eq!(occ(128, 32, 65536), (3, 12, Limiter::SharedMemory));
        // 227 KiB, the largest block: one per SM.
        assert_eq!(occ(128, 32, 227 * 1024), (1, 4, Limiter::SharedMemory));
        // 256 B static: 1280 B per block, 182 fit; warps bound first.
        assert_eq!(occ(256, 28, 256), (8, 64, Limiter::Warps));
    }

    #[test]
    fn other_cards_use_their_own_limits() {
        let card = |a: &str| SM_LIMITS.iter().find(|l| l.arch == a).unwrap();
        // The 128-row TF32 tiles (110592 B): 2 per SM on sm_80 (163 KiB), none on sm_86 (99 KiB).
        assert_eq!(occupancy(card("sm_80"), 256, 124, 110_592).unwrap().0.blocks_per_sm, 1);
        assert!(occupancy(card("sm_86"), 256, 124, 110_592).is_err());
        // The 64-row ones (82944 B) fit one per SM there.
        assert_eq!(occupancy(card("sm_86"), 256, 80, 82_944).unwrap().0.blocks_per_sm, 1);
        // 256 threads, 32 registers: the T4's 32 warps hold 4 blocks, a full SM.
        let (o, f) = occupancy(card("sm_75"), 256, 32, 0).unwrap();
        assert_eq!((o.blocks_per_sm, f), (4, 1.0));
        assert_eq!(occupancy(&SM90, 256, 32, 0).unwrap().0, sm90_occupancy(256, 32, 0).unwrap());
    }

    #[test]
    fn refuses_blocks_that_cannot_launch() {
        assert!(sm90_occupancy(1024, 255, 0).is_err()); // 255·32 → 8192 per warp × 32 warps > 65536
        assert!(sm90_occupancy(256, 256, 0).is_err());
        assert!(sm90_occupancy(256, 32, 227 * 1024 + 1).is_err());
        assert!(sm90_occupancy(0, 32, 0).is_err());
        assert!(sm90_occupancy(1025, 32, 0).is_err());
        assert_eq!(occ(1024, 64, 0), (1, 32, Limiter::Registers));
    }
}
