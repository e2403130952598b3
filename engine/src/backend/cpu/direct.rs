//! Direct 3×3 stride-1 convolution on packed weights: no unfold and no transform. Each output
//! row reads three zero-padded input rows per input channel (a "strip") in place.
//!
//! Meant for few input channels, above all the C_in = 1 first layer: there the im2col GEMM has a
//! reduction of only 9 and Winograd has no channel reduction to amortise its transforms, so the
//! pass is bound by writing (forward) or reading (weight gradient) the 64-channel map.

use super::conv::{arena, workers, zeroed};
use super::gemm::SyncPtr;
use super::microkernel::{self, MR, NR};
use super::winograd_transform::padded_copy;
use crate::backend::ConvGeom;
use crate::float::Float;

/// Geometries the direct path computes (the weight gradient also needs `weight_grad_fits`).
pub fn supports(g: &ConvGeom) -> bool {
    let nonempty = g.n > 0 && g.c_in > 0 && g.c_out > 0 && g.h + 2 * g.pad >= 3 && g.w + 2 * g.pad >= 3;
    g.kh == 3 && g.kw == 3 && g.stride == 1 && g.pad <= 2 && nonempty
}

/// Lanes of the weight gradient's partial sums.
const WL: usize = 16;
/// Most bytes of one worker's weight-gradient partial sums (c_out · c_in · 9 · WL elements).
const WG_ACC_BYTES: usize = 1 << 20;

/// Whether the direct weight gradient's per-worker partial sums stay small (≤ 1 MiB).
pub fn weight_grad_fits(g: &ConvGeom, elem: usize) -> bool {
    g.c_out * g.c_in * 9 * WL * elem <= WG_ACC_BYTES
}

