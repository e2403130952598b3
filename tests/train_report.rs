//! The run report, the compare table and the PNG plots of `moodgrad::train`.

use moodgrad::rng::Rng;
use moodgrad::train::baselines::{self, Labelled};
use moodgrad::train::bootstrap::{Dim, Metric};
use moodgrad::train::compare::{self, ModelRuns};
use moodgrad::train::metrics::{ConfusionMatrix, Quadrant};
use moodgrad::train::plot::{self, LossPoint};
use moodgrad::train::predictions::{PredictionRow, evaluate};
use moodgrad::train::report::{PlotRef, RunReport, TrainingSummary, num};
use moodgrad::train::report_explain::Figure;
use std::path::{Path, PathBuf};

/// n songs with MERGE-like values (the centre removed) and predictions of noise level `noise`.
fn songs(n: usize, noise: f64, seed: u64) -> Vec<PredictionRow> {
    let mut truth_rng = Rng::new(1);
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let [v, a] = baselines::random_point(&mut truth_rng);
            let pred = [v + noise * rng.normal(), a + noise * rng.normal()];
            PredictionRow {
                song: format!("MT{i:05}"),
                truth: [v, a],
                pred,
                quadrant: Quadrant::from_va(v, a),
                duration_s: Some(if i % 5 == 0 { 8.0 + i as f64 % 20.0 } else { 30.0 }),
            }
        })
        .collect()
}

fn train_set() -> Vec<Labelled> {
    songs(200, 0.0, 0).iter().map(|r| Labelled { va: r.truth, quadrant: r.quadrant }).collect()
}

#[test]
fn report_has_every_section_with_the_right_numbers() {
    let rows = songs(80, 0.1, 3);
    let base = baselines::compute(&train_set(), &rows, "test", 42);
    let report = RunReport {
        run: "runs/m3-fixed".into(),
        model: "preset model3, SE attention, fixed preprocessing".into(),
        split: "test".into(),
        rows: &rows,
        baselines: &base,
        training: TrainingSummary {
            epochs_run: 27,
            max_epochs: 50,
            best: Some((17, 0.0312)),
            restored_epoch: Some(17),
            stopped_early: true,
            seconds: 512.4,
            samples_per_s: 84.2,
        },
        plots: vec![PlotRef { title: "Loss curves".into(), file: "loss.png".into() }],
        explain: vec![
            Figure {
                title: "Last SE block's channel weights per quadrant (test split)".into(),
                made: Ok("se_quadrants_test.png".into()),
                note: "Mean gate per channel.".into(),
            },
            Figure {
                title: "Emotion over time".into(),
                made: Err("the songs' audio files are needed: no such folder".into()),
                note: String::new(),
            },
        ],
    };
    let md = report.to_markdown();
    for heading in [
        "# moodgrad report: runs/m3-fixed",
        "## Test metrics (test split, n = 80)",
        "## By true quadrant",
        "## Short clips (< 29 s, padded)",
        "## Baselines (same split)",
        "## The thesis's numbers (reference)",
        "## Training",
        "## Plots",
        "## What the model listened to",
        "### Last SE block's channel weights per quadrant (test split)",
        "![Last SE block's channel weights per quadrant (test split)](se_quadrants_test.png)",
        "### Emotion over time\n\nNot made: the songs' audio files are needed: no such folder",
    ] {
        assert!(md.contains(heading), "missing `{heading}` in\n{md}");
    }
    let r = evaluate("test", &rows);
    let want_valence = format!(
        "| valence | {} | {} | {} | {} |",
        num(r.valence.mae),
        num(r.valence.rmse),
        num(r.valence.r2),
        num(r.valence.pearson)
    );
    assert!(md.contains(&want_valence), "{want_valence}\n{md}");
    assert!(md.contains(&format!("accuracy {}", num(r.quadrant.accuracy))));
    // Per quadrant: the n column adds up to the split.
    for q in Quadrant::ALL {
        let n = rows.iter().filter(|r| r.quadrant == q).count();
        assert!(md.contains(&format!("| {q} | {n} |")), "{q} n = {n}\n{md}");
    }
    assert!(md.contains("16 short, 64 full-length, 0 of unknown duration"), "{md}");
    for b in [
        "| train mean |",
        "| random |",
        "| quadrant centre |",
        "oracle",
        "mean training (valence, arousal) of its true",
    ] {
        assert!(md.contains(b), "missing `{b}`");
    }
    for t in ["| MODEL_3 | 0.1219 | 0.478 | 0.0593 | 0.533 |", "| quadrant centre | 0.0490 | — | 0.0423 | — |"] {
        assert!(md.contains(t), "missing thesis row `{t}`");
    }
    assert!(md.contains("best epoch: 17 (validation loss 0.0312)") && md.contains("27 of 50 (stopped early)"));
    assert!(md.contains("![Loss curves](loss.png)"));
    // The quadrant-centre oracle beats the train mean on this data (its errors are within-quadrant).
    assert!(base[2].report.valence.mae < base[0].report.valence.mae);
}

fn model(name: &str, seeds: u64, fixed_noise: f64, legacy_noise: f64) -> ModelRuns {
    ModelRuns {
        name: name.into(),
        fixed: (0..seeds).map(|s| songs(120, fixed_noise, 10 + s)).collect(),
        legacy: (0..seeds).map(|s| songs(120, legacy_noise, 20 + s)).collect(),
    }
}

