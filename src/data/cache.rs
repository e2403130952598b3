//! The spectrogram cache that `moodgrad preprocess` writes.
//!
//! ```text
//! CACHE/<Audio_Song>.npy                 float32 [128, 1292], NumPy v1.0, C order (default)
//! CACHE/spectrograms-00000.safetensors   (--format safetensors) up to 256 clips each, keyed by Audio_Song
//! CACHE/manifest.jsonl                   one JSON object per finished clip (see `Entry`)
//! CACHE/master_processed_file_list.csv   song_id,spectrogram_path,lyrics_path,valence,arousal,quadrant
//! CACHE/skipped.csv                      song_id,reason,file,line,detail,fix
//! ```
//!
//! Every file is written to a temporary name in the same folder and renamed into place, so an
//! interrupted run never leaves a truncated file under a real name. The manifest is a journal: a
//! clip's line is appended (one `write` of one line) only after its spectrogram is in place, and a
//! torn last line from a killed run is ignored on the next; at the end of a run it is rewritten
//! (atomically) with one line per clip. A clip is fresh (not redone) when its manifest line names
//! the same source path, size, mtime, preprocessing parameters and format, and its output exists.

use crate::audio::PreprocessParams;
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::io::{HostTensor, TensorFile};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

pub const MANIFEST: &str = "manifest.jsonl";
pub const MASTER_LIST: &str = "master_processed_file_list.csv";
pub const SKIPPED: &str = "skipped.csv";
pub const SHARD_SIZE: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheFormat {
    Npy,
    Safetensors,
}

impl std::str::FromStr for CacheFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "npy" => Ok(CacheFormat::Npy),
            "safetensors" => Ok(CacheFormat::Safetensors),
            _ => Err(Error::Invalid(format!("--format `{s}`: use npy or safetensors"))),
        }
    }
}

impl CacheFormat {
    pub fn name(self) -> &'static str {
        match self {
            CacheFormat::Npy => "npy",
            CacheFormat::Safetensors => "safetensors",
        }
    }
}

/// The preprocessing parameters as JSON (what the manifest records and compares).
pub fn params_json(p: &PreprocessParams) -> Value {
    json!({
        "sample_rate": p.sample_rate,
        "n_fft": p.n_fft,
        "hop": p.hop,
        "n_mels": p.n_mels,
        "fmin": p.fmin,
        "fmax": p.fmax,
        "ref_max": p.ref_max,
        "amin": p.amin,
        "top_db": p.top_db,
        "frames": p.frames,
        "centre_crop": p.centre_crop,
        "pad_value": p.pad_value,
    })
}

/// Size and modification time (ns since the epoch) of a source file.
pub fn source_stamp(path: &Path) -> std::io::Result<(u64, u128)> {
    let m = std::fs::metadata(path)?;
    let mtime = m.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_nanos()).unwrap_or(0);
    Ok((m.len(), mtime))
}

/// One finished clip in the manifest.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub song_id: String,
    pub source: String,
    pub size: u64,
    pub mtime_ns: u128,
    pub duration_s: f64,
    /// Frames before crop/pad.
    pub source_frames: usize,
    pub frames: usize,
    /// File name inside the cache folder (`A001.npy` or a shard).
    pub output: String,
    pub format: String,
    pub params: Value,
}

impl Entry {
    pub fn to_json(&self) -> Value {
        json!({
            "song_id": self.song_id,
            "source": self.source,
            "size": self.size,
            "mtime_ns": self.mtime_ns.to_string(),
            "duration_s": self.duration_s,
            "source_frames": self.source_frames,
            "frames": self.frames,
            "output": self.output,
            "format": self.format,
            "params": self.params,
        })
    }

    pub fn from_json(v: &Value) -> Option<Entry> {
        Some(Entry {
            song_id: v.get("song_id")?.as_str()?.to_string(),
            source: v.get("source")?.as_str()?.to_string(),
            size: v.get("size")?.as_u64()?,
            mtime_ns: v.get("mtime_ns")?.as_str()?.parse().ok()?,
            duration_s: v.get("duration_s")?.as_f64()?,
            source_frames: v.get("source_frames")?.as_u64()? as usize,
            frames: v.get("frames")?.as_u64()? as usize,
            output: v.get("output")?.as_str()?.to_string(),
            format: v.get("format")?.as_str()?.to_string(),
            params: v.get("params")?.clone(),
        })
    }
}

/// The manifest: what is on disk now, plus an append handle for clips finished in this run.
pub struct Manifest {
    pub dir: PathBuf,
    pub entries: BTreeMap<String, Entry>,
    /// Lines that did not parse (a torn last line after a kill, or hand edits): ignored.
    pub ignored_lines: usize,
    journal: Mutex<Option<std::fs::File>>,
}

