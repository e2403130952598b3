//! The transformer encoder of BERT, DistilBERT and RoBERTa (post-LayerNorm), with its parameters
//! in a `ParamStore` under a prefix and the family's own PyTorch names.
//!
//! One struct serves the three families: they are one network (see `text::hf::config`), with
//! token types (BERT, RoBERTa) or not (DistilBERT), position ids from 0 or past the padding index
//! (RoBERTa), a pooler or not (DistilBERT). Every tensor is created from
//! `text::hf::encoder_tensors` (canonical BertModel names) and stored under
//! `<prefix>.<the family's name>` (`text::hf::family_name`), so a state_dict of the store is what
//! PyTorch's `lyrics_tower = BertModel(...)` (or DistilBertModel, RobertaModel) would save.

use super::inputs::TokenBatch;
use super::layer::{EncoderLayer, LayerCtx};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::ops;
use crate::params::{ParamId, ParamStore};
use crate::rng::{Rng, mix64};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;
use crate::text::hf::{EncoderConfig, Family, encoder_tensors, family_name};

/// BERT's `initializer_range` (its `_init_weights`: N(0, 0.02) weights and embeddings, zero biases,
/// LayerNorm 1 and 0, the padding row of the word embeddings zero).
pub const INIT_STD: f64 = 0.02;

/// The embedding block's parameters.
pub struct Embeddings {
    pub word: ParamId,
    pub position: ParamId,
    pub token_type: Option<ParamId>,
    pub ln_weight: ParamId,
    pub ln_bias: ParamId,
}

/// A BERT-family encoder whose parameters live in a store.
pub struct TextEncoder {
    pub config: EncoderConfig,
    /// "" for a bare model, else e.g. "lyrics_tower" (names are `<prefix>.<name>`).
    pub prefix: String,
    pub embeddings: Embeddings,
    pub layers: Vec<EncoderLayer>,
    /// `pooler.dense` (weight, bias), for the families that have one.
    pub pooler: Option<(ParamId, ParamId)>,
}

/// Dropout sites of the encoder; each gets its own seed from the forward's seed.
#[derive(Clone, Copy)]
pub(crate) enum Site {
    Embeddings = 0,
    Attention = 1,
    AttentionOutput = 2,
    Output = 3,
}

/// The seed of dropout site `site` of layer `layer` (embeddings: layer 0) for a forward seeded
/// `seed`: distinct, well-mixed streams that do not depend on the batch or the backend.
pub(crate) fn site_seed(seed: u64, layer: usize, site: Site) -> u64 {
    mix64(seed ^ mix64(0x6c79_7269_6373 ^ ((layer as u64) << 8 | site as u64)))
}

impl TextEncoder {
    /// Creates every tensor of `config`'s encoder in `store` under `prefix`, initialised as
    /// transformers' BERT initialises a new model (the values a checkpoint then overwrites).
    pub fn new<B: Backend>(
        store: &mut ParamStore<B>,
        prefix: &str,
        config: &EncoderConfig,
        rng: &mut Rng,
    ) -> Result<Self> {
        let be = store.backend.clone();
        let name = |canonical: &str| join(prefix, &family_name(config.family, canonical));
        for spec in encoder_tensors(config) {
            let full = name(&spec.name);
            if store.find(&full).is_some() {
                return Err(Error::Invalid(format!(
                    "the store already holds `{full}`: two encoders under one prefix?"
                )));
            }
            let n: usize = spec.shape.iter().product();
            let leaf = spec.name.rsplit('.').next().unwrap_or("");
            let is_ln = spec.name.contains("LayerNorm");
            let mut data: Vec<f64> = if is_ln && leaf == "weight" {
                vec![1.0; n]
            } else if leaf == "bias" {
                vec![0.0; n]
            } else {
                (0..n).map(|_| rng.normal() * INIT_STD).collect()
            };
            if spec.name == "embeddings.word_embeddings.weight" {
                let (p, h) = (config.pad_token_id, config.hidden);
                data[p * h..(p + 1) * h].iter_mut().for_each(|v| *v = 0.0);
            }
            store.add_param(full, Tensor::from_f64(&be, &spec.shape, &data)?);
        }
        let id = |canonical: &str| -> Result<ParamId> {
            let full = name(canonical);
            store.find(&full).ok_or_else(|| Error::Invalid(format!("encoder tensor `{full}` was not created")))
        };
        let embeddings = Embeddings {
            word: id("embeddings.word_embeddings.weight")?,
            position: id("embeddings.position_embeddings.weight")?,
            token_type: if config.type_vocab_size > 0 {
                Some(id("embeddings.token_type_embeddings.weight")?)
            } else {
                None
            },
            ln_weight: id("embeddings.LayerNorm.weight")?,
            ln_bias: id("embeddings.LayerNorm.bias")?,
        };
        let layers = (0..config.layers)
            .map(|l| EncoderLayer::find(&|c: &str| id(&format!("encoder.layer.{l}.{c}"))))
            .collect::<Result<_>>()?;
        let pooler =
            if config.has_pooler { Some((id("pooler.dense.weight")?, id("pooler.dense.bias")?)) } else { None };
        Ok(TextEncoder { config: config.clone(), prefix: prefix.to_string(), embeddings, layers, pooler })
    }

