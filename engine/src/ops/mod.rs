//! Differentiable ops: each checks shapes, computes its forward on the backend and records a
//! backward closure that owns exactly what it will read (shared handles, freed when it ran).
//!
//! Ops check shapes and return `Error::Shape` on a mismatch; the backend checks buffer lengths
//! against its geometry again.

mod activation;
mod attention;
mod conv;
mod elementwise;
mod layernorm;
mod linear;
mod loss;
mod norm;
mod pool;
mod se;
mod se_pool;
mod sequence;
mod spectro;
mod sync_norm;
mod vgg_unit;

pub use activation::{gelu, gelu_tanh, relu, sigmoid, tanh, unary};
pub use attention::{AttnDropout, attention, bmm, masked_softmax, merge_heads, split_heads};
pub use conv::conv2d;
pub use elementwise::{add, concat_cols, dropout, mul, reshape};
pub use layernorm::layer_norm;
pub use linear::linear;
pub use loss::{cross_entropy, l1_loss, mse_loss};
pub use norm::{BatchNormState, batchnorm2d};
pub use pool::{channel_scale, global_avgpool, maxpool2d};
pub use se::squeeze_excite;
pub use se_pool::squeeze_excite_pool;
pub use sequence::{embedding, group_by_id, narrow};
pub use spectro::{mel_project, power_to_db};
pub use sync_norm::{Replicas, sync_batchnorm2d};
pub use vgg_unit::{UnitVars, vgg_unit};

use crate::error::{Error, Result};

/// Splits an NCHW shape, or fails naming the op.
pub(crate) fn nchw(op: &'static str, s: &[usize]) -> Result<(usize, usize, usize, usize)> {
    match s {
        [n, c, h, w] => Ok((*n, *c, *h, *w)),
        _ => Err(Error::shape(op, format!("expected an NCHW tensor, got shape {s:?}"))),
    }
}

pub(crate) fn matrix(op: &'static str, s: &[usize]) -> Result<(usize, usize)> {
    match s {
        [r, c] => Ok((*r, *c)),
        _ => Err(Error::shape(op, format!("expected a 2-D tensor, got shape {s:?}"))),
    }
}

pub(crate) fn same_shape(op: &'static str, a: &[usize], b: &[usize]) -> Result<()> {
    if a == b { Ok(()) } else { Err(Error::shape(op, format!("shapes differ: {a:?} vs {b:?}"))) }
}
