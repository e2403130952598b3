//! Downloading the files a model needs into the standard hub cache, as huggingface_hub lays it out:
//! `blobs/<etag>` holds each file's bytes, `snapshots/<commit>/<file>` is a relative symlink to its
//! blob (a copy where symlinks are not available), `refs/<revision>` names the commit a branch or
//! tag pointed at (not written for a commit revision).
//!
//! A blob is received into `blobs/<etag>.<pid>.incomplete` and renamed into place only when its
//! length is the size the hub announced and, when the ETag is a SHA-256 (large files), its digest
//! matches; otherwise the partial file is removed, so a cut or corrupted download is never linked
//! into a snapshot, and the next run downloads it again. `refs/<revision>` is written last, after
//! every file is in place. The files after the first are fetched at the commit the first one
//! came from, so a push to the branch meanwhile cannot mix two versions.

use super::hub::{FileMeta, Hub, HubError};
use super::resolve::{HubName, Need, is_component, missing_files};
use crate::text::hash::hex;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Downloads what `need` asks of `name` into `repo_dir` (`<cache>/models--org--name`); the
/// snapshot folder, or why not (a sentence naming the file and the fix).
pub fn download(hub: &Hub, name: &HubName, need: Need, repo_dir: &Path) -> Result<PathBuf, String> {
    let mut f = Fetcher { hub, name, repo_dir, commit: None };
    match need {
        Need::Model => f.required("config.json")?,
        Need::Tokenizer => _ = f.optional("config.json")?,
    }
    if need == Need::Model && !f.optional("model.safetensors")? {
        if f.optional("model.safetensors.index.json")? {
            let index = f.snapshot()?.join("model.safetensors.index.json");
            for shard in super::shard_names(&index).map_err(|e| e.to_string())? {
                f.required(&shard)?;
            }
        } else {
            return Err(f.no_safetensors()?);
        }
    }
    // What the tokenizer loader reads (tokenize.rs): tokenizer.json, else vocab.txt (BERT), else
    // vocab.json + merges.txt (RoBERTa); tokenizer_config.json for the special tokens and casing.
    // special_tokens_map.json is not read, but from_pretrained fetches it and Python tools
    // reading this cache expect it.
    f.optional("tokenizer_config.json")?;
    f.optional("special_tokens_map.json")?;
    if !f.optional("tokenizer.json")? && !f.optional("vocab.txt")? {
        let (vocab, merges) = (f.optional("vocab.json")?, f.optional("merges.txt")?);
        if !(vocab && merges) {
            return Err(format!(
                "`{}` has no tokenizer files (tokenizer.json, vocab.txt, or vocab.json + merges.txt)",
                name.repo
            ));
        }
    }
    let dir = f.snapshot()?;
    if let Some(what) = missing_files(&dir, need) {
        return Err(format!("{}: {what} after the download", dir.display()));
    }
    let commit = f.commit.clone().unwrap_or_default();
    let rev = name.revision();
    if rev != commit {
        let ref_file = repo_dir.join("refs").join(rev);
        if let Some(parent) = ref_file.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        crate::io::write_atomic(&ref_file, commit.as_bytes()).map_err(|e| e.to_string())?;
    }
    Ok(dir)
}

struct Fetcher<'a> {
    hub: &'a Hub,
    name: &'a HubName,
    repo_dir: &'a Path,
    /// The commit of the first file; the rest are fetched at it.
    commit: Option<String>,
}

/// One file's outcome when it is not in the snapshot.
enum Miss {
    /// The repository has no such file (fine for an optional one).
    Absent,
    Failed(String),
}

