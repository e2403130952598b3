//! The CUDA device: cudarc with the driver loaded at run time, so one binary runs everywhere
//! and says clearly when there is no GPU. Kernels come from the PTX that build.rs compiled with
//! nvcc, or, when the build had no nvcc, from the embedded sources through NVRTC.

use super::device::{Arg, RawDevice, oom, with_params};
use crate::error::{Error, Result};
use cudarc::cublas::sys::cublasOperation_t;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream, DriverError, result, sys};
use std::collections::HashMap;
use std::sync::Arc;

/// The kernels build.rs embedded: `PTX` (nvcc output per file, may be empty), `SOURCES`
/// (each file with its includes inlined, for NVRTC) and `KERNELS` (file, kernel names).
#[cfg(moodgrad_embedded)]
mod embedded {
    include!(concat!(env!("OUT_DIR"), "/kernels_embedded.rs"));
}
/// A build script that did not run ptx-build embeds nothing; the CUDA device then has no kernels.
#[cfg(not(moodgrad_embedded))]
mod embedded {
    pub const PTX: &[(&str, &str)] = &[];
    pub const SOURCES: &[(&str, &str)] = &[];
    pub const KERNELS: &[(&str, &[&str])] = &[];
}

/// (file, PTX) pairs compiled by nvcc at build time; empty when the build had no nvcc.
pub fn embedded_ptx() -> &'static [(&'static str, &'static str)] {
    embedded::PTX
}

/// (file, kernel names) of every kernels/*.cu.
pub fn embedded_kernels() -> &'static [(&'static str, &'static [&'static str])] {
    embedded::KERNELS
}

/// Compiles one embedded kernel source to PTX with NVRTC (the path of builds made without nvcc).
pub fn compile_with_nvrtc(file: &str) -> Result<String> {
    // SAFETY: only probes for the shared library.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(Error::Device(format!(
            "this build has no precompiled PTX (no nvcc at build time) and NVRTC (libnvrtc.so.13) is not \
             installed to compile {file}: install the pinned nvcc (scripts/install-nvcc.sh) and rebuild"
        )));
    }
    let src = embedded::SOURCES
        .iter()
        .find(|(f, _)| *f == file)
        .ok_or_else(|| Error::Device(format!("no embedded source for {file}")))?
        .1;
    let opts = cudarc::nvrtc::CompileOptions { arch: Some("compute_80"), ..Default::default() };
    let ptx = cudarc::nvrtc::compile_ptx_with_opts(src, opts)
        .map_err(|e| Error::Device(format!("NVRTC failed on {file}: {e:?}")))?;
    Ok(ptx.to_src())
}

pub struct CudaDevice {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    functions: HashMap<&'static str, CudaFunction>,
    blas: cudarc::cublas::CudaBlas,
    name: String,
    _modules: Vec<Arc<CudaModule>>,
}

// SAFETY: the CUDA driver API is thread-safe; every call binds the context to the calling thread.
unsafe impl Send for CudaDevice {}
// SAFETY: as above; the device holds no Rust-side mutable state after construction.
unsafe impl Sync for CudaDevice {}

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
        let stream = ctx.default_stream();
        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        let mut modules = Vec::new();
        let mut functions = HashMap::new();
        for (file, names) in embedded::KERNELS {
            let ptx = match embedded::PTX.iter().find(|(f, _)| f == file) {
                Some((_, ptx)) => cudarc::nvrtc::Ptx::from_src(*ptx),
                None => cudarc::nvrtc::Ptx::from_src(compile_with_nvrtc(file)?),
            };
            let module = ctx.load_module(ptx).map_err(|e| drv(&format!("loading {file}"), e))?;
            for name in *names {
                functions.insert(*name, module.load_function(name).map_err(|e| drv(&format!("kernel {name}"), e))?);
            }
            modules.push(module);
        }
        let blas = cudarc::cublas::CudaBlas::new(stream.clone())
            .map_err(|e| Error::Device(format!("cuBLAS could not start: {e:?}")))?;
        Ok(CudaDevice { ctx, stream, functions, blas, name, _modules: modules })
    }

    fn bind(&self) -> Result<()> {
        self.ctx.bind_to_thread().map_err(|e| drv("bind", e))
    }
}

impl RawDevice for CudaDevice {
    fn name(&self) -> String {
        format!("cuda ({})", self.name)
    }

    fn alloc(&self, bytes: usize) -> Result<u64> {
        self.bind()?;
        // SAFETY: a plain allocation in the bound context.
        unsafe { result::malloc_sync(bytes) }.map_err(|e| {
            if e.0 == sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY {
                oom(&self.name, bytes, "cuMemAlloc")
            } else {
                drv("cuMemAlloc", e)
            }
        })
    }

    fn free(&self, ptr: u64, _bytes: usize) {
        if self.bind().is_ok() {
            // SAFETY: ptr came from malloc_sync and is freed once.
            let _ = unsafe { result::free_sync(ptr) };
        }
    }

    fn htod(&self, dst: u64, src: &[u8]) -> Result<()> {
        self.bind()?;
        // SAFETY: dst is a live allocation of at least src.len() bytes.
        unsafe { result::memcpy_htod_sync(dst, src) }.map_err(|e| drv("copy to device", e))
    }

    fn dtoh(&self, src: u64, dst: &mut [u8]) -> Result<()> {
        self.bind()?;
        // Synchronising copy: also where asynchronous kernel faults surface.
        // SAFETY: src is a live allocation of at least dst.len() bytes.
        unsafe { result::memcpy_dtoh_sync(dst, src) }.map_err(|e| drv("copy to host (or an earlier kernel)", e))
    }

    fn dtod(&self, dst: u64, src: u64, bytes: usize) -> Result<()> {
        self.bind()?;
        // SAFETY: distinct live allocations of at least `bytes` bytes.
        unsafe { result::memcpy_dtod_sync(dst, src, bytes) }.map_err(|e| drv("device copy", e))
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
            .ok_or_else(|| Error::Device(format!("kernel {kernel} is not in the embedded PTX")))?;
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
        .map_err(|e| drv(&format!("launch of {kernel} (grid {grid:?}, block {block:?})"), e))
    }

    fn synchronize(&self) -> Result<()> {
        self.bind()?;
        // SAFETY: the stream belongs to this context; no memory is touched.
        unsafe { result::stream::synchronize(self.stream.cu_stream()) }
            .map_err(|e| drv("synchronize (an earlier kernel failed)", e))
    }

    fn gemm(&self, a: u64, b: u64, c: u64, m: usize, k: usize, n: usize, ta: bool, tb: bool) -> Result<()> {
        self.bind()?;
        // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: swap the operands.
        let (op_b, ldb) = if tb { (cublasOperation_t::CUBLAS_OP_T, k) } else { (cublasOperation_t::CUBLAS_OP_N, n) };
        let (op_a, lda) = if ta { (cublasOperation_t::CUBLAS_OP_T, m) } else { (cublasOperation_t::CUBLAS_OP_N, k) };
        let (alpha, beta) = (1.0f32, 0.0f32);
        // SAFETY: the operands hold m·k, k·n and m·n floats (checked by KernelBackend::matmul).
        unsafe {
            cudarc::cublas::result::sgemm(
                *self.blas.handle(),
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
        .map_err(|e| Error::Device(format!("cuBLAS sgemm {m}x{k}x{n}: {e:?}")))
    }
}
