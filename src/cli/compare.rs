//! `moodgrad compare`: the guide's before/after study. For each model, the legacy variant
//! (legacy preprocessing + legacy attention + no clipping + the shallow-copy "best" = last
//! epoch) against the fixed one, same split, K seeds each, as `compare.md` and `compare.csv`.
//!
//! Every run is an ordinary RUN folder under `OUT/<model>/<fixed|legacy>/seed<k>/`; a run whose
//! test predictions exist is reused (only if its resolved config is the one asked for), an
//! interrupted one resumed, so a killed study continues; compare.md lists which runs were which.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::train::baselines::{self, Labelled};
use crate::train::compare::{ModelRuns, build};
use crate::train::config::Config;
use crate::train::dataset;
use crate::train::predictions::read_csv;
use crate::train::run::{RunStart, train_run};
use crate::train::run_dir::RunDir;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Clone, Debug)]
pub struct CompareArgs {
    /// A MERGE folder (both caches, fixed and legacy, are built inside it).
    #[arg(long)]
    pub data: PathBuf,
    /// Where the runs and the table go.
    #[arg(long)]
    pub out: PathBuf,
    /// Presets to compare.
    #[arg(long, default_value = "model3,model4,model5", value_delimiter = ',')]
    pub models: Vec<String>,
    /// A TOML file whose keys apply on top of every model's preset (its `preset` is each model's
    /// name); it may not set what tells the models apart (`model.convs_per_block`, `lyrics.mode`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// As train's: a directory, a hub name (NAME[@REVISION], downloaded when not cached), or builtin.
    #[arg(long)]
    pub lyrics_model: Option<String>,
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Seeds per variant: each cell becomes mean ± sd, each difference gets a bootstrap interval.
    #[arg(long, default_value_t = 1)]
    pub seeds: usize,
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Convolution math: fp32, or tf32 on tensor cores; default tf32 on cuda, fp32 on cpu and sim
    /// (PyTorch's defaults: cudnn.allow_tf32, GEMMs fp32).
    #[arg(long)]
    pub precision: Option<String>,
}

/// Keys that make a preset the model it is: MODEL_3 against MODEL_4 (convs per block), MODEL_5
/// against both (its encoder fine-tunes in its own learning-rate group). A shared `--config` may
/// not set them, or every model of the study would become the same one.
const IDENTITY_KEYS: [(&str, &str); 2] = [("model", "convs_per_block"), ("lyrics", "mode")];

/// The fixed config of one model: its preset, then the keys the shared `--config` file sets
/// (its `preset` is each model's name), then `--epochs` and `--lyrics-model`. The built-in lyrics
/// encoder trains with every model (a frozen random encoder would feed the head noise).
pub fn model_config(a: &CompareArgs, model: &str) -> Result<Config> {
    let mut cfg = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| Error::file(p, format!("cannot read: {e}")))?;
            let mut table: toml::Table =
                text.parse().map_err(|e: toml::de::Error| Error::file(p, format!("not valid TOML: {e}")))?;
            for (section, key) in IDENTITY_KEYS {
                if table.get(section).and_then(|t| t.get(key)).is_some() {
                    return Err(Error::file(
                        p,
                        format!(
                            "`{section}.{key}` is what tells the compared models apart; compare keeps each preset's                              own value, so remove it from this file (train a single variant with `moodgrad train                              --config`)"
                        ),
                    ));
                }
            }
            table.insert("preset".into(), toml::Value::String(model.into()));
            let lyrics_model = table.get("lyrics").and_then(|t| t.get("model")).and_then(|m| m.as_str());
            let builtin = lyrics_model == Some(crate::train::config::BUILTIN);
            let mut cfg = Config::parse(&without_builtin_model(&table, builtin), p)?;
            if builtin {
                let _ = super::train::set_lyrics_model(&mut cfg, crate::train::config::BUILTIN);
                // The file's own encoder rate, if it gives one, over the model's that went with it.
                if let Some(lr) = table.get("lyrics").and_then(|t| t.get("lr")) {
                    cfg.lyrics.lr = lr.as_float().or(lr.as_integer().map(|i| i as f64)).unwrap_or(cfg.lyrics.lr);
                }
            }
            cfg
        }
        None => Config::preset(model)?,
    };
    if let Some(e) = a.epochs {
        cfg.train.epochs = e;
    }
    if let Some(m) = &a.lyrics_model {
        let _ = super::train::set_lyrics_model(&mut cfg, m);
    }
    cfg.validate()?;
    Ok(cfg)
}

