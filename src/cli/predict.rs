//! `moodgrad predict --run RUN AUDIO… [--lyrics FILE…] [--json]`: valence, arousal and the
//! quadrant they imply for new songs, with the run's own preprocessing (decode, resample, mel, dB,
//! crop/pad) and lyrics encoder inside.

use crate::audio::PreprocessParams;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::params::ParamStore;
use crate::tape::Tape;
use crate::train::config::{Config, Modality, Preprocessing};
use crate::train::dataset::SongRecord;
use crate::train::infer::forward_batch;
use crate::train::loader::HostBatch;
use crate::train::lyrics_encoder::{self, LyricsPlaces};
use crate::train::metrics::Quadrant;
use crate::train::run_dir::RunDir;
use crate::train::session::Session;
use std::path::PathBuf;

#[derive(clap::Args, Clone, Debug)]
pub struct PredictArgs {
    /// The RUN folder written by `moodgrad train` (its best.safetensors and config.toml).
    #[arg(long)]
    pub run: PathBuf,
    /// Audio files (MP3, WAV, FLAC, OGG/Vorbis).
    #[arg(required = true)]
    pub audio: Vec<PathBuf>,
    /// One lyric text file per audio file, in the same order (bimodal and lyrics models).
    #[arg(long, num_args = 1..)]
    pub lyrics: Vec<PathBuf>,
    /// One JSON object per line: {"song", "valence", "arousal", "quadrant"}.
    #[arg(long)]
    pub json: bool,
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
    let dev = super::open_device(&a.device, a.precision.as_deref())?;
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

pub fn predict_on<B: Backend>(be: B, a: &PredictArgs) -> Result<Vec<Prediction>> {
    let run = RunDir::new(&a.run);
    let cfg = Config::load(&run.config())?;
    check_inputs(&cfg, a)?;
    let params = match cfg.data.preprocessing {
        Preprocessing::Fixed => PreprocessParams::default(),
        Preprocessing::Legacy => PreprocessParams::legacy(),
    };
    let mut songs = Vec::with_capacity(a.audio.len());
    let mut mels = Vec::with_capacity(a.audio.len());
    for (k, path) in a.audio.iter().enumerate() {
        let mel = crate::audio::load(path, &params)?;
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
    let mut store = ParamStore::new(be);
    // `build` gives audio-only models no lyrics side; only the others read their lyric files.
    let texts = if cfg.model.modality == Modality::Audio {
        Vec::new()
    } else {
        lyrics_encoder::read_texts(&songs, &mut |w| eprintln!("{w}"))?
    };
    let files = run.encoder_files();
    let places = LyricsPlaces { cache: None, encoder_files: &files, learn: false };
    let lyrics = lyrics_encoder::build(&cfg, &mut store, texts, &[], &places, &mut |w| eprintln!("{w}"))?;
    let mut s = Session::new(cfg.clone(), store, lyrics, 1)?;
    s.load_weights(&run.best())?;
    let mut out = Vec::with_capacity(songs.len());
    let idx: Vec<usize> = (0..songs.len()).collect();
    for chunk in idx.chunks(cfg.train.batch_size.max(1)) {
        let (n_mels, frames) = (mels[chunk[0]].n_mels, mels[chunk[0]].frames);
        let audio: Vec<f32> = chunk.iter().flat_map(|&i| mels[i].data.iter().copied()).collect();
        let b = HostBatch { songs: chunk.to_vec(), audio, n_mels, frames, target: Vec::new() };
        let mut tape = Tape::no_grad(s.store.backend.clone());
        let f = forward_batch(&mut s, &mut tape, &songs, &b, false, 0)?;
        let pred = f.out.pred.value().to_f64(&s.store.backend)?;
        for (r, &i) in chunk.iter().enumerate() {
            let (v, ar) = (pred[2 * r], pred[2 * r + 1]);
            if !(v.is_finite() && ar.is_finite()) {
                return Err(Error::NonFinite(format!("{}: the model predicts ({v}, {ar})", a.audio[i].display())));
            }
            out.push(Prediction {
                song: songs[i].id.clone(),
                valence: v,
                arousal: ar,
                quadrant: Quadrant::from_va(v, ar),
                warning: mels[i].truncated.clone(),
            });
        }
    }
    Ok(out)
}
