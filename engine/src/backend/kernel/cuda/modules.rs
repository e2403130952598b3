//! Which image of each kernel file the CUDA device loads: the embedded `sm_90` cubin when the
//! device's compute capability is exactly 9.0 (no JIT at start-up), else the embedded
//! `compute_80` PTX, which the driver JIT-compiles for the device (and caches in
//! ~/.nv/ComputeCache); builds made without nvcc have neither and compile the embedded sources
//! with NVRTC. `MOODGRAD_CUDA_PTX=1` forces the PTX path on a 9.0 device (to test it there).

use super::drv;
use crate::error::{Error, Result};
use cudarc::driver::{CudaContext, CudaFunction, CudaModule};
use cudarc::nvrtc::Ptx;
use std::collections::HashMap;
use std::sync::Arc;

/// The kernels build.rs embedded: `PTX` (nvcc output per file, may be empty), `SOURCES` (each
/// file with its includes inlined, for NVRTC), `KERNELS` (file, kernel names) and `CUBIN_SM90`
/// (file, nvcc's sm_90 cubin; empty without nvcc).
#[cfg(moodgrad_embedded)]
mod embedded {
    include!(concat!(env!("OUT_DIR"), "/kernels_embedded.rs"));
    include!(concat!(env!("OUT_DIR"), "/kernels_cubin.rs"));
}
/// A build script that did not run ptx-build embeds nothing; the CUDA device then has no kernels.
#[cfg(not(moodgrad_embedded))]
mod embedded {
    pub const PTX: &[(&str, &str)] = &[];
    pub const SOURCES: &[(&str, &str)] = &[];
    pub const KERNELS: &[(&str, &[&str])] = &[];
    pub const CUBIN_SM90: &[(&str, &[u8])] = &[];
}

/// The environment variable that makes a 9.0 device JIT the PTX instead of loading the cubins.
pub const FORCE_PTX_VAR: &str = "MOODGRAD_CUDA_PTX";

/// (file, PTX) pairs compiled by nvcc at build time; empty when the build had no nvcc.
pub fn embedded_ptx() -> &'static [(&'static str, &'static str)] {
    embedded::PTX
}

/// (file, sm_90 cubin) pairs compiled by nvcc at build time; empty when the build had no nvcc.
pub fn embedded_cubins() -> &'static [(&'static str, &'static [u8])] {
    embedded::CUBIN_SM90
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

/// Every kernel of every file, loaded into `ctx`.
pub struct Loaded {
    pub functions: HashMap<&'static str, CudaFunction>,
    pub modules: Vec<Arc<CudaModule>>,
    /// How the images were obtained, for the device's name: "sm_90 cubin", "PTX JIT", ….
    pub how: String,
}

pub fn load_all(ctx: &Arc<CudaContext>) -> Result<Loaded> {
    let (major, minor) = ctx.compute_capability().map_err(|e| drv("compute capability", e))?;
    let force_ptx = std::env::var(FORCE_PTX_VAR).is_ok_and(|v| v == "1");
    let use_cubin = (major, minor) == (9, 0) && !force_ptx && !embedded::CUBIN_SM90.is_empty();
    let jit = if embedded::PTX.is_empty() { "NVRTC PTX" } else { "compute_80 PTX" };
    let mut how = if use_cubin { "sm_90 cubin".to_string() } else { format!("{jit} JIT for sm_{major}{minor}") };
    let mut loaded = Loaded { functions: HashMap::new(), modules: Vec::new(), how: String::new() };
    for (file, names) in embedded::KERNELS {
        let cubin = embedded::CUBIN_SM90.iter().find(|(f, _)| f == file).filter(|_| use_cubin);
        let module = match cubin {
            Some((_, bytes)) => match ctx.load_module(Ptx::from_binary(bytes.to_vec())) {
                Ok(m) => m,
                // A driver older than the nvcc that built the cubin rejects it; its PTX may load.
                Err(e) => {
                    how = format!("compute_80 PTX JIT for sm_90 (the sm_90 cubin of {file} was rejected: {e:?})");
                    load_ptx(ctx, file)?
                }
            },
            None => load_ptx(ctx, file)?,
        };
        for name in *names {
            let f = module.load_function(name).map_err(|e| drv(&format!("kernel {name} of {file}"), e))?;
            loaded.functions.insert(*name, f);
        }
        loaded.modules.push(module);
    }
    loaded.how = how;
    Ok(loaded)
}

fn load_ptx(ctx: &Arc<CudaContext>, file: &str) -> Result<Arc<CudaModule>> {
    let ptx = match embedded::PTX.iter().find(|(f, _)| *f == file) {
        Some((_, ptx)) => Ptx::from_src(*ptx),
        None => Ptx::from_src(compile_with_nvrtc(file)?),
    };
    ctx.load_module(ptx).map_err(|e| drv(&format!("loading the PTX of {file}"), e))
}
