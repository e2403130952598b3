//! What the build script compiled, for the tests that check it (tests/ptx.rs, cubin.rs, sass.rs).

/// Whether nvcc compiled the kernels at build time (PTX and sm_90 cubins embedded); false when
/// the build found no nvcc and the CUDA backend compiles the embedded sources with NVRTC.
pub fn ptx_built() -> bool {
    option_env!("MOODGRAD_PTX_BUILT") == Some("1")
}

/// ptxas's resource reports of the sm_90 cubins (`NVCC_VERSION`, `PTXAS_ARCH`, `PTXAS_REPORTS`:
/// (file, report) pairs; empty without nvcc).
pub mod ptxas {
    include!(concat!(env!("OUT_DIR"), "/kernels_ptxas.rs"));
}
