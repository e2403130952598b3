//! Layers with named parameters and the seed study's network built from them.

pub mod attention;
pub mod layers;
pub mod seed;
pub mod text;

pub use seed::{AttentionKind, Inputs, ModelConfig, Outputs, SeedNet};
