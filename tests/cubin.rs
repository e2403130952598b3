//! The sm_90 cubins embedded by engine/build.rs (loaded instead of JIT-compiling the PTX when the device's
//! compute capability is exactly 9.0): present for every kernel file when the build had nvcc,
//! ELF images for sm_90, each defining its file's kernels.

use moodgrad::backend::kernel::cuda::{embedded_cubins, embedded_kernels};

#[test]
fn every_kernel_file_has_an_sm90_cubin_defining_its_kernels() {
    let built = moodgrad::build_info::ptx_built();
    if std::env::var_os("MOODGRAD_REQUIRE_PTX").is_some() {
        assert!(built, "MOODGRAD_REQUIRE_PTX is set but engine/build.rs found no nvcc (set NVCC)");
    }
    if !built {
        assert!(embedded_cubins().is_empty(), "a build without nvcc cannot have cubins");
        eprintln!("skipped: this build had no nvcc, so no cubins were embedded (the CUDA backend JITs PTX)");
        return;
    }
    assert_eq!(embedded_cubins().len(), embedded_kernels().len());
    for (file, names) in embedded_kernels() {
        let cubin =
            embedded_cubins().iter().find(|(f, _)| f == file).unwrap_or_else(|| panic!("no cubin for {file}")).1;
        assert_eq!(&cubin[..4], b"\x7fELF", "{file}: not an ELF image");
        // ELF64 e_machine (offset 18, little-endian) is EM_CUDA = 190.
        assert_eq!(u16::from_le_bytes([cubin[18], cubin[19]]), 190, "{file}: not a CUDA ELF");
        for name in *names {
            let sym = format!("{name}\0");
            assert!(
                cubin.windows(sym.len()).any(|w| w == sym.as_bytes()),
                "{file}: kernel {name} missing from its cubin"
            );
        }
    }
}
