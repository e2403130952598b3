//! Builds the kernels: PTX for the CUDA backend (`build_ptx`, via the ptx-build crate) and, for
//! the host SIMT layer, the same sources as C++ (`build_sim`, added with the SIMT layer).
use std::path::Path;

fn main() {
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    println!("cargo:rerun-if-changed=kernels");
    build_ptx(Path::new("kernels"), Path::new(&out));
}

/// PTX for the CUDA backend: nvcc when found (compute_80 PTX embedded, sm_90 cubin for the
/// ptxas resource report), otherwise only the sources, which the backend compiles with NVRTC.
fn build_ptx(kernels: &Path, out_dir: &Path) {
    println!("cargo:rerun-if-env-changed=NVCC");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    let files = ptx_build::kernel_files(kernels).expect("read kernels/");
    let mut ptx = Vec::new();
    match ptx_build::find_nvcc() {
        Some(nvcc) => {
            for f in &files {
                let p = out_dir.join(format!("{}.ptx", f.name));
                let text = ptx_build::compile_ptx(&nvcc, f, kernels, "compute_80", &p).unwrap_or_else(|e| panic!("{e}"));
                let cubin = out_dir.join(format!("{}.sm_90.cubin", f.name));
                let usage = ptx_build::resource_usage(&nvcc, f, kernels, "sm_90", &cubin).unwrap_or_else(|e| panic!("{e}"));
                println!("{}: PTX {:?}\n{usage}", f.name, ptx_build::ptx_version(&text));
                ptx.push((f.name.clone(), text));
            }
            println!("cargo:rustc-env=MOODGRAD_PTX_BUILT=1");
        }
        None => {
            println!("cargo:warning=no nvcc found: the CUDA backend will compile kernels with NVRTC at run time (scripts/install-nvcc.sh installs the pinned nvcc; set NVCC)");
            println!("cargo:rustc-env=MOODGRAD_PTX_BUILT=0");
        }
    }
    ptx_build::write_embedded(&out_dir.join("kernels_embedded.rs"), &files, &ptx, kernels).expect("write kernels_embedded.rs");
    println!("cargo:rustc-cfg=moodgrad_embedded");
}
