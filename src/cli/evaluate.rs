//! `moodgrad evaluate`: a run's weights (or weights trained elsewhere, e.g. the seed's PyTorch
//! model converted by tools/pth_to_safetensors.py) scored on a split of its own data or of another
//! dataset.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::params::ParamStore;
use crate::train::config::Config;
use crate::train::dataset::{self, TrainData};
use crate::train::infer::predict;
use crate::train::lyrics_encoder::LyricsPlaces;
use crate::train::metrics::EvalReport;
use crate::train::predictions::{PredictionRow, evaluate, write_csv};
use crate::train::run::lyrics_side;
use crate::train::run_dir::RunDir;
use crate::train::se_quadrants::{no_se_gates, se_by_quadrant};
use crate::train::session::Session;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Args, Clone, Debug)]
pub struct EvaluateArgs {
    /// A RUN folder written by `moodgrad train`.
    pub run: Option<PathBuf>,
    /// test, validate or train.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Score on another dataset (a MERGE folder or a cache), e.g. Balanced after training on Complete.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Weights trained elsewhere (safetensors, PyTorch names), instead of a RUN.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// With --weights: the config they were trained with (model3, model4, model5, tiny or a TOML file).
    #[arg(long)]
    pub config: Option<String>,
    /// Print one JSON line.
    #[arg(long)]
    pub json: bool,
    /// Also average the last SE block's channel weights per quadrant (true and predicted) over the
    /// split: se_quadrants_<split>.png, .json and .csv in --out.
    #[arg(long)]
    pub explain: bool,
    /// With --explain: the folder for its files (default: the RUN folder, else `explain`).
    #[arg(long, requires = "explain")]
    pub out: Option<PathBuf>,
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Convolution math: fp32, or tf32 on tensor cores; default tf32 on cuda, fp32 on cpu and sim
    /// (PyTorch's defaults: cudnn.allow_tf32, GEMMs fp32).
    #[arg(long)]
    pub precision: Option<String>,
}

fn split_of(name: &str) -> Result<crate::data::merge::Split> {
    use crate::data::merge::Split;
    match name {
        "test" => Ok(Split::Test),
        "validate" => Ok(Split::Validate),
        "train" => Ok(Split::Train),
        _ => Err(Error::Invalid(format!("--split `{name}`: use test, validate or train"))),
    }
}

/// Where the weights and config come from.
enum Source {
    Run(RunDir),
    Weights { weights: PathBuf, config: Box<Config> },
}

pub fn run(a: &EvaluateArgs) -> Result<()> {
    let source = match (&a.run, &a.weights) {
        (Some(r), None) => Source::Run(RunDir::new(r)),
        (None, Some(w)) => {
            let name = a.config.as_deref().ok_or_else(|| {
                Error::Invalid(
                    "--weights needs --config (the preset or TOML file the weights were trained with)".into(),
                )
            })?;
            let config = if name.ends_with(".toml") { Config::load(Path::new(name))? } else { Config::preset(name)? };
            Source::Weights { weights: w.clone(), config: Box::new(config) }
        }
        (Some(_), Some(_)) => return Err(Error::Invalid("give a RUN folder or --weights, not both".into())),
        (None, None) => return Err(Error::Invalid("give a RUN folder (or --weights W --config C --data DIR)".into())),
    };
    let dev = super::open_device(&a.device, a.precision.as_deref())?;
    let (report, _) = crate::on_device!(dev, |b| evaluate_on(b.clone(), a, &source))?;
    if a.json {
        println!("{}", report.to_json_line());
    } else {
        print_report(&report);
    }
    Ok(())
}

fn print_report(r: &EvalReport) {
    println!("{} split, {} songs", r.split, r.n);
    for (name, d) in [("valence", &r.valence), ("arousal", &r.arousal)] {
        println!("  {name:<8} MAE {:.4}  RMSE {:.4}  R² {:.4}  Pearson {:.4}", d.mae, d.rmse, d.r2, d.pearson);
    }
    println!("  quadrant accuracy {:.4}  macro-F1 {:.4}", r.quadrant.accuracy, r.quadrant.macro_f1);
    if let Some(l) = r.loss {
        println!("  loss {l:.6} (the training objective, as the log's validation loss)");
    }
}

/// The run's data folder as `run.json` recorded it.
pub(super) fn recorded_data(run: &RunDir) -> Result<PathBuf> {
    let text = std::fs::read_to_string(run.info()).map_err(|e| Error::file(run.info(), format!("cannot read: {e}")))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::file(run.info(), format!("not JSON: {e}")))?;
    v["cache"].as_str().map(PathBuf::from).ok_or_else(|| Error::file(run.info(), "no `cache` entry"))
}

fn evaluate_on<B: Backend>(be: B, a: &EvaluateArgs, source: &Source) -> Result<(EvalReport, Vec<PredictionRow>)> {
    let split = split_of(&a.split)?;
    let (cfg, weights, data_dir) = match source {
        Source::Run(run) => {
            let cfg = Config::load(&run.config())?;
            let data = match &a.data {
                Some(d) => d.clone(),
                None => recorded_data(run)?,
            };
            (cfg, run.best(), data)
        }
        Source::Weights { weights, config } => {
            let d =
                a.data.clone().ok_or_else(|| Error::Invalid("--weights needs --data (the songs to score)".into()))?;
            ((**config).clone(), weights.clone(), d)
        }
    };
    let data: TrainData = dataset::open(&data_dir, cfg.data.preprocessing, cfg.data.split)?;
    let songs = Arc::new(data.songs.clone());
    let mut store = ParamStore::new(be);
    let files = match source {
        Source::Run(run) => run.encoder_files(),
        Source::Weights { weights, .. } => weights.parent().unwrap_or(Path::new(".")).join("lyrics_encoder"),
    };
    let places = LyricsPlaces { cache: Some(&data.cache), encoder_files: &files, learn: false };
    let lyrics = lyrics_side(&cfg, &mut store, &data, &places, &mut |l| eprintln!("{l}"))?;
    let mut s = Session::new(cfg.clone(), store, lyrics, data.splits.train.len())?;
    s.load_weights(&weights)?;
    let (rows, loss) = predict(&mut s, &songs, data.splits.get(split), cfg.train.batch_size)?;
    if let (Source::Run(run), None) = (source, &a.data) {
        write_csv(&run.predictions(&a.split), &rows)?;
    }
    if a.explain {
        let dir = match (&a.out, source) {
            (Some(d), _) => d.clone(),
            (None, Source::Run(run)) => run.root.clone(),
            (None, Source::Weights { .. }) => PathBuf::from("explain"),
        };
        let gates = se_by_quadrant(&mut s, &data, data.splits.get(split), &rows, &a.split)?
            .ok_or_else(|| Error::Invalid(format!("--explain: {} to average", no_se_gates(&cfg))))?;
        let png = gates.write(&dir)?;
        eprintln!("SE channel weights per quadrant: {} (and .json, .csv beside it)", png.display());
    }
    let mut report = evaluate(&a.split, &rows);
    report.loss = Some(loss).filter(|l| l.is_finite());
    Ok((report, rows))
}
