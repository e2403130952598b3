//! moodgrad: a from-scratch deep-learning engine for bimodal music-emotion models.

pub mod backend;
pub mod error;
pub mod float;
pub mod rng;

pub use error::{Error, Result};
pub mod ops;
pub mod params;
pub mod tape;
pub mod tensor;
pub mod nn;
pub mod io;
pub mod optim;
pub mod gradcheck;
pub mod train;
pub mod cli;
