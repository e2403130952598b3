//! The CUDA device: cudarc with the driver loaded at run time, so one binary runs everywhere
//! and says clearly when there is no GPU, no cuBLAS or no NVRTC. All work (launches, cuBLAS,
//! copies) goes on one non-blocking stream, in order; host copies go through pinned staging
//! (staging.rs); kernels come from the embedded cubins or PTX (modules.rs). Memory comes from the
//! driver here and is cached by the kernel backend's pool (pool.rs).
//!
//! `MOODGRAD_SYNC=1` (read when the device opens) synchronises after every launch and GEMM, so
//! a failing kernel is named with its grid and block instead of surfacing at a later copy.

mod modules;
mod staging;

pub use modules::{FORCE_PTX_VAR, compile_with_nvrtc, cubin_for, embedded_cubins, embedded_kernels, embedded_ptx};

use super::device::{Arg, RawDevice, with_params};
use super::profile::DeviceProfile;
use crate::error::{Error, Result};
use cudarc::cublas::sys::{cublasHandle_t, cublasOperation_t};
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream, DriverError, result, sys};
use staging::Staging;
use std::collections::HashMap;
use std::sync::Arc;

/// The environment variable that turns on a synchronise-and-check after every launch.
pub const SYNC_VAR: &str = "MOODGRAD_SYNC";

fn drv(what: &str, e: DriverError) -> Error {
    Error::Device(format!("CUDA {what}: {e:?}"))
}

/// Whether a CUDA driver library can be loaded at all (without panicking, unlike
/// `CudaContext::new`).
pub fn driver_present() -> bool {
    // SAFETY: only probes for the shared library.
    unsafe { sys::is_culib_present() }
}

/// Number of CUDA devices, 0 when there is no driver or no GPU.
pub fn device_count() -> usize {
    if !driver_present() {
        return 0;
    }
    CudaContext::device_count().map(|n| n.max(0) as usize).unwrap_or(0)
}

/// A cuBLAS handle bound to the device's stream. (cudarc's `CudaBlas` panics when libcublas is
/// missing and unwraps in its Drop; this probes first and ignores a failed destroy.)
struct Blas(cublasHandle_t);

impl Blas {
    fn new(stream: &CudaStream) -> Result<Blas> {
        // SAFETY: only probes for the shared library.
        if !unsafe { cudarc::cublas::sys::is_culib_present() } {
            return Err(Error::Device(
                "cuBLAS (libcublas.so.13) is not installed, and the CUDA backend needs it for matrix \
                 products: install the CUDA 13 runtime libraries (the toolkit's, or `pip install nvidia-cublas` \
                 and put its nvidia/cu13/lib on LD_LIBRARY_PATH), or use --device cpu or --device sim"
                    .into(),
            ));
        }
        let handle = cudarc::cublas::result::create_handle()
            .map_err(|e| Error::Device(format!("cuBLAS could not start: {e:?}")))?;
        let blas = Blas(handle);
        // SAFETY: a live handle and a live stream of the current context (bound by the caller).
        unsafe { cudarc::cublas::result::set_stream(blas.0, stream.cu_stream() as _) }
            .map_err(|e| Error::Device(format!("cuBLAS set stream: {e:?}")))?;
        Ok(blas)
    }
}

impl Drop for Blas {
    fn drop(&mut self) {
        // SAFETY: the handle is live and destroyed once; its queued work is finished (the
        // device synchronises before its fields drop).
        let _ = unsafe { cudarc::cublas::result::destroy_handle(self.0) };
    }
}

/// Fields drop in order: cuBLAS, kernels, staging, then the stream and the context they need.
pub struct CudaDevice {
    blas: Blas,
    functions: HashMap<&'static str, CudaFunction>,
    _modules: Vec<Arc<CudaModule>>,
    staging: Staging,
    stream: Arc<CudaStream>,
    ctx: Arc<CudaContext>,
    name: String,
    profile: DeviceProfile,
    sync_each_launch: bool,
}

// SAFETY: the CUDA driver API is thread-safe, every call binds the context to the calling
// thread, the cuBLAS handle is only used (never reconfigured) after construction, and the
// staging buffers are behind mutexes.
unsafe impl Send for CudaDevice {}
// SAFETY: as above.
unsafe impl Sync for CudaDevice {}

