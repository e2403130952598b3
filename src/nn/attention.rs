//! The two attention blocks of the seed: squeeze-and-excitation (the guide's fix) and the
//! notebooks' legacy feature attention.

use super::layers::Linear;
use crate::backend::Backend;
use crate::error::Result;
use crate::ops;
use crate::params::ParamStore;
use crate::rng::Rng;
use crate::tape::{Tape, Var};

/// SEAttention(C, r): mean over H×W → Linear(C, C/r, no bias) → ReLU → Linear(C/r, C, no bias)
/// → sigmoid → scale each channel. Names: `<prefix>.excitation.{0,2}.weight`.
pub struct SqueezeExcite {
    pub fc1: Linear,
    pub fc2: Linear,
}

impl SqueezeExcite {
    pub fn new<B: Backend>(store: &mut ParamStore<B>, rng: &mut Rng, prefix: &str, c: usize, r: usize) -> Result<Self> {
        let hidden = (c / r).max(1);
        Ok(SqueezeExcite {
            fc1: Linear::new(store, rng, &format!("{prefix}.excitation.0"), c, hidden, false)?,
            fc2: Linear::new(store, rng, &format!("{prefix}.excitation.2"), hidden, c, false)?,
        })
    }

    pub fn forward<B: Backend>(&self, tape: &mut Tape<B>, store: &ParamStore<B>, x: &Var<B>) -> Result<Var<B>> {
        let w1 = tape.param(store, self.fc1.weight);
        let w2 = tape.param(store, self.fc2.weight);
        ops::squeeze_excite(tape, x, &w1, &w2)
    }

    /// The block followed by global average pooling, as one op ([N, C, 1, 1]; see
    /// `ops::squeeze_excite_pool`): equal to `global_avgpool(forward(x))`.
    pub fn forward_pooled<B: Backend>(&self, tape: &mut Tape<B>, store: &ParamStore<B>, x: &Var<B>) -> Result<Var<B>> {
        let w1 = tape.param(store, self.fc1.weight);
        let w2 = tape.param(store, self.fc2.weight);
        ops::squeeze_excite_pool(tape, x, &w1, &w2)
    }
}

/// AttentionModule(d): x ⊙ sigmoid(Linear(d/4, d)(ReLU(Linear(d, d/4)(x)))), with biases.
/// Names: `<prefix>.attention.{0,2}.{weight,bias}`.
pub struct FeatureAttention {
    pub fc1: Linear,
    pub fc2: Linear,
}

impl FeatureAttention {
    pub fn new<B: Backend>(store: &mut ParamStore<B>, rng: &mut Rng, prefix: &str, d: usize) -> Result<Self> {
        let hidden = (d / 4).max(1);
        Ok(FeatureAttention {
            fc1: Linear::new(store, rng, &format!("{prefix}.attention.0"), d, hidden, true)?,
            fc2: Linear::new(store, rng, &format!("{prefix}.attention.2"), hidden, d, true)?,
        })
    }

    pub fn forward<B: Backend>(&self, tape: &mut Tape<B>, store: &ParamStore<B>, x: &Var<B>) -> Result<Var<B>> {
        let g = self.fc1.forward(tape, store, x)?;
        let g = ops::relu(tape, &g)?;
        let g = self.fc2.forward(tape, store, &g)?;
        let g = ops::sigmoid(tape, &g)?;
        ops::mul(tape, x, &g)
    }
}
