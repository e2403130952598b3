//! The dataset layer: MERGE readers, the spectrogram cache, synthetic MERGE-like data.
//!
//! - `merge`: reads the MERGE Bimodal / Audio-only / Lyrics-only layouts into a list of songs plus
//!   a list of skipped rows with reasons.
//! - `cache`: the `.npy` (or safetensors) spectrogram cache, its manifest and the seed's
//!   `master_processed_file_list.csv`.
//! - `synth`: a small deterministic dataset in the Bimodal layout whose valence and arousal can be
//!   learned from both the audio and the lyrics.
//! - `preprocess` (+ `preprocess_lyrics`): a MERGE folder into the cache, in parallel, resumable.
//! - `npy`, `wav`: the two tiny file formats, written by hand.

pub mod cache;
pub mod merge;
pub mod npy;
pub mod preprocess;
pub mod preprocess_lyrics;
pub mod synth;
pub mod wav;

use crate::error::{Error, Result};
use std::path::Path;

/// Creates a folder and its parents, with the path in the error.
pub fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|e| Error::file(path, format!("cannot create the folder: {e}")))
}