impl CudaDevice {
    pub fn new(ordinal: usize) -> Result<Self> {
        if !driver_present() {
            return Err(Error::Device(
                "no CUDA driver found (libcuda.so is not loadable): this machine has no NVIDIA GPU driver; \
                 use --device cpu or --device sim"
                    .into(),
            ));
        }
        let count = device_count();
        if ordinal >= count {
            return Err(Error::Device(format!(
                "CUDA device {ordinal} does not exist ({count} device(s) visible); use --device cuda:0 … or --device cpu"
            )));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| drv("context", e))?;
        let profile = read_profile(&ctx)?;
        // Non-blocking: no implicit synchronisation with the legacy default stream, which cuBLAS
        // or another library might otherwise use behind our back.
        let stream = ctx.new_stream().map_err(|e| drv("stream", e))?;
        let gpu = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        let loaded = modules::load_all(&ctx)?;
        let blas = Blas::new(&stream)?;
        let staging = Staging::new(&ctx)?;
        let sync_each_launch = std::env::var(SYNC_VAR).is_ok_and(|v| v == "1");
        let sync = if sync_each_launch { ", MOODGRAD_SYNC=1: synchronising after every launch" } else { "" };
        let name = format!("{gpu}, {}{sync}", loaded.how);
        Ok(CudaDevice {
            blas,
            functions: loaded.functions,
            _modules: loaded.modules,
            staging,
            stream,
            ctx,
            name,
            profile,
            sync_each_launch,
        })
    }

    fn bind(&self) -> Result<()> {
        self.ctx.bind_to_thread().map_err(|e| drv("bind", e))
    }

    /// Under MOODGRAD_SYNC=1: waits for `what` and reports its failure by name.
    fn check(&self, what: impl FnOnce() -> String) -> Result<()> {
        if !self.sync_each_launch {
            return Ok(());
        }
        self.stream.synchronize().map_err(|e| Error::Device(format!("{} failed: {e:?}", what())))
    }

    /// Free and total device memory, for an out-of-memory report (0, 0 if the driver cannot say).
    fn mem_info(&self) -> (usize, usize) {
        result::mem_get_info().unwrap_or((0, 0))
    }
}

impl Drop for CudaDevice {
    fn drop(&mut self) {
        // Queued copies may still read the pinned staging and kernels may still run: wait
        // before the fields (staging, modules, cuBLAS, stream) are released.
        // (A failed first bind may only be an error cudarc stored from an earlier Drop, which the
        // bind clears; the synchronize binds again.)
        let _ = self.bind();
        let _ = self.stream.synchronize();
    }
}

