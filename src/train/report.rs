//! `RUN/report.md`: a run's test metrics (overall, per true quadrant, short clips), the baselines
//! on the same split, the thesis's numbers, the training summary and the plots, from plain data.

use super::baselines::BaselineResult;
use super::metrics::{ConfusionMatrix, EvalReport, Quadrant, Regression};
use super::predictions::{PredictionRow, evaluate};
use crate::error::Result;
use std::fmt::Write;
use std::path::Path;

/// Clips shorter than this were padded to the model's input length (MERGE's excerpts are 30 s).
pub const SHORT_CLIP_SECONDS: f64 = 29.0;

/// One row of the thesis's test results (FACTS.md), valence then arousal.
#[derive(Clone, Copy, Debug)]
pub struct ThesisRow {
    pub name: &'static str,
    pub valence_mae: f64,
    pub valence_r2: Option<f64>,
    pub arousal_mae: f64,
    pub arousal_r2: Option<f64>,
}

/// The thesis's numbers, for reference (its own split file and preprocessing, the notebooks' code).
pub const THESIS: [ThesisRow; 5] = [
    ThesisRow {
        name: "MODEL_3",
        valence_mae: 0.1219,
        valence_r2: Some(0.478),
        arousal_mae: 0.0593,
        arousal_r2: Some(0.533),
    },
    ThesisRow {
        name: "MODEL_4",
        valence_mae: 0.1112,
        valence_r2: Some(0.548),
        arousal_mae: 0.0590,
        arousal_r2: Some(0.542),
    },
    ThesisRow {
        name: "MODEL_5",
        valence_mae: 0.1018,
        valence_r2: Some(0.544),
        arousal_mae: 0.0722,
        arousal_r2: Some(0.355),
    },
    ThesisRow { name: "train mean", valence_mae: 0.2088, valence_r2: None, arousal_mae: 0.1062, arousal_r2: None },
    ThesisRow { name: "quadrant centre", valence_mae: 0.0490, valence_r2: None, arousal_mae: 0.0423, arousal_r2: None },
];

/// How training went (from early stopping and the clock).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingSummary {
    pub epochs_run: usize,
    pub max_epochs: usize,
    /// Lowest validation loss and its epoch.
    pub best: Option<(usize, f64)>,
    /// The epoch whose weights were evaluated (the best one, or the last one in legacy mode).
    pub restored_epoch: Option<usize>,
    pub stopped_early: bool,
    pub seconds: f64,
    pub samples_per_s: f64,
}

/// A plot written next to the report; `file` is relative to the report's folder.
#[derive(Clone, Debug, PartialEq)]
pub struct PlotRef {
    pub title: String,
    pub file: String,
}

/// Everything the report shows.
pub struct RunReport<'a> {
    /// The run's name (its folder).
    pub run: String,
    /// One line describing the model and its config (e.g. "preset model3, SE attention, fixed preprocessing").
    pub model: String,
    pub split: String,
    pub rows: &'a [PredictionRow],
    pub baselines: &'a [BaselineResult],
    pub training: TrainingSummary,
    pub plots: Vec<PlotRef>,
    /// What the model listened to (SE weights per quadrant, timelines), each made or not.
    pub explain: Vec<super::report_explain::Figure>,
}

/// A metric with 4 decimals; NaN (undefined) as a dash.
pub fn num(x: f64) -> String {
    if x.is_finite() { format!("{x:.4}") } else { "—".into() }
}

fn opt(x: Option<f64>) -> String {
    x.map_or("—".into(), |v| format!("{v:.3}"))
}

fn dim_row(name: &str, r: &Regression) -> String {
    format!("| {name} | {} | {} | {} | {} |\n", num(r.mae), num(r.rmse), num(r.r2), num(r.pearson))
}

fn wide_row(label: &str, r: &EvalReport) -> String {
    let (v, a) = (&r.valence, &r.arousal);
    format!(
        "| {label} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
        r.n,
        num(v.mae),
        num(v.rmse),
        num(v.r2),
        num(v.pearson),
        num(a.mae),
        num(a.rmse),
        num(a.r2),
        num(a.pearson),
        num(r.quadrant.accuracy),
        num(r.quadrant.macro_f1)
    )
}

const WIDE_HEAD: &str = "| V MAE | V RMSE | V R² | V r | A MAE | A RMSE | A R² | A r | Q acc | Q F1 |\n";
const WIDE_RULE: &str = "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";

