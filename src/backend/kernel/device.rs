//! A raw kernel-launching device and the buffers it owns.
//!
//! Two devices implement `RawDevice`: CUDA (cudarc, real GPU memory) and the host SIMT simulator
//! (host memory, kernels compiled as C++). `KernelBackend` (mod.rs) is written once against this
//! trait, so the simulator runs the CUDA backend's own launch code: same kernels, same grids,
//! same argument lists.

use crate::backend::memory::MemCounter;
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
    fn alloc(&self, bytes: usize) -> Result<u64>;
    /// Frees an allocation from `alloc` (errors are ignored: called from Drop).
    fn free(&self, ptr: u64, bytes: usize);
    fn htod(&self, dst: u64, src: &[u8]) -> Result<()>;
    fn dtoh(&self, src: u64, dst: &mut [u8]) -> Result<()>;
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
    /// Row-major f32 C[m, n] = op(A)·op(B); A is [m, k] (or [k, m] if `ta`), B is [k, n] (or [n, k]).
    #[allow(clippy::too_many_arguments)]
    fn gemm(&self, a: u64, b: u64, c: u64, m: usize, k: usize, n: usize, ta: bool, tb: bool) -> Result<()>;
    /// Waits for every queued launch and copy (a no-op where launches are synchronous).
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
}

/// An allocation; freed (and released from the ledger) when the last `DevBuf` sharing it drops.
struct Alloc {
    ptr: u64,
    bytes: usize,
    dev: Arc<dyn RawDevice>,
    ledger: Arc<MemCounter>,
}

impl Drop for Alloc {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.dev.free(self.ptr, self.bytes);
            self.ledger.free(self.bytes);
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
    pub fn new(dev: &Arc<dyn RawDevice>, ledger: &Arc<MemCounter>, len: usize) -> Result<Self> {
        let bytes = len * 4;
        let ptr = if bytes == 0 { 0 } else { dev.alloc(bytes)? };
        ledger.alloc(bytes);
        Ok(DevBuf { alloc: Arc::new(Alloc { ptr, bytes, dev: dev.clone(), ledger: ledger.clone() }), len })
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
            let (dev, ledger) = (self.alloc.dev.clone(), self.alloc.ledger.clone());
            let fresh = DevBuf::new(&dev, &ledger, self.len)?;
            dev.dtod(fresh.ptr(), self.ptr(), self.len * 4)?;
            *self = fresh;
        }
        Ok(())
    }
}

/// The message for a failed allocation: what, how much, and what to do.
pub fn oom(device: &str, bytes: usize, why: impl std::fmt::Display) -> Error {
    Error::Device(format!(
        "{device}: out of memory allocating {:.1} MiB ({why}); lower --batch, or free the GPU",
        bytes as f64 / (1 << 20) as f64
    ))
}