/// The card's compute capability, SM count and shared-memory limits, from the driver.
fn read_profile(ctx: &CudaContext) -> Result<DeviceProfile> {
    use sys::CUdevice_attribute as A;
    let get = |a: A| -> Result<u32> {
        ctx.attribute(a).map(|v| v.max(0) as u32).map_err(|e| drv(&format!("device attribute {a:?}"), e))
    };
    Ok(DeviceProfile {
        name: ctx.name().unwrap_or_else(|_| "unknown GPU".into()),
        arch: 10 * get(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?
            + get(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
        sm_count: get(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?,
        shared_per_block_optin: get(A::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)?,
        shared_per_sm: get(A::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR)?,
    })
}

impl RawDevice for CudaDevice {
    fn name(&self) -> String {
        format!("cuda ({})", self.name)
    }

    fn profile(&self) -> DeviceProfile {
        self.profile.clone()
    }

    fn alloc(&self, bytes: usize) -> Result<u64> {
        self.bind()?;
        // SAFETY: a plain allocation in the bound context.
        unsafe { result::malloc_sync(bytes) }.map_err(|e| {
            if e.0 == sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY {
                let (free, total) = self.mem_info();
                Error::OutOfMemory { device: format!("cuda ({})", self.name), requested: bytes, free, total, live: 0 }
            } else {
                drv("cuMemAlloc", e)
            }
        })
    }

    fn free(&self, ptr: u64, _bytes: usize) {
        if self.bind().is_ok() {
            // SAFETY: ptr came from malloc_sync and is freed once, by the pool, after the stream
            // finished the work that used it (pool.rs synchronises before giving blocks back).
            let _ = unsafe { result::free_sync(ptr) };
        }
    }

    fn htod(&self, dst: u64, src: &[u8]) -> Result<()> {
        self.bind()?;
        self.staging.htod(&self.stream, dst, src)
    }

    fn dtoh(&self, src: u64, dst: &mut [u8]) -> Result<()> {
        self.bind()?;
        self.staging.dtoh(&self.stream, src, dst)
    }

    fn dtod(&self, dst: u64, src: u64, bytes: usize) -> Result<()> {
        self.bind()?;
        // SAFETY: distinct live allocations of at least `bytes` bytes; stream-ordered after the
        // work that wrote `src` and before any later user of `dst`.
        unsafe { result::memcpy_dtod_async(dst, src, bytes, self.stream.cu_stream()) }
            .map_err(|e| drv("device copy", e))
    }

    unsafe fn launch(
        &self,
        kernel: &'static str,
        grid: [u32; 3],
        block: [u32; 3],
        shared: u32,
        args: &[Arg],
    ) -> Result<()> {
        self.bind()?;
        let f = self
            .functions
            .get(kernel)
            .ok_or_else(|| Error::Device(format!("kernel {kernel} is not in the embedded kernels")))?;
        // SAFETY: the argument list follows docs/kernel-abi.md for this kernel; every pointer is a
        // live device allocation sized by KernelBackend (the caller's contract).
        with_params(args, |params| unsafe {
            result::launch_kernel(
                f.cu_function(),
                (grid[0], grid[1], grid[2]),
                (block[0], block[1], block[2]),
                shared,
                self.stream.cu_stream(),
                params,
            )
        })
        .map_err(|e| drv(&format!("launch of {kernel} (grid {grid:?}, block {block:?})"), e))?;
        self.check(|| format!("kernel {kernel} (grid {grid:?}, block {block:?}, {shared} B shared)"))
    }

    fn set_max_dynamic_shared(&self, kernel: &'static str, bytes: u32) -> Result<()> {
        self.bind()?;
        let f = self
            .functions
            .get(kernel)
            .ok_or_else(|| Error::Device(format!("kernel {kernel} is not in the embedded kernels")))?;
        let bytes =
            i32::try_from(bytes).map_err(|_| Error::Device(format!("kernel {kernel}: {bytes} B of shared memory")))?;
        f.set_attribute(sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes)
            .map_err(|e| drv(&format!("opt-in of {kernel} to {bytes} B of dynamic shared memory"), e))
    }

    fn synchronize(&self) -> Result<()> {
        self.bind()?;
        self.stream
            .synchronize()
            .map_err(|e| drv("synchronize (an earlier kernel failed: rerun with MOODGRAD_SYNC=1 to find it)", e))
    }

    fn gemm(&self, a: u64, b: u64, c: u64, m: usize, k: usize, n: usize, ta: bool, tb: bool) -> Result<()> {
        self.bind()?;
        // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: swap the operands.
        let (op_b, ldb) = if tb { (cublasOperation_t::CUBLAS_OP_T, k) } else { (cublasOperation_t::CUBLAS_OP_N, n) };
        let (op_a, lda) = if ta { (cublasOperation_t::CUBLAS_OP_T, m) } else { (cublasOperation_t::CUBLAS_OP_N, k) };
        let (alpha, beta) = (1.0f32, 0.0f32);
        // SAFETY: the operands hold m·k, k·n and m·n floats (checked by KernelBackend::matmul);
        // the handle queues on this device's stream.
        unsafe {
            cudarc::cublas::result::sgemm(
                self.blas.0,
                op_b,
                op_a,
                n as i32,
                m as i32,
                k as i32,
                &alpha,
                b as *const f32,
                ldb as i32,
                a as *const f32,
                lda as i32,
                &beta,
                c as *mut f32,
                n as i32,
            )
        }
        .map_err(|e| Error::Device(format!("cuBLAS sgemm {m}x{k}x{n}: {e:?}")))?;
        self.check(|| format!("cuBLAS sgemm {m}x{k}x{n} (ta {ta}, tb {tb})"))
    }

    fn gemm_batched(&self, a: u64, b: u64, c: u64, g: &crate::backend::BmmGeom) -> Result<()> {
        self.bind()?;
        let crate::backend::BmmGeom { batch, m, k, n, ta, tb, alpha } = *g;
        // As `gemm`: row-major C[i] = op(A[i])·op(B[i]) is column-major C[i]ᵀ = op(B[i])ᵀ·op(A[i])ᵀ,
        // so B goes first; each operand's batch stride is its whole matrix.
        let (op_b, ldb) = if tb { (cublasOperation_t::CUBLAS_OP_T, k) } else { (cublasOperation_t::CUBLAS_OP_N, n) };
        let (op_a, lda) = if ta { (cublasOperation_t::CUBLAS_OP_T, m) } else { (cublasOperation_t::CUBLAS_OP_N, k) };
        let (alpha, beta) = (alpha as f32, 0.0f32);
        // SAFETY: the operands hold batch·m·k, batch·k·n and batch·m·n floats (checked by
        // KernelBackend::bmm, with every extent and the batch count below 2^31); the handle queues
        // on this device's stream.
        unsafe {
            cudarc::cublas::result::sgemm_strided_batched(
                self.blas.0,
                op_b,
                op_a,
                n as i32,
                m as i32,
                k as i32,
                &alpha,
                b as *const f32,
                ldb as i32,
                (k * n) as i64,
                a as *const f32,
                lda as i32,
                (m * k) as i64,
                &beta,
                c as *mut f32,
                n as i32,
                (m * n) as i64,
                batch as i32,
            )
        }
        .map_err(|e| Error::Device(format!("cuBLAS sgemm strided-batched {batch}x({m}x{k}x{n}): {e:?}")))?;
        self.check(|| format!("cuBLAS sgemm strided-batched {batch}x({m}x{k}x{n}) (ta {ta}, tb {tb})"))
    }
}
