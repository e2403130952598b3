//! The cubins embedded by engine/build.rs: with nvcc at build time, every kernel file has one for
//! each of sm_75, sm_80, sm_86, sm_89 and sm_90 (the tensor-core files from sm_80 on), each an ELF
//! image for CUDA defining its file's kernels; the loader picks a card's own, or the newest of its
//! major version below it, and nothing for a card newer than all of them (it JITs the PTX).

use moodgrad::backend::kernel::cuda::{cubin_for, embedded_cubins, embedded_kernels};

const TENSOR_CORE_FILES: [&str; 2] = ["conv_tc", "selftest_tc"];

#[test]
fn every_kernel_file_has_a_cubin_per_architecture_defining_its_kernels() {
    let built = moodgrad::build_info::ptx_built();
    if std::env::var_os("MOODGRAD_REQUIRE_PTX").is_some() {
        assert!(built, "MOODGRAD_REQUIRE_PTX is set but engine/build.rs found no nvcc (set NVCC)");
    }
    if !built {
        assert!(embedded_cubins().is_empty(), "a build without nvcc cannot have cubins");
        eprintln!("skipped: this build had no nvcc, so no cubins were embedded (the CUDA backend JITs PTX)");
        return;
    }
    for (file, names) in embedded_kernels() {
        let want: Vec<u32> =
            if TENSOR_CORE_FILES.contains(file) { vec![80, 86, 89, 90] } else { vec![75, 80, 86, 89, 90] };
        let have: Vec<u32> = embedded_cubins().iter().filter(|(f, _, _)| f == file).map(|(_, a, _)| *a).collect();
        assert_eq!(have, want, "{file}: cubin architectures");
        for (_, arch, cubin) in embedded_cubins().iter().filter(|(f, _, _)| f == file) {
            assert_eq!(&cubin[..4], b"\x7fELF", "{file} sm_{arch}: not an ELF image");
            // ELF64 e_machine (offset 18, little-endian) is EM_CUDA = 190.
            assert_eq!(u16::from_le_bytes([cubin[18], cubin[19]]), 190, "{file} sm_{arch}: not a CUDA ELF");
            for name in *names {
                let sym = format!("{name}\0");
                assert!(
                    cubin.windows(sym.len()).any(|w| w == sym.as_bytes()),
                    "{file} sm_{arch}: kernel {name} missing from its cubin"
                );
            }
        }
    }
    // The loader's choice: a card's own cubin, else the newest of its major version below it.
    assert_eq!(cubin_for("conv", 86).map(|c| c.0), Some(86));
    assert_eq!(cubin_for("conv", 87).map(|c| c.0), Some(86), "sm_87 (Orin) runs sm_86 code");
    assert_eq!(cubin_for("conv", 75).map(|c| c.0), Some(75));
    assert_eq!(cubin_for("conv_tc", 75), None, "no tensor-core kernels before sm_80");
    assert_eq!(cubin_for("conv", 100), None, "Blackwell JITs the PTX");
}
