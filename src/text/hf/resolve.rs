//! A model given as a folder or as a Hugging Face name, found in the hub cache or downloaded into
//! it, as `from_pretrained` does.
//!
//! A name such as `bert-base-uncased` or `sentence-transformers/all-MiniLM-L6-v2` is looked up in
//! the hub cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`,
//! else `~/.cache/huggingface/hub`), folder `models--<org>--<name>/snapshots/<commit>/`, the commit
//! being the one `refs/main` names when that file exists, else the only snapshot. A name may pin a
//! revision: `name@v1.0` (a branch or tag: `refs/v1.0` names its commit) or `name@<commit hash>`
//! (that snapshot). A cached snapshot holding what the caller needs is used as it is, with no
//! network access (to update a branch, delete its `refs/` file).
//!
//! Otherwise the files are downloaded ([`super::download`]) into the first of those folders, in
//! the layout huggingface_hub writes (so Python finds them too), unless `HF_HUB_OFFLINE=1` or
//! `TRANSFORMERS_OFFLINE=1`. `HF_ENDPOINT` names another hub (a mirror); `HF_TOKEN` is sent for
//! gated or private models. Every failure names the places looked and how to bring the model by
//! hand.

use super::download::download;
use super::hub::Hub;
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
    /// Downloads go into the first.
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

/// What the caller reads from the folder: decides when a cached snapshot is complete and what a
/// download fetches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// config.json, the weights and the tokenizer (an encoder).
    Model,
    /// The tokenizer files alone (`preprocess --tokenizer`).
    Tokenizer,
}

/// A hub name, `name` or `org/name`, with the revision after an `@`, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubName {
    pub repo: String,
    pub revision: Option<String>,
}

impl HubName {
    /// `None` for something that cannot be a hub id (a path with more parts, odd characters).
    pub fn parse(spec: &str) -> Option<HubName> {
        let (repo, revision) = match spec.split_once('@') {
            Some((r, rev)) => (r, Some(rev)),
            None => (spec, None),
        };
        hub_folder_name(repo)?;
        if let Some(rev) = revision
            && !is_revision(rev)
        {
            return None;
        }
        Some(HubName { repo: repo.to_string(), revision: revision.map(str::to_string) })
    }

    /// The revision asked for, `main` by default.
    pub fn revision(&self) -> &str {
        self.revision.as_deref().unwrap_or("main")
    }

    /// `models--org--name`.
    pub fn folder(&self) -> String {
        hub_folder_name(&self.repo).unwrap_or_default()
    }
}

/// A folder path if `spec` is one, else the snapshot folder of the hub name `spec`: from the
/// cache in `roots`, else downloaded from `hub` into the first root.
pub fn resolve_model_path(spec: &str, need: Need, roots: &CacheRoots, hub: &Hub) -> Result<PathBuf> {
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
    let Some(name) = HubName::parse(spec) else {
        return Err(Error::Invalid(format!(
            "lyrics model `{spec}`: no such folder, and not a Hugging Face name (`name` or `org/name`, \
             optionally `@revision`); give the model's folder (with config.json, model.safetensors and the \
             tokenizer files), or use `--lyrics-model builtin`, the small built-in encoder"
        )));
    };
    let mut looked = vec![format!("{spec} (as a folder: it does not exist)")];
    for root in &roots.roots {
        let repo_dir = root.join(name.folder());
        match cached_snapshot(&repo_dir, &name, need)? {
            Cached::Usable(dir) => return Ok(dir),
            Cached::Absent => looked.push(repo_dir.display().to_string()),
            Cached::Unusable(why) => looked.push(format!("{} ({why})", repo_dir.display())),
        }
    }
    let reason = match (&hub.offline, roots.roots.first()) {
        (Some(var), _) => format!("Nothing was downloaded: {var} is set (unset it to download from {}).", hub.endpoint),
        (None, None) => "Nothing was downloaded: no cache folder is known (set HF_HOME).".to_string(),
        (None, Some(root)) => match download(hub, &name, need, &root.join(name.folder())) {
            Ok(dir) => return Ok(dir),
            Err(why) => format!("Downloading it from {} failed: {why}", hub.endpoint),
        },
    };
    Err(not_found(spec, &name, &looked, &reason))
}

fn not_found(spec: &str, name: &HubName, looked: &[String], reason: &str) -> Error {
    let (repo, folder) = (&name.repo, name.folder());
    let (cli_rev, py_rev) = match &name.revision {
        Some(r) => (format!(" --revision {r}"), format!(", revision='{r}'")),
        None => (String::new(), String::new()),
    };
    Error::Invalid(format!(
        "lyrics model `{spec}` not found. Looked in:\n  {}\n{reason}\n\
         To bring it by hand: on a machine with network run `huggingface-cli download {repo}{cli_rev}` \
         (or `python -c \"from transformers import AutoModel, AutoTokenizer; AutoModel.from_pretrained('{repo}'{py_rev}); AutoTokenizer.from_pretrained('{repo}'{py_rev})\"`), \
         then copy its ~/.cache/huggingface/hub/{folder} folder into one of the places above (or set HF_HOME), \
         or pass the model's folder itself; or use `--lyrics-model builtin`, the small built-in encoder, which needs no download.",
        looked.join("\n  "),
    ))
}

