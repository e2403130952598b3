//! Parallel GEMM on top of matrixmultiply: the output is cut into column (or row) panels, one
//! rayon task each, so a single large product uses every core.

use crate::float::Float;
use rayon::prelude::*;

/// A raw pointer that may cross threads; every user writes disjoint ranges through it.
#[derive(Clone, Copy)]
pub struct SyncPtr<T>(pub *mut T);
// SAFETY: users only write disjoint elements through the pointer from different threads.
unsafe impl<T> Send for SyncPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SyncPtr<T> {}

impl<T> SyncPtr<T> {
    /// # Safety
    /// `i` must be in bounds, and no other thread may touch element `i` meanwhile.
    #[inline]
    pub unsafe fn add(self, i: usize) -> *mut T {
        // SAFETY: upheld by the caller.
        unsafe { self.0.add(i) }
    }
}

/// Strided matrix view: element (r, c) is at ptr[r*rs + c*cs].
pub struct Mat<T> {
    pub ptr: *const T,
    pub rs: isize,
    pub cs: isize,
}

impl<T> Clone for Mat<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Mat<T> {}

impl<T> Mat<T> {
    pub fn row_major(ptr: *const T, cols: usize) -> Self {
        Mat { ptr, rs: cols as isize, cs: 1 }
    }
    pub fn transposed(ptr: *const T, cols_of_stored: usize) -> Self {
        Mat { ptr, rs: 1, cs: cols_of_stored as isize }
    }
    fn offset(self, r: usize, c: usize) -> *const T {
        // SAFETY: callers only offset within the matrix they described.
        unsafe { self.ptr.offset(r as isize * self.rs + c as isize * self.cs) }
    }
}

/// C[m, n] (row-major, leading dimension ldc) = alpha·A·B + beta·C, parallel over panels.
///
/// # Safety
/// A, B and C must describe valid matrices of the stated sizes; C must not alias A or B.
#[allow(clippy::too_many_arguments)]
pub unsafe fn par_gemm<T: Float>(
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    a: Mat<T>,
    b: Mat<T>,
    beta: T,
    c: *mut T,
    ldc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    let threads = rayon::current_num_threads();
    let work = m * n * k.max(1);
    // Below ~1 MFLOP the rayon hand-off costs more than it saves.
    let tasks = if work < (1 << 18) { 1 } else { threads * 2 };
    let c = SyncPtr(c);
    let (a, b) = (&SendMat(a), &SendMat(b));
    if n >= m {
        let chunk = n.div_ceil(tasks).max(16);
        (0..n.div_ceil(chunk)).into_par_iter().for_each(|t| {
            let (a, b) = (a.get(), b.get());
            let j0 = t * chunk;
            let nn = chunk.min(n - j0);
            // SAFETY: each task writes the disjoint column panel [j0, j0+nn) of C.
            unsafe {
                T::gemm(
                    m, k, nn, alpha, a.ptr, a.rs, a.cs, b.offset(0, j0), b.rs, b.cs, beta,
                    c.add(j0), ldc as isize, 1,
                )
            }
        });
    } else {
        let chunk = m.div_ceil(tasks).max(16);
        (0..m.div_ceil(chunk)).into_par_iter().for_each(|t| {
            let (a, b) = (a.get(), b.get());
            let i0 = t * chunk;
            let mm = chunk.min(m - i0);
            // SAFETY: each task writes the disjoint row panel [i0, i0+mm) of C.
            unsafe {
                T::gemm(
                    mm, k, n, alpha, a.offset(i0, 0), a.rs, a.cs, b.ptr, b.rs, b.cs, beta,
                    c.add(i0 * ldc), ldc as isize, 1,
                )
            }
        });
    }
}

struct SendMat<T>(Mat<T>);

impl<T> SendMat<T> {
    // A method, so closures capture the whole (Sync) wrapper rather than its raw-pointer field.
    fn get(&self) -> Mat<T> {
        self.0
    }
}
// SAFETY: the matrices are only read while par_gemm runs.
unsafe impl<T> Send for SendMat<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SendMat<T> {}
