//! Winograd F(m×m, 3×3) convolution (stride 1, padding ≤ 2): the forward pass (which is also the
//! input gradient, run on the adjoint geometry) and the weight gradient.
//!
//! Forward: the weights are transformed once (U, A² matrices of c_out × c_in, packed for the
//! micro-kernel). Each worker then takes blocks of panels (NR tiles each) in turn: it transforms
//! the block's input (V, A² × c_in lane vectors per panel), multiplies U·V per transform element
//! ξ for a chunk of output channels at a time, and transforms those products back into the
//! output. So a worker's workspace is one block, whatever the batch or map size.
//!
//! Weight gradient: blocks of panels run one after the other; within a block the transforms of
//! x (transposed so input channels are the vector lanes) and of dy run in parallel, then each
//! ξ's product Σ_tiles M̄ · Vᵀ is accumulated into its own slice of one shared Mw (A² × c_out ×
//! c_in), again in parallel; Mw is transformed back into dw at the end.
//!
//! Both tile sizes are implemented and tested; `conv::choose` uses F(2×2) only: F(4×4) rounds
//! 2-13× worse than a plain f32 convolution at the production shapes (tests/conv_numerics.rs),
//! over the 2× rule.

use super::conv::{arena, workers, zeroed};
use super::gemm::SyncPtr;
use super::microkernel::{self, MR, NR};
use super::winograd_transform::{self as tf, Grid, Lanes, Segment, TileSize};
use crate::backend::ConvGeom;
use crate::float::Float;

/// Geometries the Winograd path computes.
pub fn supports(g: &ConvGeom) -> bool {
    let nonempty = g.n > 0 && g.c_in > 0 && g.c_out > 0 && g.h + 2 * g.pad >= 3 && g.w + 2 * g.pad >= 3;
    g.kh == 3 && g.kw == 3 && g.stride == 1 && g.pad <= 2 && nonempty
}

/// Target bytes of a forward block's transformed input (V), per worker: V[ξ] is re-read once per
/// group of 8 output channels, so it should stay in the 2 MB L2...
const FWD_V_BYTES: usize = 1 << 20;
/// ...but a block of fewer than 4 panels re-reads all of U (from L3) too often per tile, so at
/// many input channels blocks take 4 panels as long as V stays within 4 MiB. Measured on the
/// production shapes (docs/perf-conv.md): 1 MiB and 4 MiB within noise except at 512 channels.
const FWD_MIN_PANELS: usize = 4;
const FWD_V_MAX_BYTES: usize = 4 << 20;
/// Output channels whose products (M) are held at once per worker.
const FWD_CO_CHUNK: usize = 64;
/// Target bytes of a weight-gradient block's transformed x and dy (shared by all workers).
const WG_BLOCK_BYTES: usize = 8 << 20;
/// Output channels per dy-transform job of the weight gradient.
const WG_CO_JOB: usize = 32;

/// The forward pass's buffer sizes (elements), shared by `forward` and `workspace_elems`.
#[derive(Clone, Copy, Debug)]
struct FwdPlan {
    aa: usize,
    co_pad: usize,
    panels: usize,
    /// Panels per block.
    ppb: usize,
    co_chunk: usize,
    u_len: usize,
    v_len: usize,
    m_len: usize,
    per_thread: usize,
}

impl FwdPlan {
    fn new<S: TileSize>(g: &ConvGeom, threads: usize, elem: usize) -> Self {
        let aa = S::A * S::A;
        let co_pad = g.c_out.next_multiple_of(MR);
        let panels = Grid::new(g, S::M).panels();
        let per_panel = aa * g.c_in * NR * elem;
        let fit = FWD_V_BYTES / per_panel;
        let ppb = if FWD_MIN_PANELS * per_panel <= FWD_V_MAX_BYTES { fit.max(FWD_MIN_PANELS) } else { fit };
        let ppb = ppb.clamp(1, panels.div_ceil(threads).max(1));
        let co_chunk = co_pad.min(FWD_CO_CHUNK);
        let (v_len, m_len) = (aa * ppb * g.c_in * NR, ppb * co_chunk * aa * NR);
        let per_thread = v_len + m_len + tf::scratch_len(S::A);
        FwdPlan { aa, co_pad, panels, ppb, co_chunk, u_len: aa * co_pad * g.c_in, v_len, m_len, per_thread }
    }
    fn elems(&self, threads: usize) -> usize {
        self.u_len + threads * self.per_thread
    }
}