/// `org/name` → `models--org--name`; `None` for something that cannot be a hub id.
pub fn hub_folder_name(spec: &str) -> Option<String> {
    let parts: Vec<&str> = spec.split('/').collect();
    match parts.as_slice() {
        [name] if is_component(name) => Some(format!("models--{name}")),
        [org, name] if is_component(org) && is_component(name) => Some(format!("models--{org}--{name}")),
        _ => None,
    }
}

/// A name that is safe as one path component: ASCII letters, digits, `-_.`, not `.` or `..`.
pub(crate) fn is_component(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// A branch, tag or commit: components joined by `/` (a branch may be `refs/pr/1`), so that
/// `refs/<revision>` stays inside the cache folder.
pub(crate) fn is_revision(s: &str) -> bool {
    s.split('/').all(is_component)
}

fn is_commit_hash(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

enum Cached {
    Usable(PathBuf),
    /// The repository is not in this cache.
    Absent,
    /// It is, but not the revision asked for, or not all of it (a download was cut short).
    Unusable(String),
}

/// The snapshot of `name`'s revision in one cached repository, if it holds what `need` asks.
fn cached_snapshot(repo_dir: &Path, name: &HubName, need: Need) -> Result<Cached> {
    let snapshots = repo_dir.join("snapshots");
    if !snapshots.is_dir() {
        return Ok(Cached::Absent);
    }
    let rev = name.revision();
    let ref_file = repo_dir.join("refs").join(rev);
    let dir = if ref_file.is_file() {
        let commit =
            std::fs::read_to_string(&ref_file).map_err(|e| Error::file(&ref_file, format!("cannot read: {e}")))?;
        let commit = commit.trim();
        let dir = snapshots.join(commit);
        if !is_component(commit) || !dir.is_dir() {
            return Ok(Cached::Unusable(format!(
                "refs/{rev} names revision {commit}, but {} does not exist: the cache is incomplete",
                dir.display()
            )));
        }
        dir
    } else if is_commit_hash(rev) {
        let dir = snapshots.join(rev);
        if !dir.is_dir() {
            return Ok(Cached::Unusable(format!("no snapshot {rev}")));
        }
        dir
    } else if rev == "main" {
        match only_snapshot(&snapshots)? {
            Some(dir) => dir,
            None => return Ok(Cached::Unusable("no snapshot".into())),
        }
    } else {
        return Ok(Cached::Unusable(format!("no refs/{rev}")));
    };
    Ok(match missing_files(&dir, need) {
        None => Cached::Usable(dir),
        Some(what) => Cached::Unusable(format!("snapshot {} is incomplete: {what}", file_name(&dir))),
    })
}

/// A cache written by hand (copied without `refs/main`): its one snapshot; several are ambiguous.
fn only_snapshot(snapshots: &Path) -> Result<Option<PathBuf>> {
    let mut revs: Vec<PathBuf> = std::fs::read_dir(snapshots)
        .map_err(|e| Error::file(snapshots, format!("cannot list: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    revs.sort();
    match revs.len() {
        0 | 1 => Ok(revs.pop()),
        _ => Err(Error::file(
            snapshots,
            format!(
                "{} snapshots and no refs/main to choose one: {}; pass the one you want as a folder, or as `name@<snapshot>`",
                revs.len(),
                revs.iter().map(|p| file_name(p)).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

/// What a snapshot lacks for `need`, `None` if nothing. Weights in a format moodgrad refuses
/// count as present: loading them then says how to convert them.
pub(crate) fn missing_files(dir: &Path, need: Need) -> Option<String> {
    let has = |f: &str| dir.join(f).is_file();
    let tokenizer = has("tokenizer.json") || has("vocab.txt") || (has("vocab.json") && has("merges.txt"));
    if need == Need::Tokenizer {
        return (!tokenizer).then(|| "no tokenizer files".to_string());
    }
    if !has("config.json") {
        return Some("no config.json".into());
    }
    let index = dir.join("model.safetensors.index.json");
    let weights = if has("model.safetensors") {
        true
    } else if index.is_file() {
        super::shard_names(&index).is_ok_and(|shards| shards.iter().all(|s| has(s)))
    } else {
        ["pytorch_model.bin", "pytorch_model.bin.index.json"].iter().any(|f| has(f))
    };
    if !weights {
        return Some("no complete model.safetensors".into());
    }
    (!tokenizer).then(|| "no tokenizer files".to_string())
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
