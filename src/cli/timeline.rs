//! `moodgrad predict --timeline`: each song's emotion over its whole length (train::timeline's
//! windows), written per song as `<out>/<song>_timeline.csv` and `<song>_timeline.png`; the
//! song-level answer, the mean of the windows, is what `predict` prints.

use super::predict::{PredictArgs, Prediction, open_run, read_songs};
use crate::audio::PreprocessParams;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::train::config::Config;
use crate::train::metrics::Quadrant;
use crate::train::plot::timeline_plot;
use crate::train::timeline::{WindowPlan, song_timeline};

pub fn timeline_on<B: Backend>(
    be: B,
    a: &PredictArgs,
    cfg: &Config,
    params: &PreprocessParams,
) -> Result<Vec<Prediction>> {
    if !(a.window > 0.0 && a.hop > 0.0 && a.window.is_finite() && a.hop.is_finite()) {
        return Err(Error::Invalid(format!("--window {} --hop {}: both must be seconds above 0", a.window, a.hop)));
    }
    let (songs, mels) = read_songs(a, |p| crate::audio::load_whole(p, params))?;
    let mut s = open_run(be, &a.run, cfg, &songs)?;
    let frames_per_s = params.sample_rate as f64 / params.hop as f64;
    let plan = WindowPlan::from_seconds(a.window, a.hop, frames_per_s);
    let dir = a.out.clone().unwrap_or_else(|| "timeline".into());
    crate::data::create_dir(&dir)?;
    let mut out = Vec::with_capacity(songs.len());
    for (i, (song, mel)) in songs.iter().zip(&mels).enumerate() {
        let points = song_timeline(&mut s, &songs, i, mel, &plan, (params.pad_value, frames_per_s))?;
        let csv = dir.join(format!("{}_timeline.csv", song.id));
        let mut text = String::from("start_s,end_s,valence,arousal,quadrant\n");
        for p in &points {
            let q = Quadrant::from_va(p.valence, p.arousal);
            text += &format!("{:.3},{:.3},{},{},{}\n", p.start_s, p.end_s, p.valence, p.arousal, q.name());
        }
        crate::io::write_atomic(&csv, text.as_bytes())?;
        let png = dir.join(format!("{}_timeline.png", song.id));
        timeline_plot(&png, &song.id, &points)?;
        let n = points.len() as f64;
        let (v, ar) =
            (points.iter().map(|p| p.valence).sum::<f64>() / n, points.iter().map(|p| p.arousal).sum::<f64>() / n);
        eprintln!(
            "{}: {} window(s) of {} s every {} s → {} and {} (song level: their mean)",
            song.id,
            points.len(),
            a.window,
            a.hop,
            csv.display(),
            png.display()
        );
        out.push(Prediction {
            song: song.id.clone(),
            valence: v,
            arousal: ar,
            quadrant: Quadrant::from_va(v, ar),
            warning: mel.truncated.clone(),
        });
    }
    Ok(out)
}
