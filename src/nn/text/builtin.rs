//! The small built-in encoder (a BERT at stated small sizes with a WordPiece vocabulary learned
//! from the training lyrics), and writing any encoder as a Hugging Face folder (`config.json`,
//! `tokenizer.json`, `model.safetensors` with the bare model's names) that moodgrad and
//! transformers both load.

use super::encoder::TextEncoder;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::io::{self, HostTensor, TensorFile};
use crate::params::ParamStore;
use crate::text::hf::{Activation, EncoderConfig, Family, family_name};
use crate::text::tokenize::LyricsTokenizer;
use serde_json::json;
use std::path::Path;

/// Sizes of the built-in encoder (2 layers, hidden 128, 4 heads, FFN 512, ~8k WordPiece).
#[derive(Clone, Debug, PartialEq)]
pub struct BuiltinConfig {
    /// Largest vocabulary learned (specials included); fewer when the lyrics have fewer pieces.
    pub vocab_size: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    /// Position table rows: the longest input in tokens.
    pub max_positions: usize,
    pub dropout: f64,
}

impl Default for BuiltinConfig {
    fn default() -> Self {
        BuiltinConfig {
            vocab_size: 8000,
            hidden: 128,
            layers: 2,
            heads: 4,
            intermediate: 512,
            max_positions: 512,
            dropout: 0.1,
        }
    }
}

impl BuiltinConfig {
    /// The BERT config of these sizes around `tokenizer`'s vocabulary (pad id from the tokenizer).
    pub fn encoder_config(&self, tokenizer: &LyricsTokenizer) -> Result<EncoderConfig> {
        if self.heads == 0 || !self.hidden.is_multiple_of(self.heads) {
            return Err(Error::Invalid(format!(
                "built-in encoder: hidden {} is not a multiple of {} heads",
                self.hidden, self.heads
            )));
        }
        let c = EncoderConfig {
            family: Family::Bert,
            vocab_size: tokenizer.vocab_size(),
            hidden: self.hidden,
            layers: self.layers,
            heads: self.heads,
            intermediate: self.intermediate,
            max_positions: self.max_positions,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            activation: Activation::Gelu,
            pad_token_id: tokenizer.pad_id() as usize,
            position_offset: 0,
            has_pooler: true,
            hidden_dropout: self.dropout,
            attention_dropout: self.dropout,
        };
        // The same checks a config.json gets.
        EncoderConfig::from_json_str(&config_json(&c).to_string())
            .map_err(|m| Error::Invalid(format!("built-in encoder: {m}")))
    }
}

/// `config.json` of `c` as transformers writes it for the family (the keys moodgrad reads back).
pub fn config_json(c: &EncoderConfig) -> serde_json::Value {
    let act = match c.activation {
        Activation::Gelu => "gelu",
        Activation::GeluTanh => "gelu_new",
        Activation::Relu => "relu",
    };
    match c.family {
        Family::Bert | Family::Roberta => json!({
            "architectures": [if c.family == Family::Bert { "BertModel" } else { "RobertaModel" }],
            "model_type": c.family.model_type(),
            "vocab_size": c.vocab_size,
            "hidden_size": c.hidden,
            "num_hidden_layers": c.layers,
            "num_attention_heads": c.heads,
            "intermediate_size": c.intermediate,
            "hidden_act": act,
            "max_position_embeddings": c.max_positions,
            "type_vocab_size": c.type_vocab_size,
            "layer_norm_eps": c.layer_norm_eps,
            "pad_token_id": c.pad_token_id,
            "hidden_dropout_prob": c.hidden_dropout,
            "attention_probs_dropout_prob": c.attention_dropout,
            "initializer_range": super::encoder::INIT_STD,
            "position_embedding_type": "absolute",
        }),
        Family::DistilBert => json!({
            "architectures": ["DistilBertModel"],
            "model_type": "distilbert",
            "vocab_size": c.vocab_size,
            "dim": c.hidden,
            "n_layers": c.layers,
            "n_heads": c.heads,
            "hidden_dim": c.intermediate,
            "activation": act,
            "max_position_embeddings": c.max_positions,
            "pad_token_id": c.pad_token_id,
            "dropout": c.hidden_dropout,
            "attention_dropout": c.attention_dropout,
            "initializer_range": super::encoder::INIT_STD,
        }),
    }
}

/// Writes `encoder` (its current weights) and `tokenizer` as a Hugging Face folder: config.json,
/// tokenizer.json, model.safetensors with the bare model's tensor names. `moodgrad encode --model
/// DIR` and `transformers.AutoModel.from_pretrained(DIR)` both read it.
pub fn save_hf_dir<B: Backend>(
    store: &ParamStore<B>,
    encoder: &TextEncoder,
    tokenizer: &LyricsTokenizer,
    dir: &Path,
) -> Result<()> {
    crate::data::create_dir(dir)?;
    let cfg = serde_json::to_vec_pretty(&config_json(&encoder.config))
        .map_err(|e| Error::Invalid(format!("config.json: {e}")))?;
    crate::io::write_atomic(&dir.join("config.json"), &cfg)?;
    tokenizer.save(&dir.join("tokenizer.json"))?;
    let mut file = TensorFile::default();
    let be = &store.backend;
    for spec in crate::text::hf::encoder_tensors(&encoder.config) {
        let id = store
            .find(&encoder.param_name(&spec.name))
            .ok_or_else(|| Error::Invalid(format!("the store has no `{}`", encoder.param_name(&spec.name))))?;
        let t = store.value(id);
        let data: Vec<f32> = t.to_f64(be)?.into_iter().map(|v| v as f32).collect();
        file.tensors.insert(family_name(encoder.config.family, &spec.name), HostTensor::f32(t.shape(), data));
    }
    file.metadata.insert("format".into(), "pt".into());
    io::write(&dir.join("model.safetensors"), &file)
}
