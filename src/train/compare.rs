//! `moodgrad compare`: for each model, the legacy (notebook) variant against the fixed one on the
//! test split, with the baselines, as a markdown table and a tidy CSV.
//!
//! With K seeds per variant each cell is the mean ± sample standard deviation (ddof = 1) over the
//! K runs; with K = 1 it is the single value. Each model's "fixed − legacy" row carries a 95 %
//! paired bootstrap interval over test songs of the difference of the seed-averaged metric (see
//! `bootstrap` for why that estimand). An interval that excludes 0 is marked `*`.

use super::baselines::BaselineResult;
use super::bootstrap::{Interval, Metric, paired_difference};
use super::predictions::{PredictionRow, evaluate};
use crate::error::{Error, Result};
use std::fmt::Write;

/// One model's runs: one prediction set of the test split per seed, for each variant.
#[derive(Clone, Debug)]
pub struct ModelRuns {
    /// e.g. `model3`.
    pub name: String,
    pub fixed: Vec<Vec<PredictionRow>>,
    pub legacy: Vec<Vec<PredictionRow>>,
}

/// Mean and spread of one metric over runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cell {
    pub mean: f64,
    /// Sample standard deviation; None with a single run.
    pub sd: Option<f64>,
    pub runs: usize,
}

/// Mean and sample standard deviation (ddof = 1); NaN anywhere makes both NaN.
pub fn mean_sd(xs: &[f64]) -> Cell {
    let n = xs.len();
    let mean = xs.iter().sum::<f64>() / n as f64;
    let sd = (n > 1).then(|| (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt());
    Cell { mean, sd, runs: n }
}

/// A labelled row of cells, one per metric.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub label: String,
    /// `fixed`, `legacy` or `baseline`.
    pub variant: String,
    pub cells: Vec<Cell>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Difference {
    pub model: String,
    pub intervals: Vec<Interval>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CompareTable {
    pub split: String,
    pub metrics: Vec<Metric>,
    pub seeds: usize,
    pub resamples: usize,
    pub bootstrap_seed: u64,
    /// Per model: its legacy row, then its fixed row.
    pub rows: Vec<Row>,
    pub differences: Vec<Difference>,
    pub baselines: Vec<Row>,
}

fn cells(runs: &[Vec<PredictionRow>], split: &str, metrics: &[Metric]) -> Vec<Cell> {
    let reports: Vec<_> = runs.iter().map(|r| evaluate(split, r)).collect();
    metrics.iter().map(|m| mean_sd(&reports.iter().map(|r| m.of(r)).collect::<Vec<_>>())).collect()
}

/// Builds the table. `baselines` may hold one result per baseline per seed (grouped by name, in
/// first-seen order). The bootstrap uses `resamples` draws seeded by `bootstrap_seed`.
pub fn build(
    models: &[ModelRuns],
    baselines: &[BaselineResult],
    split: &str,
    resamples: usize,
    bootstrap_seed: u64,
) -> Result<CompareTable> {
    let metrics = Metric::ALL.to_vec();
    let mut rows = Vec::new();
    let mut differences = Vec::new();
    let mut seeds = 0;
    for m in models {
        if m.fixed.is_empty() || m.legacy.is_empty() {
            return Err(Error::Invalid(format!("model `{}` needs at least one fixed and one legacy run", m.name)));
        }
        seeds = seeds.max(m.fixed.len()).max(m.legacy.len());
        rows.push(Row { label: m.name.clone(), variant: "legacy".into(), cells: cells(&m.legacy, split, &metrics) });
        rows.push(Row { label: m.name.clone(), variant: "fixed".into(), cells: cells(&m.fixed, split, &metrics) });
        let a: Vec<&[PredictionRow]> = m.fixed.iter().map(Vec::as_slice).collect();
        let b: Vec<&[PredictionRow]> = m.legacy.iter().map(Vec::as_slice).collect();
        let intervals = paired_difference(&a, &b, &metrics, resamples, bootstrap_seed)
            .map_err(|e| Error::Invalid(format!("model `{}`: {e}", m.name)))?;
        differences.push(Difference { model: m.name.clone(), intervals });
    }
    let mut names: Vec<&str> = Vec::new();
    for b in baselines {
        if !names.contains(&b.name.as_str()) {
            names.push(&b.name);
        }
    }
    let baseline_rows = names
        .iter()
        .map(|&n| {
            let reports: Vec<_> = baselines.iter().filter(|b| b.name == n).map(|b| &b.report).collect();
            let cells = metrics.iter().map(|m| mean_sd(&reports.iter().map(|r| m.of(r)).collect::<Vec<_>>())).collect();
            Row { label: n.to_string(), variant: "baseline".into(), cells }
        })
        .collect();
    Ok(CompareTable {
        split: split.into(),
        metrics,
        seeds,
        resamples,
        bootstrap_seed,
        rows,
        differences,
        baselines: baseline_rows,
    })
}

fn fmt(x: f64) -> String {
    if x.is_finite() { format!("{x:.4}").replace('-', "−") } else { "—".into() }
}

fn cell_text(c: &Cell) -> String {
    match c.sd {
        Some(sd) => format!("{} ± {}", fmt(c.mean), fmt(sd)),
        None => fmt(c.mean),
    }
}

fn interval_text(i: &Interval) -> String {
    let sig = if i.lo > 0.0 || i.hi < 0.0 { "*" } else { "" };
    format!("{}{sig} [{}, {}]", fmt(i.estimate), fmt(i.lo), fmt(i.hi))
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn csv_field(x: &str) -> String {
    if x.contains([',', '"', '\n', '\r']) { format!("\"{}\"", x.replace('"', "\"\"")) } else { x.to_string() }
}

fn csv_num(x: f64) -> String {
    if x.is_finite() { x.to_string() } else { String::new() }
}

impl CompareTable {
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# moodgrad compare: legacy against fixed ({} split)\n", self.split);
        let per = if self.seeds > 1 { format!("mean ± sd over {} seeds", self.seeds) } else { "one seed".to_string() };
        let _ = writeln!(
            s,
            "Cells: {per}. Δ rows: fixed − legacy of the seed-averaged metric, with a 95 % paired bootstrap \
             interval over test songs ({} resamples, seed {}); `*` marks an interval that excludes 0. \
             Lower is better for MAE and RMSE, higher for the rest.\n",
            self.resamples, self.bootstrap_seed
        );
        let heads: Vec<String> = self.metrics.iter().map(|m| m.heading()).collect();
        let _ = writeln!(s, "| model | variant | {} |", heads.join(" | "));
        let _ = writeln!(s, "|---|---|{}", "---:|".repeat(heads.len()));
        for (pair, d) in self.rows.chunks(2).zip(&self.differences) {
            for r in pair {
                let c: Vec<String> = r.cells.iter().map(cell_text).collect();
                let _ = writeln!(s, "| {} | {} | {} |", r.label, r.variant, c.join(" | "));
            }
            let c: Vec<String> = d.intervals.iter().map(interval_text).collect();
            let _ = writeln!(s, "| {} | Δ fixed − legacy | {} |", d.model, c.join(" | "));
        }
        for r in &self.baselines {
            let c: Vec<String> = r.cells.iter().map(cell_text).collect();
            let _ = writeln!(s, "| {} | baseline | {} |", r.label, c.join(" | "));
        }
        s
    }

    /// Tidy CSV: `model,variant,metric,mean,sd,runs,ci_low,ci_high`; Δ rows have variant
    /// `fixed-legacy`, the estimate in `mean` and the interval in `ci_low`/`ci_high`.
    pub fn to_csv(&self) -> String {
        let mut s = String::from("model,variant,metric,mean,sd,runs,ci_low,ci_high\n");
        let row = |s: &mut String, r: &Row| {
            for (m, c) in self.metrics.iter().zip(&r.cells) {
                let sd = c.sd.map_or(String::new(), csv_num);
                let _ = writeln!(
                    s,
                    "{},{},{},{},{sd},{},,",
                    csv_field(&r.label),
                    r.variant,
                    m.key(),
                    csv_num(c.mean),
                    c.runs
                );
            }
        };
        for r in &self.rows {
            row(&mut s, r);
        }
        for d in &self.differences {
            for (m, i) in self.metrics.iter().zip(&d.intervals) {
                let _ = writeln!(
                    s,
                    "{},fixed-legacy,{},{},,{},{},{}",
                    csv_field(&d.model),
                    m.key(),
                    csv_num(i.estimate),
                    self.seeds,
                    csv_num(i.lo),
                    csv_num(i.hi)
                );
            }
        }
        for r in &self.baselines {
            row(&mut s, r);
        }
        s
    }
}
