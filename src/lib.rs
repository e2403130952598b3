//! moodgrad: the seed study's bimodal music-emotion models (audio + lyrics), trained, evaluated and
//! compared natively on the engine beneath it (`moodgrad-engine`, in engine/).
//!
//! The application: `audio` (librosa-exact preprocessing), `text` (lyrics and tokenizers),
//! `data` (MERGE, caches, synthetic songs), `nn` (the seed's networks under PyTorch's names),
//! `train` (the training step, the loop, checkpoints, evaluation, reports), `cli` (one file per
//! command). The engine's modules are re-exported under their own names, so `moodgrad::tensor`
//! is `moodgrad_engine::tensor`.

pub use moodgrad_engine::{
    Error, Result, backend, build_info, cputime, device, error, fault, float, gradcheck, hugepages, io, on_device, ops,
    optim, params, rng, tape, tensor,
};

pub mod audio;
pub mod cli;
pub mod data;
pub mod nn;
pub mod text;
pub mod train;