    /// The store name of a canonical (BertModel) tensor name.
    pub fn param_name(&self, canonical: &str) -> String {
        join(&self.prefix, &family_name(self.config.family, canonical))
    }

    pub fn hidden_size(&self) -> usize {
        self.config.hidden
    }

    /// Every parameter of the embeddings.
    pub fn embedding_params(&self) -> Vec<ParamId> {
        let e = &self.embeddings;
        let mut v = vec![e.word, e.position];
        v.extend(e.token_type);
        v.extend([e.ln_weight, e.ln_bias]);
        v
    }

    /// Every parameter of the encoder, embeddings first, then the layers, then the pooler.
    pub fn params(&self) -> Vec<ParamId> {
        let mut v = self.embedding_params();
        for l in &self.layers {
            v.extend(l.params());
        }
        if let Some((w, b)) = self.pooler {
            v.extend([w, b]);
        }
        v
    }

    /// The last hidden state [batch, len, hidden]. Dropout (with the config's probabilities) runs
    /// when `train`; its masks are drawn from `dropout_seed`. On a no-grad tape (or with every
    /// parameter frozen) nothing is recorded and each intermediate is freed after its last use.
    pub fn forward<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        store: &ParamStore<B>,
        batch: &TokenBatch,
        train: bool,
        dropout_seed: u64,
    ) -> Result<Var<B>> {
        let (b, l, h) = (batch.batch, batch.len, self.config.hidden);
        if b == 0 || l == 0 {
            return Err(Error::Invalid(format!("the encoder needs a non-empty batch, got [{b}, {l}]")));
        }
        let be = tape.backend.clone();
        let key_mask = Tensor::from_f64(&be, &[b, l], &batch.mask_f64())?;
        let mut x = self.embed(tape, store, batch, train, dropout_seed)?;
        let ctx = LayerCtx {
            batch: b,
            len: l,
            heads: self.config.heads,
            eps: self.config.layer_norm_eps,
            activation: self.config.activation,
            hidden_dropout: if train { self.config.hidden_dropout } else { 0.0 },
            attention_dropout: if train { self.config.attention_dropout } else { 0.0 },
            key_mask: &key_mask,
        };
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(tape, store, &x, &ctx, i + 1, dropout_seed)?;
        }
        ops::reshape(tape, &x, &[b, l, h])
    }

    /// word + token type + position embeddings → LayerNorm → dropout, as [batch·len, hidden].
    fn embed<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        store: &ParamStore<B>,
        batch: &TokenBatch,
        train: bool,
        seed: u64,
    ) -> Result<Var<B>> {
        let cfg = &self.config;
        let e = &self.embeddings;
        let pad = cfg.pad_token_id as u32;
        let word = tape.param(store, e.word);
        let mut x = ops::embedding(tape, &word, &batch.ids, Some(pad))?;
        drop(word);
        if let Some(tt) = e.token_type {
            let table = tape.param(store, tt);
            let t = ops::embedding(tape, &table, &batch.type_ids, None)?;
            x = ops::add(tape, &x, &t)?;
        }
        let positions = batch.position_ids(cfg)?;
        let table = tape.param(store, e.position);
        // RoBERTa's position table has padding_idx = pad (its padding tokens sit at position pad).
        let pos_pad = (cfg.family == Family::Roberta).then_some(pad);
        let p = ops::embedding(tape, &table, &positions, pos_pad)?;
        x = ops::add(tape, &x, &p)?;
        drop(p);
        let (g, bta) = (tape.param(store, e.ln_weight), tape.param(store, e.ln_bias));
        x = ops::layer_norm(tape, &x, &g, &bta, cfg.layer_norm_eps)?;
        let p = if train { cfg.hidden_dropout } else { 0.0 };
        ops::dropout(tape, &x, p, train, site_seed(seed, 0, Site::Embeddings))
    }
}

pub(crate) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") }
}