impl Manifest {
    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST);
        let mut entries = BTreeMap::new();
        let mut ignored_lines = 0;
        match std::fs::read(&path) {
            Ok(bytes) => {
                for line in String::from_utf8_lossy(&bytes).lines() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    match serde_json::from_str::<Value>(line).ok().as_ref().and_then(Entry::from_json) {
                        Some(e) => {
                            entries.insert(e.song_id.clone(), e);
                        }
                        None => ignored_lines += 1,
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::file(&path, format!("cannot read the manifest: {e}"))),
        }
        Ok(Manifest { dir: dir.to_path_buf(), entries, ignored_lines, journal: Mutex::new(None) })
    }

    /// Is `song`'s cached spectrogram still valid for this source file and these parameters?
    pub fn is_fresh(&self, song: &str, source: &Path, params: &Value, format: CacheFormat) -> bool {
        let Some(e) = self.entries.get(song) else { return false };
        let Ok((size, mtime)) = source_stamp(source) else { return false };
        e.source == source.to_string_lossy()
            && e.size == size
            && e.mtime_ns == mtime
            && &e.params == params
            && e.format == format.name()
            && self.dir.join(&e.output).is_file()
    }

    /// Appends one finished clip to the journal (call after its output is in place).
    pub fn append(&self, entry: &Entry) -> Result<()> {
        let path = self.dir.join(MANIFEST);
        let mut guard = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            // A torn line from a killed run must not swallow this one: start on a fresh line.
            let needs_newline = std::fs::read(&path).map(|b| b.last().is_some_and(|&c| c != b'\n')).unwrap_or(false);
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| Error::file(&path, format!("cannot open the manifest for appending: {e}")))?;
            if needs_newline {
                let _ = f.write_all(b"\n");
            }
            *guard = Some(f);
        }
        let mut line = entry.to_json().to_string();
        line.push('\n');
        if let Some(f) = guard.as_mut() {
            f.write_all(line.as_bytes())
                .map_err(|e| Error::file(&path, format!("cannot append to the manifest: {e}")))?;
        }
        Ok(())
    }

    /// Rewrites the manifest atomically with exactly `entries` (one line each).
    pub fn compact(&self, entries: &[Entry]) -> Result<()> {
        let mut guard = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        *guard = None;
        let mut text = String::new();
        for e in entries {
            text += &e.to_json().to_string();
            text.push('\n');
        }
        write_atomic(&self.dir.join(MANIFEST), text.as_bytes())
    }
}

/// Writes one spectrogram as `<dir>/<song>.npy`, atomically; returns the file name.
pub fn write_npy(dir: &Path, song: &str, n_mels: usize, frames: usize, data: &[f32]) -> Result<String> {
    let name = format!("{song}.npy");
    let bytes = super::npy::encode_f32(&[n_mels, frames], data)?;
    write_atomic(&dir.join(&name), &bytes)?;
    Ok(name)
}

/// Writes a shard of spectrograms keyed by song ID, atomically.
pub fn write_shard(path: &Path, clips: &[(String, usize, usize, Vec<f32>)]) -> Result<()> {
    let mut file = TensorFile::default();
    for (id, m, f, data) in clips {
        file.tensors.insert(id.clone(), HostTensor::f32(&[*m, *f], data.clone()));
    }
    file.metadata.insert("format".into(), "moodgrad mel-dB spectrograms, keyed by Audio_Song".into());
    crate::io::write(path, &file)
}

/// A float as Python's `repr` writes it (what pandas' `to_csv` writes): shortest round-trip digits,
/// always with a `.` or an exponent, scientific below 1e-4 and from 1e16.
pub fn python_float(x: f64) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "nan".into()
        } else if x > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let a = x.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        // Rust: 1e-5, 1.5e-7; Python: 1e-05, 1.5e-07.
        let s = format!("{x:e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = e.parse().unwrap_or(0);
        return format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    }
    let s = format!("{x}");
    if s.contains('.') { s } else { format!("{s}.0") }
}

/// One row of the seed's master list.
#[derive(Clone, Debug, PartialEq)]
pub struct MasterRow {
    pub song_id: String,
    pub spectrogram_path: String,
    pub lyrics_path: String,
    pub valence: f64,
    pub arousal: f64,
    pub quadrant: String,
}

/// `master_processed_file_list.csv` as the seed's `pd.DataFrame(...).to_csv(path, index=False)`
/// writes it: that header, `\n` line ends, minimal quoting, Python float formatting.
pub fn master_list_bytes(rows: &[MasterRow]) -> Result<Vec<u8>> {
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
    let err = |e: csv::Error| Error::Invalid(format!("master list: {e}"));
    w.write_record(["song_id", "spectrogram_path", "lyrics_path", "valence", "arousal", "quadrant"]).map_err(err)?;
    for r in rows {
        w.write_record([
            r.song_id.as_str(),
            &r.spectrogram_path,
            &r.lyrics_path,
            &python_float(r.valence),
            &python_float(r.arousal),
            &r.quadrant,
        ])
        .map_err(err)?;
    }
    w.into_inner().map_err(|e| Error::Invalid(format!("master list: {e}")))
}

/// `skipped.csv`: song_id, reason, file, line, detail, fix.
pub fn skipped_bytes(skips: &[super::merge::Skip]) -> Result<Vec<u8>> {
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
    let err = |e: csv::Error| Error::Invalid(format!("skipped.csv: {e}"));
    w.write_record(["song_id", "reason", "file", "line", "detail", "fix"]).map_err(err)?;
    for s in skips {
        let line = s.line.map(|l| l.to_string()).unwrap_or_default();
        w.write_record([s.song.as_str(), s.kind.label(), &s.file.to_string_lossy(), &line, &s.detail, s.kind.fix()])
            .map_err(err)?;
    }
    w.into_inner().map_err(|e| Error::Invalid(format!("skipped.csv: {e}")))
}