impl Fetcher<'_> {
    fn required(&mut self, file: &str) -> Result<(), String> {
        match self.fetch(file) {
            Ok(()) => Ok(()),
            Err(Miss::Absent) => Err(format!("`{}` at revision {} has no {file}", self.name.repo, self.revision())),
            Err(Miss::Failed(why)) => Err(why),
        }
    }

    /// Whether the repository has `file` (then it is in the snapshot).
    fn optional(&mut self, file: &str) -> Result<bool, String> {
        match self.fetch(file) {
            Ok(()) => Ok(true),
            Err(Miss::Absent) => Ok(false),
            Err(Miss::Failed(why)) => Err(why),
        }
    }

    fn revision(&self) -> String {
        self.commit.clone().unwrap_or_else(|| self.name.revision().to_string())
    }

    fn snapshot(&self) -> Result<PathBuf, String> {
        let commit = self.commit.as_ref().ok_or("no file was found in the repository")?;
        Ok(self.repo_dir.join("snapshots").join(commit))
    }

    /// The weights are neither model.safetensors nor an index of shards: say what is there.
    fn no_safetensors(&mut self) -> Result<String, String> {
        let repo = &self.name.repo;
        for bin in ["pytorch_model.bin", "pytorch_model.bin.index.json"] {
            match self.hub.head(repo, &self.revision(), bin) {
                Ok(_) => {
                    return Ok(format!(
                        "`{repo}` has only PyTorch pickle weights ({bin}), which moodgrad does not read \
                         (unpickling can run code), and no model.safetensors. Convert them once where PyTorch \
                         is installed and you trust the model: `python -c \"from transformers import AutoModel, AutoTokenizer; m = '{repo}'; \
                         AutoModel.from_pretrained(m).save_pretrained('DIR', safe_serialization=True); \
                         AutoTokenizer.from_pretrained(m).save_pretrained('DIR')\"`, then pass DIR as the model \
                         (or name a revision of the repository that has model.safetensors with `{repo}@<revision>`)"
                    ));
                }
                Err(e) if is_absent(&e) => {}
                Err(e) => return Err(self.explain(bin, &e)),
            }
        }
        Ok(format!("`{repo}` at revision {} has no model.safetensors (nor a sharded index of them)", self.revision()))
    }

    /// Makes `snapshots/<commit>/<file>` point at a verified blob, downloading it if needed.
    fn fetch(&mut self, file: &str) -> Result<(), Miss> {
        let meta = match self.hub.head(&self.name.repo, &self.revision(), file) {
            Ok(m) => m,
            Err(e) if is_absent(&e) || (self.commit.is_some() && e.status() == Some(404) && e.code().is_none()) => {
                return Err(Miss::Absent);
            }
            Err(e) => return Err(Miss::Failed(self.explain(file, &e))),
        };
        // Both become path components: refuse anything that could step out of the cache.
        if !is_component(&meta.commit) || !is_component(&meta.etag) {
            return Err(Miss::Failed(format!(
                "{file}: the hub sent a commit `{}` / ETag `{}` that cannot name a cache file",
                meta.commit, meta.etag
            )));
        }
        match &self.commit {
            Some(c) if *c != meta.commit => {
                return Err(Miss::Failed(format!(
                    "{file} came from commit {}, the files before it from {c}; run again",
                    meta.commit
                )));
            }
            _ => self.commit = Some(meta.commit.clone()),
        }
        let pointer = self.repo_dir.join("snapshots").join(&meta.commit).join(file);
        if pointer.is_file() {
            return Ok(());
        }
        let blobs = self.repo_dir.join("blobs");
        let blob = blobs.join(&meta.etag);
        let have_blob = std::fs::metadata(&blob).is_ok_and(|m| m.is_file() && m.len() == meta.size);
        if !have_blob {
            std::fs::create_dir_all(&blobs)
                .map_err(|e| Miss::Failed(format!("cannot create {}: {e}", blobs.display())))?;
            eprintln!(
                "downloading {}: {file} ({}) into {}",
                self.name.repo,
                human_size(meta.size),
                self.repo_dir.display()
            );
            self.receive(file, &meta, &blob).map_err(Miss::Failed)?;
        }
        link(&blob, &pointer, file).map_err(|e| Miss::Failed(format!("cannot create {}: {e}", pointer.display())))
    }

    /// The bytes of `meta.url` into `blob`, only if they are complete and intact.
    fn receive(&self, file: &str, meta: &FileMeta, blob: &Path) -> Result<(), String> {
        let part = Partial(blob.with_file_name(format!("{}.{}.incomplete", meta.etag, std::process::id())));
        let (announced, mut body) = self.hub.get(&meta.url).map_err(|e| self.explain(file, &e))?;
        let cut = |got: u64, why: &str| {
            format!(
                "{file}: {why} after {got} of {} bytes; nothing of it was kept, run again to download it anew",
                meta.size
            )
        };
        if let Some(n) = announced.filter(|n| *n != meta.size) {
            return Err(format!(
                "{file}: the server sends {n} bytes, but the hub announced {}; nothing was kept, run again",
                meta.size
            ));
        }
        let mut out = std::fs::File::create(&part.0).map_err(|e| format!("cannot create {}: {e}", part.0.display()))?;
        let mut hasher = Sha256::new();
        let mut got = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(cut(got, &format!("the transfer broke ({e})"))),
            };
            got += n as u64;
            if got > meta.size {
                return Err(cut(got, "the server sent more bytes than announced"));
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(|e| format!("cannot write {}: {e}", part.0.display()))?;
        }
        if got != meta.size {
            return Err(cut(got, "the connection closed"));
        }
        // Large (LFS) files have their SHA-256 as ETag; small ones a git hash, checked by size only.
        if is_sha256(&meta.etag) {
            let digest = hex(&hasher.finalize());
            if digest != meta.etag.to_ascii_lowercase() {
                return Err(format!(
                    "{file}: the received bytes have SHA-256 {digest}, not the hub's {}: corrupted in transit; \
                     nothing was kept, run again",
                    meta.etag
                ));
            }
        }
        out.sync_all().map_err(|e| format!("cannot write {}: {e}", part.0.display()))?;
        std::fs::rename(&part.0, blob).map_err(|e| format!("cannot move the download to {}: {e}", blob.display()))
    }

    /// A sentence for a failed request about `file`.
    fn explain(&self, file: &str, e: &HubError) -> String {
        let (repo, rev) = (&self.name.repo, self.revision());
        let token = if self.hub.has_token() {
            "the token in HF_TOKEN was refused or lacks access"
        } else {
            "set HF_TOKEN to an access token of an account that may read it"
        };
        match (e.status(), e.code()) {
            (_, Some("RepoNotFound")) => format!(
                "there is no model repository `{repo}` ({e}); check the name as spelled on its page \
                 (`org/name`; a private repository also answers so: {token})"
            ),
            (_, Some("RevisionNotFound")) => {
                format!("`{repo}` has no revision `{rev}` ({e}); name an existing branch, tag or commit after the @")
            }
            (_, Some("GatedRepo")) | (Some(401 | 403), _) => {
                format!("`{repo}` is gated or private ({e}): accept its terms on its page while logged in, and {token}")
            }
            (Some(404), _) => format!("`{repo}` at revision {rev}: {file} not found ({e})"),
            (Some(_), _) => format!("{file} of `{repo}`: the hub answered {e}"),
            (None, _) if matches!(e, HubError::Unreachable(_)) => {
                format!("{e}. No network here? Set HF_HUB_OFFLINE=1 to skip the attempt, and bring the model as below")
            }
            (None, _) => format!("{file} of `{repo}`: {e}"),
        }
    }
}

