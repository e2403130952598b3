//! `moodgrad train`: a config on a MERGE folder (or a cache) into a RUN folder, end to end:
//! preprocessing if needed, training with early stopping, then the test split's predictions and
//! the report.

use crate::backend::Backend;
use crate::error::Result;
use crate::params::ParamStore;
use crate::train::config::{Config, LyricsMode, Modality};
use crate::train::dataset::{self, SongRecord, TrainData};
use crate::train::fit::{FitSummary, fit};
use crate::train::infer::predict;
use crate::train::lyrics::LyricsSide;
use crate::train::lyrics_encoder::{self, LyricsPlaces};
use crate::train::outputs::write_report;
use crate::train::report::TrainingSummary;
use crate::train::run_dir::RunDir;
use crate::train::session::Session;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Args, Clone, Debug)]
pub struct TrainArgs {
    /// A MERGE folder (any variant; preprocessed into DATA/moodgrad-cache/<fixed|legacy> when needed)
    /// or a cache folder.
    #[arg(long)]
    pub data: PathBuf,
    /// model3, model4, model5, tiny, or a TOML file (`preset = "model3"` then overrides).
    /// Default: model3, or with --resume the run's own config.toml.
    #[arg(long)]
    pub config: Option<String>,
    /// The RUN folder.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub batch: Option<usize>,
    /// A directory, a hub name found in the local Hugging Face cache, or `builtin`.
    #[arg(long)]
    pub lyrics_model: Option<String>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// auto (CUDA if a GPU answers, else CPU), cpu, cuda[:N], or sim (CUDA kernels on the host).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Convolution math: fp32, or tf32 on tensor cores; default tf32 on cuda, fp32 on cpu and sim
    /// (PyTorch's defaults: cudnn.allow_tf32, GEMMs fp32).
    #[arg(long)]
    pub precision: Option<String>,
}

/// The config named by `--config` (with `--resume` and no `--config`, the run's own), with the
/// command line's overrides applied. `--lyrics-model builtin` on a preset whose encoder is frozen
/// switches it to training with the model (a frozen random encoder would feed the head noise);
/// the returned notes say so.
pub fn resolve_config(a: &TrainArgs) -> Result<(Config, Vec<String>)> {
    let saved = a.out.join("config.toml");
    let mut cfg = match a.config.as_deref() {
        None if a.resume && saved.is_file() => Config::load(&saved)?,
        None => Config::preset("model3")?,
        Some(c) if c.ends_with(".toml") || Path::new(c).is_file() => Config::load(Path::new(c))?,
        Some(c) => Config::preset(c)?,
    };
    let mut notes = Vec::new();
    if let Some(e) = a.epochs {
        cfg.train.epochs = e;
    }
    if let Some(b) = a.batch {
        cfg.train.batch_size = b;
    }
    if let Some(s) = a.seed {
        cfg.train.seed = s;
    }
    if let Some(m) = &a.lyrics_model {
        notes.extend(set_lyrics_model(&mut cfg, m));
    }
    cfg.validate()?;
    Ok((cfg, notes))
}

/// `--lyrics-model M`; with `builtin` on a frozen-encoder preset the encoder is switched to train
/// with the model at the model's learning rate (returned as a note).
pub fn set_lyrics_model(cfg: &mut Config, model: &str) -> Option<String> {
    cfg.lyrics.model = model.to_string();
    if !(cfg.builtin_lyrics() && cfg.lyrics.mode.is_frozen()) {
        return None;
    }
    cfg.lyrics.mode = LyricsMode::Finetune;
    cfg.lyrics.lr = cfg.train.lr;
    Some(format!(
        "the built-in lyrics encoder trains with the model: [lyrics] mode = \"finetune\", lr = {}",
        cfg.lyrics.lr
    ))
}

pub fn run(a: &TrainArgs) -> Result<()> {
    let (cfg, notes) = resolve_config(a)?;
    for n in notes {
        println!("note: {n}");
    }
    let dev = super::open_device(&a.device, a.precision.as_deref())?;
    crate::on_device!(dev, |b| run_on(b.clone(), a, cfg))
}

/// The lyrics half for this config over `data`'s songs (see `train::lyrics_encoder`).
pub fn lyrics_side<B: Backend>(
    cfg: &Config,
    store: &mut ParamStore<B>,
    data: &TrainData,
    places: &LyricsPlaces,
    say: &mut dyn FnMut(&str),
) -> Result<Box<dyn LyricsSide<B>>> {
    // `build` gives audio-only models no lyrics side; only the others read their lyric files.
    let texts =
        if cfg.model.modality == Modality::Audio { Vec::new() } else { lyrics_encoder::read_texts(&data.songs, say)? };
    lyrics_encoder::build(cfg, store, texts, &data.splits.train, places, say)
}

fn run_on<B: Backend>(be: B, a: &TrainArgs, cfg: Config) -> Result<()> {
    train_run(be, cfg, &a.data, &a.out, a.resume, &mut |line| println!("{line}")).map(|_| ())
}

