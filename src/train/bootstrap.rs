//! Paired bootstrap intervals for "fixed minus legacy" differences over the test songs.
//!
//! With K seeds per variant, each resample draws n test songs with replacement (one draw shared by
//! every run: the pairing), computes each run's metric on those songs, averages the metric over the
//! K seeds of each variant, and takes the difference. The interval is the 2.5th–97.5th percentile
//! of those differences; the point estimate is the same difference on the full test set, which is
//! exactly the difference of the two mean cells in the compare table.
//!
//! Why the seed-averaged metric, not seed-averaged predictions: averaging predictions over seeds
//! would score an ensemble, a different (and better) model than any the table reports, and it
//! would hide the seed-to-seed spread the table's ± shows. Averaging the metric keeps the
//! estimand equal to the table's own numbers; the bootstrap then adds the uncertainty that comes
//! from which songs happen to be in the test split, with seeds held fixed. (Seed variance is in
//! the ± cells, not in this interval.)

use super::metrics::{EvalReport, MetricsAcc};
use super::predictions::PredictionRow;
use crate::error::{Error, Result};
use crate::rng::Rng;
use std::collections::HashMap;

/// Resamples used unless a caller says otherwise.
pub const DEFAULT_RESAMPLES: usize = 2000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    Valence,
    Arousal,
}

impl Dim {
    pub fn name(self) -> &'static str {
        match self {
            Dim::Valence => "valence",
            Dim::Arousal => "arousal",
        }
    }
}

/// One number of an `EvalReport`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Mae(Dim),
    Rmse(Dim),
    R2(Dim),
    Pearson(Dim),
    QuadrantAccuracy,
    QuadrantMacroF1,
}

impl Metric {
    /// The compare table's columns, in order.
    pub const ALL: [Metric; 10] = [
        Metric::Mae(Dim::Valence),
        Metric::Rmse(Dim::Valence),
        Metric::R2(Dim::Valence),
        Metric::Pearson(Dim::Valence),
        Metric::Mae(Dim::Arousal),
        Metric::Rmse(Dim::Arousal),
        Metric::R2(Dim::Arousal),
        Metric::Pearson(Dim::Arousal),
        Metric::QuadrantAccuracy,
        Metric::QuadrantMacroF1,
    ];

    pub fn of(self, r: &EvalReport) -> f64 {
        let d = |d: Dim| if d == Dim::Valence { &r.valence } else { &r.arousal };
        match self {
            Metric::Mae(x) => d(x).mae,
            Metric::Rmse(x) => d(x).rmse,
            Metric::R2(x) => d(x).r2,
            Metric::Pearson(x) => d(x).pearson,
            Metric::QuadrantAccuracy => r.quadrant.accuracy,
            Metric::QuadrantMacroF1 => r.quadrant.macro_f1,
        }
    }

    /// Machine name (CSV): `valence_mae`, …, `quadrant_accuracy`, `quadrant_macro_f1`.
    pub fn key(self) -> String {
        match self {
            Metric::Mae(d) => format!("{}_mae", d.name()),
            Metric::Rmse(d) => format!("{}_rmse", d.name()),
            Metric::R2(d) => format!("{}_r2", d.name()),
            Metric::Pearson(d) => format!("{}_pearson", d.name()),
            Metric::QuadrantAccuracy => "quadrant_accuracy".into(),
            Metric::QuadrantMacroF1 => "quadrant_macro_f1".into(),
        }
    }

    /// Column heading (markdown): `V MAE`, …, `Q acc`, `Q F1`.
    pub fn heading(self) -> String {
        let short = |d: Dim| if d == Dim::Valence { "V" } else { "A" };
        match self {
            Metric::Mae(d) => format!("{} MAE", short(d)),
            Metric::Rmse(d) => format!("{} RMSE", short(d)),
            Metric::R2(d) => format!("{} R²", short(d)),
            Metric::Pearson(d) => format!("{} r", short(d)),
            Metric::QuadrantAccuracy => "Q acc".into(),
            Metric::QuadrantMacroF1 => "Q F1".into(),
        }
    }

    /// False for the errors (MAE, RMSE), where a negative difference is an improvement.
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::Mae(_) | Metric::Rmse(_))
    }
}

/// A point estimate with a 95 % percentile interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub estimate: f64,
    pub lo: f64,
    pub hi: f64,
}

/// The q-quantile of sorted values, interpolated linearly (numpy's default method).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos.fract());
    if i + 1 < sorted.len() { sorted[i] + frac * (sorted[i + 1] - sorted[i]) } else { sorted[i] }
}

