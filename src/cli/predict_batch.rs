//! `moodgrad predict --run RUN --input DIR|LIST.csv --out FILE.csv|.jsonl [--lyrics-dir DIR]
//! [--batch B] [--resume]`: the run's model over many songs (train::batch_predict), with a
//! progress line and ETA on stderr and a summary of what was skipped and why.

use super::predict::{PredictArgs, open_run};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::train::batch_input::{LyricsRule, SongInput, list_songs};
use crate::train::batch_output::OutputFile;
use crate::train::batch_predict::predict_all;
use crate::train::config::{Config, Modality};
use crate::train::run_dir::RunDir;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Skipped songs listed by name in the summary; the rest are in the output file.
const LISTED_SKIPS: usize = 20;

/// `cpu`: the device is the CPU backend, where the default batch is 1.
pub fn batch_on<B: Backend>(be: B, a: &PredictArgs, cpu: bool) -> Result<()> {
    let input = a.input.as_deref().ok_or_else(|| Error::Invalid("batch prediction needs --input".into()))?;
    let out_path = a.out.as_deref().ok_or_else(|| {
        Error::Invalid("--input needs --out FILE.csv or FILE.jsonl: the file that gets one row per song".into())
    })?;
    crate::train::batch_output::Format::of(out_path)?;
    let cfg = Config::load(&RunDir::new(&a.run).config())?;
    let params = crate::train::dataset::params_of(cfg.data.preprocessing);
    let reads_lyrics = cfg.model.modality != Modality::Audio;
    if !reads_lyrics && a.lyrics_dir.is_some() {
        eprintln!("warning: this run's model is audio-only: --lyrics-dir is not read");
    }
    let batch = a.batch.unwrap_or(if cpu { 1 } else { cfg.train.batch_size });
    if batch == 0 {
        return Err(Error::Invalid("--batch 0: give at least one song per forward pass".into()));
    }
    let rule = LyricsRule::new(reads_lyrics, a.lyrics_dir.as_deref())?;
    let songs = list_songs(input, &rule, out_path)?;
    if songs.is_empty() {
        return Err(Error::file(input, "holds no files to predict"));
    }
    let (mut out, done) = OutputFile::open(out_path, a.resume)?;
    let todo: Vec<SongInput> = songs.iter().filter(|s| !done.contains(&s.key)).cloned().collect();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    eprintln!(
        "predict: {} songs in {}{}; batches of {batch}, decoding on {workers} threads",
        songs.len(),
        input.display(),
        if done.is_empty() {
            String::new()
        } else {
            format!(" ({} already in {})", songs.len() - todo.len(), out_path.display())
        },
    );
    let mut s = open_run(be, &a.run, &cfg, &[])?;
    let start = Instant::now();
    let mut line = ProgressLine::new(todo.len(), start);
    let summary = predict_all(&mut s, &todo, &params, batch, workers, &mut out, &mut |d, k| line.update(d, k))?;
    line.finish();
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "predict: {} songs in {secs:.1} s ({:.2} songs/s): {} predicted, {} skipped → {}",
        todo.len(),
        todo.len() as f64 / secs.max(1e-9),
        summary.predicted,
        summary.skipped.len(),
        out_path.display()
    );
    for (song, why) in summary.skipped.iter().take(LISTED_SKIPS) {
        eprintln!("  skipped {song}: {why}");
    }
    if summary.skipped.len() > LISTED_SKIPS {
        eprintln!("  … and {} more (status `skipped` in {})", summary.skipped.len() - LISTED_SKIPS, out_path.display());
    }
    Ok(())
}

/// `predict: 120/6000 songs (3 skipped), 4.1 songs/s, ETA 23m 50s` on stderr: rewritten in place
/// on a terminal, else a line every few seconds (a log file gets no flood).
struct ProgressLine {
    total: usize,
    start: Instant,
    last: Option<Instant>,
    terminal: bool,
}

impl ProgressLine {
    fn new(total: usize, start: Instant) -> Self {
        ProgressLine { total, start, last: None, terminal: std::io::stderr().is_terminal() }
    }

    fn update(&mut self, done: usize, skipped: usize) {
        let every = if self.terminal { Duration::from_millis(200) } else { Duration::from_secs(10) };
        if self.last.is_some_and(|t| t.elapsed() < every) && done < self.total {
            return;
        }
        self.last = Some(Instant::now());
        let secs = self.start.elapsed().as_secs_f64();
        let rate = done as f64 / secs.max(1e-9);
        let eta = if done == 0 { "?".into() } else { clock((self.total - done) as f64 / rate) };
        let text = format!("predict: {done}/{} songs ({skipped} skipped), {rate:.2} songs/s, ETA {eta}", self.total);
        if self.terminal {
            eprint!("\r{text}\x1b[K");
        } else {
            eprintln!("{text}");
        }
    }

    fn finish(&self) {
        if self.terminal && self.last.is_some() {
            eprintln!();
        }
    }
}

fn clock(secs: f64) -> String {
    let s = secs.round() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s:02}s"),
        (h, m, _) => format!("{h}h {m:02}m"),
    }
}
