//! A raw kernel-launching device and the buffers it owns.
//!
//! Two devices implement `RawDevice`: CUDA (cudarc, real GPU memory) and the host SIMT simulator
//! (host memory, kernels compiled as C++). `KernelBackend` (mod.rs) is written once against this
//! trait, so the simulator runs the CUDA backend's own launch code: same kernels, same grids,
//! same argument lists.

use super::allocator::Pool;
use crate::error::{Error, Result};
use std::sync::Arc;

/// One kernel argument, passed by value as cuLaunchKernel expects.
#[derive(Clone, Copy, Debug)]
pub enum Arg {
    /// A device pointer (`float*`, `unsigned*`, …); 0 is NULL.
    Ptr(u64),
    I32(i32),
    F32(f32),
    U64(u64),
}

impl Arg {
    /// The argument's bytes in an 8-byte little-endian slot (4-byte types in the low half), the
    /// layout a kernel parameter pointer must point at.
    pub fn slot(&self) -> u64 {
        match *self {
            Arg::Ptr(p) | Arg::U64(p) => p,
            Arg::I32(v) => v as u32 as u64,
            Arg::F32(v) => v.to_bits() as u64,
        }
    }
}

/// Calls `f` with a cuLaunchKernel-style parameter array: entry i points at argument i's slot.
pub fn with_params<R>(args: &[Arg], f: impl FnOnce(&mut [*mut std::ffi::c_void]) -> R) -> R {
    let mut slots: Vec<u64> = args.iter().map(Arg::slot).collect();
    let mut params: Vec<*mut std::ffi::c_void> =
        slots.iter_mut().map(|s| s as *mut u64 as *mut std::ffi::c_void).collect();
    f(&mut params)
}

/// Memory, launches and dense GEMM on one device. Addresses are u64 (CUdeviceptr on CUDA, host
/// addresses on the simulator).
pub trait RawDevice: Send + Sync + 'static {
    fn name(&self) -> String;
    /// What the card allows (compute capability, SMs, shared memory): kernels and tiles are
    /// chosen by it.
    fn profile(&self) -> super::profile::DeviceProfile;
    /// A fresh allocation of `bytes` (> 0) from the driver; `Error::OutOfMemory` when the device
    /// has no room (the pool then returns its cached blocks and asks once more).
    fn alloc(&self, bytes: usize) -> Result<u64>;
    /// Frees an allocation from `alloc` (errors are ignored: called from Drop). The pool calls it
    /// only when no queued work can still use the block.
    fn free(&self, ptr: u64, bytes: usize);
    /// Called when the pool hands a cached block out again (the simulator poisons it, so a kernel
    /// that reads memory it never wrote still fails the tests).
    fn recycled(&self, _ptr: u64, _bytes: usize) {}
    /// Queues a copy of `src` into device memory; `src` may be reused as soon as this returns
    /// (CUDA copies it into pinned staging first).
    fn htod(&self, dst: u64, src: &[u8]) -> Result<()>;
    /// Copies device memory to `dst`, after all queued work: it synchronises, so an earlier
    /// kernel's fault surfaces here.
    fn dtoh(&self, src: u64, dst: &mut [u8]) -> Result<()>;
    /// Queues a device-to-device copy.
    fn dtod(&self, dst: u64, src: u64, bytes: usize) -> Result<()>;
    /// Launches `kernel` over `grid` × `block` threads.
    ///
    /// # Safety
    /// `args` must match the kernel's parameter list (docs/kernel-abi.md) and every pointer must
    /// be a live allocation of this device, large enough for what the kernel touches.
    unsafe fn launch(
        &self,
        kernel: &'static str,
        grid: [u32; 3],
        block: [u32; 3],
        shared: u32,
        args: &[Arg],
    ) -> Result<()>;
    /// Lets `kernel` launch with up to `bytes` of dynamic shared memory (above the default 48 KiB;
    /// cuFuncSetAttribute's MAX_DYNAMIC_SHARED_SIZE_BYTES).
    fn set_max_dynamic_shared(&self, kernel: &'static str, bytes: u32) -> Result<()>;
    /// Row-major f32 C[m, n] = op(A)·op(B); A is [m, k] (or [k, m] if `ta`), B is [k, n] (or [n, k]).
    #[allow(clippy::too_many_arguments)]
    fn gemm(&self, a: u64, b: u64, c: u64, m: usize, k: usize, n: usize, ta: bool, tb: bool) -> Result<()>;
    /// `g.batch` products C[i] = alpha·op(A[i])·op(B[i]), row-major, operand i at element offset
    /// i·m·k, i·k·n and i·m·n (cuBLAS strided-batched on CUDA).
    fn gemm_batched(&self, a: u64, b: u64, c: u64, g: &crate::backend::BmmGeom) -> Result<()>;
    /// Waits for every queued launch and copy (a no-op where launches are synchronous).
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
}

/// A pool block; returned to its pool when the last `DevBuf` sharing it is dropped.
struct Alloc {
    ptr: u64,
    /// The block's size (the request rounded up by the pool); 0 for an empty buffer.
    bytes: usize,
    pool: Arc<Pool>,
}

impl Drop for Alloc {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.pool.release(self.ptr, self.bytes);
        }
    }
}

/// A device buffer of 4-byte elements (f32 data or u32 indices). Cloning shares the allocation;
/// writers call `make_unique` first, which copies a shared allocation (copy on write), so a clone
/// never sees another's in-place update.
#[derive(Clone)]
pub struct DevBuf {
    alloc: Arc<Alloc>,
    len: usize,
}

impl DevBuf {
    /// `len` elements from `pool` (contents undefined: a reused block holds old data).
    pub fn new(pool: &Arc<Pool>, len: usize) -> Result<Self> {
        let bytes = len
            .checked_mul(4)
            .ok_or_else(|| Error::Device(format!("a buffer of {len} elements is larger than any device")))?;
        let (ptr, block) = if bytes == 0 { (0, 0) } else { pool.alloc(bytes)? };
        Ok(DevBuf { alloc: Arc::new(Alloc { ptr, bytes: block, pool: pool.clone() }), len })
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn ptr(&self) -> u64 {
        self.alloc.ptr
    }
    /// Gives this handle sole ownership of its memory, copying it if it is shared.
    pub fn make_unique(&mut self) -> Result<()> {
        if Arc::strong_count(&self.alloc) > 1 {
            let pool = self.alloc.pool.clone();
            let fresh = DevBuf::new(&pool, self.len)?;
            if self.len > 0 {
                pool.device().dtod(fresh.ptr(), self.ptr(), self.len * 4)?;
            }
            *self = fresh;
        }
        Ok(())
    }
}