fn is_absent(e: &HubError) -> bool {
    e.code() == Some("EntryNotFound")
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Removes a partial download unless it was renamed into place.
struct Partial(PathBuf);

impl Drop for Partial {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `pointer` → `blob`, relative as huggingface_hub makes it (`../../blobs/<etag>`, one more `..`
/// per folder in `file`), created beside and renamed into place so a reader never sees half of it.
fn link(blob: &Path, pointer: &Path, file: &str) -> std::io::Result<()> {
    let parent = pointer.parent().ok_or_else(|| std::io::Error::other("no parent folder"))?;
    std::fs::create_dir_all(parent)?;
    let tmp = parent.join(format!(".{}.{}.tmp", file.rsplit('/').next().unwrap_or(file), std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    #[cfg(unix)]
    {
        let mut target = PathBuf::new();
        for _ in 0..2 + file.matches('/').count() {
            target.push("..");
        }
        target.push("blobs");
        target.push(blob.file_name().ok_or_else(|| std::io::Error::other("no blob name"))?);
        std::os::unix::fs::symlink(&target, &tmp)?;
    }
    #[cfg(not(unix))]
    std::fs::copy(blob, &tmp)?;
    std::fs::rename(&tmp, pointer)
}

fn human_size(n: u64) -> String {
    match n as f64 {
        x if x >= 1e9 => format!("{:.2} GB", x / 1e9),
        x if x >= 1e6 => format!("{:.1} MB", x / 1e6),
        x if x >= 1e3 => format!("{:.1} kB", x / 1e3),
        _ => format!("{n} B"),
    }
}
