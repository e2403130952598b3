//! What a finished run leaves for its reader: `predictions_<split>.csv`, `report.md` and the PNG
//! plots beside it (loss curves, predicted against true per dimension, the quadrant confusion
//! matrix), with the seed's baselines computed on the same split.

use super::baselines;
use super::dataset::TrainData;
use super::log::read_log;
use super::metrics::MetricsAcc;
use super::plot;
use super::predictions::{PredictionRow, write_csv};
use super::report::{PlotRef, RunReport, TrainingSummary};
use super::run_dir::RunDir;
use crate::error::Result;

/// Writes predictions, plots and the report of a run evaluated on `split`; returns the report's path.
pub fn write_report(
    run: &RunDir,
    model: &str,
    split: &str,
    data: &TrainData,
    rows: &[PredictionRow],
    training: TrainingSummary,
    seed: u64,
) -> Result<std::path::PathBuf> {
    write_csv(&run.predictions(split), rows)?;
    let baselines = baselines::compute(&baselines::train_labels(data), rows, split, seed);
    write_baselines(&run.root.join(format!("baselines_{split}.json")), &baselines)?;
    let mut plots = Vec::new();
    if run.log().exists() {
        let records = read_log(&run.log())?;
        if !records.is_empty() {
            plot::loss_curves(
                &run.root.join("loss.png"),
                &plot::loss_points(&records),
                training.best.map(|b| b.0),
                "loss",
            )?;
            plots.push(PlotRef { title: "Training and validation loss".into(), file: "loss.png".into() });
        }
    }
    for (k, dim) in ["valence", "arousal"].iter().enumerate() {
        let truth: Vec<f64> = rows.iter().map(|r| r.truth[k]).collect();
        let pred: Vec<f64> = rows.iter().map(|r| r.pred[k]).collect();
        let file = format!("{dim}_{split}.png");
        plot::predicted_vs_true(&run.root.join(&file), &format!("{dim}, {split} split"), dim, &truth, &pred)?;
        plots.push(PlotRef { title: format!("Predicted against true {dim} ({split})"), file });
    }
    let mut acc = MetricsAcc::default();
    for r in rows {
        acc.push(r.truth, r.pred, r.quadrant);
    }
    let file = format!("quadrants_{split}.png");
    plot::confusion_matrix(&run.root.join(&file), &format!("quadrants, {split} split"), &acc.confusion)?;
    plots.push(PlotRef { title: format!("Quadrant confusion matrix ({split})"), file });
    let name =
        run.root.file_name().map_or_else(|| run.root.display().to_string(), |n| n.to_string_lossy().into_owned());
    let report = RunReport {
        run: name,
        model: model.to_string(),
        split: split.to_string(),
        rows,
        baselines: &baselines,
        training,
        plots,
        explain: super::report_explain::figures(run, data, rows, split),
    };
    report.write(&run.report())?;
    Ok(run.report())
}

/// The baselines' metrics as one JSON object keyed by name (`train mean`, `random`, `quadrant
/// centre`), each as `moodgrad evaluate --json` prints a report.
fn write_baselines(path: &std::path::Path, baselines: &[baselines::BaselineResult]) -> Result<()> {
    let mut m = serde_json::Map::new();
    for b in baselines {
        let v: serde_json::Value = serde_json::from_str(&b.report.to_json_line())
            .map_err(|e| crate::error::Error::Invalid(format!("baseline report: {e}")))?;
        m.insert(b.name.clone(), v);
    }
    let text = serde_json::to_string_pretty(&serde_json::Value::Object(m))
        .map_err(|e| crate::error::Error::Invalid(format!("baselines: {e}")))?;
    crate::io::write_atomic(path, text.as_bytes())
}