/// Fills `strip` ([c_in][3][sw]) with input rows oy - pad .. oy - pad + 3 of sample n, column q
/// of a row holding input column q - pad (zero outside the map).
fn fill_strip<T: Float>(x: &[T], g: &ConvGeom, n: usize, oy: usize, sw: usize, strip: &mut [T]) {
    for ci in 0..g.c_in {
        let plane = &x[(n * g.c_in + ci) * g.h * g.w..][..g.h * g.w];
        for i in 0..3 {
            let dst = &mut strip[(ci * 3 + i) * sw..][..sw];
            let iy = (oy + i) as isize - g.pad as isize;
            if iy < 0 || iy >= g.h as isize {
                dst.fill(T::ZERO);
            } else {
                padded_copy(&plane[iy as usize * g.w..][..g.w], -(g.pad as isize), dst);
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct FwdPlan {
    co_pad: usize,
    sw: usize,
    wp_len: usize,
    strip_len: usize,
    per_thread: usize,
}

impl FwdPlan {
    fn new(g: &ConvGeom) -> Self {
        let co_pad = g.c_out.next_multiple_of(MR);
        // The kernel reads columns ox0 .. ox0 + NR + 2 of each strip row, ox0 < ow in steps of NR.
        let sw = g.out_w().next_multiple_of(NR) + 2;
        let strip_len = g.c_in * 3 * sw;
        FwdPlan { co_pad, sw, wp_len: co_pad * g.c_in * 9 + co_pad, strip_len, per_thread: strip_len + MR * NR }
    }
    fn elems(&self, threads: usize) -> usize {
        self.wp_len + threads * self.per_thread
    }
}

/// Workspace elements of `forward` on `g` with the current rayon pool.
pub fn forward_workspace(g: &ConvGeom) -> usize {
    FwdPlan::new(g).elems(rayon::current_num_threads())
}

pub fn forward<T: Float>(x: &[T], w: &[T], b: Option<&[T]>, g: &ConvGeom) -> Vec<T> {
    let threads = rayon::current_num_threads();
    let plan = FwdPlan::new(g);
    let (c_in, c_out, co_pad, sw) = (g.c_in, g.c_out, plan.co_pad, plan.sw);
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut ws = arena::<T>(plan.elems(threads));
    let (packed, per) = ws.split_at_mut(plan.wp_len);
    // wp[co / MR][ci][k][co % MR], then the bias padded to co_pad.
    let (wp, bp) = packed.split_at_mut(co_pad * c_in * 9);
    for co in 0..c_out {
        for ci in 0..c_in {
            for k in 0..9 {
                wp[((co / MR * c_in + ci) * 9 + k) * MR + co % MR] = w[(co * c_in + ci) * 9 + k];
            }
        }
    }
    if let Some(b) = b {
        bp[..c_out].copy_from_slice(b);
    }
    let (wp, bp) = (&*wp, &*bp);
    let mut y = zeroed::<T>(g.output_len());
    let yp = SyncPtr(y.as_mut_ptr());
    workers(per, plan.per_thread, g.n * oh, |row, buf| {
        let (n, oy) = (row / oh, row % oh);
        let (strip, tail) = buf.split_at_mut(plan.strip_len);
        fill_strip(x, g, n, oy, sw, strip);
        for cg in 0..co_pad / MR {
            let rows = MR.min(c_out - cg * MR);
            let a = wp[cg * c_in * 9 * MR..].as_ptr();
            let init = if b.is_some() { bp[cg * MR..].as_ptr() } else { std::ptr::null() };
            for ox0 in (0..ow).step_by(NR) {
                let s = strip[ox0..].as_ptr();
                let cols = NR.min(ow - ox0);
                // SAFETY: row (n, oy) is this job's alone; channels cg·MR + r < c_out.
                let out = unsafe { yp.add(((n * c_out + cg * MR) * oh + oy) * ow + ox0) };
                if rows == MR && cols == NR {
                    // SAFETY: the strip has sw ≥ ox0 + NR + 2 columns per row, wp/bp hold MR
                    // channels from cg·MR, and `out` has MR rows of NR at stride oh·ow.
                    unsafe { microkernel::direct_tile(c_in, a, s, sw, init, out, oh * ow) };
                } else {
                    // SAFETY: as above, into the MR × NR tail buffer.
                    unsafe { microkernel::direct_tile(c_in, a, s, sw, init, tail.as_mut_ptr(), NR) };
                    for r in 0..rows {
                        // SAFETY: `out` row r has `cols` outputs of this job's row.
                        unsafe { std::slice::from_raw_parts_mut(out.add(r * oh * ow), cols) }
                            .copy_from_slice(&tail[r * NR..][..cols]);
                    }
                }
            }
        }
    });
    y
}

#[derive(Clone, Copy, Debug)]
struct WgPlan {
    ow16: usize,
    sw: usize,
    strip_len: usize,
    per_thread: usize,
}

impl WgPlan {
    fn new(g: &ConvGeom) -> Self {
        let ow16 = g.out_w().next_multiple_of(WL);
        let sw = ow16 + 2;
        let strip_len = g.c_in * 3 * sw;
        let acc_len = g.c_out * g.c_in * 9 * WL;
        WgPlan { ow16, sw, strip_len, per_thread: strip_len + ow16 + acc_len }
    }
}

/// Workspace elements of `backward_weight` on `g` with the current rayon pool.
pub fn backward_weight_workspace(g: &ConvGeom) -> usize {
    rayon::current_num_threads() * WgPlan::new(g).per_thread
}

/// acc[ci][k][l] += Σ_ox dy[ox + l] · strip[ci][k / 3][ox + l + k % 3] over one output row.
#[inline(always)]
fn weight_grad_row<T: Float>(c_in: usize, sw: usize, ow16: usize, dyrow: &[T], strip: &[T], acc: &mut [T]) {
    for ci in 0..c_in {
        let mut s = [[T::ZERO; WL]; 9];
        for ox in (0..ow16).step_by(WL) {
            let d: &[T; WL] = dyrow[ox..ox + WL].try_into().unwrap();
            for (k, sk) in s.iter_mut().enumerate() {
                let xr = &strip[(ci * 3 + k / 3) * sw + ox + k % 3..][..WL];
                for l in 0..WL {
                    sk[l] += d[l] * xr[l];
                }
            }
        }
        for (k, sk) in s.iter().enumerate() {
            for (a, &v) in acc[(ci * 9 + k) * WL..][..WL].iter_mut().zip(sk) {
                *a += v;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn weight_grad_row_avx512<T: Float>(
    c_in: usize,
    sw: usize,
    ow16: usize,
    dyrow: &[T],
    strip: &[T],
    acc: &mut [T],
) {
    weight_grad_row(c_in, sw, ow16, dyrow, strip, acc)
}

/// dw = Σ over output rows of dy ⊗ strip, with per-worker partial sums in WL lanes.
pub fn backward_weight<T: Float>(dy: &[T], x: &[T], g: &ConvGeom) -> Vec<T> {
    let threads = rayon::current_num_threads();
    let plan = WgPlan::new(g);
    let (oh, ow, c_in) = (g.out_h(), g.out_w(), g.c_in);
    let mut ws = arena::<T>(threads * plan.per_thread);
    let simd = microkernel::has_simd::<T>();
    workers(&mut ws, plan.per_thread, g.n * oh, |row, buf| {
        let (n, oy) = (row / oh, row % oh);
        let (strip, rest) = buf.split_at_mut(plan.strip_len);
        let (dyrow, acc) = rest.split_at_mut(plan.ow16);
        fill_strip(x, g, n, oy, plan.sw, strip);
        for co in 0..g.c_out {
            dyrow[..ow].copy_from_slice(&dy[((n * g.c_out + co) * oh + oy) * ow..][..ow]);
            let acc = &mut acc[co * c_in * 9 * WL..][..c_in * 9 * WL];
            #[cfg(target_arch = "x86_64")]
            if simd {
                // SAFETY: has_simd checked that the CPU has AVX-512F.
                unsafe { weight_grad_row_avx512(c_in, plan.sw, plan.ow16, dyrow, strip, acc) };
                continue;
            }
            let _ = simd;
            weight_grad_row(c_in, plan.sw, plan.ow16, dyrow, strip, acc);
        }
    });
    let mut dw = vec![T::ZERO; g.weight_len()];
    for part in ws.chunks_exact(plan.per_thread) {
        let acc = &part[plan.strip_len + plan.ow16..];
        for (d, lanes) in dw.iter_mut().zip(acc.chunks_exact(WL)) {
            *d += lanes.iter().copied().sum::<T>();
        }
    }
    dw
}
