//! One row per song of a split's predictions, and the `RUN/predictions_<split>.csv` file.
//!
//! Columns: `song, valence_true, valence_pred, arousal_true, arousal_pred, quadrant_true,
//! quadrant_pred, duration_s`. `quadrant_true` is the metadata's label, `quadrant_pred` the
//! quadrant of the predicted values; `duration_s` is the clip's length before cropping/padding,
//! empty when unknown.

use super::metrics::{EvalReport, MetricsAcc, Quadrant};
use crate::error::{Error, Result};
use std::path::Path;

pub const HEADER: [&str; 8] = [
    "song",
    "valence_true",
    "valence_pred",
    "arousal_true",
    "arousal_pred",
    "quadrant_true",
    "quadrant_pred",
    "duration_s",
];

#[derive(Clone, Debug, PartialEq)]
pub struct PredictionRow {
    pub song: String,
    /// True `[valence, arousal]`.
    pub truth: [f64; 2],
    /// Predicted `[valence, arousal]`.
    pub pred: [f64; 2],
    /// The metadata's `Quadrant` label.
    pub quadrant: Quadrant,
    /// The audio clip's duration in seconds (before crop/pad), when known.
    pub duration_s: Option<f64>,
}

impl PredictionRow {
    pub fn predicted_quadrant(&self) -> Quadrant {
        Quadrant::from_va(self.pred[0], self.pred[1])
    }
}

/// Metrics of a set of rows (all of a split, or any subset of it).
pub fn evaluate<'a>(split: &str, rows: impl IntoIterator<Item = &'a PredictionRow>) -> EvalReport {
    let mut acc = MetricsAcc::default();
    for r in rows {
        acc.push(r.truth, r.pred, r.quadrant);
    }
    acc.finish(split)
}

/// Writes the CSV atomically (a crash leaves the old file or the new one, never half of one).
pub fn write_csv(path: &Path, rows: &[PredictionRow]) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| Error::file(path, format!("cannot write predictions: {e}"));
    w.write_record(HEADER).map_err(io)?;
    for r in rows {
        let dur = r.duration_s.map(|d| d.to_string()).unwrap_or_default();
        w.write_record([
            r.song.clone(),
            r.truth[0].to_string(),
            r.pred[0].to_string(),
            r.truth[1].to_string(),
            r.pred[1].to_string(),
            r.quadrant.name().to_string(),
            r.predicted_quadrant().name().to_string(),
            dur,
        ])
        .map_err(io)?;
    }
    let bytes = w.into_inner().map_err(|e| Error::file(path, format!("cannot write predictions: {e}")))?;
    crate::io::write_atomic(path, &bytes)
}

/// Reads a file written by `write_csv`; a bad row is an error naming the file, line and column.
/// `quadrant_pred` is checked against the predicted values, so a hand-edited file cannot
/// silently disagree with itself.
pub fn read_csv(path: &Path) -> Result<Vec<PredictionRow>> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read predictions: {e}")))?;
    parse_csv(&bytes, path)
}

pub fn parse_csv(bytes: &[u8], path: &Path) -> Result<Vec<PredictionRow>> {
    let mut r = csv::Reader::from_reader(bytes);
    let header = r.headers().map_err(|e| Error::file(path, format!("not a predictions CSV: {e}")))?.clone();
    if header.iter().map(str::trim).ne(HEADER) {
        return Err(Error::file(
            path,
            format!("header is `{}`; expected `{}`", header.iter().collect::<Vec<_>>().join(","), HEADER.join(",")),
        ));
    }
    let mut rows = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| Error::file(path, format!("bad CSV row: {e}")))?;
        let line = rec.position().map_or(0, |p| p.line());
        let bad = |col: &str, why: &str| Error::file(path, format!("line {line}, column `{col}`: {why}"));
        let num = |i: usize| -> Result<f64> {
            let s = rec[i].trim();
            s.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| bad(HEADER[i], &format!("`{s}` is not a finite number")))
        };
        let quad = |i: usize| Quadrant::parse(&rec[i]).ok_or_else(|| bad(HEADER[i], "expected Q1, Q2, Q3 or Q4"));
        let duration_s = match rec[7].trim() {
            "" => None,
            _ => Some(num(7)?),
        };
        let row = PredictionRow {
            song: rec[0].to_string(),
            truth: [num(1)?, num(3)?],
            pred: [num(2)?, num(4)?],
            quadrant: quad(5)?,
            duration_s,
        };
        if quad(6)? != row.predicted_quadrant() {
            return Err(bad("quadrant_pred", "does not match the quadrant of valence_pred/arousal_pred"));
        }
        rows.push(row);
    }
    Ok(rows)
}