#[test]
fn compare_table_has_mean_sd_cells_differences_and_baselines() {
    let models = [model("model3", 3, 0.05, 0.15), model("model4, wide", 3, 0.1, 0.1)];
    let test = &models[0].fixed[0];
    let base: Vec<_> = (0..3).flat_map(|s| baselines::compute(&train_set(), test, "test", s)).collect();
    let t = compare::build(&models, &base, "test", 300, 9).unwrap();
    assert_eq!((t.seeds, t.rows.len(), t.differences.len(), t.baselines.len()), (3, 4, 2, 3));

    // Each Δ estimate is the difference of the two mean cells.
    for (k, d) in t.differences.iter().enumerate() {
        let (legacy, fixed) = (&t.rows[2 * k], &t.rows[2 * k + 1]);
        assert_eq!((legacy.variant.as_str(), fixed.variant.as_str()), ("legacy", "fixed"));
        for (i, iv) in d.intervals.iter().enumerate() {
            assert!((iv.estimate - (fixed.cells[i].mean - legacy.cells[i].mean)).abs() < 1e-12);
        }
    }
    // model3's fixed runs are 3× less noisy: MAE difference clearly negative, interval below 0.
    let mae = Metric::ALL.iter().position(|&m| m == Metric::Mae(Dim::Valence)).unwrap();
    assert!(t.differences[0].intervals[mae].hi < 0.0, "{:?}", t.differences[0].intervals[mae]);
    let sd = t.rows[1].cells[mae].sd.unwrap();
    assert!(sd > 0.0 && sd < 0.01, "three seeds of the same noise level differ a little: {sd}");

    let md = t.to_markdown();
    assert!(md.contains("mean ± sd over 3 seeds") && md.contains("300 resamples"), "{md}");
    assert!(
        md.contains("| model | variant | V MAE | V RMSE | V R² | V r | A MAE | A RMSE | A R² | A r | Q acc | Q F1 |")
    );
    for needle in [
        "| model3 | legacy |",
        "| model3 | fixed |",
        "| model3 | Δ fixed − legacy |",
        "| random | baseline |",
        " ± ",
        "*",
    ] {
        assert!(md.contains(needle), "missing `{needle}` in\n{md}");
    }
    let csv = t.to_csv();
    let mut r = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        ["model", "variant", "metric", "mean", "sd", "runs", "ci_low", "ci_high"]
    );
    let recs: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(recs.len(), 10 * (4 + 2 + 3));
    assert!(recs.iter().any(|x| &x[0] == "model4, wide"), "a comma in a model name is quoted");
    let d = recs.iter().find(|x| &x[1] == "fixed-legacy" && &x[2] == "valence_mae").unwrap();
    assert!(d[6].parse::<f64>().unwrap() < d[7].parse::<f64>().unwrap());

    // One seed: plain cells, no ±.
    let one = compare::build(&[model("m", 1, 0.05, 0.1)], &[], "test", 50, 1).unwrap();
    assert!(!one.to_markdown().contains(" ± ") && one.to_markdown().contains("one seed"));
    assert!(compare::build(&[ModelRuns { legacy: vec![], ..model("m", 1, 0.1, 0.1) }], &[], "test", 5, 1).is_err());
}

fn plot_dir() -> PathBuf {
    // Kept after the run (under target/) so a person can look at the plots.
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("train-plots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Decodes an RGB(A) PNG: (width, height, bytes per pixel, pixels).
fn decode(path: &Path) -> (u32, u32, usize, Vec<u8>) {
    let dec = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, info.color_type.samples(), buf)
}

/// Dark pixels (text or lines) in rows `y0..y1`.
fn dark_pixels(img: &(u32, u32, usize, Vec<u8>), y0: u32, y1: u32) -> usize {
    let (w, _, bpp, px) = img;
    (y0..y1)
        .flat_map(|y| (0..*w).map(move |x| ((y * w + x) as usize) * bpp))
        .filter(|&i| px[i] < 100 && px[i + 1] < 100 && px[i + 2] < 100)
        .count()
}

#[test]
fn plots_are_written_with_the_embedded_font() {
    let dir = plot_dir();
    let rows = songs(150, 0.08, 4);
    let loss: Vec<LossPoint> = (1..=30)
        .map(|e| LossPoint {
            epoch: e,
            train: 0.05 / (e as f64).sqrt(),
            val: 0.03 + 0.02 / e as f64 + 0.0003 * e as f64,
        })
        .collect();
    let mut cm = ConfusionMatrix::default();
    for r in &rows {
        cm.push(r.quadrant, r.predicted_quadrant());
    }
    let files = [dir.join("loss.png"), dir.join("valence.png"), dir.join("confusion.png")];
    for f in &files {
        std::fs::remove_file(f).ok();
    }
    plot::loss_curves(&files[0], &loss, Some(14), "MSE").unwrap();
    let (t, p): (Vec<f64>, Vec<f64>) = rows.iter().map(|r| (r.truth[0], r.pred[0])).unzip();
    plot::predicted_vs_true(&files[1], "Valence (test, n = 150)", "valence", &t, &p).unwrap();
    plot::confusion_matrix(&files[2], "Quadrants (test, n = 150)", &cm).unwrap();
    for (f, (w, h)) in files.iter().zip([(900, 600), (700, 700), (720, 680)]) {
        let img = decode(f);
        assert_eq!((img.0, img.1), (w, h), "{}", f.display());
        // The caption band (above the plot frame) holds only the title's glyphs: if no font had
        // rendered it would be blank white.
        let ink = dark_pixels(&img, 10, 45);
        assert!(ink > 150, "{}: {ink} dark pixels in the caption band", f.display());
    }
    let e = plot::loss_curves(Path::new("/nonexistent-dir/loss.png"), &loss, None, "MSE").unwrap_err().to_string();
    assert!(e.contains("/nonexistent-dir/loss.png"), "{e}");
    println!("plots in {}", dir.display());
}