/// Workspace elements of `forward::<S>` on `g` with the current rayon pool.
pub fn forward_workspace<S: TileSize>(g: &ConvGeom, elem: usize) -> usize {
    let threads = rayon::current_num_threads();
    FwdPlan::new::<S>(g, threads, elem).elems(threads)
}

pub fn forward<S: TileSize, T: Float>(x: &[T], w: &[T], b: Option<&[T]>, g: &ConvGeom) -> Vec<T> {
    forward_impl::<S, T>(x, w, false, b, g)
}

/// The input gradient: the forward pass of the adjoint convolution (dy with the flipped,
/// transposed kernel, padding 2 - pad), reading `w` flipped in the weight transform.
pub fn backward_input<S: TileSize, T: Float>(dy: &[T], w: &[T], g: &ConvGeom) -> Vec<T> {
    forward_impl::<S, T>(dy, w, true, None, &super::im2col::adjoint(g))
}

/// `flip`: `w` holds the weights of the convolution whose adjoint `g` is.
fn forward_impl<S: TileSize, T: Float>(x: &[T], w: &[T], flip: bool, b: Option<&[T]>, g: &ConvGeom) -> Vec<T> {
    let threads = rayon::current_num_threads();
    let plan = FwdPlan::new::<S>(g, threads, size_of::<T>());
    let grid = Grid::new(g, S::M);
    let (aa, co_pad, c_in) = (plan.aa, plan.co_pad, g.c_in);
    let ncg = co_pad / MR;
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut ws = arena::<T>(plan.elems(threads));
    let (u, per) = ws.split_at_mut(plan.u_len);

    // U[ξ][co / MR][ci][co % MR], one job per MR output channels (disjoint writes).
    let up = &SyncPtr(u.as_mut_ptr());
    workers(per, plan.per_thread, ncg, |cg, buf| {
        let scratch = &mut buf[plan.v_len + plan.m_len..];
        for co in cg * MR..(cg * MR + MR).min(g.c_out) {
            for ci0 in (0..c_in).step_by(NR) {
                tf::weight::<S, T, _>(w, g, co, ci0, flip, scratch, |xi, v| {
                    // SAFETY: up addresses all of U; job cg alone writes channels cg·MR ..+MR.
                    unsafe { tf::pack_u(up.0, xi, co, ci0, c_in, co_pad, v) }
                });
            }
        }
    });
    let u = &*u;

    let mut y = zeroed::<T>(g.output_len());
    let yp = SyncPtr(y.as_mut_ptr());
    let nblocks = plan.panels.div_ceil(plan.ppb);
    workers(per, plan.per_thread, nblocks, |blk, buf| {
        let (v, rest) = buf.split_at_mut(plan.v_len);
        let (mc, scratch) = rest.split_at_mut(plan.m_len);
        let mut segs = [Segment::default(); NR];
        let (p0, p1) = (blk * plan.ppb, ((blk + 1) * plan.ppb).min(plan.panels));
        for (pl, p) in (p0..p1).enumerate() {
            let ns = grid.segments(p, &mut segs);
            for ci in 0..c_in {
                tf::input::<S, T, _>(x, g, ci, &segs[..ns], scratch, |xi, lanes| {
                    v[((xi * plan.ppb + pl) * c_in + ci) * NR..][..NR].copy_from_slice(lanes)
                });
            }
        }
        for co0 in (0..co_pad).step_by(plan.co_chunk) {
            let cc = plan.co_chunk.min(co_pad - co0);
            for xi in 0..aa {
                for cg in (0..cc).step_by(MR) {
                    // U[ξ][cg] stays in L1 across the block's panels, V[ξ] in L2 across groups.
                    let a = &u[(xi * ncg + (co0 + cg) / MR) * c_in * MR..];
                    for pl in 0..p1 - p0 {
                        let bv = &v[(xi * plan.ppb + pl) * c_in * NR..];
                        let c = &mut mc[((pl * plan.co_chunk + cg) * aa + xi) * NR..];
                        debug_assert!(a.len() >= c_in * MR && bv.len() >= c_in * NR);
                        debug_assert!(c.len() > (MR - 1) * aa * NR + NR - 1);
                        // SAFETY: the slices cover the kernel's reads (c_in steps of MR and NR)
                        // and writes (MR rows of NR at stride aa·NR); mc is disjoint from u, v.
                        unsafe {
                            microkernel::tile(c_in, a.as_ptr(), MR, 1, bv.as_ptr(), c.as_mut_ptr(), aa * NR, false)
                        };
                    }
                }
            }
            for (pl, p) in (p0..p1).enumerate() {
                let ns = grid.segments(p, &mut segs);
                for col in 0..cc.min(g.c_out.saturating_sub(co0)) {
                    let co = co0 + col;
                    let mt: &[Lanes<T>] = lanes(&mc[(pl * plan.co_chunk + col) * aa * NR..][..aa * NR]);
                    let bias = b.map_or(T::ZERO, |b| b[co]);
                    tf::output::<S, T, _>(mt, bias, g, &segs[..ns], scratch, |n, oy, ox| {
                        // SAFETY: in bounds (n < g.n, oy < oh, ox < ow); each output belongs to
                        // exactly one tile, and each tile to one block.
                        unsafe { yp.add(((n * g.c_out + co) * oh + oy) * ow + ox) }
                    });
                }
            }
        }
    });
    y
}

