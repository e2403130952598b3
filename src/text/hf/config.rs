//! `config.json` of a BERT, DistilBERT or RoBERTa model, as one [`EncoderConfig`].
//!
//! The three families are one post-LayerNorm transformer encoder; they differ in names and in a few
//! details that this struct makes explicit:
//!
//! | | BERT | DistilBERT | RoBERTa |
//! |---|---|---|---|
//! | keys | `hidden_size`, `num_hidden_layers`, `num_attention_heads`, `intermediate_size`, `hidden_act` | `dim`, `n_layers`, `n_heads`, `hidden_dim`, `activation` | as BERT |
//! | token types | `type_vocab_size` (2) | none (0) | `type_vocab_size` (1) |
//! | positions | 0, 1, 2, … | 0, 1, 2, … | `pad_token_id + 1`, … for real tokens; `pad_token_id` for padding |
//! | pad id | `pad_token_id` (0) | `pad_token_id` (0) | `pad_token_id` (1) |
//! | LayerNorm eps | `layer_norm_eps` (1e-12) | 1e-12 (fixed) | `layer_norm_eps` (1e-5 in roberta-base) |
//! | pooler | yes | no | yes |
//!
//! Missing keys take transformers' defaults for the family's config class.

use crate::error::{Error, Result};
use serde_json::Value;
use std::path::Path;

/// The model families moodgrad's encoder covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Bert,
    DistilBert,
    Roberta,
}

impl Family {
    /// `model_type` in config.json.
    pub fn model_type(self) -> &'static str {
        match self {
            Family::Bert => "bert",
            Family::DistilBert => "distilbert",
            Family::Roberta => "roberta",
        }
    }
    /// transformers' `base_model_prefix`: what task checkpoints put before the encoder's keys.
    pub fn base_prefix(self) -> &'static str {
        match self {
            Family::Bert => "bert.",
            Family::DistilBert => "distilbert.",
            Family::Roberta => "roberta.",
        }
    }
    pub fn from_model_type(t: &str) -> Option<Family> {
        match t {
            "bert" => Some(Family::Bert),
            "distilbert" => Some(Family::DistilBert),
            "roberta" => Some(Family::Roberta),
            _ => None,
        }
    }
}

/// The feed-forward activation (`hidden_act` / `activation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU, x·Φ(x) (transformers' "gelu").
    Gelu,
    /// The tanh approximation (transformers' "gelu_new", "gelu_pytorch_tanh", "gelu_fast" differ
    /// only in rounding).
    GeluTanh,
    Relu,
}

impl Activation {
    pub fn parse(s: &str) -> Option<Activation> {
        match s {
            "gelu" => Some(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Activation::GeluTanh),
            "relu" => Some(Activation::Relu),
            _ => None,
        }
    }
}

/// Everything the encoder needs from config.json.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderConfig {
    pub family: Family,
    pub vocab_size: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    /// Rows of the position embedding table.
    pub max_positions: usize,
    /// Rows of the token type table; 0 for DistilBERT (no table).
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub activation: Activation,
    pub pad_token_id: usize,
    /// Position id of the first token: 0, or `pad_token_id + 1` for RoBERTa (whose padding tokens
    /// take position `pad_token_id`, as transformers' `create_position_ids_from_input_ids` does).
    pub position_offset: usize,
    /// Whether the checkpoint family has a pooler (`pooler.dense`, tanh on the [CLS] state).
    pub has_pooler: bool,
    /// Dropout on embeddings, attention output and FFN output (`hidden_dropout_prob` / `dropout`).
    pub hidden_dropout: f64,
    /// Dropout on the attention probabilities (`attention_probs_dropout_prob` / `attention_dropout`).
    pub attention_dropout: f64,
}

