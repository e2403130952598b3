//! `moodgrad demo`: the whole job on built-in synthetic data, as a newcomer's first command —
//! synthesise a small MERGE-like dataset (`moodgrad synth`), preprocess it into the spectrogram
//! cache, train a small bimodal model (the VGG audio tower with SE and the built-in lyrics encoder,
//! trained together) with early stopping, evaluate the test split against the baselines, and write
//! the report. A few minutes on a 2-core CPU.
//!
//! The folder is `--out` (default `moodgrad-demo`): `data/` (the synthetic MERGE folder and its
//! cache, reused by later demos) and `run/` (replaced by each demo; `moodgrad evaluate`,
//! `predict` and `compare` take it like any run).

use crate::data::synth::SynthConfig;
use crate::error::{Error, Result};
use crate::train::config::Config;
use crate::train::predictions::evaluate;
use crate::train::run::{RunStart, train_run};
use std::path::Path;

/// Marks a folder as the demo's own, so a later demo may replace its `run/`.
const MARKER: &str = ".moodgrad-demo";

#[derive(clap::Args, Clone, Debug)]
pub struct DemoArgs {
    /// The demo's folder (data/ and run/ inside).
    #[arg(long, default_value = "moodgrad-demo")]
    pub out: std::path::PathBuf,
    /// Songs to synthesise.
    #[arg(long, default_value_t = 120)]
    pub songs: usize,
    #[arg(long, default_value_t = 12)]
    pub epochs: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// auto (CUDA if a GPU answers, else CPU), cpu, cuda[:N], or sim (CUDA kernels on the host).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Convolution math: fp32, or tf32 on tensor cores; default tf32 on cuda, fp32 on cpu and sim
    /// (PyTorch's defaults: cudnn.allow_tf32, GEMMs fp32).
    #[arg(long)]
    pub precision: Option<String>,
}

/// The demo's model: the `tiny` preset (blocks of 8 and 16 channels with SE, the built-in lyrics
/// encoder trained with the model) with its lyrics mean-pooled (a from-scratch encoder's [CLS]
/// learns far slower on 100 songs) and dropout 0.1, MERGE's shipped split, `epochs` epochs of
/// batch 8.
pub fn demo_config(epochs: usize, seed: u64) -> Result<Config> {
    let mut cfg = Config::preset("tiny")?;
    cfg.model.dropout = 0.1;
    cfg.lyrics.pool = crate::train::config::Pool::Mean;
    cfg.train.epochs = epochs;
    cfg.train.batch_size = 8;
    cfg.train.patience = epochs;
    cfg.train.seed = seed;
    cfg.data.split = crate::train::config::SplitName::Tvt70;
    cfg.validate()?;
    Ok(cfg)
}

pub fn run(a: &DemoArgs) -> Result<()> {
    let dev = super::open_device(&a.device, a.precision.as_deref())?;
    crate::on_device!(dev, |b| run_on(b.clone(), a))
}

fn run_on<B: crate::backend::Backend>(be: B, a: &DemoArgs) -> Result<()> {
    let (data, run) = (a.out.join("data"), a.out.join("run"));
    prepare_folder(&a.out, &run)?;
    let start = std::time::Instant::now();
    if data.join("merge_bimodal_complete_metadata.csv").is_file() {
        println!("moodgrad demo: reusing the synthetic dataset in {}", data.display());
    } else {
        println!("moodgrad demo: synthesising {} songs into {}", a.songs, data.display());
        crate::cli::synth::write(
            &data,
            &SynthConfig { songs: a.songs, seed: a.seed, sample_rate: 22050, max_seconds: 30.8 },
        )?;
    }
    let cfg = demo_config(a.epochs, a.seed)?;
    let rows = train_run(be.clone(), cfg, &data, &run, &RunStart::fresh(), &mut |line| println!("{line}"))?;
    let report = evaluate("test", &rows);
    let mean = train_mean_mae(&run)?;
    println!(
        "demo done in {:.0} s. Test MAE valence {:.4} / arousal {:.4}; the train-mean predictor's: {:.4} / {:.4}",
        start.elapsed().as_secs_f64(),
        report.valence.mae,
        report.arousal.mae,
        mean[0],
        mean[1]
    );
    match explain_one(be, &data, &run, &rows) {
        Ok(png) => println!("what the model listened to in one test song: {}", png.display()),
        Err(e) => println!("warning: no explanation picture ({e})"),
    }
    println!(
        "the report: {} (with the SE weights per quadrant and two songs' timelines)",
        run.join("report.md").display()
    );
    println!(
        "next: moodgrad evaluate {} --split validate | moodgrad predict --run {} SONG.mp3 --lyrics SONG.txt",
        run.display(),
        run.display()
    );
    Ok(())
}

/// `predict --explain` on the first test song, into `run/explain/`; the PNG's path.
fn explain_one<B: crate::backend::Backend>(
    be: B,
    data: &Path,
    run: &Path,
    rows: &[crate::train::predictions::PredictionRow],
) -> Result<std::path::PathBuf> {
    let first = rows.first().ok_or_else(|| Error::Invalid("the test split is empty".into()))?;
    let ds = crate::data::merge::Dataset::open(data)?;
    let song = ds
        .songs
        .iter()
        .find(|s| s.id == first.song)
        .ok_or_else(|| Error::file(data, format!("song {} is not in the dataset", first.song)))?;
    let audio = song.audio.clone().ok_or_else(|| Error::file(data, format!("song {} has no audio file", song.id)))?;
    let stem = audio.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let out = run.join("explain");
    let args = super::predict::PredictArgs {
        run: run.to_path_buf(),
        audio: vec![audio],
        lyrics: song.lyrics.iter().cloned().collect(),
        json: false,
        input: None,
        lyrics_dir: None,
        batch: None,
        resume: false,
        timeline: false,
        explain: true,
        window: 30.0,
        hop: 5.0,
        out: Some(out.clone()),
        device: "cpu".into(),
        precision: None,
    };
    super::explain::explain_on(be, &args)?;
    Ok(out.join(format!("{stem}_explain.png")))
}

/// The train-mean baseline's test MAE, as the run's report computed it.
pub fn train_mean_mae(run: &Path) -> Result<[f64; 2]> {
    let p = run.join("baselines_test.json");
    let text = std::fs::read_to_string(&p).map_err(|e| Error::file(&p, format!("cannot read: {e}")))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::file(&p, format!("not JSON: {e}")))?;
    let get = |d: &str| v["train mean"][d]["mae"].as_f64().ok_or_else(|| Error::file(&p, "no train_mean MAE"));
    Ok([get("valence")?, get("arousal")?])
}

/// Creates the demo folder, or clears the `run/` of an earlier demo; refuses a folder that is not
/// the demo's (nothing of the user's is ever deleted).
fn prepare_folder(out: &Path, run: &Path) -> Result<()> {
    let marker = out.join(MARKER);
    if out.exists() && !marker.exists() {
        return Err(Error::file(out, "exists and is not a moodgrad demo folder; choose another --out"));
    }
    crate::data::create_dir(out)?;
    crate::io::write_atomic(&marker, b"written by moodgrad demo; its run/ is replaced by the next demo\n")?;
    if run.exists() {
        std::fs::remove_dir_all(run)
            .map_err(|e| Error::file(run, format!("cannot clear the previous demo run: {e}")))?;
    }
    Ok(())
}
