//! The PTX embedded by engine/build.rs: present for every kernel file when the build had nvcc (CI sets
//! MOODGRAD_REQUIRE_PTX=1 after installing the pinned nvcc), and loadable by driver 580.

use moodgrad::backend::kernel::cuda::{embedded_kernels, embedded_ptx};

#[test]
fn every_kernel_file_has_ptx_the_driver_can_load() {
    let built = moodgrad::build_info::ptx_built();
    if std::env::var_os("MOODGRAD_REQUIRE_PTX").is_some() {
        assert!(built, "MOODGRAD_REQUIRE_PTX is set but engine/build.rs found no nvcc (set NVCC)");
    }
    if !built {
        eprintln!("skipped: this build had no nvcc, so no PTX was embedded (the CUDA backend would use NVRTC)");
        return;
    }
    assert!(!embedded_kernels().is_empty());
    for (file, names) in embedded_kernels() {
        let ptx = embedded_ptx().iter().find(|(f, _)| f == file).unwrap_or_else(|| panic!("no PTX for {file}")).1;
        let v = ptx_build::ptx_version(ptx).unwrap_or_else(|| panic!("{file}: no .version line"));
        assert!(v <= ptx_build::MAX_PTX_VERSION, "{file}: PTX .version {v:?} > 9.0 cannot load on driver 580");
        assert!(ptx.contains(".target sm_90"), "{file}: PTX not for compute_90 (the newest; later cards JIT it)");
        for name in *names {
            assert!(ptx.contains(&format!(".entry {name}(")), "{file}: kernel {name} missing from its PTX");
        }
    }
}

/// The fallback of builds made without nvcc: every embedded source compiles with NVRTC (when
/// libnvrtc is installed; CI has only nvcc, so there this prints that it was skipped).
#[test]
fn every_kernel_file_compiles_with_nvrtc() {
    use moodgrad::backend::kernel::cuda::compile_with_nvrtc;
    // SAFETY: only probes for the shared library.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        eprintln!("skipped: libnvrtc is not installed");
        return;
    }
    for (file, names) in embedded_kernels() {
        // A T4 (sm_75) without nvcc-built cubins compiles for itself: every file but the
        // tensor-core ones.
        if !["conv_tc", "selftest_tc"].contains(file) {
            compile_with_nvrtc(file, 75).unwrap_or_else(|e| panic!("{file} for sm_75: {e}"));
        }
        let ptx = compile_with_nvrtc(file, 80).unwrap_or_else(|e| panic!("{e}"));
        let v = ptx_build::ptx_version(&ptx).unwrap_or_else(|| panic!("{file}: no .version line"));
        assert!(v <= ptx_build::MAX_PTX_VERSION, "{file}: NVRTC wrote PTX .version {v:?}");
        for name in *names {
            assert!(ptx.contains(&format!(".entry {name}(")), "{file}: kernel {name} missing from NVRTC's PTX");
        }
    }
}
