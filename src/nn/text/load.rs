//! A Hugging Face folder's weights into a `TextEncoder`'s store entries, as the folder is:
//! `model.safetensors` (or its shards), bare or with a task model's prefix, F32/F16/BF16, with
//! bert-base-uncased's legacy `LayerNorm.gamma/beta` names, heads (`cls.`, `lm_head.`, …) reported
//! as unused.

use super::encoder::TextEncoder;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::io::{self, LoadOptions};
use crate::params::ParamStore;
use crate::text::hf::{HfModelDir, KeyMap, map_checkpoint_key};
use std::collections::{BTreeSet, HashMap};

/// What loading did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadSummary {
    /// Store names filled from the checkpoint.
    pub loaded: Vec<String>,
    /// Checkpoint keys not loaded, with why (task heads, the position_ids buffer).
    pub unused: Vec<(String, String)>,
    /// Encoder tensors the checkpoint did not have (only optional ones: the pooler of a masked-LM
    /// checkpoint; a required one is an error). These keep their fresh initialisation.
    pub missing: Vec<String>,
    /// (store name, file dtype) of tensors converted to F32 on reading.
    pub converted: Vec<(String, &'static str)>,
}

impl LoadSummary {
    /// One paragraph for a log.
    pub fn describe(&self) -> String {
        let mut s = format!("loaded {} tensors", self.loaded.len());
        if !self.converted.is_empty() {
            let kinds: BTreeSet<&str> = self.converted.iter().map(|c| c.1).collect();
            s += &format!(
                " ({} converted from {} to F32)",
                self.converted.len(),
                kinds.into_iter().collect::<Vec<_>>().join("/")
            );
        }
        if !self.unused.is_empty() {
            let shown: Vec<String> = self.unused.iter().take(4).map(|(k, why)| format!("{k} ({why})")).collect();
            s += &format!("; {} checkpoint tensors unused: {}", self.unused.len(), shown.join(", "));
            if self.unused.len() > 4 {
                s += ", …";
            }
        }
        if !self.missing.is_empty() {
            s += &format!("; not in the checkpoint (left at their initial values): {}", self.missing.join(", "));
        }
        s
    }
}

/// Loads `dir`'s weights into `encoder`'s entries of `store`. The checkpoint is checked against
/// config.json first (`HfModelDir::plan`: a missing layer, a wrong shape or two keys for one
/// tensor are errors naming the file and the tensor); nothing changes unless every check passes.
pub fn load_hf_weights<B: Backend>(
    store: &mut ParamStore<B>,
    encoder: &TextEncoder,
    dir: &HfModelDir,
) -> Result<LoadSummary> {
    if dir.config.family != encoder.config.family {
        return Err(Error::file(
            &dir.config_path,
            format!(
                "a {} checkpoint cannot load into a {} encoder",
                dir.config.family.model_type(),
                encoder.config.family.model_type()
            ),
        ));
    }
    let plan = dir.plan()?;
    let family = encoder.config.family;
    let mut summary = LoadSummary { unused: plan.unused.clone(), ..Default::default() };
    for path in &dir.weights {
        let file = io::read(path)?;
        // checkpoint key → store name, owned by the rename (the loader wants a 'static closure).
        let names: HashMap<String, String> = file
            .tensors
            .keys()
            .filter_map(|k| match map_checkpoint_key(family, k) {
                KeyMap::Encoder(c) => Some((k.clone(), encoder.param_name(&c))),
                KeyMap::Unused(_) => None,
            })
            .collect();
        let rename = move |key: &str| names.get(key).cloned();
        let opts = LoadOptions { strict: false, prefix_map: vec![], rename: Some(&rename) };
        let report = io::load_state_dict_with(store, path, &file, &opts, |_| true)?;
        summary.loaded.extend(report.loaded);
        summary.converted.extend(report.converted);
    }
    let loaded: BTreeSet<&str> = summary.loaded.iter().map(String::as_str).collect();
    summary.missing = encoder
        .params()
        .iter()
        .map(|&id| store.name(id).to_string())
        .filter(|n| !loaded.contains(n.as_str()))
        .collect();
    Ok(summary)
}
