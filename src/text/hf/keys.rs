//! Checkpoint keys → the encoder's canonical tensor names, as transformers loads them.
//!
//! What transformers does when a checkpoint is loaded into the bare `BertModel` / `RobertaModel` /
//! `DistilBertModel` (checked key by key, by value, in `tests/fixtures/text/key_map.json`):
//! - a task model's `bert.` / `roberta.` / `distilbert.` prefix is dropped;
//! - the legacy names `LayerNorm.gamma` / `LayerNorm.beta` (bert-base-uncased's own checkpoint)
//!   become `LayerNorm.weight` / `LayerNorm.bias`;
//! - everything else — heads (`cls.`, `lm_head.`, `classifier.`, `pre_classifier.`, `qa_outputs.`,
//!   `vocab_transform.`, `vocab_layer_norm.`, `vocab_projector.`) and the stale buffer
//!   `embeddings.position_ids` — is not loaded.
//!
//! Canonical names are BertModel's for all three families, so one encoder serves them all.
//! DistilBERT's own names map one to one ([`family_name`] goes back):
//!
//! | canonical (BERT) | DistilBERT |
//! |---|---|
//! | `encoder.layer.N.attention.self.{query,key,value}` | `transformer.layer.N.attention.{q,k,v}_lin` |
//! | `encoder.layer.N.attention.output.dense` | `transformer.layer.N.attention.out_lin` |
//! | `encoder.layer.N.attention.output.LayerNorm` | `transformer.layer.N.sa_layer_norm` |
//! | `encoder.layer.N.intermediate.dense` | `transformer.layer.N.ffn.lin1` |
//! | `encoder.layer.N.output.dense` | `transformer.layer.N.ffn.lin2` |
//! | `encoder.layer.N.output.LayerNorm` | `transformer.layer.N.output_layer_norm` |
//!
//! (the embeddings keep their names; DistilBERT has no `token_type_embeddings` and no pooler).

use super::config::{EncoderConfig, Family};
use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// Where one checkpoint key goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyMap {
    /// Loaded into the encoder under this canonical name.
    Encoder(String),
    /// Not loaded; the reason, for the "unused keys" report.
    Unused(String),
}

/// Maps one checkpoint key of a `family` model (see the module doc).
pub fn map_checkpoint_key(family: Family, key: &str) -> KeyMap {
    let bare = key.strip_prefix(family.base_prefix()).unwrap_or(key);
    let renamed = legacy_rename(bare);
    if bare.ends_with("embeddings.position_ids") {
        return KeyMap::Unused("buffer: position ids are computed, not loaded".into());
    }
    let canonical = match family {
        Family::Bert | Family::Roberta => Some(renamed.clone()).filter(|k| is_canonical(k, family)),
        Family::DistilBert => distil_to_canonical(&renamed),
    };
    match canonical {
        Some(c) => KeyMap::Encoder(c),
        None => KeyMap::Unused(match head_name(bare) {
            Some(head) => format!("task head `{head}`, not part of the encoder"),
            None => format!("not a {} encoder tensor", family.model_type()),
        }),
    }
}

/// The name transformers' bare model of `family` gives a canonical tensor (inverse of the mapping).
pub fn family_name(family: Family, canonical: &str) -> String {
    if family != Family::DistilBert {
        return canonical.to_string();
    }
    let Some(rest) = canonical.strip_prefix("encoder.layer.") else {
        return canonical.to_string();
    };
    let (n, tail) = rest.split_once('.').unwrap_or((rest, ""));
    let tail = DISTIL_LAYER
        .iter()
        .find_map(|(c, d)| tail.strip_prefix(c).map(|t| format!("{d}{t}")))
        .unwrap_or_else(|| tail.to_string());
    format!("transformer.layer.{n}.{tail}")
}

/// A tensor the encoder reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
    /// False for the pooler: a checkpoint without it (a masked-LM model) still loads; transformers
    /// then initialises it at random, moodgrad reports it missing and must not use it.
    pub required: bool,
}

/// Every canonical tensor of the encoder `config` describes, with its shape (PyTorch layout:
/// Linear weights are `[out, in]`).
pub fn encoder_tensors(config: &EncoderConfig) -> Vec<TensorSpec> {
    let (h, i) = (config.hidden, config.intermediate);
    let mut v = Vec::new();
    let mut add = |name: String, shape: Vec<usize>, required: bool| v.push(TensorSpec { name, shape, required });
    add("embeddings.word_embeddings.weight".into(), vec![config.vocab_size, h], true);
    add("embeddings.position_embeddings.weight".into(), vec![config.max_positions, h], true);
    if config.type_vocab_size > 0 {
        add("embeddings.token_type_embeddings.weight".into(), vec![config.type_vocab_size, h], true);
    }
    add("embeddings.LayerNorm.weight".into(), vec![h], true);
    add("embeddings.LayerNorm.bias".into(), vec![h], true);
    for l in 0..config.layers {
        let p = format!("encoder.layer.{l}.");
        for m in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"] {
            add(format!("{p}{m}.weight"), vec![h, h], true);
            add(format!("{p}{m}.bias"), vec![h], true);
        }
        add(format!("{p}intermediate.dense.weight"), vec![i, h], true);
        add(format!("{p}intermediate.dense.bias"), vec![i], true);
        add(format!("{p}output.dense.weight"), vec![h, i], true);
        add(format!("{p}output.dense.bias"), vec![h], true);
        for ln in ["attention.output.LayerNorm", "output.LayerNorm"] {
            add(format!("{p}{ln}.weight"), vec![h], true);
            add(format!("{p}{ln}.bias"), vec![h], true);
        }
    }
    if config.has_pooler {
        add("pooler.dense.weight".into(), vec![h, h], false);
        add("pooler.dense.bias".into(), vec![h], false);
    }
    v
}

