//! Checkpoints: a directory holding the model (safetensors, PyTorch names), the optimiser state
//! (`<name>.exp_avg`, `<name>.exp_avg_sq`, `<name>.step`), the scheduler, the RNG state and the
//! caller's own JSON (epoch, best so far …), written so that a kill at any instant leaves one
//! whole checkpoint.
//!
//! Writing: the new checkpoint is written completely under `<dir>.tmp` (every file synced, the
//! manifest last), then `<dir>` is renamed to `<dir>.prev`, `<dir>.tmp` to `<dir>`, and `<dir>.prev`
//! removed. Each rename is atomic, so at every instant at least one of the three names holds a
//! complete checkpoint (its manifest present and every file matching it). Reading takes the
//! newest complete one: `<dir>.tmp` (a save that finished writing but not renaming), then `<dir>`,
//! then `<dir>.prev`. The manifest records each file's length and FNV-1a hash, so a truncated or
//! altered file is refused by name.

use crate::error::{Error, Result};
use crate::io::{self, TensorFile};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

const MANIFEST: &str = "MANIFEST.json";
const FORMAT: &str = "moodgrad-checkpoint-1";

/// Everything a checkpoint holds.
#[derive(Clone, Debug, Default)]
pub struct Checkpoint {
    /// The state_dict (parameters, buffers, counters).
    pub model: TensorFile,
    /// `Adam::export_state`.
    pub optimizer: TensorFile,
    /// `LrScheduler::to_json` (or null).
    pub scheduler: Value,
    /// `Rng::state` of the caller's generator(s), by name.
    pub rng: Value,
    /// The caller's own state.
    pub user: Value,
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut s = dir.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// 64-bit FNV-1a: enough to tell a truncated or half-written file from the one the manifest saw.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

fn io_err(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::file(path, format!("{what}: {e}"))
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|f| f.sync_all()).map_err(|e| io_err(dir, "cannot sync the directory", e))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(|e| io_err(path, "cannot create", e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| io_err(path, "cannot write", e))
}

/// Saves `ck` as `dir`, replacing the checkpoint there only once the new one is complete.
pub fn save(dir: &Path, ck: &Checkpoint) -> Result<()> {
    recover(dir)?;
    let tmp = sibling(dir, ".tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io_err(&tmp, "cannot remove a stale partial checkpoint", e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| io_err(&tmp, "cannot create", e))?;
    let state = json!({"format": FORMAT, "scheduler": ck.scheduler, "rng": ck.rng, "user": ck.user});
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("model.safetensors", io::encode(&tmp.join("model.safetensors"), &ck.model)?),
        ("optimizer.safetensors", io::encode(&tmp.join("optimizer.safetensors"), &ck.optimizer)?),
        ("state.json", serde_json::to_vec_pretty(&state).expect("JSON values serialise")),
    ];
    let mut manifest = serde_json::Map::new();
    for (name, bytes) in &files {
        write_synced(&tmp.join(name), bytes)?;
        manifest.insert((*name).into(), json!({"bytes": bytes.len(), "fnv1a": format!("{:016x}", fnv1a(bytes))}));
    }
    let manifest = json!({"format": FORMAT, "files": manifest});
    write_synced(&tmp.join(MANIFEST), &serde_json::to_vec_pretty(&manifest).expect("JSON values serialise"))?;
    sync_dir(&tmp)?;
    let prev = sibling(dir, ".prev");
    if dir.exists() {
        std::fs::rename(dir, &prev).map_err(|e| io_err(dir, "cannot move the previous checkpoint aside", e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| io_err(dir, "cannot move the new checkpoint into place", e))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    if prev.exists() {
        std::fs::remove_dir_all(&prev).map_err(|e| io_err(&prev, "cannot remove the previous checkpoint", e))?;
    }
    Ok(())
}

/// Whether a checkpoint exists under `dir` (or one of its interrupted-save names).
pub fn exists(dir: &Path) -> bool {
    [dir.to_path_buf(), sibling(dir, ".tmp"), sibling(dir, ".prev")].iter().any(|d| d.join(MANIFEST).exists())
}

/// Loads the newest complete checkpoint among `dir.tmp`, `dir` and `dir.prev`. When none is
/// complete, the error names what is wrong with `dir`.
pub fn load(dir: &Path) -> Result<Checkpoint> {
    let mut first_err = None;
    for d in [sibling(dir, ".tmp"), dir.to_path_buf(), sibling(dir, ".prev")] {
        if !d.exists() {
            continue;
        }
        match read_complete(&d) {
            Ok(ck) => return Ok(ck),
            Err(e) => {
                if first_err.is_none() || d == dir {
                    first_err = Some(e);
                }
            }
        }
    }
    Err(first_err.unwrap_or_else(|| Error::file(dir, "no checkpoint here (nothing to resume)")))
}

/// Reads one checkpoint directory, checking every file against its manifest.
fn read_complete(d: &Path) -> Result<Checkpoint> {
    let mpath = d.join(MANIFEST);
    let text = std::fs::read(&mpath).map_err(|_| {
        Error::file(d, "incomplete checkpoint (no MANIFEST.json: the save was interrupted before it finished)")
    })?;
    let manifest: Value =
        serde_json::from_slice(&text).map_err(|e| Error::file(&mpath, format!("not a checkpoint manifest: {e}")))?;
    if manifest["format"] != FORMAT {
        return Err(Error::file(&mpath, format!("unknown checkpoint format {}", manifest["format"])));
    }
    let read = |name: &str| -> Result<Vec<u8>> {
        let path = d.join(name);
        let entry = &manifest["files"][name];
        let bytes = std::fs::read(&path).map_err(|e| io_err(&path, "missing from the checkpoint", e))?;
        let want = entry["bytes"].as_u64().unwrap_or(u64::MAX);
        if bytes.len() as u64 != want || entry["fnv1a"] != format!("{:016x}", fnv1a(&bytes)) {
            return Err(Error::file(
                &path,
                format!("truncated or altered: {} bytes where the manifest recorded {want}", bytes.len()),
            ));
        }
        Ok(bytes)
    };
    let model = io::parse(&d.join("model.safetensors"), &read("model.safetensors")?)?;
    let optimizer = io::parse(&d.join("optimizer.safetensors"), &read("optimizer.safetensors")?)?;
    let spath = d.join("state.json");
    let state: Value =
        serde_json::from_slice(&read("state.json")?).map_err(|e| Error::file(&spath, format!("not JSON: {e}")))?;
    Ok(Checkpoint {
        model,
        optimizer,
        scheduler: state["scheduler"].clone(),
        rng: state["rng"].clone(),
        user: state["user"].clone(),
    })
}

/// Puts the three names back into the steady state (only `dir`) after an interrupted save,
/// keeping the newest complete checkpoint.
fn recover(dir: &Path) -> Result<()> {
    let (tmp, prev) = (sibling(dir, ".tmp"), sibling(dir, ".prev"));
    let complete = |d: &Path| d.exists() && read_complete(d).is_ok();
    if !complete(dir) {
        let source = if complete(&tmp) {
            Some(&tmp)
        } else if complete(&prev) {
            Some(&prev)
        } else {
            None
        };
        if let Some(src) = source {
            if dir.exists() {
                std::fs::remove_dir_all(dir).map_err(|e| io_err(dir, "cannot remove an incomplete checkpoint", e))?;
            }
            std::fs::rename(src, dir).map_err(|e| io_err(dir, "cannot restore the last complete checkpoint", e))?;
        }
    }
    for d in [&tmp, &prev] {
        if d.exists() {
            std::fs::remove_dir_all(d).map_err(|e| io_err(d, "cannot remove a leftover checkpoint", e))?;
        }
    }
    Ok(())
}
