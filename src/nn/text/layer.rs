//! One post-LayerNorm transformer layer: self-attention, residual, LayerNorm; feed-forward,
//! residual, LayerNorm (BERT's `BertLayer`, DistilBERT's `TransformerBlock`).

use super::encoder::{Site, site_seed};
use crate::backend::{Backend, Unary};
use crate::error::Result;
use crate::ops::{self, AttnDropout};
use crate::params::{ParamId, ParamStore};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;
use crate::text::hf::Activation;

/// A Linear's (weight [out, in], bias [out]).
#[derive(Clone, Copy, Debug)]
pub struct Dense {
    pub weight: ParamId,
    pub bias: ParamId,
}

impl Dense {
    fn find(id: &dyn Fn(&str) -> Result<ParamId>, module: &str) -> Result<Dense> {
        Ok(Dense { weight: id(&format!("{module}.weight"))?, bias: id(&format!("{module}.bias"))? })
    }

    pub(crate) fn forward<B: Backend>(&self, tape: &mut Tape<B>, store: &ParamStore<B>, x: &Var<B>) -> Result<Var<B>> {
        let (w, b) = (tape.param(store, self.weight), tape.param(store, self.bias));
        ops::linear(tape, x, &w, Some(&b))
    }
}

/// A LayerNorm's (weight, bias).
#[derive(Clone, Copy, Debug)]
pub struct Norm {
    pub weight: ParamId,
    pub bias: ParamId,
}

/// The parameters of one layer, by their canonical (BertModel) module names.
pub struct EncoderLayer {
    pub query: Dense,
    pub key: Dense,
    pub value: Dense,
    pub attention_output: Dense,
    pub attention_norm: Norm,
    pub intermediate: Dense,
    pub output: Dense,
    pub output_norm: Norm,
}

/// What every layer of one forward shares.
pub struct LayerCtx<'a, B: Backend> {
    pub batch: usize,
    pub len: usize,
    pub heads: usize,
    pub eps: f64,
    pub activation: Activation,
    /// 0 when not training.
    pub hidden_dropout: f64,
    pub attention_dropout: f64,
    /// [batch, len], 1 for real tokens.
    pub key_mask: &'a Tensor<B>,
}

impl EncoderLayer {
    /// `id(canonical name inside the layer)` → the store's id.
    pub(crate) fn find(id: &dyn Fn(&str) -> Result<ParamId>) -> Result<EncoderLayer> {
        let norm = |m: &str| -> Result<Norm> {
            Ok(Norm { weight: id(&format!("{m}.weight"))?, bias: id(&format!("{m}.bias"))? })
        };
        Ok(EncoderLayer {
            query: Dense::find(id, "attention.self.query")?,
            key: Dense::find(id, "attention.self.key")?,
            value: Dense::find(id, "attention.self.value")?,
            attention_output: Dense::find(id, "attention.output.dense")?,
            attention_norm: norm("attention.output.LayerNorm")?,
            intermediate: Dense::find(id, "intermediate.dense")?,
            output: Dense::find(id, "output.dense")?,
            output_norm: norm("output.LayerNorm")?,
        })
    }

    pub fn params(&self) -> Vec<ParamId> {
        let mut v = Vec::new();
        for d in [&self.query, &self.key, &self.value, &self.attention_output] {
            v.extend([d.weight, d.bias]);
        }
        v.extend([self.attention_norm.weight, self.attention_norm.bias]);
        for d in [&self.intermediate, &self.output] {
            v.extend([d.weight, d.bias]);
        }
        v.extend([self.output_norm.weight, self.output_norm.bias]);
        v
    }

    /// x [batch·len, hidden] → the layer's output, same shape. `index` (1-based) picks the
    /// layer's dropout seeds.
    pub fn forward<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        store: &ParamStore<B>,
        x: &Var<B>,
        ctx: &LayerCtx<'_, B>,
        index: usize,
        seed: u64,
    ) -> Result<Var<B>> {
        let (b, l) = (ctx.batch, ctx.len);
        let hidden = x.shape()[1];
        let head_dim = hidden / ctx.heads;
        let heads = |tape: &mut Tape<B>, d: &Dense| -> Result<Var<B>> {
            let y = d.forward(tape, store, x)?;
            let y = ops::reshape(tape, &y, &[b, l, hidden])?;
            ops::split_heads(tape, &y, ctx.heads)
        };
        let q = heads(tape, &self.query)?;
        let k = heads(tape, &self.key)?;
        let v = heads(tape, &self.value)?;
        let dropout = (ctx.attention_dropout > 0.0)
            .then(|| AttnDropout { p: ctx.attention_dropout, seed: site_seed(seed, index, Site::Attention) });
        let scale = 1.0 / (head_dim as f64).sqrt();
        let a = ops::attention(tape, &q, &k, &v, ctx.key_mask, scale, dropout)?;
        drop((q, k, v));
        let a = ops::merge_heads(tape, &a)?;
        let a = ops::reshape(tape, &a, &[b * l, hidden])?;
        let a = self.attention_output.forward(tape, store, &a)?;
        let a = self.dropout(tape, &a, ctx, seed, index, Site::AttentionOutput)?;
        let a = ops::add(tape, &a, x)?;
        let a = self.norm(tape, store, &a, &self.attention_norm, ctx.eps)?;
        let f = self.intermediate.forward(tape, store, &a)?;
        let f = match ctx.activation {
            Activation::Gelu => ops::unary(tape, Unary::Gelu, &f)?,
            Activation::GeluTanh => ops::unary(tape, Unary::GeluTanh, &f)?,
            Activation::Relu => ops::relu(tape, &f)?,
        };
        let f = self.output.forward(tape, store, &f)?;
        let f = self.dropout(tape, &f, ctx, seed, index, Site::Output)?;
        let f = ops::add(tape, &f, &a)?;
        drop(a);
        self.norm(tape, store, &f, &self.output_norm, ctx.eps)
    }

    fn norm<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        store: &ParamStore<B>,
        x: &Var<B>,
        n: &Norm,
        eps: f64,
    ) -> Result<Var<B>> {
        let (w, b) = (tape.param(store, n.weight), tape.param(store, n.bias));
        ops::layer_norm(tape, x, &w, &b, eps)
    }

    fn dropout<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        x: &Var<B>,
        ctx: &LayerCtx<'_, B>,
        seed: u64,
        index: usize,
        site: Site,
    ) -> Result<Var<B>> {
        let p = ctx.hidden_dropout;
        ops::dropout(tape, x, p, p > 0.0, site_seed(seed, index, site))
    }
}
