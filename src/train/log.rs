//! `RUN/log.jsonl`: one JSON object per epoch, appended and flushed as soon as the epoch ends, so
//! a crash loses at most the epoch in progress and `tail -f` shows progress.

use super::metrics::{Classification, EvalReport, Regression, f64_or_null};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Loss and metrics of one split over one epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitMetrics {
    /// Mean loss over the split's batches (the training objective, quadrant term included).
    #[serde(deserialize_with = "f64_or_null")]
    pub loss: f64,
    pub valence: Regression,
    pub arousal: Regression,
    pub quadrant: Classification,
}

impl SplitMetrics {
    pub fn new(loss: f64, r: &EvalReport) -> Self {
        SplitMetrics { loss, valence: r.valence, arousal: r.arousal, quadrant: r.quadrant }
    }
}

/// The learning rate one parameter group used this epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupLr {
    pub group: String,
    pub lr: f64,
}

/// One line of `log.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    /// Metrics of the training batches as they were trained on (train mode: dropout on).
    pub train: SplitMetrics,
    /// Metrics of the validation split in eval mode after the epoch.
    pub val: SplitMetrics,
    /// Global gradient norm before clipping: mean and max over the epoch's steps.
    #[serde(deserialize_with = "f64_or_null")]
    pub grad_norm_mean: f64,
    #[serde(deserialize_with = "f64_or_null")]
    pub grad_norm_max: f64,
    /// Per parameter group, after the schedule.
    pub lr: Vec<GroupLr>,
    /// Training samples per second over the epoch's training steps.
    pub samples_per_s: f64,
    /// Wall time of the whole epoch (training and validation).
    pub seconds: f64,
    /// Seconds the training steps waited for the loader thread (loading that did not overlap
    /// compute); 0 in logs written before it was recorded.
    #[serde(default)]
    pub data_wait_s: f64,
    /// Process CPU time ÷ wall time over the training steps: about the number of busy cores
    /// (NaN where CPU time is unavailable; on a GPU it mostly measures the launching thread).
    #[serde(default, deserialize_with = "f64_or_null")]
    pub train_cpu_per_wall: f64,
    /// Whether this epoch set a new best validation loss.
    pub best: bool,
}

/// Appends records to a log file, one line each, flushed to the OS before `append` returns.
pub struct LogWriter {
    path: PathBuf,
    file: std::fs::File,
}

impl LogWriter {
    /// Opens for appending (creating the file): a resumed run continues the same log.
    pub fn append_to(path: &Path) -> Result<LogWriter> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::file(path, format!("cannot open the log for appending: {e}")))?;
        Ok(LogWriter { path: path.to_path_buf(), file })
    }

    pub fn append(&mut self, rec: &EpochRecord) -> Result<()> {
        let mut line = serde_json::to_string(rec).expect("an epoch record always serialises");
        line.push('\n');
        // One write per line: with O_APPEND the line lands whole or (on a crash) as a torn tail
        // that `read_log` recognises.
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.flush())
            .map_err(|e| Error::file(&self.path, format!("cannot append to the log: {e}")))
    }
}

/// Reads every record. A last line without its newline (a write torn by a crash) is ignored;
/// any other line that is not a record is an error naming the file and line.
pub fn read_log(path: &Path) -> Result<Vec<EpochRecord>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, format!("cannot read the log: {e}")))?;
    parse_log(&text, path)
}

pub fn parse_log(text: &str, path: &Path) -> Result<Vec<EpochRecord>> {
    let complete = match text.rfind('\n') {
        Some(i) => &text[..i + 1],
        None => "",
    };
    complete
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| Error::file(path, format!("line {}: not an epoch record: {e}", i + 1)))
        })
        .collect()
}
