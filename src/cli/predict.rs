//! `moodgrad predict --run RUN AUDIO… [--lyrics FILE…] [--json]`: valence, arousal and the
//! quadrant they imply for new songs, with the run's own preprocessing (decode, resample, mel, dB,
//! crop/pad) and lyrics encoder inside.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::params::ParamStore;
use crate::train::config::{Config, Modality};
use crate::train::dataset::SongRecord;
use crate::train::infer::forward_windows;
use crate::train::lyrics_encoder::{self, LyricsPlaces};
use crate::train::metrics::Quadrant;
use crate::train::run_dir::RunDir;
use crate::train::session::Session;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Clone, Debug)]
pub struct PredictArgs {
    /// The RUN folder written by `moodgrad train` (its best.safetensors and config.toml).
    #[arg(long)]
    pub run: PathBuf,
    /// Audio files (MP3, WAV, FLAC, OGG/Vorbis).
    #[arg(required_unless_present = "input", conflicts_with = "input")]
    pub audio: Vec<PathBuf>,
    /// One lyric text file per audio file, in the same order (bimodal and lyrics models).
    #[arg(long, num_args = 1.., conflicts_with = "input")]
    pub lyrics: Vec<PathBuf>,
    /// One JSON object per line: {"song", "valence", "arousal", "quadrant"}.
    #[arg(long, conflicts_with = "input")]
    pub json: bool,
    /// Batch prediction: every audio file under a folder (recursively), or the rows of a CSV with
    /// an `audio` column (and optionally `lyrics`); one row per song in --out (.csv or .jsonl),
    /// bad files as skipped rows with the reason.
    #[arg(long, conflicts_with = "timeline")]
    pub input: Option<PathBuf>,
    /// Batch prediction: where the lyrics are, matched by file stem (the audio's relative path
    /// with .txt first); by default <stem>.txt beside each audio file.
    #[arg(long, requires = "input")]
    pub lyrics_dir: Option<PathBuf>,
    /// Batch prediction: songs per forward pass (default: 1 on cpu, the run's batch size elsewhere).
    #[arg(long, requires = "input")]
    pub batch: Option<usize>,
    /// Batch prediction: continue the job in --out, skipping the songs already in it.
    #[arg(long, requires = "input")]
    pub resume: bool,
    /// Emotion over the whole song: the model on sliding windows (--window, --hop), the song's
    /// answer the mean of the windows; per song <OUT>/<song>_timeline.csv (start_s, end_s,
    /// valence, arousal, quadrant) and <song>_timeline.png (the path through the valence-arousal
    /// plane, and valence and arousal against time).
    #[arg(long)]
    pub timeline: bool,
    /// What the model listened to: per song <OUT>/<song>_explain.png (the spectrogram under the
    /// saliency of valence and of arousal, smoothed; the last SE block's channel weights) and
    /// <song>_explain.json (also printed): the prediction, the SE weights, and for bimodal models
    /// the prediction with the lyrics (audio_only) or the audio (lyrics_only) replaced by its
    /// training mean.
    #[arg(long, conflicts_with_all = ["timeline", "input"])]
    pub explain: bool,
    /// Timeline window, seconds (the model's 30 s clip by default).
    #[arg(long, default_value_t = 30.0, requires = "timeline")]
    pub window: f64,
    /// Timeline hop between window starts, seconds.
    #[arg(long, default_value_t = 5.0, requires = "timeline")]
    pub hop: f64,
    /// With --timeline or --explain, the folder the files go to (default `timeline`, `explain`);
    /// with --input, the output file (.csv or .jsonl).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Convolution math: fp32, or tf32 on tensor cores; default tf32 on cuda, fp32 on cpu and sim
    /// (PyTorch's defaults: cudnn.allow_tf32, GEMMs fp32).
    #[arg(long)]
    pub precision: Option<String>,
}

/// One song's prediction.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    pub song: String,
    pub valence: f64,
    pub arousal: f64,
    pub quadrant: Quadrant,
    /// The decoder's warning when the file looks truncated.
    pub warning: Option<String>,
}

impl Prediction {
    /// `{"song", "valence", "arousal", "quadrant"}` in that order.
    pub fn to_json_line(&self) -> String {
        let num = |x: f64| serde_json::Value::from(x).to_string();
        format!(
            "{{\"song\": {}, \"valence\": {}, \"arousal\": {}, \"quadrant\": \"{}\"}}",
            serde_json::Value::from(self.song.as_str()),
            num(self.valence),
            num(self.arousal),
            self.quadrant.name()
        )
    }
}