/// Trains `cfg` on `data_dir` into `out` (or resumes it) and evaluates the test split; returns
/// the test predictions. `say` receives the progress lines.
pub fn train_run<B: Backend>(
    be: B,
    cfg: Config,
    data_dir: &Path,
    out: &Path,
    resume: bool,
    say: &mut dyn FnMut(&str),
) -> Result<Vec<crate::train::predictions::PredictionRow>> {
    let run = RunDir::new(out);
    say(&format!("moodgrad train: preset {} → {} on {}", cfg.preset, out.display(), be.name()));
    // Before any work: a lyrics model that cannot be found stops the run here.
    lyrics_encoder::check_model(&cfg)?;
    let data = dataset::open(data_dir, cfg.data.preprocessing, cfg.data.split)?;
    for n in &data.notes {
        say(&format!("  {n}"));
    }
    run.prepare(&cfg, resume)?;
    let songs = Arc::new(data.songs.clone());
    let mut store = ParamStore::new(be);
    let files = run.encoder_files();
    let places = LyricsPlaces { cache: Some(&data.cache), encoder_files: &files, learn: !resume };
    let lyrics = lyrics_side(&cfg, &mut store, &data, &places, say)?;
    let mut s = Session::new(cfg.clone(), store, lyrics, data.splits.train.len())?;
    write_info(&run, data_dir, &data, &s)?;
    if resume {
        let ck = crate::train::checkpoint::load(&run.checkpoint())?;
        s.restore(&run.checkpoint(), &ck, Some(&run.best()))?;
        say(&format!("  resumed after epoch {}", s.epochs_done));
    }
    say(&format!(
        "  {} parameters; songs: train {} / validate {} / test {}; lyrics: {}",
        s.store.num_params(),
        data.splits.train.len(),
        data.splits.validate.len(),
        data.splits.test.len(),
        s.lyrics.describe()
    ));
    let summary = fit(&mut s, &data, &songs, &run, say)?;
    finish(&run, &mut s, &data, &songs, &summary, say)
}

/// `run.json`: what a later `evaluate`/`predict` needs to find again.
fn write_info<B: Backend>(run: &RunDir, data_arg: &Path, data: &TrainData, s: &Session<B>) -> Result<()> {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()).display().to_string();
    let info = serde_json::json!({
        "moodgrad": env!("CARGO_PKG_VERSION"),
        "data": abs(data_arg),
        "cache": abs(&data.cache),
        "lyrics": s.lyrics.describe(),
        "lyrics_dim": s.lyrics.dim(),
        "device": s.store.backend.name(),
        "songs": {"train": data.splits.train.len(), "validate": data.splits.validate.len(), "test": data.splits.test.len()},
    });
    crate::data::write_atomic(&run.info(), serde_json::to_string_pretty(&info).expect("JSON").as_bytes())
}

fn finish<B: Backend>(
    run: &RunDir,
    s: &mut Session<B>,
    data: &TrainData,
    songs: &Arc<Vec<SongRecord>>,
    f: &FitSummary,
    say: &mut dyn FnMut(&str),
) -> Result<Vec<crate::train::predictions::PredictionRow>> {
    match f.best {
        Some((e, l)) => say(&format!(
            "best epoch {e} (validation loss {l:.5}); the run ends with the weights of epoch {} ({})",
            f.restored_epoch.unwrap_or(e),
            if s.keeps_best() {
                "a deep copy of the best epoch"
            } else {
                "legacy: the last epoch, the seed's shallow copy"
            }
        )),
        None => say("no epoch had a finite validation loss"),
    }
    let bs = s.cfg.train.batch_size;
    let (rows, _) = predict(s, songs, &data.splits.test, bs)?;
    let report = crate::train::predictions::evaluate("test", &rows);
    let training = TrainingSummary {
        epochs_run: s.epochs_done,
        max_epochs: s.cfg.train.epochs,
        best: f.best,
        restored_epoch: f.restored_epoch,
        stopped_early: f.stopped_early,
        seconds: f.seconds,
        samples_per_s: mean_samples_per_s(run),
    };
    let model = describe(&s.cfg);
    let path = write_report(run, &model, "test", data, &rows, training, s.cfg.train.seed)?;
    say(&format!(
        "test: valence MAE {:.4} R² {:.3} | arousal MAE {:.4} R² {:.3} | quadrant accuracy {:.3}",
        report.valence.mae, report.valence.r2, report.arousal.mae, report.arousal.r2, report.quadrant.accuracy
    ));
    say(&format!("report: {}", path.display()));
    Ok(rows)
}

/// One line naming what was trained, for reports.
pub fn describe(cfg: &Config) -> String {
    format!(
        "preset {}, {} conv(s) per block, channels {:?}, {} attention, {} preprocessing, modality {}, lyrics {} ({})",
        cfg.preset,
        cfg.model.convs_per_block,
        cfg.model.channels,
        cfg.model.attention.name(),
        cfg.data.preprocessing.name(),
        cfg.model.modality.name(),
        cfg.lyrics.model,
        cfg.lyrics.mode.name()
    )
}

/// Mean training throughput over the run's logged epochs.
fn mean_samples_per_s(run: &RunDir) -> f64 {
    let recs = crate::train::log::read_log(&run.log()).unwrap_or_default();
    if recs.is_empty() { 0.0 } else { recs.iter().map(|r| r.samples_per_s).sum::<f64>() / recs.len() as f64 }
}