impl EncoderConfig {
    /// The longest input (in tokens, specials included) the position table allows.
    pub fn max_len(&self) -> usize {
        self.max_positions.saturating_sub(self.position_offset)
    }
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads.max(1)
    }

    /// Reads and checks `config.json`.
    pub fn from_file(path: &Path) -> Result<EncoderConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::file(path, format!("cannot read the model config: {e}")))?;
        Self::from_json_str(&text).map_err(|m| Error::file(path, m))
    }

    /// Parses config.json text; the error message names the bad or missing key.
    pub fn from_json_str(text: &str) -> std::result::Result<EncoderConfig, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let Some(model_type) = v.get("model_type").and_then(Value::as_str) else {
            return Err(
                "no `model_type` key: cannot tell which encoder this is (moodgrad reads bert, distilbert and roberta)"
                    .into(),
            );
        };
        let family = Family::from_model_type(model_type).ok_or_else(|| {
            format!("model_type `{model_type}` is not supported: moodgrad's lyrics encoder reads bert, distilbert and roberta")
        })?;
        let c = match family {
            Family::Bert | Family::Roberta => {
                let roberta = family == Family::Roberta;
                if let Some(p) = v.get("position_embedding_type").and_then(Value::as_str)
                    && p != "absolute"
                {
                    return Err(format!("position_embedding_type `{p}` is not supported (only `absolute`)"));
                }
                let pad = get_usize(&v, "pad_token_id", if roberta { 1 } else { 0 })?;
                EncoderConfig {
                    family,
                    vocab_size: get_usize(&v, "vocab_size", if roberta { 50265 } else { 30522 })?,
                    hidden: get_usize(&v, "hidden_size", 768)?,
                    layers: get_usize(&v, "num_hidden_layers", 12)?,
                    heads: get_usize(&v, "num_attention_heads", 12)?,
                    intermediate: get_usize(&v, "intermediate_size", 3072)?,
                    max_positions: get_usize(&v, "max_position_embeddings", 512)?,
                    type_vocab_size: get_usize(&v, "type_vocab_size", 2)?,
                    layer_norm_eps: get_f64(&v, "layer_norm_eps", 1e-12)?,
                    activation: get_activation(&v, "hidden_act")?,
                    pad_token_id: pad,
                    position_offset: if roberta { pad + 1 } else { 0 },
                    has_pooler: true,
                    hidden_dropout: get_f64(&v, "hidden_dropout_prob", 0.1)?,
                    attention_dropout: get_f64(&v, "attention_probs_dropout_prob", 0.1)?,
                }
            }
            Family::DistilBert => EncoderConfig {
                family,
                vocab_size: get_usize(&v, "vocab_size", 30522)?,
                hidden: get_usize(&v, "dim", 768)?,
                layers: get_usize(&v, "n_layers", 6)?,
                heads: get_usize(&v, "n_heads", 12)?,
                intermediate: get_usize(&v, "hidden_dim", 3072)?,
                max_positions: get_usize(&v, "max_position_embeddings", 512)?,
                type_vocab_size: 0,
                // DistilBERT's LayerNorms are built with eps=1e-12 whatever the config says.
                layer_norm_eps: 1e-12,
                activation: get_activation(&v, "activation")?,
                pad_token_id: get_usize(&v, "pad_token_id", 0)?,
                position_offset: 0,
                has_pooler: false,
                hidden_dropout: get_f64(&v, "dropout", 0.1)?,
                attention_dropout: get_f64(&v, "attention_dropout", 0.1)?,
            },
        };
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden size", self.hidden),
            ("layers", self.layers),
            ("attention heads", self.heads),
            ("intermediate size", self.intermediate),
            ("max_position_embeddings", self.max_positions),
        ] {
            if v == 0 {
                return Err(format!("{name} is 0"));
            }
        }
        if !self.hidden.is_multiple_of(self.heads) {
            return Err(format!("hidden size {} is not a multiple of the {} attention heads", self.hidden, self.heads));
        }
        if self.pad_token_id >= self.vocab_size {
            return Err(format!("pad_token_id {} is outside the vocabulary ({})", self.pad_token_id, self.vocab_size));
        }
        if self.max_positions <= self.position_offset + 1 {
            return Err(format!(
                "max_position_embeddings {} leaves no positions after the offset {}",
                self.max_positions, self.position_offset
            ));
        }
        if !(self.layer_norm_eps > 0.0 && self.layer_norm_eps.is_finite()) {
            return Err(format!("layer_norm_eps {} must be positive", self.layer_norm_eps));
        }
        Ok(())
    }
}

fn get_usize(v: &Value, key: &str, default: usize) -> std::result::Result<usize, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(x) => x.as_u64().map(|n| n as usize).ok_or_else(|| format!("`{key}` is {x}, not a non-negative integer")),
    }
}

fn get_f64(v: &Value, key: &str, default: f64) -> std::result::Result<f64, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(x) => x.as_f64().ok_or_else(|| format!("`{key}` is {x}, not a number")),
    }
}

fn get_activation(v: &Value, key: &str) -> std::result::Result<Activation, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(Activation::Gelu),
        Some(Value::String(s)) => Activation::parse(s)
            .ok_or_else(|| format!("`{key}` = `{s}` is not supported (gelu, gelu_new / gelu_pytorch_tanh, relu)")),
        Some(x) => Err(format!("`{key}` is {x}, not an activation name")),
    }
}