/// The table as TOML text, with `[lyrics] model = "builtin"` left out when `builtin` (set after
/// parsing, with the mode that goes with it, by `set_lyrics_model`).
fn without_builtin_model(table: &toml::Table, builtin: bool) -> String {
    let mut t = table.clone();
    if builtin && let Some(toml::Value::Table(l)) = t.get_mut("lyrics") {
        l.remove("model");
    }
    t.to_string()
}

pub fn run(a: &CompareArgs) -> Result<()> {
    if a.seeds == 0 {
        return Err(Error::Invalid("--seeds must be at least 1".into()));
    }
    let dev = super::open_device(&a.device, a.precision.as_deref())?;
    crate::on_device!(dev, |b| run_on(b.clone(), a))
}

/// How a run of the study came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RunStatus {
    Trained,
    Resumed,
    Reused,
}

impl RunStatus {
    fn describe(self) -> &'static str {
        match self {
            RunStatus::Trained => "trained",
            RunStatus::Resumed => "resumed from its checkpoint",
            RunStatus::Reused => "reused (finished earlier with the same resolved config)",
        }
    }
}

fn run_one<B: Backend>(
    be: B,
    cfg: Config,
    data: &Path,
    dir: &Path,
) -> Result<(Vec<crate::train::predictions::PredictionRow>, RunStatus)> {
    let run = RunDir::new(dir);
    let done = run.predictions("test");
    if done.is_file() && run.best().is_file() {
        // Reported as this study's run only if it was trained with this study's settings.
        run.check_config(
            &cfg,
            "a finished run here was trained with another config",
            "give the study another --out (or delete this run folder to retrain it)",
        )?;
        println!("  reusing {}", dir.display());
        return Ok((read_csv(&done)?, RunStatus::Reused));
    }
    let resume = crate::train::checkpoint::exists(&run.checkpoint());
    let mut last = String::new();
    let rows = train_run(be, cfg, data, dir, &RunStart::resume(resume), &mut |line| {
        if line.starts_with("epoch") || line.starts_with("test:") {
            last = line.to_string();
        }
    })?;
    println!("  {} — {last}", dir.display());
    Ok((rows, if resume { RunStatus::Resumed } else { RunStatus::Trained }))
}

fn run_on<B: Backend>(be: B, a: &CompareArgs) -> Result<()> {
    crate::data::create_dir(&a.out)?;
    let mut models = Vec::new();
    let mut statuses = Vec::new();
    let mut train_labels = None;
    for model in &a.models {
        let fixed_cfg = model_config(a, model)?;
        let mut runs = ModelRuns { name: model.clone(), fixed: Vec::new(), legacy: Vec::new() };
        for k in 0..a.seeds {
            for (variant, base) in [("fixed", fixed_cfg.clone()), ("legacy", fixed_cfg.legacy())] {
                let mut cfg = base;
                cfg.train.seed = fixed_cfg.train.seed + k as u64;
                println!("compare: {model} {variant} seed {}", cfg.train.seed);
                let dir = a.out.join(model).join(variant).join(format!("seed{}", cfg.train.seed));
                let (rows, status) = run_one(be.clone(), cfg, &a.data, &dir)?;
                statuses.push((dir.strip_prefix(&a.out).unwrap_or(&dir).display().to_string(), status));
                if variant == "fixed" { runs.fixed.push(rows) } else { runs.legacy.push(rows) }
            }
        }
        if train_labels.is_none() {
            let d = dataset::open(&a.data, fixed_cfg.data.preprocessing, fixed_cfg.data.split)?;
            let labels: Vec<Labelled> = d
                .splits
                .train
                .iter()
                .map(|&i| Labelled { va: [d.songs[i].valence, d.songs[i].arousal], quadrant: d.songs[i].quadrant })
                .collect();
            train_labels = Some(labels);
        }
        models.push(runs);
    }
    let test = models.first().and_then(|m| m.fixed.first()).cloned().unwrap_or_default();
    let base = baselines::compute(train_labels.as_deref().unwrap_or(&[]), &test, "test", 0);
    let table = build(&models, &base, "test", crate::train::bootstrap::DEFAULT_RESAMPLES, 0)?;
    let (md, csv): (PathBuf, PathBuf) = (a.out.join("compare.md"), a.out.join("compare.csv"));
    let text = format!("{}{}", table.to_markdown(), runs_section(&statuses));
    crate::io::write_atomic(&md, text.as_bytes())?;
    crate::io::write_atomic(&csv, table.to_csv().as_bytes())?;
    println!("{text}");
    println!("wrote {} and {}", md.display(), csv.display());
    Ok(())
}

/// compare.md's list of the study's runs and how each came to be in this call.
fn runs_section(statuses: &[(String, RunStatus)]) -> String {
    let mut s = String::from("\nRuns (this call):\n\n");
    for (dir, status) in statuses {
        s += &format!("- `{dir}`: {}\n", status.describe());
    }
    s
}
