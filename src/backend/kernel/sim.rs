//! The host SIMT device: host memory, kernels/*.cu compiled as C++ and launched through
//! `backend::sim::ffi` with the same grids and arguments the CUDA device gets.

use super::device::{Arg, RawDevice, with_params};
use crate::backend::cpu::gemm::{Mat, par_gemm};
use crate::error::{Error, Result};
use std::alloc::Layout;

/// cudaMalloc's alignment guarantee, which vectorised kernels may rely on.
const ALIGN: usize = 256;

pub struct SimDevice;

impl RawDevice for SimDevice {
    fn name(&self) -> String {
        format!("sim (CUDA kernels on the host SIMT layer, {} threads)", rayon::current_num_threads())
    }

    fn alloc(&self, bytes: usize) -> Result<u64> {
        let layout = Layout::from_size_align(bytes, ALIGN).map_err(|e| Error::Device(format!("sim alloc: {e}")))?;
        // SAFETY: the layout has a non-zero size (DevBuf never allocates 0 bytes).
        let p = unsafe { std::alloc::alloc(layout) };
        if p.is_null() {
            return Err(super::device::oom("sim", bytes, "host allocation failed"));
        }
        // Fresh device memory is garbage on a GPU: fill with 0xFF (NaN as f32) so a kernel that
        // reads memory it never wrote shows up in the tests instead of reading zeros.
        // SAFETY: p points at `bytes` writable bytes.
        unsafe { std::ptr::write_bytes(p, 0xFF, bytes) };
        Ok(p as u64)
    }

    fn free(&self, ptr: u64, bytes: usize) {
        if let Ok(layout) = Layout::from_size_align(bytes, ALIGN) {
            // SAFETY: ptr came from `alloc` with this layout and is freed once (Alloc's Drop).
            unsafe { std::alloc::dealloc(ptr as *mut u8, layout) };
        }
    }

    fn htod(&self, dst: u64, src: &[u8]) -> Result<()> {
        // SAFETY: dst is a live allocation of at least src.len() bytes (checked by callers).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut u8, src.len()) };
        Ok(())
    }

    fn dtoh(&self, src: u64, dst: &mut [u8]) -> Result<()> {
        // SAFETY: src is a live allocation of at least dst.len() bytes.
        unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    fn dtod(&self, dst: u64, src: u64, bytes: usize) -> Result<()> {
        // SAFETY: distinct live allocations of at least `bytes` bytes.
        unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dst as *mut u8, bytes) };
        Ok(())
    }

    unsafe fn launch(
        &self,
        kernel: &'static str,
        grid: [u32; 3],
        block: [u32; 3],
        shared: u32,
        args: &[Arg],
    ) -> Result<()> {
        // SAFETY: forwarded from RawDevice::launch, whose caller guarantees the argument list.
        with_params(args, |params| unsafe { crate::backend::sim::ffi::launch(kernel, grid, block, shared, params) })
    }

    fn gemm(&self, a: u64, b: u64, c: u64, m: usize, k: usize, n: usize, ta: bool, tb: bool) -> Result<()> {
        let (a, b) = (a as *const f32, b as *const f32);
        let am = if ta { Mat::transposed(a, m) } else { Mat::row_major(a, k) };
        let bm = if tb { Mat::transposed(b, k) } else { Mat::row_major(b, n) };
        // SAFETY: KernelBackend::matmul checked the operand lengths; c holds m·n elements.
        unsafe { par_gemm(m, k, n, 1.0f32, am, bm, 0.0, c as *mut f32, n) };
        Ok(())
    }
}
