//! A model given as a folder or as a Hugging Face name, found on this machine only.
//!
//! A name such as `bert-base-uncased` or `sentence-transformers/all-MiniLM-L6-v2` is looked up the
//! way `from_pretrained` does offline: in the hub cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//! `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`), folder
//! `models--<org>--<name>/snapshots/<revision>/`, the revision being the commit hash in
//! `refs/main` when that file exists, else the only snapshot. Nothing is downloaded.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Where hub caches are looked for (built from the environment, or by hand in tests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheRoots {
    pub roots: Vec<PathBuf>,
}

impl CacheRoots {
    /// The hub cache locations huggingface_hub uses, in its order of precedence (only the first
    /// that the environment defines, plus the default, as a fallback worth naming in errors).
    pub fn from_env() -> CacheRoots {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let mut roots = Vec::new();
        if let Some(p) = var("HF_HUB_CACHE") {
            roots.push(p);
        }
        if let Some(p) = var("HF_HOME") {
            roots.push(p.join("hub"));
        }
        if let Some(p) = var("XDG_CACHE_HOME") {
            roots.push(p.join("huggingface").join("hub"));
        }
        if let Some(p) = var("HOME") {
            roots.push(p.join(".cache").join("huggingface").join("hub"));
        }
        roots.dedup();
        CacheRoots { roots }
    }
}

/// A folder path if `spec` is one, else the snapshot folder of the hub name `spec` in `roots`.
pub fn resolve_model_path(spec: &str, roots: &CacheRoots) -> Result<PathBuf> {
    let as_path = Path::new(spec);
    if as_path.is_dir() {
        return Ok(as_path.to_path_buf());
    }
    if as_path.exists() {
        return Err(Error::file(
            as_path,
            "is a file; give the model's folder (with config.json and model.safetensors)",
        ));
    }
    let Some(repo) = hub_folder_name(spec) else {
        return Err(Error::Invalid(format!(
            "lyrics model `{spec}`: no such folder, and not a Hugging Face name (`name` or `org/name`); \
             give the model's folder (with config.json, model.safetensors and the tokenizer files), \
             or use `--lyrics-model builtin`, the small built-in encoder"
        )));
    };
    let mut looked = vec![format!("{spec} (as a folder: it does not exist)")];
    for root in &roots.roots {
        let repo_dir = root.join(&repo);
        match snapshot(&repo_dir)? {
            Some(dir) => return Ok(dir),
            None => looked.push(format!("{}", repo_dir.display())),
        }
    }
    Err(Error::Invalid(format!(
        "lyrics model `{spec}` not found. Looked in:\n  {}\n\
         moodgrad never downloads. On a machine with network run `huggingface-cli download {spec}` \
         (or `python -c \"from transformers import AutoModel, AutoTokenizer; AutoModel.from_pretrained('{spec}'); AutoTokenizer.from_pretrained('{spec}')\"`), \
         then copy its ~/.cache/huggingface/hub/{repo} folder into one of the places above (or set HF_HOME), \
         or pass the model's folder itself; or use `--lyrics-model builtin`, the small built-in encoder, which needs no download.",
        looked.join("\n  "),
    )))
}

/// `org/name` → `models--org--name`; `None` for something that cannot be a hub id.
pub fn hub_folder_name(spec: &str) -> Option<String> {
    let parts: Vec<&str> = spec.split('/').collect();
    let ok = |s: &str| {
        !s.is_empty() && s != "." && s != ".." && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    match parts.as_slice() {
        [name] if ok(name) => Some(format!("models--{name}")),
        [org, name] if ok(org) && ok(name) => Some(format!("models--{org}--{name}")),
        _ => None,
    }
}

/// The snapshot folder of one cached repository, `None` if the repository is not there.
fn snapshot(repo_dir: &Path) -> Result<Option<PathBuf>> {
    let snapshots = repo_dir.join("snapshots");
    if !snapshots.is_dir() {
        return Ok(None);
    }
    let refs_main = repo_dir.join("refs").join("main");
    if refs_main.is_file() {
        let rev =
            std::fs::read_to_string(&refs_main).map_err(|e| Error::file(&refs_main, format!("cannot read: {e}")))?;
        let rev = rev.trim();
        let dir = snapshots.join(rev);
        if !dir.is_dir() {
            return Err(Error::file(
                &refs_main,
                format!(
                    "names revision {rev}, but {} does not exist: the cache is incomplete; download the model again",
                    dir.display()
                ),
            ));
        }
        return Ok(Some(dir));
    }
    let mut revs: Vec<PathBuf> = std::fs::read_dir(&snapshots)
        .map_err(|e| Error::file(&snapshots, format!("cannot list: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    revs.sort();
    match revs.len() {
        0 => Ok(None),
        1 => Ok(revs.pop()),
        _ => Err(Error::file(
            &snapshots,
            format!(
                "{} snapshots and no refs/main to choose one: {}; pass the one you want as a folder",
                revs.len(),
                revs.iter()
                    .filter_map(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}
