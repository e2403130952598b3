//! The report's explanation figures, made after training from the run folder itself (its config,
//! best.safetensors and recorded data, on the device it trained on): the last SE block's channel
//! weights per quadrant over the evaluated split, and the emotion timeline of two of its songs.
//! A figure that cannot be made becomes a line saying why; it never fails the run.

use super::config::Config;
use super::dataset::{self, TrainData};
use super::lyrics_encoder::LyricsPlaces;
use super::plot::timeline_plot;
use super::predictions::PredictionRow;
use super::run::lyrics_side;
use super::run_dir::RunDir;
use super::se_quadrants::se_by_quadrant;
use super::session::Session;
use super::timeline::{WindowPlan, song_timeline};
use crate::backend::Backend;
use crate::device::{Device, DeviceChoice};
use crate::error::{Error, Result};
use crate::params::ParamStore;
use std::collections::HashMap;
use std::path::PathBuf;

/// The timeline's window and hop in seconds: `predict --timeline`'s defaults.
pub const TIMELINE_WINDOW_S: f64 = 30.0;
pub const TIMELINE_HOP_S: f64 = 5.0;
/// Songs whose timeline the report shows.
pub const TIMELINE_SONGS: usize = 2;

/// A figure of the report: the image (a file beside the report) or why there is none, and a
/// sentence saying what it shows.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub title: String,
    pub made: std::result::Result<String, String>,
    pub note: String,
}

/// The figures for `rows` (the evaluated split's predictions, songs of `data`), written into the
/// run folder. Never an error: a failure is the figures' `made: Err(reason)`.
pub fn figures(run: &RunDir, data: &TrainData, rows: &[PredictionRow], split: &str) -> Vec<Figure> {
    let failed = |why: String| {
        vec![
            Figure { title: se_title(split), made: Err(why.clone()), note: String::new() },
            Figure { title: "Emotion over time".into(), made: Err(why), note: String::new() },
        ]
    };
    let dev = match device_of(run) {
        Ok(d) => d,
        Err(e) => return failed(format!("no device to compute them on: {e}")),
    };
    match crate::on_device!(dev, |b| figures_on(b.clone(), run, data, rows, split)) {
        Ok(f) => f,
        Err(e) => failed(format!("the run's model could not be reopened: {e}")),
    }
}

fn se_title(split: &str) -> String {
    format!("Last SE block's channel weights per quadrant ({split} split)")
}

/// The device named in run.json (`cpu …`, `sim …`, else CUDA through `auto`, which falls back to
/// the CPU when the card is gone).
fn device_of(run: &RunDir) -> Result<Device> {
    let v = read_info(run)?;
    let name = v["device"].as_str().unwrap_or("auto");
    let choice = if name.starts_with("cpu") {
        DeviceChoice::Cpu
    } else if name.starts_with("sim") {
        DeviceChoice::Sim
    } else {
        DeviceChoice::Auto
    };
    Device::open(choice)
}

fn read_info(run: &RunDir) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(run.info()).map_err(|e| Error::file(run.info(), format!("cannot read: {e}")))?;
    serde_json::from_str(&text).map_err(|e| Error::file(run.info(), format!("not JSON: {e}")))
}

fn figures_on<B: Backend>(
    be: B,
    run: &RunDir,
    data: &TrainData,
    rows: &[PredictionRow],
    split: &str,
) -> Result<Vec<Figure>> {
    let cfg = Config::load(&run.config())?;
    let mut store = ParamStore::new(be);
    let files = run.encoder_files();
    let places = LyricsPlaces { cache: Some(&data.cache), encoder_files: &files, learn: false };
    let lyrics = lyrics_side(&cfg, &mut store, data, &places, &mut |_| {})?;
    let mut s = Session::new(cfg.clone(), store, lyrics, data.splits.train.len())?;
    s.load_weights(&run.best())?;
    let index: HashMap<&str, usize> = data.songs.iter().enumerate().map(|(i, r)| (r.id.as_str(), i)).collect();
    let which: Vec<usize> = rows.iter().filter_map(|r| index.get(r.song.as_str()).copied()).collect();

    let se = match se_by_quadrant(&mut s, data, &which, rows, split) {
        Ok(Some(g)) => g.write(&run.root).map(|p| file_name(&p)).map_err(|e| e.to_string()),
        Ok(None) => Err(super::se_quadrants::no_se_gates(&cfg).into()),
        Err(e) => Err(e.to_string()),
    };
    let se_note = format!(
        "Mean over the {} split's songs of the last SE block's sigmoid gate per channel, grouped by \
         true quadrant (top) and by predicted quadrant (bottom); numbers in se_quadrants_{split}.json and .csv \
         (`moodgrad evaluate RUN --explain` makes the same for any split).",
        split
    );
    let mut out = vec![Figure { title: se_title(split), made: se, note: se_note }];
    out.extend(timelines(&mut s, run, data, rows, &cfg));
    Ok(out)
}

