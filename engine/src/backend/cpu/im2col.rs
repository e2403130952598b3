//! Convolution on the CPU as tiled im2col + GEMM: the general path (any kernel, stride, padding).
//!
//! The output is cut into tiles of whole output rows, small enough that a tile's unfolded input
//! (K × tile columns) stays in L2; tiles run in parallel, each with its own buffer and a
//! single-threaded GEMM. The backward pass w.r.t. the input is, for stride 1, a forward
//! convolution of dy with the flipped, transposed kernel, so it reuses the same tiled path.

use super::conv::arena;
use super::gemm::SyncPtr;
use crate::backend::ConvGeom;
use crate::float::Float;
use rayon::prelude::*;

/// Elements of one tile's unfolded input: 1 Mi × 4 B = 4 MiB for f32. Measured on the VGG shapes
/// (examples/convprof.rs): 1-8 Mi elements are within noise of each other, and all beat unfolding
/// a whole sample (95 MB for block 2) by 1.3-1.5×.
const TILE_ELEMS: usize = 1024 * 1024;
/// Fewest output columns per tile, so each GEMM amortises packing the weight matrix.
const MIN_TILE_COLS: usize = 2048;

/// (sample, first output row, end output row) tiles covering the whole output.
fn tiles(g: &ConvGeom) -> Vec<(usize, usize, usize)> {
    let (oh, ow, k) = (g.out_h(), g.out_w(), g.c_in * g.kh * g.kw);
    let max_rows = (TILE_ELEMS / (k * ow)).max(MIN_TILE_COLS.div_ceil(ow)).clamp(1, oh);
    // Equal tiles: a short last tile would pay for packing the weights at poor efficiency.
    let rows = oh.div_ceil(oh.div_ceil(max_rows));
    (0..g.n).flat_map(|n| (0..oh).step_by(rows).map(move |y0| (n, y0, (y0 + rows).min(oh)))).collect()
}

/// Unfolds output rows [y0, y1) of one [C, H, W] sample into col[(c, ki, kj), (y, x)].
fn im2col_rows<T: Float>(x: &[T], g: &ConvGeom, y0: usize, y1: usize, col: &mut [T]) {
    let ow = g.out_w();
    let cols = (y1 - y0) * ow;
    for (row, out) in col.chunks_mut(cols).enumerate().take(g.c_in * g.kh * g.kw) {
        let kj = row % g.kw;
        let ki = (row / g.kw) % g.kh;
        let c = row / (g.kw * g.kh);
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for y in y0..y1 {
            let iy = (y * g.stride + ki) as isize - g.pad as isize;
            let dst = &mut out[(y - y0) * ow..(y - y0 + 1) * ow];
            if iy < 0 || iy >= g.h as isize {
                dst.fill(T::ZERO);
                continue;
            }
            let src = &plane[iy as usize * g.w..(iy as usize + 1) * g.w];
            if g.stride == 1 {
                // Contiguous run: x = ix - kj + pad is valid for ix in [0, w).
                let off = kj as isize - g.pad as isize;
                let lo = (-off).clamp(0, ow as isize) as usize;
                let hi = ((g.w as isize - off).clamp(0, ow as isize)) as usize;
                dst[..lo].fill(T::ZERO);
                if hi > lo {
                    dst[lo..hi].copy_from_slice(&src[(lo as isize + off) as usize..(hi as isize + off) as usize]);
                }
                dst[hi.max(lo)..].fill(T::ZERO);
            } else {
                for (xo, d) in dst.iter_mut().enumerate() {
                    let ix = (xo * g.stride + kj) as isize - g.pad as isize;
                    *d = if ix < 0 || ix >= g.w as isize { T::ZERO } else { src[ix as usize] };
                }
            }
        }
    }
}

