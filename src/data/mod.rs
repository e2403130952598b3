//! The dataset layer (issue 4): MERGE readers, the spectrogram cache, synthetic MERGE-like data.
//!
//! - `merge`: reads the MERGE Bimodal / Audio-only / Lyrics-only layouts into a list of songs plus
//!   a list of skipped rows with reasons.
//! - `cache`: the `.npy` (or safetensors) spectrogram cache, its manifest and the seed's
//!   `master_processed_file_list.csv`.
//! - `synth`: a small deterministic dataset in the Bimodal layout whose valence and arousal can be
//!   learned from both the audio and the lyrics.
//! - `npy`, `wav`: the two tiny file formats, written by hand.

pub mod cache;
pub mod merge;
pub mod npy;
pub mod synth;
pub mod wav;

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary name beside `path` (same directory, so the rename is atomic), unique per process
/// and call: `.<name>.tmp-<pid>-<n>`.
pub fn temp_beside(path: &Path) -> PathBuf {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`: a reader (or an
/// interrupted run) sees either the old file or the whole new one, never a truncated one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_beside(path);
    if let Err(e) = std::fs::write(&tmp, bytes) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::file(path, format!("cannot write: {e} (is the folder writable and the disk not full?)")));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::file(path, format!("cannot rename the finished temporary file into place: {e}"))
    })
}

/// Creates a folder and its parents, with the path in the error.
pub fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|e| Error::file(path, format!("cannot create the folder: {e}")))
}
