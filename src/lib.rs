//! moodgrad: a from-scratch deep-learning engine for bimodal music-emotion models.

pub mod audio;
pub mod backend;
pub mod error;
pub mod fault;
pub mod float;
pub mod rng;

pub use error::{Error, Result};
pub mod checkpoint;
pub mod cli;
pub mod cputime;
pub mod data;
pub mod device;
pub mod gradcheck;
pub mod hugepages;
pub mod io;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod params;
pub mod tape;
pub mod tensor;
pub mod text;
pub mod train;
