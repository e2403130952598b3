//! Convolution on the CPU as im2col + GEMM, one sample at a time, each GEMM parallel.

use super::gemm::{Mat, par_gemm};
use crate::backend::ConvGeom;
use crate::float::Float;
use rayon::prelude::*;

/// Unfolds one [C, H, W] sample into col[(c, ki, kj), (oh, ow)].
fn im2col<T: Float>(x: &[T], g: &ConvGeom, col: &mut [T]) {
    let (oh, ow) = (g.out_h(), g.out_w());
    col.par_chunks_mut(oh * ow).enumerate().for_each(|(row, out)| {
        let kj = row % g.kw;
        let ki = (row / g.kw) % g.kh;
        let c = row / (g.kw * g.kh);
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for y in 0..oh {
            let iy = (y * g.stride + ki) as isize - g.pad as isize;
            let dst = &mut out[y * ow..(y + 1) * ow];
            if iy < 0 || iy >= g.h as isize {
                dst.fill(T::ZERO);
                continue;
            }
            let src = &plane[iy as usize * g.w..(iy as usize + 1) * g.w];
            for (xo, d) in dst.iter_mut().enumerate() {
                let ix = (xo * g.stride + kj) as isize - g.pad as isize;
                *d = if ix < 0 || ix >= g.w as isize { T::ZERO } else { src[ix as usize] };
            }
        }
    });
}

/// Folds col back into one [C, H, W] sample, summing overlaps (the adjoint of im2col).
fn col2im<T: Float>(col: &[T], g: &ConvGeom, dx: &mut [T]) {
    let (oh, ow) = (g.out_h(), g.out_w());
    let kk = g.kh * g.kw;
    dx.par_chunks_mut(g.h * g.w).enumerate().for_each(|(c, plane)| {
        plane.fill(T::ZERO);
        for r in 0..kk {
            let (ki, kj) = (r / g.kw, r % g.kw);
            let rowv = &col[(c * kk + r) * oh * ow..(c * kk + r + 1) * oh * ow];
            for y in 0..oh {
                let iy = (y * g.stride + ki) as isize - g.pad as isize;
                if iy < 0 || iy >= g.h as isize {
                    continue;
                }
                let dst = &mut plane[iy as usize * g.w..(iy as usize + 1) * g.w];
                for xo in 0..ow {
                    let ix = (xo * g.stride + kj) as isize - g.pad as isize;
                    if ix >= 0 && ix < g.w as isize {
                        dst[ix as usize] += rowv[y * ow + xo];
                    }
                }
            }
        }
    });
}

pub fn forward<T: Float>(x: &[T], w: &[T], b: Option<&[T]>, g: &ConvGeom) -> Vec<T> {
    let (ohw, k) = (g.out_h() * g.out_w(), g.c_in * g.kh * g.kw);
    let mut y = vec![T::ZERO; g.output_len()];
    let mut col = vec![T::ZERO; k * ohw];
    for n in 0..g.n {
        im2col(&x[n * g.c_in * g.h * g.w..(n + 1) * g.c_in * g.h * g.w], g, &mut col);
        let yn = &mut y[n * g.c_out * ohw..(n + 1) * g.c_out * ohw];
        if let Some(b) = b {
            yn.par_chunks_mut(ohw).zip(b.par_iter()).for_each(|(row, &bv)| row.fill(bv));
        }
        let beta = if b.is_some() { T::ONE } else { T::ZERO };
        // SAFETY: W is [c_out, k], col is [k, ohw], yn is [c_out, ohw], all row-major.
        unsafe {
            par_gemm(
                g.c_out,
                k,
                ohw,
                T::ONE,
                Mat::row_major(w.as_ptr(), k),
                Mat::row_major(col.as_ptr(), ohw),
                beta,
                yn.as_mut_ptr(),
                ohw,
            )
        };
    }
    y
}

pub fn backward_input<T: Float>(dy: &[T], w: &[T], g: &ConvGeom) -> Vec<T> {
    let (ohw, k) = (g.out_h() * g.out_w(), g.c_in * g.kh * g.kw);
    let chw = g.c_in * g.h * g.w;
    let mut dx = vec![T::ZERO; g.input_len()];
    let mut dcol = vec![T::ZERO; k * ohw];
    for n in 0..g.n {
        let dyn_ = &dy[n * g.c_out * ohw..(n + 1) * g.c_out * ohw];
        // SAFETY: Wᵀ is [k, c_out] (W stored [c_out, k]); dy_n is [c_out, ohw].
        unsafe {
            par_gemm(
                k,
                g.c_out,
                ohw,
                T::ONE,
                Mat::transposed(w.as_ptr(), k),
                Mat::row_major(dyn_.as_ptr(), ohw),
                T::ZERO,
                dcol.as_mut_ptr(),
                ohw,
            )
        };
        col2im(&dcol, g, &mut dx[n * chw..(n + 1) * chw]);
    }
    dx
}

pub fn backward_weight<T: Float>(dy: &[T], x: &[T], g: &ConvGeom) -> Vec<T> {
    let (ohw, k) = (g.out_h() * g.out_w(), g.c_in * g.kh * g.kw);
    let chw = g.c_in * g.h * g.w;
    let mut dw = vec![T::ZERO; g.weight_len()];
    let mut col = vec![T::ZERO; k * ohw];
    for n in 0..g.n {
        im2col(&x[n * chw..(n + 1) * chw], g, &mut col);
        let dyn_ = &dy[n * g.c_out * ohw..(n + 1) * g.c_out * ohw];
        // SAFETY: dy_n is [c_out, ohw]; colᵀ is [ohw, k] (col stored [k, ohw]); dW is [c_out, k].
        unsafe {
            par_gemm(
                g.c_out,
                ohw,
                k,
                T::ONE,
                Mat::row_major(dyn_.as_ptr(), ohw),
                Mat::transposed(col.as_ptr(), ohw),
                T::ONE,
                dw.as_mut_ptr(),
                k,
            )
        };
    }
    dw
}

/// Per-channel sums over n and hw, accumulated in f64.
pub fn channel_sums<T: Float>(dy: &[T], n: usize, c: usize, hw: usize) -> Vec<T> {
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let s: f64 = (0..n)
                .map(|i| dy[(i * c + ch) * hw..(i * c + ch + 1) * hw].iter().map(|v| v.to_f64()).sum::<f64>())
                .sum();
            T::from_f64(s)
        })
        .collect()
}
