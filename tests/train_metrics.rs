//! Metrics, predictions files, baselines and the bootstrap of `moodgrad::train`.

use moodgrad::rng::Rng;
use moodgrad::train::baselines::{self, CENTRE_HOLE, Labelled};
use moodgrad::train::bootstrap::{Dim, Metric, paired_difference, quantile};
use moodgrad::train::metrics::{ConfusionMatrix, MetricsAcc, Quadrant, RegressionAcc};
use moodgrad::train::predictions::{self, PredictionRow, evaluate};
use std::path::Path;

// The data of tools/train_metrics_reference.py, verbatim.
const TV: [f64; 12] = [0.81, 0.23, 0.45, 0.66, 0.12, 0.93, 0.38, 0.57, 0.71, 0.29, 0.64, 0.05];
const TA: [f64; 12] = [0.72, 0.61, 0.28, 0.33, 0.41, 0.85, 0.67, 0.22, 0.58, 0.36, 0.44, 0.77];
const PV: [f64; 12] = [0.70, 0.35, 0.52, 0.61, 0.20, 0.80, 0.45, 0.49, 0.66, 0.33, 0.58, 0.18];
const PA: [f64; 12] = [0.65, 0.55, 0.35, 0.40, 0.47, 0.70, 0.52, 0.30, 0.61, 0.42, 0.49, 0.60];
const LABELS: [&str; 12] = ["Q1", "Q2", "Q3", "Q4", "Q3", "Q1", "Q2", "Q3", "Q1", "Q3", "Q4", "Q2"];

fn q(s: &str) -> Quadrant {
    Quadrant::parse(s).unwrap()
}

fn rows() -> Vec<PredictionRow> {
    (0..12)
        .map(|i| PredictionRow {
            song: format!("MT{i:04}"),
            truth: [TV[i], TA[i]],
            pred: [PV[i], PA[i]],
            quadrant: q(LABELS[i]),
            duration_s: Some(if i % 4 == 0 { 12.5 } else { 30.0 }),
        })
        .collect()
}

/// Summation order differs from sklearn's by a few ulps of 0.1: 1e-12 is far above that and far
/// below any real error.
fn close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() < 1e-12, "{what}: got {got}, sklearn/scipy {want}");
}

#[test]
fn quadrants_follow_merge_thresholds() {
    assert_eq!(Quadrant::from_va(0.5, 0.5), Quadrant::Q1);
    assert_eq!(Quadrant::from_va(0.49, 0.5), Quadrant::Q2);
    assert_eq!(Quadrant::from_va(0.49, 0.49), Quadrant::Q3);
    assert_eq!(Quadrant::from_va(0.5, 0.49), Quadrant::Q4);
    assert_eq!(Quadrant::parse(" Q3 "), Some(Quadrant::Q3));
    assert_eq!(Quadrant::parse("q3"), None);
    assert_eq!(Quadrant::from_index(3), Some(Quadrant::Q4));
}

#[test]
fn metrics_match_sklearn_and_scipy() {
    // Expected values printed by tools/train_metrics_reference.py (sklearn 1.9.1, scipy 1.17.1).
    let r = evaluate("test", &rows());
    assert_eq!((r.split.as_str(), r.n), ("test", 12));
    close(r.valence.mae, 0.0825, "valence MAE");
    close(r.valence.rmse, 0.08808140174482543, "valence RMSE");
    close(r.valence.r2, 0.8909665833853841, "valence R²");
    close(r.valence.pearson, 0.9860932307867748, "valence Pearson");
    close(r.arousal.mae, 0.085, "arousal MAE");
    close(r.arousal.rmse, 0.09539392014169457, "arousal RMSE");
    close(r.arousal.r2, 0.7693282636248415, "arousal R²");
    close(r.arousal.pearson, 0.9493118664703755, "arousal Pearson");
    close(r.quadrant.accuracy, 0.9166666666666666, "quadrant accuracy");
    close(r.quadrant.macro_f1, 0.9142857142857144, "quadrant macro-F1");
}

#[test]
fn confusion_matrix_counts_true_rows_against_predicted_columns() {
    let mut acc = MetricsAcc::default();
    for r in rows() {
        acc.push(r.truth, r.pred, r.quadrant);
    }
    // sklearn confusion_matrix(labels, pred, labels=[Q1..Q4]).
    assert_eq!(acc.confusion.counts, [[3, 0, 0, 0], [0, 3, 0, 0], [0, 0, 3, 1], [0, 0, 0, 2]]);
    assert_eq!(acc.confusion.support(Quadrant::Q3), 4);
    assert_eq!(acc.confusion.recall(Quadrant::Q3), 0.75);
}

