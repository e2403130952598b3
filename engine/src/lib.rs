//! moodgrad-engine: the deep-learning engine beneath moodgrad, with no knowledge of music or of
//! the application: backends (CPU; CUDA and `sim`, the host SIMT layer, running the same
//! `kernels/*.cu`), tensors, the tape, parameters, differentiable ops, optimisers, safetensors
//! I/O, the random stream, finite-difference gradient checks and device selection.
//!
//! A crate of its own so that nothing here can reach the application (the compiler refuses it),
//! and so that others can depend on it alone: to benchmark the SE kernels, or to check an op's
//! gradient (`gradcheck::check_op`).

pub mod backend;
pub mod build_info;
pub mod cputime;
pub mod device;
pub mod error;
pub mod fault;
pub mod float;
pub mod gradcheck;
pub mod hugepages;
pub mod io;
pub mod ops;
pub mod optim;
pub mod params;
pub mod rng;
pub mod tape;
pub mod tensor;

pub use error::{Error, Result};
