//! `moodgrad predict --explain [--out explain]`: per song `<out>/<song>_explain.png` (the
//! spectrogram under the saliency of valence and of arousal, and the last SE block's channel
//! weights) and `<song>_explain.json`, also printed: the prediction, the SE weights and, for a
//! bimodal model, the prediction with the lyrics vector replaced by its training mean
//! (`audio_only`) and with the audio embedding replaced by its (`lyrics_only`).

use super::predict::{PredictArgs, open_run, read_songs};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;
use crate::train::config::{Config, Modality};
use crate::train::explain::{SMOOTH_SIGMA, input_gradients, se_gates, smooth_abs};
use crate::train::explain_means::{Means, training_means};
use crate::train::lyrics_encoder::read_texts;
use crate::train::metrics::Quadrant;
use crate::train::plot_explain::{SALIENCY_SCALE, explain_plot};
use crate::train::run_dir::RunDir;
use crate::train::session::Session;
use serde_json::json;

pub fn explain_on<B: Backend>(be: B, a: &PredictArgs) -> Result<()> {
    let run = RunDir::new(&a.run);
    let cfg = Config::load(&run.config())?;
    if cfg.model.modality == Modality::Lyrics {
        return Err(Error::Invalid(
            "--explain: this run's model is lyrics-only; it has no spectrogram to explain".into(),
        ));
    }
    let params = crate::train::dataset::params_of(cfg.data.preprocessing);
    let (songs, mels) = read_songs(a, |p| crate::audio::load(p, &params))?;
    let reads_lyrics = cfg.model.modality != Modality::Audio;
    let texts = if reads_lyrics { read_texts(&songs, &mut |w| eprintln!("{w}"))? } else { Vec::new() };
    let mut s = open_run(be, &a.run, &cfg, &songs)?;
    let means = if cfg.model.modality == Modality::Bimodal { means_of(&mut s, &run, &cfg) } else { None };
    let dir = a.out.clone().unwrap_or_else(|| "explain".into());
    crate::data::create_dir(&dir)?;
    for (i, (song, mel)) in songs.iter().zip(&mels).enumerate() {
        let be = s.store.backend.clone();
        let audio = Tensor::new(vec![1, 1, mel.n_mels, mel.frames], be.upload_f32(&mel.data)?)?;
        let lyrics = if reads_lyrics {
            s.lyrics.set_texts(vec![texts[i].clone()])?;
            let mut tape = Tape::no_grad(be.clone());
            s.lyrics.batch(&mut tape, &mut s.store, &[0], false, 0)?.map(|v| v.value().clone())
        } else {
            None
        };
        let (pred, grads) = input_gradients(&s.net, &mut s.store, &audio, lyrics.as_ref())?;
        let gates = se_gates(&s.net, &mut s.store, &audio)?;
        let smooth = |g: &[f64]| smooth_abs(g, mel.n_mels, mel.frames, SMOOTH_SIGMA);
        let (sv, sa) = (smooth(&grads[0]), smooth(&grads[1]));
        let png = dir.join(format!("{}_explain.png", song.id));
        let seconds = mel.frames as f64 * params.hop as f64 / params.sample_rate as f64;
        explain_plot(&png, &song.id, (mel.n_mels, mel.frames), seconds, &mel.data, [&sv, &sa], gates.as_deref())?;
        let va = |p: [f64; 2]| {
            json!({"valence": p[0], "arousal": p[1], "quadrant": Quadrant::from_va(p[0], p[1]).name(),
                   "shift": ((p[0] - pred[0]).powi(2) + (p[1] - pred[1]).powi(2)).sqrt()})
        };
        let (audio_only, lyrics_only) = match (&means, &lyrics) {
            (Some(m), Some(l)) => {
                let (ao, lo) = ablations(&mut s, m, &audio, l)?;
                (va(ao), va(lo))
            }
            _ => (serde_json::Value::Null, serde_json::Value::Null),
        };
        let line = json!({
            "song": song.id, "valence": pred[0], "arousal": pred[1],
            "quadrant": Quadrant::from_va(pred[0], pred[1]).name(),
            "audio_only": audio_only, "lyrics_only": lyrics_only,
            "png": png.display().to_string(),
            "saliency": format!("|d output / d input| of the [{}, {}] mel-dB input; in the PNG Gaussian σ = {SMOOTH_SIGMA} cells, red = {SALIENCY_SCALE}", mel.n_mels, mel.frames),
            "se_weights": gates,
        });
        crate::io::write_atomic(&dir.join(format!("{}_explain.json", song.id)), format!("{line}\n").as_bytes())?;
        if a.json {
            println!("{line}");
        } else {
            println!(
                "{}: valence {:.3}, arousal {:.3}; audio only {}, lyrics only {} → {}",
                song.id,
                pred[0],
                pred[1],
                short(&line["audio_only"]),
                short(&line["lyrics_only"]),
                png.display()
            );
        }
    }
    Ok(())
}

fn short(v: &serde_json::Value) -> String {
    match (v["valence"].as_f64(), v["arousal"].as_f64()) {
        (Some(x), Some(y)) => format!("({x:.3}, {y:.3})"),
        _ => "n/a".into(),
    }
}

/// The training means, or None with a warning saying why (the run's data moved, say).
fn means_of<B: Backend>(s: &mut Session<B>, run: &RunDir, cfg: &Config) -> Option<Means> {
    let got = super::evaluate::recorded_data(run)
        .and_then(|d| crate::train::dataset::open(&d, cfg.data.preprocessing, cfg.data.split))
        .and_then(|data| training_means(s, &data));
    match got {
        Ok(m) => {
            eprintln!("explain: training means of the audio and lyrics embeddings over {} songs", m.songs);
            Some(m)
        }
        Err(e) => {
            eprintln!(
                "warning: no audio-only/lyrics-only predictions: the run's training data is needed for the means ({e})"
            );
            None
        }
    }
}

/// (lyrics replaced by the training mean, audio embedding replaced by the training mean).
fn ablations<B: Backend>(
    s: &mut Session<B>,
    m: &Means,
    audio: &Tensor<B>,
    lyrics: &Tensor<B>,
) -> Result<([f64; 2], [f64; 2])> {
    let be = s.store.backend.clone();
    let mut tape = Tape::no_grad(be.clone());
    let x = tape.input(audio.clone(), false);
    let l = tape.input(lyrics.clone(), false);
    let out = s.net.forward_inputs(&mut tape, &mut s.store, Some(&x), Some(&l), false, 0)?;
    let emb = out.audio.ok_or_else(|| Error::Invalid("the network has no audio embedding".into()))?;
    let row = |tape: &mut Tape<B>, v: &[f64]| -> Result<Var<B>> {
        Ok(tape.input(Tensor::from_f64(&be, &[1, v.len()], v)?, false))
    };
    let (Some(ma), Some(ml)) = (&m.audio, &m.lyrics) else {
        return Err(Error::Invalid("the training means lack a modality".into()));
    };
    let (mean_a, mean_l) = (row(&mut tape, ma)?, row(&mut tape, ml)?);
    let pred = |o: crate::nn::Outputs<B>| -> Result<[f64; 2]> {
        let p = o.pred.value().to_f64(&be)?;
        Ok([p[0], p[1]])
    };
    let audio_only = pred(s.net.head(&mut tape, &mut s.store, Some(emb.clone()), Some(&mean_l), false, 0)?)?;
    let lyrics_only = pred(s.net.head(&mut tape, &mut s.store, Some(mean_a), Some(&l), false, 0)?)?;
    Ok((audio_only, lyrics_only))
}
