//! The register-blocked inner products under the Winograd and direct convolutions.
//!
//! A tile is MR rows × NR lanes of accumulators: MR scalars of the broadcast operand times one
//! NR-lane row of the vector operand per reduction step. f32 on a CPU with AVX-512 runs hand-written
//! intrinsics (16 accumulator registers, two vector loads and eight broadcasts per step); every
//! other case runs the same arithmetic as plain Rust (the f64 checks, CPUs without AVX-512).

use crate::float::Float;
use std::any::TypeId;

/// Lanes of the vector operand: two AVX-512 registers of f32.
pub const NR: usize = 32;
/// Rows of the broadcast operand.
pub const MR: usize = 8;

/// Whether `tile` and `direct_tile` have a SIMD kernel for `T` on this CPU: the convolution
/// selection only picks the Winograd and direct paths where they do.
pub fn has_simd<T: Float>() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        TypeId::of::<T>() == TypeId::of::<f32>() && std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// c[r·crs + l] = (c[r·crs + l] if `accumulate`) + Σ_{k < kc} a[r·ars + k·aks] · b[k·NR + l]
/// for r < MR, l < NR.
///
/// # Safety
/// Every address above must be valid (reads of a, b; reads and writes of c), and c must not
/// overlap a or b.
#[allow(clippy::too_many_arguments)]
#[inline]
pub unsafe fn tile<T: Float>(
    kc: usize,
    a: *const T,
    aks: usize,
    ars: usize,
    b: *const T,
    c: *mut T,
    crs: usize,
    accumulate: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if has_simd::<T>() {
        // SAFETY: T is f32 (checked above), the CPU has AVX-512F, and the caller upholds the rest.
        return unsafe { avx512::tile(kc, a.cast(), aks, ars, b.cast(), c.cast(), crs, accumulate) };
    }
    let mut acc = [[T::ZERO; NR]; MR];
    for k in 0..kc {
        // SAFETY: upheld by the caller.
        let bk = unsafe { std::slice::from_raw_parts(b.add(k * NR), NR) };
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: upheld by the caller.
            let av = unsafe { *a.add(r * ars + k * aks) };
            for (s, &bv) in row.iter_mut().zip(bk) {
                *s += av * bv;
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        // SAFETY: upheld by the caller.
        let out = unsafe { std::slice::from_raw_parts_mut(c.add(r * crs), NR) };
        for (o, &s) in out.iter_mut().zip(row) {
            *o = if accumulate { *o + s } else { s };
        }
    }
}

/// The direct 3×3 convolution's tile: for r < MR, l < NR,
/// c[r·crs + l] = init[r] + Σ_{ci < cin, i < 3, j < 3} a[((ci·3 + i)·3 + j)·MR + r] · s[(ci·3 + i)·sw + l + j],
/// where `s` holds three zero-padded input rows per input channel (row stride `sw`) and `a` the
/// packed weights of MR output channels. `init` null means zero.
///
/// # Safety
/// Every address above must be valid; c must not overlap a, s or init.
#[allow(clippy::too_many_arguments)]
#[inline]
pub unsafe fn direct_tile<T: Float>(
    cin: usize,
    a: *const T,
    s: *const T,
    sw: usize,
    init: *const T,
    c: *mut T,
    crs: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if has_simd::<T>() {
        // SAFETY: T is f32 (checked above), the CPU has AVX-512F, and the caller upholds the rest.
        return unsafe { avx512::direct_tile(cin, a.cast(), s.cast(), sw, init.cast(), c.cast(), crs) };
    }
    let mut acc = [[T::ZERO; NR]; MR];
    if !init.is_null() {
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: upheld by the caller.
            row.fill(unsafe { *init.add(r) });
        }
    }
    for ci in 0..cin {
        for i in 0..3 {
            for j in 0..3 {
                let k = (ci * 3 + i) * 3 + j;
                // SAFETY: upheld by the caller.
                let srow = unsafe { std::slice::from_raw_parts(s.add((ci * 3 + i) * sw + j), NR) };
                for (r, row) in acc.iter_mut().enumerate() {
                    // SAFETY: upheld by the caller.
                    let av = unsafe { *a.add(k * MR + r) };
                    for (o, &sv) in row.iter_mut().zip(srow) {
                        *o += av * sv;
                    }
                }
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        // SAFETY: upheld by the caller.
        unsafe { std::slice::from_raw_parts_mut(c.add(r * crs), NR) }.copy_from_slice(row);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    const _: () = assert!(NR == 32, "the kernels hold a row in two 16-lane registers");

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn tile(
        kc: usize,
        a: *const f32,
        aks: usize,
        ars: usize,
        b: *const f32,
        c: *mut f32,
        crs: usize,
        accumulate: bool,
    ) {
        let mut lo = [_mm512_setzero_ps(); MR];
        let mut hi = [_mm512_setzero_ps(); MR];
        let rows: [*const f32; MR] = std::array::from_fn(|r| a.wrapping_add(r * ars));
        // SAFETY (whole body): the caller guarantees every address touched is valid.
        unsafe {
            for k in 0..kc {
                let b0 = _mm512_loadu_ps(b.add(k * NR));
                let b1 = _mm512_loadu_ps(b.add(k * NR + 16));
                for r in 0..MR {
                    let av = _mm512_set1_ps(*rows[r].add(k * aks));
                    lo[r] = _mm512_fmadd_ps(av, b0, lo[r]);
                    hi[r] = _mm512_fmadd_ps(av, b1, hi[r]);
                }
            }
            for r in 0..MR {
                let p = c.add(r * crs);
                if accumulate {
                    lo[r] = _mm512_add_ps(lo[r], _mm512_loadu_ps(p));
                    hi[r] = _mm512_add_ps(hi[r], _mm512_loadu_ps(p.add(16)));
                }
                _mm512_storeu_ps(p, lo[r]);
                _mm512_storeu_ps(p.add(16), hi[r]);
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn direct_tile(
        cin: usize,
        a: *const f32,
        s: *const f32,
        sw: usize,
        init: *const f32,
        c: *mut f32,
        crs: usize,
    ) {
        // SAFETY (whole body): the caller guarantees every address touched is valid.
        unsafe {
            let mut lo = [_mm512_setzero_ps(); MR];
            let mut hi = [_mm512_setzero_ps(); MR];
            if !init.is_null() {
                for r in 0..MR {
                    lo[r] = _mm512_set1_ps(*init.add(r));
                    hi[r] = lo[r];
                }
            }
            let mut ak = a;
            for ci in 0..cin {
                for i in 0..3 {
                    let row = s.add((ci * 3 + i) * sw);
                    for j in 0..3 {
                        let b0 = _mm512_loadu_ps(row.add(j));
                        let b1 = _mm512_loadu_ps(row.add(j + 16));
                        for r in 0..MR {
                            let av = _mm512_set1_ps(*ak.add(r));
                            lo[r] = _mm512_fmadd_ps(av, b0, lo[r]);
                            hi[r] = _mm512_fmadd_ps(av, b1, hi[r]);
                        }
                        ak = ak.add(MR);
                    }
                }
            }
            for r in 0..MR {
                let p = c.add(r * crs);
                _mm512_storeu_ps(p, lo[r]);
                _mm512_storeu_ps(p.add(16), hi[r]);
            }
        }
    }
}