impl RunReport<'_> {
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let overall = evaluate(&self.split, self.rows);
        let _ = writeln!(s, "# moodgrad report: {}\n\n{}\n", self.run, self.model);

        let _ = writeln!(s, "## Test metrics ({} split, n = {})\n", self.split, overall.n);
        s += "| dimension | MAE | RMSE | R² | Pearson r |\n|---|---:|---:|---:|---:|\n";
        s += &dim_row("valence", &overall.valence);
        s += &dim_row("arousal", &overall.arousal);
        let _ = writeln!(
            s,
            "\nQuadrant of the predicted (valence, arousal) against the metadata's `Quadrant` label: \
             accuracy {}, macro-F1 {} (mean F1 over the quadrants present; sklearn's default rule).\n",
            num(overall.quadrant.accuracy),
            num(overall.quadrant.macro_f1)
        );
        let mut cm = ConfusionMatrix::default();
        for r in self.rows {
            cm.push(r.quadrant, r.predicted_quadrant());
        }
        s += "Confusion matrix (rows: true quadrant, columns: predicted):\n\n| true \\ predicted | Q1 | Q2 | Q3 | Q4 |\n|---|---:|---:|---:|---:|\n";
        for q in Quadrant::ALL {
            let c = cm.counts[q.index()];
            let _ = writeln!(s, "| {q} | {} | {} | {} | {} |", c[0], c[1], c[2], c[3]);
        }

        s += "\n## By true quadrant\n\nQ acc here is the share of the quadrant's songs predicted in it (its recall).\n\n";
        s += &format!("| quadrant | n {WIDE_HEAD}{WIDE_RULE}");
        for q in Quadrant::ALL {
            let r = evaluate(&self.split, self.rows.iter().filter(|r| r.quadrant == q));
            s += &wide_row(q.name(), &r);
        }

        let short: Vec<&PredictionRow> =
            self.rows.iter().filter(|r| r.duration_s.is_some_and(|d| d < SHORT_CLIP_SECONDS)).collect();
        let full: Vec<&PredictionRow> =
            self.rows.iter().filter(|r| r.duration_s.is_some_and(|d| d >= SHORT_CLIP_SECONDS)).collect();
        let unknown = self.rows.iter().filter(|r| r.duration_s.is_none()).count();
        let _ = writeln!(
            s,
            "\n## Short clips (< {SHORT_CLIP_SECONDS} s, padded)\n\n{} short, {} full-length, {unknown} of unknown duration.\n",
            short.len(),
            full.len()
        );
        s += &format!("| clips | n {WIDE_HEAD}{WIDE_RULE}");
        s += &wide_row(&format!("< {SHORT_CLIP_SECONDS} s"), &evaluate(&self.split, short));
        s += &wide_row(&format!("≥ {SHORT_CLIP_SECONDS} s"), &evaluate(&self.split, full));

        s += "\n## Baselines (same split)\n\n";
        s += &format!("| predictor | n {WIDE_HEAD}{WIDE_RULE}");
        s += &wide_row("this model", &overall);
        for b in self.baselines {
            s += &wide_row(&b.name, &b.report);
        }
        s += "\n";
        for b in self.baselines {
            let _ = writeln!(s, "- **{}**: {}.", b.name, b.definition);
        }

        s += "\n## The thesis's numbers (reference)\n\nFrom the seed study's thesis (its test split, its notebooks' code and preprocessing; FACTS.md):\n\n";
        s += "| model | V MAE | V R² | A MAE | A R² |\n|---|---:|---:|---:|---:|\n";
        for t in THESIS {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                t.name,
                num(t.valence_mae),
                opt(t.valence_r2),
                num(t.arousal_mae),
                opt(t.arousal_r2)
            );
        }

        let t = &self.training;
        s += "\n## Training\n\n";
        match t.best {
            Some((e, l)) => {
                let _ = writeln!(s, "- best epoch: {e} (validation loss {})", num(l));
            }
            None => s += "- best epoch: none (no finite validation loss)\n",
        }
        let _ =
            writeln!(s, "- weights evaluated: epoch {}", t.restored_epoch.map_or("—".to_string(), |e| e.to_string()));
        let stop = if t.stopped_early { "stopped early" } else { "ran every epoch" };
        let _ = writeln!(s, "- epochs run: {} of {} ({stop})", t.epochs_run, t.max_epochs);
        let _ = writeln!(s, "- time: {:.1} s ({:.1} training samples/s)", t.seconds, t.samples_per_s);

        if !self.plots.is_empty() {
            s += "\n## Plots\n\n";
            for p in &self.plots {
                let _ = writeln!(s, "![{}]({})\n", p.title, p.file);
            }
        }
        if !self.explain.is_empty() {
            s += "\n## What the model listened to\n\n";
            for f in &self.explain {
                match &f.made {
                    Ok(file) => {
                        let _ = writeln!(s, "### {}\n\n{}\n\n![{}]({file})\n", f.title, f.note, f.title);
                    }
                    Err(why) => {
                        let _ = writeln!(s, "### {}\n\nNot made: {why}\n", f.title);
                    }
                }
            }
        }
        s
    }

    /// Writes the markdown atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        crate::io::write_atomic(path, self.to_markdown().as_bytes())
    }
}