fn lanes<T>(s: &[T]) -> &[Lanes<T>] {
    // SAFETY: [T; NR] has T's alignment and no padding.
    let (head, body, tail) = unsafe { s.align_to::<Lanes<T>>() };
    debug_assert!(head.is_empty() && tail.is_empty());
    body
}

/// The weight gradient's buffer sizes (elements), shared by `backward_weight` and
/// `workspace_elems`.
#[derive(Clone, Copy, Debug)]
struct WgPlan {
    aa: usize,
    co_pad: usize,
    ncip: usize,
    ci_pad: usize,
    panels: usize,
    /// Panels per block, and the tile stride of the block buffers (ppb · NR).
    ppb: usize,
    tst: usize,
    mw_len: usize,
    vt_len: usize,
    w_len: usize,
    per_thread: usize,
}

impl WgPlan {
    fn new<S: TileSize>(g: &ConvGeom, elem: usize) -> Self {
        let aa = S::A * S::A;
        let co_pad = g.c_out.next_multiple_of(MR);
        let ncip = g.c_in.div_ceil(NR);
        let ci_pad = ncip * NR;
        let panels = Grid::new(g, S::M).panels();
        let per_panel = aa * NR * (ci_pad + co_pad) * elem;
        let ppb = (WG_BLOCK_BYTES / per_panel).clamp(1, panels);
        let tst = ppb * NR;
        WgPlan {
            aa,
            co_pad,
            ncip,
            ci_pad,
            panels,
            ppb,
            tst,
            mw_len: aa * co_pad * ci_pad,
            vt_len: aa * ncip * tst * NR,
            w_len: aa * co_pad * tst,
            per_thread: aa * NR * NR + tf::scratch_len(S::A),
        }
    }
    fn elems(&self, threads: usize) -> usize {
        self.mw_len + self.vt_len + self.w_len + threads * self.per_thread
    }
}

/// Workspace elements of `backward_weight::<S>` on `g` with the current rayon pool.
pub fn backward_weight_workspace<S: TileSize>(g: &ConvGeom, elem: usize) -> usize {
    WgPlan::new::<S>(g, elem).elems(rayon::current_num_threads())
}