pub fn forward<T: Float>(x: &[T], w: &[T], b: Option<&[T]>, g: &ConvGeom) -> Vec<T> {
    let (ow, ohw, k) = (g.out_w(), g.out_h() * g.out_w(), g.c_in * g.kh * g.kw);
    let chw = g.c_in * g.h * g.w;
    let mut y = vec![T::ZERO; g.output_len()];
    let yp = SyncPtr(y.as_mut_ptr());
    let ts = tiles(g);
    let max_cols = ts.iter().map(|t| (t.2 - t.1) * ow).max().unwrap_or(0);
    let threads = rayon::current_num_threads();
    let mut col = arena::<T>(k * max_cols);
    ts.iter().for_each(|&(n, y0, y1)| {
        let col = &mut col;
        let cols = (y1 - y0) * ow;
        im2col_rows(&x[n * chw..(n + 1) * chw], g, y0, y1, col);
        // SAFETY: this tile owns output columns [y0·ow, y1·ow) of every channel of sample n.
        let out = unsafe { yp.add(n * g.c_out * ohw + y0 * ow) };
        if let Some(b) = b {
            for (co, &bv) in b.iter().enumerate() {
                // SAFETY: as above, row co of this tile.
                unsafe { std::slice::from_raw_parts_mut(out.add(co * ohw), cols).fill(bv) };
            }
        }
        let beta = if b.is_some() { T::ONE } else { T::ZERO };
        // SAFETY: W is [c_out, k] row-major, col is [k, cols], out is [c_out, cols] with ld ohw.
        unsafe {
            T::gemm(
                g.c_out,
                k,
                cols,
                T::ONE,
                w.as_ptr(),
                k as isize,
                1,
                col.as_ptr(),
                cols as isize,
                1,
                beta,
                out,
                ohw as isize,
                1,
                threads,
            )
        };
    });
    y
}

/// W[co][ci][i][j] -> W'[ci][co][kh-1-i][kw-1-j]: the kernel of the adjoint convolution.
pub(super) fn flip_transpose<T: Float>(w: &[T], g: &ConvGeom) -> Vec<T> {
    let kk = g.kh * g.kw;
    let mut out = arena::<T>(w.len());
    for co in 0..g.c_out {
        for ci in 0..g.c_in {
            for i in 0..g.kh {
                for j in 0..g.kw {
                    out[((ci * g.c_out + co) * g.kh + (g.kh - 1 - i)) * g.kw + (g.kw - 1 - j)] =
                        w[((co * g.c_in + ci) * g.kh + i) * g.kw + j];
                }
            }
        }
    }
    debug_assert_eq!(out.len(), g.c_in * g.c_out * kk);
    out
}

/// Whether the input gradient runs as the tiled adjoint convolution (else col2im).
pub(super) fn uses_adjoint(g: &ConvGeom) -> bool {
    // With few input channels the adjoint GEMM has only c_in rows (a GEMV for c_in = 1) and
    // col2im is faster; from 16 up the tiled adjoint convolution wins.
    g.stride == 1 && g.kh == g.kw && g.pad < g.kh && g.c_in >= 16
}

/// The adjoint of a stride-1 convolution: dx = conv(dy, flip(W)ᵀ) with padding k-1-pad.
pub(super) fn adjoint(g: &ConvGeom) -> ConvGeom {
    ConvGeom {
        n: g.n,
        c_in: g.c_out,
        h: g.out_h(),
        w: g.out_w(),
        c_out: g.c_in,
        kh: g.kh,
        kw: g.kw,
        stride: 1,
        pad: g.kh - 1 - g.pad,
    }
}

pub fn backward_input<T: Float>(dy: &[T], w: &[T], g: &ConvGeom) -> Vec<T> {
    if uses_adjoint(g) {
        return forward(dy, &flip_transpose(w, g), None, &adjoint(g));
    }
    backward_input_col2im(dy, w, g)
}

