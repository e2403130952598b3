//! Test metrics: regression quality per dimension (valence, arousal) and the quality of the
//! quadrant the predicted (valence, arousal) falls in.
//!
//! Everything accumulates one song at a time (`MetricsAcc::push`), so a caller can stream batches
//! through it and never hold all predictions. Conventions, fixed here once:
//! - Arrays of two values are always `[valence, arousal]`.
//! - R² = 1 − SS_res / SS_tot (sklearn's `r2_score`). With constant targets (SS_tot = 0) it is
//!   1 when the predictions are exact and 0 otherwise (sklearn's `force_finite=True` default).
//! - Pearson's r of a constant series is undefined: it is NaN here and `null` in JSON.
//! - Macro-F1 follows sklearn's `f1_score(average="macro")` defaults: the mean over the classes that
//!   occur in the true or the predicted labels of F1 = 2·TP / (2·TP + FP + FN). A class that occurs
//!   only on one side gets F1 = 0 (sklearn's `zero_division` default also gives 0); a class that
//!   occurs on neither side is left out of the mean.
//! - With no songs at all every metric is NaN.

use crate::error::{Error, Result};
use serde::{Deserialize, Deserializer, Serialize};

/// Russell quadrants as MERGE names them: Q1 V≥0.5 A≥0.5, Q2 V<0.5 A≥0.5, Q3 V<0.5 A<0.5, Q4 V≥0.5 A<0.5.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Quadrant {
    Q1,
    Q2,
    Q3,
    Q4,
}

impl Quadrant {
    pub const ALL: [Quadrant; 4] = [Quadrant::Q1, Quadrant::Q2, Quadrant::Q3, Quadrant::Q4];

    /// The quadrant a (valence, arousal) point lies in; 0.5 itself counts as high.
    pub fn from_va(valence: f64, arousal: f64) -> Quadrant {
        match (valence >= 0.5, arousal >= 0.5) {
            (true, true) => Quadrant::Q1,
            (false, true) => Quadrant::Q2,
            (false, false) => Quadrant::Q3,
            (true, false) => Quadrant::Q4,
        }
    }

    /// 0 for Q1 … 3 for Q4 (the class index of the 4-logit quadrant head).
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_index(i: usize) -> Option<Quadrant> {
        Quadrant::ALL.get(i).copied()
    }

    pub fn name(self) -> &'static str {
        ["Q1", "Q2", "Q3", "Q4"][self.index()]
    }

    /// "Q1".."Q4" (as in MERGE's metadata), surrounding spaces ignored.
    pub fn parse(s: &str) -> Option<Quadrant> {
        Quadrant::ALL.into_iter().find(|q| q.name() == s.trim())
    }
}

impl std::fmt::Display for Quadrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Reads a metric written as `null` (serde_json's spelling of NaN) back as NaN.
pub fn f64_or_null<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Regression quality of one dimension.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Regression {
    #[serde(deserialize_with = "f64_or_null")]
    pub mae: f64,
    #[serde(deserialize_with = "f64_or_null")]
    pub rmse: f64,
    #[serde(deserialize_with = "f64_or_null")]
    pub r2: f64,
    #[serde(deserialize_with = "f64_or_null")]
    pub pearson: f64,
}

/// Streaming sums for one dimension. Means and (co)variances use Welford's updates, so R² and
/// Pearson's r do not lose digits to `Σy² − n·ȳ²` cancellation.
#[derive(Clone, Copy, Debug, Default)]
pub struct RegressionAcc {
    n: u64,
    sum_abs: f64,
    sum_sq: f64,
    mean_t: f64,
    mean_p: f64,
    m2_t: f64,
    m2_p: f64,
    c_tp: f64,
}

impl RegressionAcc {
    pub fn push(&mut self, truth: f64, pred: f64) {
        self.n += 1;
        let n = self.n as f64;
        let e = pred - truth;
        self.sum_abs += e.abs();
        self.sum_sq += e * e;
        let dt = truth - self.mean_t;
        self.mean_t += dt / n;
        let dp = pred - self.mean_p;
        self.mean_p += dp / n;
        self.m2_t += dt * (truth - self.mean_t);
        self.m2_p += dp * (pred - self.mean_p);
        self.c_tp += dt * (pred - self.mean_p);
    }

    pub fn n(&self) -> u64 {
        self.n
    }

    pub fn finish(&self) -> Regression {
        if self.n == 0 {
            return Regression { mae: f64::NAN, rmse: f64::NAN, r2: f64::NAN, pearson: f64::NAN };
        }
        let n = self.n as f64;
        let r2 = if self.m2_t > 0.0 {
            1.0 - self.sum_sq / self.m2_t
        } else if self.sum_sq == 0.0 {
            1.0
        } else {
            0.0
        };
        let denom = (self.m2_t * self.m2_p).sqrt();
        let pearson = if denom > 0.0 { (self.c_tp / denom).clamp(-1.0, 1.0) } else { f64::NAN };
        Regression { mae: self.sum_abs / n, rmse: (self.sum_sq / n).sqrt(), r2, pearson }
    }
}

/// Counts of (true quadrant, predicted quadrant): `counts[true][pred]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    pub counts: [[u64; 4]; 4],
}

impl ConfusionMatrix {
    pub fn push(&mut self, truth: Quadrant, pred: Quadrant) {
        self.counts[truth.index()][pred.index()] += 1;
    }