pub fn backward_weight<S: TileSize, T: Float>(dy: &[T], x: &[T], g: &ConvGeom) -> Vec<T> {
    let threads = rayon::current_num_threads();
    let plan = WgPlan::new::<S>(g, size_of::<T>());
    let grid = Grid::new(g, S::M);
    let (aa, co_pad, ncip, tst, c_in) = (plan.aa, plan.co_pad, plan.ncip, plan.tst, g.c_in);
    let mut ws = arena::<T>(plan.elems(threads));
    let (mw, rest) = ws.split_at_mut(plan.mw_len);
    let (vt, rest) = rest.split_at_mut(plan.vt_len);
    let (wt, per) = rest.split_at_mut(plan.w_len);
    let (mwp, vtp, wtp) = (SyncPtr(mw.as_mut_ptr()), SyncPtr(vt.as_mut_ptr()), SyncPtr(wt.as_mut_ptr()));
    let nco_jobs = g.c_out.div_ceil(WG_CO_JOB);
    for blk in 0..plan.panels.div_ceil(plan.ppb) {
        let (p0, p1) = (blk * plan.ppb, ((blk + 1) * plan.ppb).min(plan.panels));
        let kc = (p1 * NR).min(grid.tiles) - p0 * NR;
        // Phase 1: VT[ξ][ci / NR][t][ci % NR] (jobs < ncip) and W[ξ][co][t] (the rest).
        workers(per, plan.per_thread, ncip + nco_jobs, |job, buf| {
            let (vloc, scratch) = buf.split_at_mut(aa * NR * NR);
            let mut segs = [Segment::default(); NR];
            if job < ncip {
                let cip = job;
                let nci = (c_in - cip * NR).min(NR);
                vloc.fill(T::ZERO);
                for (pl, p) in (p0..p1).enumerate() {
                    let ns = grid.segments(p, &mut segs);
                    for cl in 0..nci {
                        tf::input::<S, T, _>(x, g, cip * NR + cl, &segs[..ns], scratch, |xi, l| {
                            vloc[(xi * NR + cl) * NR..][..NR].copy_from_slice(l)
                        });
                    }
                    for xi in 0..aa {
                        // SAFETY: this job alone writes VT[ξ][cip][p0·NR + pl·NR ..][..NR·NR].
                        let dst = unsafe {
                            std::slice::from_raw_parts_mut(vtp.add(((xi * ncip + cip) * tst + pl * NR) * NR), NR * NR)
                        };
                        transpose(&vloc[xi * NR * NR..][..NR * NR], dst);
                    }
                }
            } else {
                let cj = job - ncip;
                for co in cj * WG_CO_JOB..((cj + 1) * WG_CO_JOB).min(g.c_out) {
                    for (pl, p) in (p0..p1).enumerate() {
                        let ns = grid.segments(p, &mut segs);
                        tf::grad_output::<S, T, _>(dy, g, co, &segs[..ns], scratch, |xi, l| {
                            // SAFETY: this job alone writes W[ξ][co][pl·NR ..][..NR].
                            unsafe { std::slice::from_raw_parts_mut(wtp.add((xi * co_pad + co) * tst + pl * NR), NR) }
                                .copy_from_slice(l)
                        });
                    }
                }
            }
        });
        // Phase 2: Mw[ξ] += W[ξ] · VT[ξ], one job per ξ.
        workers(per, plan.per_thread, aa, |xi, _| {
            for cg in 0..co_pad / MR {
                for cip in 0..ncip {
                    // SAFETY: W[ξ] rows cg·MR.. (kc ≤ tst steps, row stride tst) and VT[ξ][cip]
                    // (kc rows of NR) are in bounds and no longer written; Mw[ξ] is this job's.
                    unsafe {
                        microkernel::tile(
                            kc,
                            wtp.add((xi * co_pad + cg * MR) * tst),
                            1,
                            tst,
                            vtp.add((xi * ncip + cip) * tst * NR),
                            mwp.add((xi * co_pad + cg * MR) * plan.ci_pad + cip * NR),
                            plan.ci_pad,
                            true,
                        )
                    };
                }
            }
        });
    }
    // dw[co] = Gᵀ Mw[·][co] G, one job per output channel.
    let mut dw = vec![T::ZERO; g.weight_len()];
    let mw = &*mw;
    let dwp = SyncPtr(dw.as_mut_ptr());
    workers(per, plan.per_thread, g.c_out, |co, buf| {
        let scratch = &mut buf[aa * NR * NR..];
        // SAFETY: job co alone writes dw[co][..].
        let dw_co = unsafe { std::slice::from_raw_parts_mut(dwp.add(co * c_in * 9), c_in * 9) };
        for cip in 0..ncip {
            let at = |xi: usize| -> &Lanes<T> { &lanes(&mw[(xi * co_pad + co) * plan.ci_pad + cip * NR..][..NR])[0] };
            tf::weight_grad::<S, T, _>(at, g, cip * NR, scratch, dw_co);
        }
    });
    dw
}

/// dst[l][c] = src[c][l] for an NR × NR block.
fn transpose<T: Float>(src: &[T], dst: &mut [T]) {
    for (l, row) in dst.chunks_exact_mut(NR).enumerate() {
        for (c, d) in row.iter_mut().enumerate() {
            *d = src[c * NR + l];
        }
    }
}
