//! Strided matrix views and a GEMM entry point that uses every rayon thread.

use crate::float::Float;

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
}

/// C[m, n] (row-major, leading dimension ldc) = alpha·A·B + beta·C, on every rayon thread.
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
    // Below ~1 MFLOP the thread hand-off costs more than it saves.
    let threads = if m * n * k.max(1) < (1 << 18) { 1 } else { rayon::current_num_threads() };
    // SAFETY: upheld by the caller.
    unsafe { T::gemm(m, k, n, alpha, a.ptr, a.rs, a.cs, b.ptr, b.rs, b.cs, beta, c, ldc as isize, 1, threads) }
}