    pub fn n(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Songs whose true quadrant is `q`.
    pub fn support(&self, q: Quadrant) -> u64 {
        self.counts[q.index()].iter().sum()
    }

    pub fn accuracy(&self) -> f64 {
        let n = self.n();
        if n == 0 {
            return f64::NAN;
        }
        (0..4).map(|i| self.counts[i][i]).sum::<u64>() as f64 / n as f64
    }

    /// Share of the songs truly in `q` that were predicted in `q` (NaN when there are none).
    pub fn recall(&self, q: Quadrant) -> f64 {
        let s = self.support(q);
        if s == 0 { f64::NAN } else { self.counts[q.index()][q.index()] as f64 / s as f64 }
    }

    /// F1 of each class; `None` for a class that occurs neither as a true nor as a predicted label.
    pub fn f1_per_class(&self) -> [Option<f64>; 4] {
        std::array::from_fn(|k| {
            let tp = self.counts[k][k];
            let fn_ = self.support(Quadrant::ALL[k]) - tp;
            let fp = (0..4).map(|t| self.counts[t][k]).sum::<u64>() - tp;
            let denom = 2 * tp + fp + fn_;
            (denom > 0).then(|| 2.0 * tp as f64 / denom as f64)
        })
    }

    /// Mean F1 over the classes present (see the module's notes; sklearn's default rule).
    pub fn macro_f1(&self) -> f64 {
        let present: Vec<f64> = self.f1_per_class().into_iter().flatten().collect();
        if present.is_empty() { f64::NAN } else { present.iter().sum::<f64>() / present.len() as f64 }
    }

    pub fn classification(&self) -> Classification {
        Classification { accuracy: self.accuracy(), macro_f1: self.macro_f1() }
    }
}

/// Quality of the implied quadrant.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    #[serde(deserialize_with = "f64_or_null")]
    pub accuracy: f64,
    #[serde(deserialize_with = "f64_or_null")]
    pub macro_f1: f64,
}

/// Everything `EvalReport` needs, accumulated one song (or one batch) at a time.
#[derive(Clone, Debug, Default)]
pub struct MetricsAcc {
    pub valence: RegressionAcc,
    pub arousal: RegressionAcc,
    pub confusion: ConfusionMatrix,
}

impl MetricsAcc {
    /// One song: true and predicted `[valence, arousal]`, and its true quadrant label (MERGE's
    /// metadata `Quadrant`, which can disagree with the quadrant of the true values). The
    /// predicted quadrant is the one the predicted values fall in.
    pub fn push(&mut self, truth: [f64; 2], pred: [f64; 2], true_quadrant: Quadrant) {
        self.valence.push(truth[0], pred[0]);
        self.arousal.push(truth[1], pred[1]);
        self.confusion.push(true_quadrant, Quadrant::from_va(pred[0], pred[1]));
    }

    /// A batch as flat row-major `[B, 2]` slices (the model's output layout) and B labels.
    pub fn push_batch(&mut self, truth: &[f64], pred: &[f64], true_quadrants: &[Quadrant]) -> Result<()> {
        let b = true_quadrants.len();
        if truth.len() != 2 * b || pred.len() != 2 * b {
            return Err(Error::shape(
                "metrics",
                format!(
                    "{b} labels need [{b}, 2] targets and predictions, got {} and {} values",
                    truth.len(),
                    pred.len()
                ),
            ));
        }
        for ((t, p), &q) in truth.chunks_exact(2).zip(pred.chunks_exact(2)).zip(true_quadrants) {
            self.push([t[0], t[1]], [p[0], p[1]], q);
        }
        Ok(())
    }

    pub fn n(&self) -> u64 {
        self.valence.n()
    }

    pub fn finish(&self, split: &str) -> EvalReport {
        EvalReport {
            split: split.to_string(),
            n: self.n() as usize,
            valence: self.valence.finish(),
            arousal: self.arousal.finish(),
            quadrant: self.confusion.classification(),
            loss: None,
        }
    }
}

/// What `moodgrad evaluate --json` prints, one line:
/// `{"split": "test", "n": N, "valence": {"mae", "rmse", "r2", "pearson"}, "arousal": {…},
/// "quadrant": {"accuracy", "macro_f1"}, "loss"}` (`loss`, where computed: the training objective on
/// the split, as the log's validation loss is, the mean over batches of each batch's mean).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub split: String,
    pub n: usize,
    pub valence: Regression,
    pub arousal: Regression,
    pub quadrant: Classification,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
}

impl EvalReport {
    /// The one-line JSON (no trailing newline), spaced as the interface text shows it
    /// (`{"split": "test", "n": 332, ...}`, Python's `json.dumps` style); NaN metrics are `null`.
    pub fn to_json_line(&self) -> String {
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(&mut out, SpacedLine);
        self.serialize(&mut ser).expect("a struct of numbers and a string always serialises");
        String::from_utf8(out).expect("serde_json writes UTF-8")
    }

    /// Per-dimension metrics by index: 0 valence, 1 arousal.
    pub fn dim(&self, d: usize) -> &Regression {
        if d == 0 { &self.valence } else { &self.arousal }
    }
}

/// serde_json's compact output with a space after each `,` and `:`, on one line.
struct SpacedLine;

impl serde_json::ser::Formatter for SpacedLine {
    fn begin_object_key<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
}
