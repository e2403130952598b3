//! From the last hidden state to one vector per lyric.

use super::encoder::TextEncoder;
use super::inputs::TokenBatch;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::ops;
use crate::params::ParamStore;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// How a lyric's hidden states [len, hidden] become one vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pooling {
    /// The [CLS] (first) position of the last hidden state: the seed's choice.
    Cls,
    /// BERT's pooler: tanh(dense([CLS])) (`pooler_output`).
    Pooler,
    /// The mean over the positions with mask 1 (sentence-transformers' mean pooling).
    Mean,
}

impl std::str::FromStr for Pooling {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cls" => Ok(Pooling::Cls),
            "pooler" => Ok(Pooling::Pooler),
            "mean" | "masked_mean" => Ok(Pooling::Mean),
            _ => Err(Error::Invalid(format!("--pool `{s}`: use cls, pooler or mean"))),
        }
    }
}

impl Pooling {
    /// The name the vector cache and output files record.
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Cls => "cls",
            Pooling::Pooler => "pooler",
            Pooling::Mean => "masked_mean",
        }
    }
}

/// hidden [batch, len, h] → [batch, h].
pub fn pool<B: Backend>(
    tape: &mut Tape<B>,
    store: &ParamStore<B>,
    encoder: &TextEncoder,
    hidden: &Var<B>,
    batch: &TokenBatch,
    pooling: Pooling,
) -> Result<Var<B>> {
    let &[b, l, h] = hidden.shape() else {
        return Err(Error::shape(
            "pool",
            format!("expected the hidden state [batch, len, hidden], got {:?}", hidden.shape()),
        ));
    };
    match pooling {
        Pooling::Cls => cls(tape, hidden, b, h),
        Pooling::Pooler => {
            let Some((w, bias)) = encoder.pooler else {
                return Err(Error::Invalid(format!(
                    "--pool pooler: a {} encoder has no pooler; use cls or mean",
                    encoder.config.family.model_type()
                )));
            };
            let c = cls(tape, hidden, b, h)?;
            let (w, bias) = (tape.param(store, w), tape.param(store, bias));
            let y = ops::linear(tape, &c, &w, Some(&bias))?;
            ops::tanh(tape, &y)
        }
        Pooling::Mean => {
            // Σ_l w[b, l]·h[b, l, :] with w = mask / max(Σ mask, 1e-9): sentence-transformers'
            // `sum(h·mask) / clamp(sum(mask), min=1e-9)`, as one batched product.
            let mut w = vec![0.0; b * l];
            for (r, row) in batch.mask.chunks(l).enumerate().take(b) {
                let n = row.iter().filter(|&&m| m != 0).count() as f64;
                for (j, &m) in row.iter().enumerate() {
                    if m != 0 {
                        w[r * l + j] = 1.0 / n.max(1e-9);
                    }
                }
            }
            let wt = tape.constant(Tensor::from_f64(&tape.backend, &[b, 1, l], &w)?);
            let m = ops::bmm(tape, &wt, hidden, false, false, 1.0)?;
            ops::reshape(tape, &m, &[b, h])
        }
    }
}

fn cls<B: Backend>(tape: &mut Tape<B>, hidden: &Var<B>, b: usize, h: usize) -> Result<Var<B>> {
    let c = ops::narrow(tape, hidden, 1, 0, 1)?;
    ops::reshape(tape, &c, &[b, h])
}