/// Every run's rows put in the song order of the first run; an error if the runs do not cover
/// the same songs with the same truths and labels.
fn align(runs: &[&[PredictionRow]]) -> Result<Vec<Vec<PredictionRow>>> {
    let first =
        runs.first().ok_or_else(|| Error::Invalid("the bootstrap needs at least one run per variant".into()))?;
    let mut out = Vec::with_capacity(runs.len());
    for (k, run) in runs.iter().enumerate() {
        if run.len() != first.len() {
            return Err(Error::Invalid(format!(
                "run {k} has {} test songs, run 0 has {}: compare runs on the same split",
                run.len(),
                first.len()
            )));
        }
        let by_song: HashMap<&str, &PredictionRow> = run.iter().map(|r| (r.song.as_str(), r)).collect();
        let mut aligned = Vec::with_capacity(first.len());
        for f in first.iter() {
            let r = by_song.get(f.song.as_str()).ok_or_else(|| {
                Error::Invalid(format!(
                    "run {k} has no prediction for song `{}`: compare runs on the same split",
                    f.song
                ))
            })?;
            if r.truth != f.truth || r.quadrant != f.quadrant {
                return Err(Error::Invalid(format!(
                    "song `{}` has different true values or quadrant in run {k} and run 0 (different data?)",
                    f.song
                )));
            }
            aligned.push((*r).clone());
        }
        out.push(aligned);
    }
    Ok(out)
}

/// Mean over runs of each metric, on the songs `idx` (repeats allowed).
fn seed_mean(runs: &[Vec<PredictionRow>], idx: &[usize], metrics: &[Metric]) -> Vec<f64> {
    let mut sums = vec![0.0; metrics.len()];
    for run in runs {
        let mut acc = MetricsAcc::default();
        for &i in idx {
            acc.push(run[i].truth, run[i].pred, run[i].quadrant);
        }
        let rep = acc.finish("bootstrap");
        for (s, m) in sums.iter_mut().zip(metrics) {
            *s += m.of(&rep);
        }
    }
    sums.iter().map(|s| s / runs.len() as f64).collect()
}

/// Paired bootstrap of `mean_over_seeds(metric(a)) − mean_over_seeds(metric(b))` for each metric.
/// `a` and `b` hold one prediction set per seed, all on the same test songs (any order).
/// Resamples whose difference is not finite (e.g. Pearson's r of a constant draw) are left out;
/// if fewer than half remain, the interval is NaN.
pub fn paired_difference(
    a: &[&[PredictionRow]],
    b: &[&[PredictionRow]],
    metrics: &[Metric],
    resamples: usize,
    seed: u64,
) -> Result<Vec<Interval>> {
    let mut all: Vec<&[PredictionRow]> = a.to_vec();
    all.extend_from_slice(b);
    let mut aligned = align(&all)?;
    let b_runs = aligned.split_off(a.len());
    if b_runs.is_empty() {
        return Err(Error::Invalid("the bootstrap needs at least one run per variant".into()));
    }
    let a_runs = aligned;
    let n = a_runs[0].len();
    if n == 0 {
        return Err(Error::Invalid("no test songs to bootstrap over".into()));
    }
    let full: Vec<usize> = (0..n).collect();
    let diff = |idx: &[usize]| -> Vec<f64> {
        let (ma, mb) = (seed_mean(&a_runs, idx, metrics), seed_mean(&b_runs, idx, metrics));
        ma.iter().zip(&mb).map(|(x, y)| x - y).collect()
    };
    let estimate = diff(&full);
    let mut draws: Vec<Vec<f64>> = vec![Vec::with_capacity(resamples); metrics.len()];
    let mut rng = Rng::new(seed);
    let mut idx = vec![0usize; n];
    for _ in 0..resamples {
        for i in idx.iter_mut() {
            *i = rng.below(n);
        }
        for (d, v) in draws.iter_mut().zip(diff(&idx)) {
            if v.is_finite() {
                d.push(v);
            }
        }
    }
    Ok(estimate
        .into_iter()
        .zip(draws)
        .map(|(estimate, mut d)| {
            if d.len() * 2 < resamples.max(1) {
                return Interval { estimate, lo: f64::NAN, hi: f64::NAN };
            }
            d.sort_by(f64::total_cmp);
            Interval { estimate, lo: quantile(&d, 0.025), hi: quantile(&d, 0.975) }
        })
        .collect())
}
