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

/// Set to `off`, the AVX-512 kernels are not used even where the CPU has them: the portable
/// paths that a CPU without AVX-512 runs, on any machine (tests/conv_algos.rs checks them so).
pub const SIMD_VAR: &str = "MOODGRAD_CPU_SIMD";

/// Whether `tile` and `direct_tile` have a SIMD kernel for `T` on this CPU: the convolution
/// selection only picks the Winograd and direct paths where they do.
pub fn has_simd<T: Float>() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVX512: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let avx512 = *AVX512.get_or_init(|| {
            std::is_x86_feature_detected!("avx512f") && std::env::var(SIMD_VAR).map_or(true, |v| v != "off")
        });
        TypeId::of::<T>() == TypeId::of::<f32>() && avx512
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

/// dst[c][l] = src[l·m + c] for c < p ≤ m, l < len, reading only src[..(len − 1)·m + p], for
/// f32 with AVX-512 (permutes instead of the scalar gathers the compiler emits). Returns false
/// (doing nothing) where that kernel does not apply.
///
/// # Safety
/// `src` must be valid for those reads and each `dst[c]`, c < p, for `len` writes.
#[inline(always)]
pub unsafe fn deinterleave_simd<T: Float>(src: *const T, m: usize, p: usize, len: usize, dst: [*mut T; 4]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if has_simd::<T>() {
        // SAFETY: T is f32 (checked), the CPU has AVX-512F, the caller upholds the rest.
        unsafe { avx512::deinterleave(src.cast(), m, p, len, dst.map(|d| d.cast())) };
        return true;
    }
    let _ = (src, m, p, len, dst);
    false
}

/// dst[c][l] = src[l·m + c] for c < m + 2, l < len (the m + 2 columns of each overlapping
/// Winograd patch of one input row), reading only src[..len·m + 2], for f32 with AVX-512; false
/// (doing nothing) where that kernel does not apply.
///
/// # Safety
/// `src` must be valid for those reads and each `dst[c]`, c < m + 2, for `len` writes.
#[inline(always)]
pub unsafe fn patch_columns_simd<T: Float>(src: *const T, m: usize, len: usize, dst: [*mut T; 6]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if has_simd::<T>() {
        // SAFETY: T is f32 (checked), the CPU has AVX-512F, the caller upholds the rest.
        unsafe { avx512::patch_columns(src.cast(), m, len, dst.map(|d| d.cast())) };
        return true;
    }
    let _ = (src, m, len, dst);
    false
}

