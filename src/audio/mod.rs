//! Audio preprocessing exactly as librosa 0.11: decode, resample to 22050 Hz mono,
//! STFT, Slaney mel, power_to_db, centre-crop/pad to a fixed frame count.
//!
//! This file is the interface between the signal path (`decode`, `resample`, `spectrum`, …,
//! owned by the signal-path work) and the dataset layer (`crate::data`, the `preprocess` and
//! `synth` commands). Keep these names and signatures stable.

use crate::error::Result;
use std::path::Path;

pub mod batch;
pub mod decode;
pub mod mel;
pub mod pipeline;
pub mod resample;
pub mod spectrum;

/// Every preprocessing parameter, defaults = the seed guide's fixed pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct PreprocessParams {
    pub sample_rate: u32,
    pub n_fft: usize,
    pub hop: usize,
    pub n_mels: usize,
    pub fmin: f64,
    /// None: sr / 2.
    pub fmax: Option<f64>,
    /// power_to_db: ref = 1.0 (fixed) or the clip's own max (legacy).
    pub ref_max: bool,
    pub amin: f64,
    pub top_db: Option<f64>,
    /// Target frame count (1292 = 30 s at 22050 Hz / 512).
    pub frames: usize,
    /// Longer clips: centre crop (fixed) or the first `frames` (legacy).
    pub centre_crop: bool,
    /// Value that pads short clips at the end: -80 dB (fixed) or 0 (legacy).
    pub pad_value: f32,
}

impl Default for PreprocessParams {
    fn default() -> Self {
        PreprocessParams {
            sample_rate: 22050,
            n_fft: 2048,
            hop: 512,
            n_mels: 128,
            fmin: 0.0,
            fmax: None,
            ref_max: false,
            amin: 1e-10,
            top_db: Some(80.0),
            frames: 1292,
            centre_crop: true,
            pad_value: -80.0,
        }
    }
}

impl PreprocessParams {
    /// The notebooks' version, for before/after studies: ref = max, first frames, pad with 0.
    pub fn legacy() -> Self {
        PreprocessParams { ref_max: true, centre_crop: false, pad_value: 0.0, ..Default::default() }
    }
}

/// A mel spectrogram in dB, row-major [n_mels, frames].
#[derive(Clone, Debug, PartialEq)]
pub struct MelSpectrogram {
    pub n_mels: usize,
    pub frames: usize,
    pub data: Vec<f32>,
    /// Frames before crop/pad (1 + n_samples / hop) and the decoded duration, for the manifest.
    pub source_frames: usize,
    pub duration_s: f64,
    /// Why the file looks truncated (see `decode::Decoded::truncated`): kept, but worth a warning.
    pub truncated: Option<String>,
}

/// Why a clip could not be turned into a spectrogram (the batch report groups by this).
#[derive(Clone, Debug, PartialEq)]
pub enum AudioError {
    /// No file at the path (or not a regular file, e.g. a directory named like a song).
    Missing,
    /// The container or codec could not be read (truncated, random bytes, unsupported format).
    Undecodable(String),
    /// Decoded to zero samples.
    Empty,
    /// Reading the file failed (permissions, I/O).
    Io(String),
}

impl std::fmt::Display for AudioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AudioError::Missing => write!(f, "missing file"),
            AudioError::Undecodable(why) => write!(f, "undecodable ({why})"),
            AudioError::Empty => write!(f, "empty (no audio samples)"),
            AudioError::Io(why) => write!(f, "unreadable ({why})"),
        }
    }
}

/// Decode → mono → resample → STFT → mel → dB → crop/pad: the whole per-clip pipeline on the CPU.
/// (Implemented in `pipeline.rs`.) Never panics on any file content.
pub fn mel_db_from_file(path: &Path, params: &PreprocessParams) -> std::result::Result<MelSpectrogram, AudioError> {
    pipeline::mel_db_from_file(path, params)
}

/// The whole song's mel-dB, every frame (no crop or pad), with the path in the error: what
/// `predict --timeline` slides its windows over.
pub fn load_whole(path: &Path, params: &PreprocessParams) -> Result<MelSpectrogram> {
    pipeline::whole_mel_db_from_file(path, params).map_err(|e| crate::error::Error::file(path, e.to_string()))
}

/// Convenience for commands: the same as `mel_db_from_file`, with the path in the error.
pub fn load(path: &Path, params: &PreprocessParams) -> Result<MelSpectrogram> {
    mel_db_from_file(path, params).map_err(|e| crate::error::Error::file(path, e.to_string()))
}