/// A checkpoint's tensor as its header describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointTensor {
    pub key: String,
    pub dtype: String,
    pub shape: Vec<usize>,
}

/// How a checkpoint's keys fill the encoder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckpointPlan {
    /// canonical name → checkpoint key.
    pub load: BTreeMap<String, String>,
    /// Checkpoint keys not loaded, with the reason (what transformers reports as unexpected).
    pub unused: Vec<(String, String)>,
    /// Optional encoder tensors no key fills (the pooler of a masked-LM checkpoint).
    pub missing_optional: Vec<String>,
}

/// Checks a checkpoint's keys and shapes against the encoder and says which key fills which
/// tensor. Errors name the checkpoint (`source`), the tensor and the fix: a required tensor
/// missing, a shape that disagrees with config.json, two keys for one tensor.
pub fn plan_checkpoint(config: &EncoderConfig, tensors: &[CheckpointTensor], source: &str) -> Result<CheckpointPlan> {
    let specs = encoder_tensors(config);
    let by_name: BTreeMap<&str, &TensorSpec> = specs.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut plan = CheckpointPlan::default();
    for t in tensors {
        match map_checkpoint_key(config.family, &t.key) {
            KeyMap::Unused(why) => plan.unused.push((t.key.clone(), why)),
            KeyMap::Encoder(c) => {
                let Some(spec) = by_name.get(c.as_str()) else {
                    // A well-formed name beyond the config (e.g. a 13th layer): config and weights disagree.
                    return Err(Error::tensor(
                        &t.key,
                        format!(
                            "{source}: the checkpoint has `{c}`, which a {}-layer encoder per config.json does not have",
                            config.layers
                        ),
                    ));
                };
                if spec.shape != t.shape {
                    return Err(Error::tensor(
                        &t.key,
                        format!(
                            "{source}: shape {:?}, but config.json implies {:?} for `{c}`; is config.json from the same model?",
                            t.shape, spec.shape
                        ),
                    ));
                }
                if let Some(prev) = plan.load.insert(c.clone(), t.key.clone()) {
                    return Err(Error::tensor(&t.key, format!("{source}: `{prev}` and `{}` both map to `{c}`", t.key)));
                }
            }
        }
    }
    let missing: Vec<&TensorSpec> = specs.iter().filter(|s| !plan.load.contains_key(&s.name)).collect();
    let required: Vec<String> =
        missing.iter().filter(|s| s.required).map(|s| family_name(config.family, &s.name)).collect();
    if !required.is_empty() {
        let shown: Vec<&str> = required.iter().map(String::as_str).take(6).collect();
        return Err(Error::Invalid(format!(
            "{source}: {} encoder tensor(s) missing, e.g. {} — is this a {} checkpoint matching its config.json?",
            required.len(),
            shown.join(", "),
            config.family.model_type()
        )));
    }
    plan.missing_optional = missing.iter().map(|s| s.name.clone()).collect();
    Ok(plan)
}

const DISTIL_LAYER: [(&str, &str); 8] = [
    ("attention.self.query", "attention.q_lin"),
    ("attention.self.key", "attention.k_lin"),
    ("attention.self.value", "attention.v_lin"),
    ("attention.output.dense", "attention.out_lin"),
    ("attention.output.LayerNorm", "sa_layer_norm"),
    ("intermediate.dense", "ffn.lin1"),
    ("output.dense", "ffn.lin2"),
    ("output.LayerNorm", "output_layer_norm"),
];

fn legacy_rename(key: &str) -> String {
    key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
}

fn is_canonical(key: &str, family: Family) -> bool {
    const EMB: [&str; 5] = [
        "embeddings.word_embeddings.weight",
        "embeddings.position_embeddings.weight",
        "embeddings.token_type_embeddings.weight",
        "embeddings.LayerNorm.weight",
        "embeddings.LayerNorm.bias",
    ];
    if EMB.contains(&key) {
        return !(family == Family::DistilBert && key.contains("token_type"));
    }
    if family != Family::DistilBert && (key == "pooler.dense.weight" || key == "pooler.dense.bias") {
        return true;
    }
    let Some(rest) = key.strip_prefix("encoder.layer.") else {
        return false;
    };
    let Some((n, tail)) = rest.split_once('.') else {
        return false;
    };
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Some((module, param)) = tail.rsplit_once('.') else {
        return false;
    };
    (param == "weight" || param == "bias") && DISTIL_LAYER.iter().any(|(c, _)| *c == module)
}

fn distil_to_canonical(key: &str) -> Option<String> {
    if key.starts_with("embeddings.") {
        return Some(key.to_string()).filter(|k| is_canonical(k, Family::DistilBert));
    }
    let rest = key.strip_prefix("transformer.layer.")?;
    let (n, tail) = rest.split_once('.')?;
    let (module, param) = tail.rsplit_once('.')?;
    let canonical_module = DISTIL_LAYER.iter().find(|(_, d)| *d == module)?.0;
    let c = format!("encoder.layer.{n}.{canonical_module}.{param}");
    is_canonical(&c, Family::DistilBert).then_some(c)
}

fn head_name(key: &str) -> Option<&'static str> {
    const HEADS: [&str; 9] = [
        "cls.",
        "lm_head.",
        "classifier.",
        "pre_classifier.",
        "qa_outputs.",
        "vocab_transform.",
        "vocab_layer_norm.",
        "vocab_projector.",
        "score.",
    ];
    HEADS.iter().find(|h| key.starts_with(*h)).map(|h| h.trim_end_matches('.'))
}
