//! Dense matrix products and the row/column bookkeeping around linear layers.

use super::gemm::{Mat, par_gemm};
use crate::backend::{ConcatGeom, MatmulGeom};
use crate::float::Float;
use rayon::prelude::*;

pub fn matmul<T: Float>(a: &[T], b: &[T], g: &MatmulGeom) -> Vec<T> {
    let MatmulGeom { m, k, n, ta, tb } = *g;
    let mut c = vec![T::ZERO; m * n];
    let am = if ta { Mat::transposed(a.as_ptr(), m) } else { Mat::row_major(a.as_ptr(), k) };
    let bm = if tb { Mat::transposed(b.as_ptr(), k) } else { Mat::row_major(b.as_ptr(), n) };
    // SAFETY: the callers' buffers hold m·k, k·n and m·n elements (checked in the backend).
    unsafe { par_gemm(m, k, n, T::ONE, am, bm, T::ZERO, c.as_mut_ptr(), n) };
    c
}

pub fn add_row_bias<T: Float>(y: &mut [T], bias: &[T]) {
    y.par_chunks_mut(bias.len()).for_each(|row| {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    });
}

pub fn sum_rows<T: Float>(x: &[T], rows: usize, cols: usize) -> Vec<T> {
    (0..cols).into_par_iter().map(|j| T::from_f64((0..rows).map(|i| x[i * cols + j].to_f64()).sum())).collect()
}

pub fn concat_cols<T: Float>(a: &[T], b: &[T], g: &ConcatGeom) -> Vec<T> {
    let ConcatGeom { rows, left: ca, right: cb } = *g;
    let mut out = Vec::with_capacity(rows * (ca + cb));
    for r in 0..rows {
        out.extend_from_slice(&a[r * ca..(r + 1) * ca]);
        out.extend_from_slice(&b[r * cb..(r + 1) * cb]);
    }
    out
}

pub fn split_cols<T: Float>(x: &[T], g: &ConcatGeom) -> (Vec<T>, Vec<T>) {
    let ConcatGeom { rows, left: ca, right: cb } = *g;
    let w = ca + cb;
    let mut a = Vec::with_capacity(rows * ca);
    let mut b = Vec::with_capacity(rows * cb);
    for r in 0..rows {
        a.extend_from_slice(&x[r * w..r * w + ca]);
        b.extend_from_slice(&x[r * w + ca..(r + 1) * w]);
    }
    (a, b)
}