/// The timelines of the `TIMELINE_SONGS` longest songs of `rows` whose audio file the run's
/// recorded data folder still has.
fn timelines<B: Backend>(
    s: &mut Session<B>,
    run: &RunDir,
    data: &TrainData,
    rows: &[PredictionRow],
    cfg: &Config,
) -> Vec<Figure> {
    let audio = match audio_files(run) {
        Ok(a) => a,
        Err(e) => {
            return vec![Figure {
                title: "Emotion over time".into(),
                made: Err(format!("the songs' audio files are needed: {e}")),
                note: String::new(),
            }];
        }
    };
    let mut songs: Vec<(usize, PathBuf)> = data
        .songs
        .iter()
        .enumerate()
        .filter(|(_, r)| rows.iter().any(|row| row.song == r.id))
        .filter_map(|(i, r)| audio.get(&r.id).map(|p| (i, p.clone())))
        .collect();
    if songs.is_empty() {
        return vec![Figure {
            title: "Emotion over time".into(),
            made: Err("none of the split's songs has an audio file in the recorded data folder".into()),
            note: String::new(),
        }];
    }
    songs.sort_by(|a, b| data.songs[b.0].duration_s.total_cmp(&data.songs[a.0].duration_s).then(a.0.cmp(&b.0)));
    songs.truncate(TIMELINE_SONGS);
    songs
        .into_iter()
        .map(|(i, path)| {
            let id = data.songs[i].id.clone();
            let title = format!("Emotion over time: {id}");
            match timeline_of(s, data, i, &path, cfg, run) {
                Ok((file, windows, seconds)) => {
                    let one = if windows == 1 { " (no longer than one window: a single point)" } else { "" };
                    let note = format!(
                        "{id} ({}), {seconds:.1} s: {windows} window(s) of {TIMELINE_WINDOW_S} s every \
                         {TIMELINE_HOP_S} s{one}, as `moodgrad predict --timeline` computes them.",
                        path.display()
                    );
                    Figure { title, made: Ok(file), note }
                }
                Err(e) => Figure { title, made: Err(e.to_string()), note: String::new() },
            }
        })
        .collect()
}

/// Song id → audio file of the MERGE (or synthetic) folder run.json records as `data`.
fn audio_files(run: &RunDir) -> Result<HashMap<String, PathBuf>> {
    let v = read_info(run)?;
    let dir = v["data"].as_str().ok_or_else(|| Error::file(run.info(), "no `data` entry"))?;
    let ds = crate::data::merge::Dataset::open(std::path::Path::new(dir))?;
    Ok(ds.songs.into_iter().filter_map(|s| s.audio.map(|a| (s.id, a))).collect())
}

/// Writes `timeline_<id>.png` beside the report; (file name, windows, seconds of audio).
fn timeline_of<B: Backend>(
    s: &mut Session<B>,
    data: &TrainData,
    i: usize,
    path: &std::path::Path,
    cfg: &Config,
    run: &RunDir,
) -> Result<(String, usize, f64)> {
    let params = dataset::params_of(cfg.data.preprocessing);
    let mel = crate::audio::load_whole(path, &params)?;
    let fps = params.sample_rate as f64 / params.hop as f64;
    let plan = WindowPlan::from_seconds(TIMELINE_WINDOW_S, TIMELINE_HOP_S, fps);
    let points = song_timeline(s, &data.songs, i, &mel, &plan, (params.pad_value, fps))?;
    let id = &data.songs[i].id;
    let file = format!("timeline_{id}.png");
    timeline_plot(&run.root.join(&file), id, &points)?;
    Ok((file, points.len(), mel.frames as f64 / fps))
}

fn file_name(p: &std::path::Path) -> String {
    p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned())
}
