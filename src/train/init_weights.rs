//! `train --init-weights FILE`: a new run's starting weights from a safetensors file under
//! PyTorch's names (a `torch.save`d state_dict converted by tools/pth_to_safetensors.py, another
//! run's `best.safetensors`, a fixture), instead of the seed's initialisation.
//!
//! Strict by default, as `load_state_dict(strict=True)`: every tensor of the model must be in
//! the file with its shape, and nothing else may be (a frozen encoder's tensors excepted, as
//! `evaluate --weights` accepts them). `--init-prefix FROM=TO` renames file keys first (e.g.
//! `model.=` for a checkpoint saved from a wrapper); `--init-partial` loads what matches and
//! reports the rest, as `strict=False`. Either way what was loaded, missing and left unused is
//! printed and recorded in `run.json`.

use super::session::Session;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::io::{self, LoadOptions};
use serde_json::{Value, json};
use std::path::PathBuf;

#[derive(Clone, Debug, Default)]
pub struct InitWeights {
    pub path: PathBuf,
    /// (file prefix, model prefix) pairs, the first match applied.
    pub prefix_map: Vec<(String, String)>,
    /// Load what matches; missing and unexpected tensors are reported, not refused.
    pub partial: bool,
}

/// `FROM=TO` of `--init-prefix`.
pub fn parse_prefix(arg: &str) -> std::result::Result<(String, String), String> {
    arg.split_once('=')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .ok_or_else(|| format!("`{arg}`: expected FROM=TO, e.g. `model.=` or `bert.=lyrics_tower.`"))
}

/// What `apply` loaded, for the user and `run.json`.
pub struct InitRecord {
    pub lines: Vec<String>,
    pub json: Value,
}

/// Loads `init` into the session's weights; nothing changes unless it all fits.
pub fn apply<B: Backend>(s: &mut Session<B>, init: &InitWeights) -> Result<InitRecord> {
    let path = &init.path;
    let file = io::read(path)?;
    for (name, t) in &file.tensors {
        if t.is_float() && t.to_f64().iter().any(|v| !v.is_finite()) {
            return Err(Error::file(
                path,
                format!("tensor `{name}` holds NaN or infinity: these weights cannot start a run"),
            ));
        }
    }
    let lyrics_in_model = s.store.entries().iter().any(|e| e.name.starts_with("lyrics_tower."));
    let opts = LoadOptions { strict: !init.partial, prefix_map: init.prefix_map.clone(), rename: None };
    let report = io::load_state_dict_with(&mut s.store, path, &file, &opts, |k| {
        !lyrics_in_model && k.starts_with("lyrics_tower.")
    })?;
    if report.loaded.is_empty() {
        return Err(Error::file(
            path,
            "no tensor of this file matches the model's names (wrong file, or give --init-prefix FROM=TO)",
        ));
    }
    let mut lines = vec![format!(
        "initial weights: {} tensor(s) from {}{}",
        report.loaded.len(),
        path.display(),
        if init.partial { " (partial)" } else { "" }
    )];
    let shown = |v: &[String]| v.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if !report.missing.is_empty() {
        lines.push(format!(
            "  missing from the file, left at the seed's initialisation: {} ({})",
            report.missing.len(),
            shown(&report.missing)
        ));
    }
    if !report.unexpected.is_empty() {
        lines.push(format!(
            "  in the file but not in the model, unused: {} ({})",
            report.unexpected.len(),
            shown(&report.unexpected)
        ));
    }
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
    let json = json!({
        "path": abs.display().to_string(),
        "sha256": crate::text::hash::sha256_file(path)?,
        "partial": init.partial,
        "prefix_map": init.prefix_map.iter().map(|(a, b)| json!([a, b])).collect::<Vec<_>>(),
        "loaded": report.loaded.len(),
        "missing": report.missing,
        "unexpected": report.unexpected,
    });
    Ok(InitRecord { lines, json })
}