/// dst[l·m + c] = v[c][l] for c < m, l < len, for f32 with AVX-512; false where it does not apply.
///
/// # Safety
/// Each `v[c]`, c < m, must be valid for `len` reads and `dst` for len·m writes.
#[inline(always)]
pub unsafe fn interleave_simd<T: Float>(v: [*const T; 4], m: usize, len: usize, dst: *mut T) -> bool {
    #[cfg(target_arch = "x86_64")]
    if has_simd::<T>() {
        // SAFETY: T is f32 (checked), the CPU has AVX-512F, the caller upholds the rest.
        unsafe { avx512::interleave(v.map(|p| p.cast()), m, len, dst.cast()) };
        return true;
    }
    let _ = (v, m, len, dst);
    false
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    const _: () = assert!(NR == 32, "the kernels hold a row in two 16-lane registers");

    /// Mask of the first n (≤ 16) lanes.
    #[inline(always)]
    fn mask(n: usize) -> __mmask16 {
        if n >= 16 { 0xffff } else { ((1u32 << n) - 1) as __mmask16 }
    }

    #[inline(always)]
    unsafe fn idx(v: [i32; 16]) -> __m512i {
        // SAFETY: an unaligned load of 16 i32.
        unsafe { _mm512_loadu_si512(v.as_ptr().cast()) }
    }

    /// (a0 b0 a1 b1 …) of two 16-lane vectors, as (lanes 0..16, lanes 16..32).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn zip(a: __m512, b: __m512) -> (__m512, __m512) {
        // SAFETY: loads of local arrays.
        let (lo, hi) = unsafe {
            (
                idx([0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23]),
                idx([8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31]),
            )
        };
        (_mm512_permutex2var_ps(a, lo, b), _mm512_permutex2var_ps(a, hi, b))
    }

    /// The even and odd elements of the 32 in (a, b).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn unzip(a: __m512, b: __m512) -> (__m512, __m512) {
        // SAFETY: loads of local arrays.
        let (ev, od) = unsafe {
            (
                idx([0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30]),
                idx([1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31]),
            )
        };
        (_mm512_permutex2var_ps(a, ev, b), _mm512_permutex2var_ps(a, od, b))
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn deinterleave(src: *const f32, m: usize, p: usize, len: usize, dst: [*mut f32; 4]) {
        if len == 0 {
            return;
        }
        let avail = (len - 1) * m + p;
        // SAFETY (whole body): masked loads touch only src[..avail], masked stores dst[c][..len].
        unsafe {
            for l0 in (0..len).step_by(16) {
                let e0 = l0 * m;
                let ld = |k: usize| {
                    let at = e0 + 16 * k;
                    _mm512_maskz_loadu_ps(mask(avail.saturating_sub(at)), src.add(at.min(avail)))
                };
                let mk = mask(len - l0);
                let mut ph = [_mm512_setzero_ps(); 4];
                if m == 2 {
                    (ph[0], ph[1]) = unzip(ld(0), ld(1));
                } else {
                    let (e_lo, o_lo) = unzip(ld(0), ld(1));
                    let (e_hi, o_hi) = unzip(ld(2), ld(3));
                    (ph[0], ph[2]) = unzip(e_lo, e_hi);
                    (ph[1], ph[3]) = unzip(o_lo, o_hi);
                }
                for c in 0..p {
                    _mm512_mask_storeu_ps(dst[c].add(l0), mk, ph[c]);
                }
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn patch_columns(src: *const f32, m: usize, len: usize, dst: [*mut f32; 6]) {
        let avail = len * m + 2;
        // SAFETY (whole body): loads touch only src[..avail] (masked where a chunk runs past
        // it), stores dst[c][..len] (masked in the last chunk).
        unsafe {
            for l0 in (0..len).step_by(16) {
                let e0 = l0 * m;
                let full = e0 + 16 * m <= avail;
                let ld = |k: usize| {
                    let at = e0 + 16 * k;
                    if full {
                        _mm512_loadu_ps(src.add(at))
                    } else {
                        _mm512_maskz_loadu_ps(mask(avail.saturating_sub(at)), src.add(at.min(avail)))
                    }
                };
                // Columns 0..m of lanes l0..l0 + 16.
                let mut ph = [_mm512_setzero_ps(); 6];
                if m == 2 {
                    (ph[0], ph[1]) = unzip(ld(0), ld(1));
                } else {
                    let (e_lo, o_lo) = unzip(ld(0), ld(1));
                    let (e_hi, o_hi) = unzip(ld(2), ld(3));
                    (ph[0], ph[2]) = unzip(e_lo, e_hi);
                    (ph[1], ph[3]) = unzip(o_lo, o_hi);
                }
                // Columns m, m + 1 are columns 0, 1 of the next lane: shift in lane l0 + 16's.
                let next = e0 + 16 * m;
                let at = |i: usize| {
                    if next + i < avail { _mm512_set1_ps(*src.add(next + i)) } else { _mm512_setzero_ps() }
                };
                let (n0, n1) = (at(0), at(1));
                let shift = |n: __m512, p: __m512| {
                    _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(n), _mm512_castps_si512(p), 1))
                };
                ph[m] = shift(n0, ph[0]);
                ph[m + 1] = shift(n1, ph[1]);
                if l0 + 16 <= len {
                    for c in 0..m + 2 {
                        _mm512_storeu_ps(dst[c].add(l0), ph[c]);
                    }
                } else {
                    let mk = mask(len - l0);
                    for c in 0..m + 2 {
                        _mm512_mask_storeu_ps(dst[c].add(l0), mk, ph[c]);
                    }
                }
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn interleave(v: [*const f32; 4], m: usize, len: usize, dst: *mut f32) {
        // SAFETY (whole body): masked loads touch only v[c][..len], masked stores dst[..len·m].
        unsafe {
            for l0 in (0..len).step_by(16) {
                let mk = mask(len - l0);
                let ld = |c: usize| _mm512_maskz_loadu_ps(mk, v[c].add(l0));
                let total = (len - l0) * m;
                let st = |k: usize, x: __m512| {
                    _mm512_mask_storeu_ps(dst.add(l0 * m + 16 * k), mask(total.saturating_sub(16 * k)), x)
                };
                if m == 2 {
                    let (a, b) = zip(ld(0), ld(1));
                    st(0, a);
                    st(1, b);
                } else {
                    let (p_lo, p_hi) = zip(ld(0), ld(2));
                    let (q_lo, q_hi) = zip(ld(1), ld(3));
                    let (a, b) = zip(p_lo, q_lo);
                    let (c, d) = zip(p_hi, q_hi);
                    st(0, a);
                    st(1, b);
                    st(2, c);
                    st(3, d);
                }
            }
        }
    }

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