/// The general path (any stride): dcol = Wᵀ·dy, then fold the columns back (col2im).
fn backward_input_col2im<T: Float>(dy: &[T], w: &[T], g: &ConvGeom) -> Vec<T> {
    let (oh, ow, k) = (g.out_h(), g.out_w(), g.c_in * g.kh * g.kw);
    let (ohw, chw, kk) = (oh * ow, g.c_in * g.h * g.w, g.kh * g.kw);
    let mut dx = vec![T::ZERO; g.input_len()];
    let mut dcol = arena::<T>(k * ohw);
    for n in 0..g.n {
        let dyn_ = &dy[n * g.c_out * ohw..(n + 1) * g.c_out * ohw];
        // SAFETY: Wᵀ is [k, c_out] (W stored [c_out, k]); dy_n is [c_out, ohw]; dcol is [k, ohw].
        unsafe {
            T::gemm(
                k,
                g.c_out,
                ohw,
                T::ONE,
                w.as_ptr(),
                1,
                k as isize,
                dyn_.as_ptr(),
                ohw as isize,
                1,
                T::ZERO,
                dcol.as_mut_ptr(),
                ohw as isize,
                1,
                rayon::current_num_threads(),
            )
        };
        dx[n * chw..(n + 1) * chw].par_chunks_mut(g.h * g.w).enumerate().for_each(|(c, plane)| {
            for r in 0..kk {
                let (ki, kj) = (r / g.kw, r % g.kw);
                let rowv = &dcol[(c * kk + r) * ohw..(c * kk + r + 1) * ohw];
                for y in 0..oh {
                    let iy = (y * g.stride + ki) as isize - g.pad as isize;
                    if iy < 0 || iy >= g.h as isize {
                        continue;
                    }
                    for xo in 0..ow {
                        let ix = (xo * g.stride + kj) as isize - g.pad as isize;
                        if ix >= 0 && ix < g.w as isize {
                            plane[iy as usize * g.w + ix as usize] += rowv[y * ow + xo];
                        }
                    }
                }
            }
        });
    }
    dx
}

/// dW = Σ over tiles of dy[:, tile]·col(tile)ᵀ, one accumulator per rayon worker, then summed.
pub fn backward_weight<T: Float>(dy: &[T], x: &[T], g: &ConvGeom) -> Vec<T> {
    let (ow, ohw, k) = (g.out_w(), g.out_h() * g.out_w(), g.c_in * g.kh * g.kw);
    let chw = g.c_in * g.h * g.w;
    let ts = tiles(g);
    let max_cols = ts.iter().map(|t| (t.2 - t.1) * ow).max().unwrap_or(0);
    let threads = rayon::current_num_threads();
    let init = (vec![T::ZERO; g.weight_len()], arena::<T>(k * max_cols));
    ts.iter()
        .fold(init, |(mut dw, mut col), &(n, y0, y1)| {
            let cols = (y1 - y0) * ow;
            im2col_rows(&x[n * chw..(n + 1) * chw], g, y0, y1, &mut col);
            let a = dy[n * g.c_out * ohw + y0 * ow..].as_ptr();
            // SAFETY: dy tile is [c_out, cols] with ld ohw; colᵀ is [cols, k]; dw is [c_out, k].
            unsafe {
                T::gemm(
                    g.c_out,
                    cols,
                    k,
                    T::ONE,
                    a,
                    ohw as isize,
                    1,
                    col.as_ptr(),
                    1,
                    cols as isize,
                    T::ONE,
                    dw.as_mut_ptr(),
                    k as isize,
                    1,
                    threads,
                )
            };
            (dw, col)
        })
        .0
}

/// Elements of workspace each pass allocates (the gemm crate's own packing buffers aside).
pub(super) fn workspace_elems(pass: super::conv::Pass, g: &ConvGeom) -> usize {
    use super::conv::Pass;
    let col = |g: &ConvGeom| {
        let max_cols = tiles(g).iter().map(|t| (t.2 - t.1) * g.out_w()).max().unwrap_or(0);
        g.c_in * g.kh * g.kw * max_cols
    };
    match pass {
        Pass::Forward | Pass::BackwardWeight => col(g),
        Pass::BackwardInput if uses_adjoint(g) => g.weight_len() + col(&adjoint(g)),
        Pass::BackwardInput => g.c_in * g.kh * g.kw * g.out_h() * g.out_w(),
    }
}
