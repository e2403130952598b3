//! The lyrics tower's encoder: BERT, DistilBERT and RoBERTa on the engine's own ops.
//!
//! - [`encoder`]: [`TextEncoder`], the post-LayerNorm transformer with its parameters in a store
//!   under a prefix (e.g. `lyrics_tower.encoder.layer.0.attention.self.query.weight`).
//! - [`layer`]: one transformer layer.
//! - [`inputs`]: [`TokenBatch`] (ids, mask, token types) and each family's position ids.
//! - [`pooling`]: [CLS], the pooler, or the masked mean.
//! - [`load`]: a Hugging Face folder's safetensors into the store.
//! - [`tower`]: [`LyricsTower`], what the training loop uses (HF or built-in encoder, frozen /
//!   top-K / full fine-tuning, the frozen vector cache, batch tokenize + encode).

pub mod builtin;
pub mod encoder;
pub mod inputs;
pub mod layer;
pub mod load;
pub mod pooling;
pub mod tower;

pub use builtin::BuiltinConfig;
pub use encoder::TextEncoder;
pub use inputs::TokenBatch;
pub use load::{LoadSummary, load_hf_weights};
pub use pooling::{Pooling, pool};
pub use tower::{LyricsTower, TowerMode};
