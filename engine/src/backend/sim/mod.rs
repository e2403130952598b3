//! The host SIMT layer: the CUDA kernels of `kernels/*.cu`, compiled as C++20 by build.rs against
//! `kernels/sim/simt.h`, run on the CPU so that every CI run (no GPU, no nvcc) executes them.
//!
//! Each block's threads run as fibers on one OS thread, switching only at `__syncthreads`, warp
//! collectives and thread exit; blocks are spread over a pool of OS threads
//! (`MOODGRAD_SIM_THREADS`, default: the available parallelism). Ready fibers resume, and blocks
//! are claimed, in an order drawn from a seed (`MOODGRAD_SIM_SHUFFLE`, [`set_schedule_seed`]), so
//! a kernel that relies on thread order without a barrier fails here as it may on a GPU. A launch is synchronous and may
//! come from any Rust thread. CUDA's undefined behaviour around barriers and warp collectives (a
//! `__syncthreads` not reached by every thread of the block, a lane of a shuffle's mask that exited
//! or never arrives) is reported as an error instead of hanging. `kernels/sim/README.md` has the
//! design and the rules for kernel authors.

pub mod ffi;

pub use ffi::{
    Param, Scalar, kernel_names, launch, params, reset_schedule, schedule_seed, set_schedule_seed, signature,
};