pub fn run(a: &PredictArgs) -> Result<()> {
    if a.out.is_some() && !(a.timeline || a.explain || a.input.is_some()) {
        return Err(Error::Invalid(
            "--out is the timelines' or explanations' folder (--timeline, --explain) or the rows' file (--input)"
                .into(),
        ));
    }
    let dev = super::open_device(&a.device, a.precision.as_deref())?;
    if a.explain {
        check_inputs(&Config::load(&RunDir::new(&a.run).config())?, a)?;
        return crate::on_device!(dev, |b| super::explain::explain_on(b.clone(), a));
    }
    if a.input.is_some() {
        // On the CPU one song per forward is fastest (docs/perf.md: a batch's activations leave
        // the cache); a GPU wants the run's batch.
        let cpu = matches!(dev, crate::device::Device::Cpu(_));
        return crate::on_device!(dev, |b| super::predict_batch::batch_on(b.clone(), a, cpu));
    }
    let preds = crate::on_device!(dev, |b| predict_on(b.clone(), a))?;
    for p in &preds {
        if let Some(w) = &p.warning {
            eprintln!("warning: {w}");
        }
        if a.json {
            println!("{}", p.to_json_line());
        } else {
            println!("{}: valence {:.3}, arousal {:.3} → {}", p.song, p.valence, p.arousal, p.quadrant.name());
        }
    }
    Ok(())
}

/// Checks the arguments against the run's model before decoding anything.
fn check_inputs(cfg: &Config, a: &PredictArgs) -> Result<()> {
    let needs_lyrics = cfg.model.modality != Modality::Audio;
    if !needs_lyrics && !a.lyrics.is_empty() {
        return Err(Error::Invalid("--lyrics: this run's model is audio-only; leave the lyrics out".into()));
    }
    if needs_lyrics && a.lyrics.len() != a.audio.len() {
        let first_missing = a.audio.get(a.lyrics.len()).map(|p| p.display().to_string()).unwrap_or_default();
        return Err(Error::Invalid(format!(
            "this run's model reads lyrics ({}): give one --lyrics FILE per audio file, in the same order \
             ({} audio files, {} lyrics; the first without one: {first_missing})",
            cfg.model.modality,
            a.audio.len(),
            a.lyrics.len()
        )));
    }
    Ok(())
}

/// A session of the run's model (`cfg`, its config.toml) with its best weights, for `songs`.
pub(super) fn open_run<B: Backend>(be: B, run: &Path, cfg: &Config, songs: &[SongRecord]) -> Result<Session<B>> {
    let run = RunDir::new(run);
    let mut store = ParamStore::new(be);
    // `build` gives audio-only models no lyrics side; only the others read their lyric files.
    let texts = if cfg.model.modality == Modality::Audio {
        Vec::new()
    } else {
        lyrics_encoder::read_texts(songs, &mut |w| eprintln!("{w}"))?
    };
    let files = run.encoder_files();
    let places = LyricsPlaces { cache: None, encoder_files: &files, learn: false };
    let lyrics = lyrics_encoder::build(cfg, &mut store, texts, &[], &places, &mut |w| eprintln!("{w}"))?;
    let mut s = Session::new(cfg.clone(), store, lyrics, 1)?;
    s.load_weights(&run.best())?;
    Ok(s)
}

/// The songs `a` names (ids from the file stems), with their spectrograms from `load`.
pub(super) fn read_songs(
    a: &PredictArgs,
    load: impl Fn(&std::path::Path) -> Result<crate::audio::MelSpectrogram>,
) -> Result<(Vec<SongRecord>, Vec<crate::audio::MelSpectrogram>)> {
    let mut songs = Vec::with_capacity(a.audio.len());
    let mut mels = Vec::with_capacity(a.audio.len());
    for (k, path) in a.audio.iter().enumerate() {
        let mel = load(path)?;
        let id = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| format!("song{k}"));
        songs.push(SongRecord {
            id,
            spectrogram: path.clone(),
            lyric: a.lyrics.get(k).cloned(),
            valence: f64::NAN,
            arousal: f64::NAN,
            quadrant: Quadrant::Q1,
            duration_s: mel.duration_s,
        });
        mels.push(mel);
    }
    Ok((songs, mels))
}

pub fn predict_on<B: Backend>(be: B, a: &PredictArgs) -> Result<Vec<Prediction>> {
    let cfg = Config::load(&RunDir::new(&a.run).config())?;
    check_inputs(&cfg, a)?;
    let params = crate::train::dataset::params_of(cfg.data.preprocessing);
    if a.timeline {
        return super::timeline::timeline_on(be, a, &cfg, &params);
    }
    let (songs, mels) = read_songs(a, |p| crate::audio::load(p, &params))?;
    let mut s = open_run(be, &a.run, &cfg, &songs)?;
    let inputs: Vec<(usize, Vec<f32>)> = mels.iter().enumerate().map(|(i, m)| (i, m.data.clone())).collect();
    let preds = forward_windows(&mut s, &songs, &inputs, (params.n_mels, params.frames))?;
    Ok(songs
        .iter()
        .zip(preds)
        .zip(&mels)
        .map(|((song, (v, ar)), mel)| Prediction {
            song: song.id.clone(),
            valence: v,
            arousal: ar,
            quadrant: Quadrant::from_va(v, ar),
            warning: mel.truncated.clone(),
        })
        .collect())
}
