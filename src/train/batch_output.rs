//! The output file of a batch prediction: one row per song, CSV or JSON lines, appended as songs
//! finish, and read back by `--resume`. Each row is written whole with its newline, so a job
//! killed mid-write leaves at most one partial last line, which `--resume` cuts off and redoes.

use super::metrics::Quadrant;
use crate::error::{Error, Result};
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What became of one song.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Predicted { valence: f64, arousal: f64, duration_s: f64, warnings: Vec<String> },
    Skipped { reason: String },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The song's key (`batch_input::SongInput::key`).
    pub path: String,
    pub outcome: Outcome,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

pub const CSV_HEADER: &str = "path,status,valence,arousal,quadrant,duration_s,message";

impl Format {
    pub fn of(path: &Path) -> Result<Format> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("csv") => Ok(Format::Csv),
            Some("jsonl") => Ok(Format::Jsonl),
            _ => Err(Error::file(path, "--out: name a .csv or a .jsonl file (one row per song)")),
        }
    }
}

/// A message on one line (a CSV cell or a JSON string may not break a row).
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

fn csv_cell(s: &str) -> String {
    let s = one_line(s);
    if s.contains([',', '"']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

impl Row {
    /// The row with its newline. Numbers are written in Rust's shortest form that reads back to
    /// the same f64, so the file holds the model's exact outputs.
    pub fn line(&self, format: Format) -> String {
        let path = one_line(&self.path);
        match (format, &self.outcome) {
            (Format::Csv, Outcome::Predicted { valence, arousal, duration_s, warnings }) => format!(
                "{},ok,{valence},{arousal},{},{duration_s:.3},{}\n",
                csv_cell(&path),
                Quadrant::from_va(*valence, *arousal).name(),
                csv_cell(&warnings.join("; "))
            ),
            (Format::Csv, Outcome::Skipped { reason }) => {
                format!("{},skipped,,,,,{}\n", csv_cell(&path), csv_cell(reason))
            }
            (Format::Jsonl, Outcome::Predicted { valence, arousal, duration_s, warnings }) => {
                let w: Vec<String> = warnings.iter().map(|w| one_line(w)).collect();
                let v = serde_json::json!({
                    "path": path,
                    "status": "ok",
                    "valence": valence,
                    "arousal": arousal,
                    "quadrant": Quadrant::from_va(*valence, *arousal).name(),
                    "duration_s": (duration_s * 1000.0).round() / 1000.0,
                    "warnings": w,
                });
                format!("{v}\n")
            }
            (Format::Jsonl, Outcome::Skipped { reason }) => {
                let v = serde_json::json!({"path": path, "status": "skipped", "reason": one_line(reason)});
                format!("{v}\n")
            }
        }
    }
}

/// The output file, open for appending rows.
pub struct OutputFile {
    pub path: PathBuf,
    pub format: Format,
    file: std::fs::File,
}

impl OutputFile {
    /// Opens `path` for a new job (refused if it holds rows: `--resume` continues it) or, with
    /// `resume`, for continuing one; returns the keys of the songs already in it. A partial last
    /// line (a kill mid-write) is cut off, so that song is predicted again.
    pub fn open(path: &Path, resume: bool) -> Result<(OutputFile, HashSet<String>)> {
        let format = Format::of(path)?;
        let err = |e: std::io::Error| Error::file(path, format!("cannot write the output: {e}"));
        let existing = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::file(path, format!("cannot read the output: {e}"))),
        };
        let whole = existing.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let text = std::str::from_utf8(&existing[..whole])
            .map_err(|_| Error::file(path, "is not a text file; is this the right --out?"))?;
        let done = read_keys(path, text, format)?;
        if !done.is_empty() && !resume {
            return Err(Error::file(
                path,
                format!(
                    "already holds {} songs' rows: add --resume to continue that job (its songs are skipped), or \
                     choose another --out",
                    done.len()
                ),
            ));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::data::create_dir(dir)?;
        }
        let keep = if resume { whole } else { 0 };
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(err)?;
        file.set_len(keep as u64).map_err(err)?;
        let mut out = OutputFile { path: path.to_path_buf(), format, file };
        use std::io::Seek;
        out.file.seek(std::io::SeekFrom::End(0)).map_err(err)?;
        if keep == 0 && format == Format::Csv {
            out.append(&format!("{CSV_HEADER}\n"))?;
        }
        Ok((out, if resume { done } else { HashSet::new() }))
    }

    /// Writes `rows` (whole lines) and hands them to the OS, so a later kill cannot lose them.
    pub fn write(&mut self, rows: &[Row]) -> Result<()> {
        let text: String = rows.iter().map(|r| r.line(self.format)).collect();
        self.append(&text)
    }

    fn append(&mut self, text: &str) -> Result<()> {
        self.file
            .write_all(text.as_bytes())
            .and_then(|_| self.file.flush())
            .map_err(|e| Error::file(&self.path, format!("cannot write the output: {e}")))
    }
}

/// The song keys of an output's complete lines.
fn read_keys(path: &Path, text: &str, format: Format) -> Result<HashSet<String>> {
    let mut keys = HashSet::new();
    match format {
        Format::Csv => {
            let mut r = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
            let header_ok = r.headers().map(|h| h.get(0) == Some("path")).unwrap_or(false);
            if !text.is_empty() && !header_ok {
                return Err(Error::file(
                    path,
                    format!("is not a batch prediction's CSV (its header is not `{CSV_HEADER}`)"),
                ));
            }
            for (k, row) in r.records().enumerate() {
                let row = row.map_err(|e| Error::file(path, format!("line {}: {e}", k + 2)))?;
                keys.insert(row.get(0).unwrap_or_default().to_string());
            }
        }
        Format::Jsonl => {
            for (k, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let key = serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| v["path"].as_str().map(str::to_string))
                    .ok_or_else(|| {
                        Error::file(path, format!("line {}: not a batch prediction's row (no \"path\")", k + 1))
                    })?;
                keys.insert(key);
            }
        }
    }
    Ok(keys)
}