#[test]
fn streaming_batches_equal_one_pass() {
    let rs = rows();
    let (mut whole, mut batched) = (MetricsAcc::default(), MetricsAcc::default());
    for r in &rs {
        whole.push(r.truth, r.pred, r.quadrant);
    }
    for chunk in rs.chunks(5) {
        let t: Vec<f64> = chunk.iter().flat_map(|r| r.truth).collect();
        let p: Vec<f64> = chunk.iter().flat_map(|r| r.pred).collect();
        let qs: Vec<Quadrant> = chunk.iter().map(|r| r.quadrant).collect();
        batched.push_batch(&t, &p, &qs).unwrap();
    }
    assert_eq!(whole.finish("test"), batched.finish("test"));
    let e = batched.push_batch(&[0.1, 0.2], &[0.1], &[Quadrant::Q1]).unwrap_err().to_string();
    assert!(e.contains("[1, 2]"), "{e}");
}

fn macro_f1(truth: &[&str], pred: &[&str]) -> f64 {
    let mut cm = ConfusionMatrix::default();
    for (t, p) in truth.iter().zip(pred) {
        cm.push(q(t), q(p));
    }
    cm.macro_f1()
}

#[test]
fn macro_f1_zero_division_rule_is_sklearns() {
    // Q3 occurs only as a true label: its F1 is 0 and it counts (sklearn: 0.38888888888888884).
    close(macro_f1(&["Q1", "Q1", "Q2", "Q3"], &["Q1", "Q2", "Q2", "Q2"]), 0.38888888888888884, "true-only class");
    // Q4 occurs only as a prediction (F1 0, counted); Q3 occurs nowhere (left out). sklearn: 0.6.
    close(macro_f1(&["Q1", "Q1", "Q1", "Q2"], &["Q1", "Q4", "Q1", "Q2"]), 0.6, "pred-only class");
    assert!(ConfusionMatrix::default().macro_f1().is_nan());
}

#[test]
fn degenerate_regressions_follow_sklearn_and_scipy() {
    let r2 = |t: &[f64], p: &[f64]| {
        let mut a = RegressionAcc::default();
        t.iter().zip(p).for_each(|(&t, &p)| a.push(t, p));
        a.finish()
    };
    // r2_score with constant truth: 1.0 when exact, 0.0 otherwise (force_finite=True).
    assert_eq!(r2(&[0.3, 0.3], &[0.3, 0.3]).r2, 1.0);
    assert_eq!(r2(&[0.3, 0.3], &[0.2, 0.4]).r2, 0.0);
    // Pearson of a constant series is undefined (scipy: nan) and written as null.
    let constant_pred = r2(&[0.1, 0.9], &[0.5, 0.5]);
    assert!(constant_pred.pearson.is_nan());
    assert!(RegressionAcc::default().finish().mae.is_nan());
    let mut acc = MetricsAcc::default();
    acc.push([0.1, 0.2], [0.5, 0.2], Quadrant::Q3);
    acc.push([0.9, 0.7], [0.5, 0.6], Quadrant::Q1);
    let json = acc.finish("val").to_json_line();
    assert!(json.contains("\"pearson\": null"), "{json}");
}

