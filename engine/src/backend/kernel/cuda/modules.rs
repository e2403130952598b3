//! Which image of each kernel file the CUDA device loads, by its compute capability: the embedded
//! cubin built for it (sm_75, sm_80, sm_86, sm_89, sm_90), or the newest cubin of the same major
//! version below it (binary compatible: sm_86's runs on an sm_87); on a card newer than every
//! cubin, the embedded `compute_90` PTX, which the driver JIT-compiles (and caches in
//! ~/.nv/ComputeCache). The tensor-core files have no image before sm_80 and are not loaded
//! there (the backend refuses TF32 on such cards). Builds made without nvcc have neither and
//! compile the embedded sources with NVRTC. `MOODGRAD_CUDA_PTX=1` forces the PTX path where the
//! PTX can load (sm_90 and later), to test it there.

use super::drv;
use crate::error::{Error, Result};
use cudarc::driver::{CudaContext, CudaFunction, CudaModule};
use cudarc::nvrtc::Ptx;
use std::collections::HashMap;
use std::sync::Arc;

/// The kernels build.rs embedded: `PTX` (nvcc output per file, may be empty), `SOURCES` (each
/// file with its includes inlined, for NVRTC), `KERNELS` (file, kernel names) and `CUBINS`
/// (file, compute capability·10, nvcc's cubin; empty without nvcc).
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
    pub const CUBINS: &[(&str, u32, &[u8])] = &[];
}

/// The environment variable that makes a device JIT the PTX instead of loading the cubins.
pub const FORCE_PTX_VAR: &str = "MOODGRAD_CUDA_PTX";

/// (file, PTX) pairs compiled by nvcc at build time; empty when the build had no nvcc.
pub fn embedded_ptx() -> &'static [(&'static str, &'static str)] {
    embedded::PTX
}

/// (file, compute capability·10, cubin) compiled by nvcc at build time; empty when the build had
/// no nvcc.
pub fn embedded_cubins() -> &'static [(&'static str, u32, &'static [u8])] {
    embedded::CUBINS
}

/// The cubin of `file` for a card of compute capability `arch` (major·10 + minor): its own, or
/// the newest one of the same major version below it; None when there is none (a card newer
/// than every cubin, or older than the file supports).
pub fn cubin_for(file: &str, arch: u32) -> Option<(u32, &'static [u8])> {
    embedded::CUBINS
        .iter()
        .filter(|(f, a, _)| *f == file && a / 10 == arch / 10 && *a <= arch)
        .max_by_key(|(_, a, _)| *a)
        .map(|(_, a, bytes)| (*a, *bytes))
}

/// (file, kernel names) of every kernels/*.cu.
pub fn embedded_kernels() -> &'static [(&'static str, &'static [&'static str])] {
    embedded::KERNELS
}

/// Compiles one embedded kernel source to PTX with NVRTC (the path of builds made without nvcc)
/// for a card of compute capability `arch` (major·10 + minor): its own virtual architecture, so
/// the PTX loads there (compute_90 for anything newer).
pub fn compile_with_nvrtc(file: &str, arch: u32) -> Result<String> {
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
    let virtual_arch = match arch {
        0..=79 => "compute_75",
        80..=85 => "compute_80",
        86..=88 => "compute_86",
        89 => "compute_89",
        _ => "compute_90",
    };
    let opts = cudarc::nvrtc::CompileOptions { arch: Some(virtual_arch), ..Default::default() };
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
    let arch = (10 * major + minor) as u32;
    let force_ptx = std::env::var(FORCE_PTX_VAR).is_ok_and(|v| v == "1");
    let jit = if embedded::PTX.is_empty() { "NVRTC PTX" } else { "compute_90 PTX" };
    let mut loaded = Loaded { functions: HashMap::new(), modules: Vec::new(), how: String::new() };
    let (mut cubins, mut jitted, mut skipped) = (Vec::new(), 0, Vec::new());
    for (file, names) in embedded::KERNELS {
        let cubin = cubin_for(file, arch).filter(|_| !force_ptx);
        let module = match cubin {
            Some((built_for, bytes)) => match ctx.load_module(Ptx::from_binary(bytes.to_vec())) {
                Ok(m) => {
                    cubins.push(built_for);
                    m
                }
                // A driver older than the nvcc that built the cubin rejects it; the PTX may load.
                Err(e) if arch >= 90 => {
                    eprintln!("note: the sm_{built_for} cubin of {file} was rejected ({e:?}); JIT-compiling its PTX");
                    jitted += 1;
                    load_ptx(ctx, file, arch)?
                }
                Err(e) => return Err(drv(&format!("loading the sm_{built_for} cubin of {file}"), e)),
            },
            None if arch < 75 => {
                return Err(Error::Device(format!(
                    "this card is sm_{arch}; moodgrad's kernels need sm_75 (Turing) or newer: use --device cpu"
                )));
            }
            // Every other file has an sm_75 cubin: this one is a tensor-core file (sm_80 on).
            None if arch < 80 && !embedded::CUBINS.is_empty() => {
                skipped.push(*file);
                continue;
            }
            // A build without nvcc compiles every file with NVRTC for the card; before sm_80 the
            // tensor-core files cannot compile, and are left out as the cubin builds leave them.
            None if embedded::PTX.is_empty() && arch < 80 => match load_ptx(ctx, file, arch) {
                Ok(m) => {
                    jitted += 1;
                    m
                }
                Err(e) => {
                    eprintln!("note: {file} does not load on sm_{arch} ({e}); its kernels need sm_80");
                    skipped.push(*file);
                    continue;
                }
            },
            None if arch >= 90 || embedded::PTX.is_empty() => {
                jitted += 1;
                load_ptx(ctx, file, arch)?
            }
            None => {
                return Err(Error::Device(format!(
                    "no kernels of {file} for this card (sm_{arch}): the build has cubins for sm_75, sm_80, sm_86, \
                     sm_89 and sm_90 and PTX for compute_90; rebuild with a CUDA toolkit that supports sm_{arch}"
                )));
            }
        };
        for name in *names {
            let f = module.load_function(name).map_err(|e| drv(&format!("kernel {name} of {file}"), e))?;
            loaded.functions.insert(*name, f);
        }
        loaded.modules.push(module);
    }
    cubins.sort_unstable();
    cubins.dedup();
    let mut how = Vec::new();
    if !cubins.is_empty() {
        how.push(format!("{} cubins", cubins.iter().map(|a| format!("sm_{a}")).collect::<Vec<_>>().join("/")));
    }
    if jitted > 0 {
        how.push(format!("{jit} JIT for sm_{arch} ({jitted} files)"));
    }
    if !skipped.is_empty() {
        how.push(format!("no tensor-core kernels before sm_80 ({})", skipped.join(", ")));
    }
    loaded.how = how.join(", ");
    Ok(loaded)
}

fn load_ptx(ctx: &Arc<CudaContext>, file: &str, arch: u32) -> Result<Arc<CudaModule>> {
    let ptx = match embedded::PTX.iter().find(|(f, _)| *f == file) {
        Some((_, ptx)) => Ptx::from_src(*ptx),
        None => Ptx::from_src(compile_with_nvrtc(file, arch)?),
    };
    ctx.load_module(ptx).map_err(|e| drv(&format!("loading the PTX of {file}"), e))
}