#[test]
fn eval_report_json_has_the_public_shape() {
    let line = evaluate("test", &rows()).to_json_line();
    assert!(!line.contains('\n'));
    // Key order and spacing as the interface text shows them.
    assert!(line.starts_with(r#"{"split": "test", "n": 12, "valence": {"mae": 0.0825, "rmse": "#), "{line}");
    let order = ["\"valence\"", "\"arousal\"", "\"quadrant\": {\"accuracy\": ", "\"macro_f1\": "];
    let pos: Vec<usize> = order.iter().map(|k| line.find(k).unwrap_or_else(|| panic!("{k} in {line}"))).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{line}");
    for d in ["valence", "arousal"] {
        let at = line.find(&format!("\"{d}\": {{")).unwrap();
        let obj = &line[at..at + line[at..].find('}').unwrap()];
        let keys: Vec<usize> =
            ["mae", "rmse", "r2", "pearson"].iter().map(|k| obj.find(&format!("\"{k}\": ")).unwrap()).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{obj}");
    }
    let back: moodgrad::train::metrics::EvalReport = serde_json::from_str(&line).unwrap();
    assert_eq!(back, evaluate("test", &rows()));
}

#[test]
fn predictions_csv_round_trips_and_rejects_bad_rows() {
    let dir = std::env::temp_dir().join(format!("moodgrad-pred-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("predictions_test.csv");
    let mut rs = rows();
    rs[3].duration_s = None;
    predictions::write_csv(&path, &rs).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with(
        "song,valence_true,valence_pred,arousal_true,arousal_pred,quadrant_true,quadrant_pred,duration_s\n"
    ));
    assert!(text.contains("MT0002,0.45,0.52,0.28,0.35,Q3,Q4,30\n"), "{text}");
    assert_eq!(predictions::read_csv(&path).unwrap(), rs);

    let p = Path::new("run/predictions_test.csv");
    let head = "song,valence_true,valence_pred,arousal_true,arousal_pred,quadrant_true,quadrant_pred,duration_s\n";
    let bad_num = format!("{head}a,0.1,0.2,0.3,0.4,Q3,Q3,\nb,0.1,x,0.3,0.4,Q3,Q3,\n");
    let e = predictions::parse_csv(bad_num.as_bytes(), p).unwrap_err().to_string();
    assert!(e.contains("run/predictions_test.csv") && e.contains("line 3") && e.contains("valence_pred"), "{e}");
    let bad_q = format!("{head}a,0.1,0.2,0.3,0.4,Q5,Q3,\n");
    let e = predictions::parse_csv(bad_q.as_bytes(), p).unwrap_err().to_string();
    assert!(e.contains("quadrant_true") && e.contains("Q1, Q2, Q3 or Q4"), "{e}");
    let inconsistent = format!("{head}a,0.1,0.9,0.3,0.4,Q3,Q3,\n");
    let e = predictions::parse_csv(inconsistent.as_bytes(), p).unwrap_err().to_string();
    assert!(e.contains("quadrant_pred"), "{e}");
    let e = predictions::parse_csv(b"song,v\nx,1\n", p).unwrap_err().to_string();
    assert!(e.contains("header"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

fn train_set() -> Vec<Labelled> {
    // Q4 has no training song, to exercise the fallback.
    [
        ([0.8, 0.7], "Q1"),
        ([0.6, 0.9], "Q1"),
        ([0.2, 0.6], "Q2"),
        ([0.3, 0.3], "Q3"),
        ([0.1, 0.2], "Q3"),
        ([0.4, 0.1], "Q3"),
    ]
    .iter()
    .map(|&(va, l)| Labelled { va, quadrant: q(l) })
    .collect()
}

#[test]
fn train_mean_and_quadrant_centre_baselines() {
    let test = rows();
    let out = baselines::compute(&train_set(), &test, "test", 7);
    let names: Vec<&str> = out.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["train mean", "random", "quadrant centre"]);
    let mean = [2.4 / 6.0, 2.8 / 6.0];
    for r in &out[0].rows {
        close(r.pred[0], mean[0], "train mean v");
        close(r.pred[1], mean[1], "train mean a");
    }
    // Hand-computed: MAE of the constant train-mean valence on the 12 test songs.
    let mae: f64 = TV.iter().map(|v| (v - mean[0]).abs()).sum::<f64>() / 12.0;
    close(out[0].report.valence.mae, mae, "train-mean MAE");
    let centre = &out[2];
    assert!(centre.definition.contains("oracle") && centre.definition.contains("Q4"), "{}", centre.definition);
    for r in &centre.rows {
        let want = match r.quadrant {
            Quadrant::Q1 => [0.7, 0.8],
            Quadrant::Q2 => [0.2, 0.6],
            Quadrant::Q3 => [0.8 / 3.0, 0.2],
            Quadrant::Q4 => mean,
        };
        close(r.pred[0], want[0], "centre v");
        close(r.pred[1], want[1], "centre a");
        assert_eq!(r.truth, test.iter().find(|t| t.song == r.song).unwrap().truth);
    }
}

#[test]
fn random_baseline_avoids_the_centre_and_is_seeded() {
    let mut rng = Rng::new(3);
    let pts: Vec<[f64; 2]> = (0..20_000).map(|_| baselines::random_point(&mut rng)).collect();
    assert!(pts.iter().all(|p| (0.0..1.0).contains(&p[0]) && (0.0..1.0).contains(&p[1])));
    assert!(pts.iter().all(|p| !((p[0] - 0.5).abs() < CENTRE_HOLE && (p[1] - 0.5).abs() < CENTRE_HOLE)));
    // Uniform outside the 0.2 × 0.2 hole: the share in [0, 0.5)² is 0.24 / 0.96 = 0.25; the
    // standard error over 20 000 draws is 0.003, so 0.015 is 5 sigma.
    let low = pts.iter().filter(|p| p[0] < 0.5 && p[1] < 0.5).count() as f64 / pts.len() as f64;
    assert!((low - 0.25).abs() < 0.015, "{low}");
    let a = baselines::compute(&train_set(), &rows(), "test", 11);
    let b = baselines::compute(&train_set(), &rows(), "test", 11);
    let c = baselines::compute(&train_set(), &rows(), "test", 12);
    assert_eq!(a[1].rows, b[1].rows);
    assert_ne!(a[1].rows, c[1].rows);
}

/// n songs; system A's errors are B's plus a shared term, so a paired interval is much narrower
/// than an unpaired one.
fn paired_systems(n: usize) -> (Vec<PredictionRow>, Vec<PredictionRow>) {
    let mut rng = Rng::new(99);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..n {
        let (v, ar) = (rng.uniform(), rng.uniform());
        let shared = 0.2 * rng.normal();
        let base = PredictionRow {
            song: format!("S{i}"),
            truth: [v, ar],
            pred: [v + shared, ar + shared],
            quadrant: Quadrant::from_va(v, ar),
            duration_s: None,
        };
        let mut worse = base.clone();
        worse.pred[0] += 0.03 * rng.normal() + 0.02 * shared.signum();
        a.push(base);
        b.push(worse);
    }
    b.reverse(); // the bootstrap must align songs by name, not by position
    (a, b)
}

#[test]
fn bootstrap_interval_is_paired_and_matches_the_normal_approximation() {
    let n = 400;
    let (a, b) = paired_systems(n);
    let m = [Metric::Mae(Dim::Valence)];
    let got = paired_difference(&[&a], &[&b], &m, 2000, 5).unwrap()[0];
    let ra = evaluate("t", &a);
    let rb = evaluate("t", &b);
    close(got.estimate, ra.valence.mae - rb.valence.mae, "estimate = difference of the full-set MAEs");
    // Paired per-song differences of |error|; the 95 % interval is about ±1.96 standard errors.
    let by_song: std::collections::HashMap<_, _> = b.iter().map(|r| (r.song.clone(), r)).collect();
    let d: Vec<f64> =
        a.iter().map(|r| (r.pred[0] - r.truth[0]).abs() - (by_song[&r.song].pred[0] - r.truth[0]).abs()).collect();
    let mean = d.iter().sum::<f64>() / n as f64;
    let se = (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64 / n as f64).sqrt();
    let width = got.hi - got.lo;
    // 2000 resamples estimate a 95 % interval's width to within a few %: 15 % is a loose bound
    // that an unpaired bootstrap (≈ 7× wider here) or a wrong quantile cannot meet.
    assert!((width / (2.0 * 1.96 * se) - 1.0).abs() < 0.15, "width {width}, 3.92·se {}", 3.92 * se);
    assert!(got.lo < got.estimate && got.estimate < got.hi && got.hi < 0.0, "{got:?}");
    // Seeded: the same call gives the same interval; another seed a slightly different one.
    assert_eq!(paired_difference(&[&a], &[&b], &m, 2000, 5).unwrap()[0], got);
    assert_ne!(paired_difference(&[&a], &[&b], &m, 2000, 6).unwrap()[0], got);
}

#[test]
fn bootstrap_of_identical_systems_is_zero_and_seed_average_is_the_estimand() {
    let (a, b) = paired_systems(60);
    let iv = paired_difference(&[&a], &[&a], &Metric::ALL, 200, 1).unwrap();
    for (m, i) in Metric::ALL.iter().zip(&iv) {
        assert_eq!((i.estimate, i.lo, i.hi), (0.0, 0.0, 0.0), "{m:?}");
    }
    // Two seeds per variant: the estimate is mean(metric over seeds of A) − mean(... of B).
    let got = paired_difference(&[&a, &b], &[&b, &b], &[Metric::Rmse(Dim::Valence)], 100, 1).unwrap()[0];
    let (ra, rb) = (evaluate("t", &a).valence.rmse, evaluate("t", &b).valence.rmse);
    close(got.estimate, (ra + rb) / 2.0 - rb, "seed-averaged estimate");
    let mut short = a.clone();
    short.pop();
    let e = paired_difference(&[&a], &[&short], &Metric::ALL, 10, 1).unwrap_err().to_string();
    assert!(e.contains("same split"), "{e}");
}

#[test]
fn quantile_interpolates_like_numpy() {
    // numpy.quantile([1, 2, 3, 4], [0.025, 0.5, 0.975]) = [1.075, 2.5, 3.925].
    let s = [1.0, 2.0, 3.0, 4.0];
    close(quantile(&s, 0.025), 1.075, "q 0.025");
    close(quantile(&s, 0.5), 2.5, "q 0.5");
    close(quantile(&s, 0.975), 3.925, "q 0.975");
}
