//! Batch prediction over many songs: files are decoded (and lyrics read) on worker threads, every
//! core at once, while the model computes on batches of the songs already decoded; rows are
//! written in input order, a batch at a time. A song that cannot be predicted becomes a skipped
//! row with its reason; the job goes on.

use super::batch_input::SongInput;
use super::batch_output::{Outcome, OutputFile, Row};
use super::config::Modality;
use super::dataset::SongRecord;
use super::infer::forward_batch;
use super::loader::HostBatch;
use super::metrics::Quadrant;
use super::session::Session;
use crate::audio::PreprocessParams;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tape::Tape;
use crate::text::lyrics::read_lyric;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Condvar, Mutex};

/// One song ready for the model.
pub struct Decoded {
    /// [n_mels, frames], cropped or padded as in training.
    pub mel: Vec<f32>,
    pub duration_s: f64,
    /// The lyric's text, when the model reads lyrics.
    pub text: Option<String>,
    pub warnings: Vec<String>,
}

/// What the job did.
#[derive(Debug, Default)]
pub struct Summary {
    pub predicted: usize,
    /// (song, reason), in input order.
    pub skipped: Vec<(String, String)>,
}

/// Decodes one song and reads its lyric; the reason it cannot be predicted otherwise.
pub fn decode(song: &SongInput, params: &PreprocessParams) -> std::result::Result<Decoded, String> {
    if let Some(p) = &song.problem {
        return Err(p.clone());
    }
    match std::fs::metadata(&song.audio) {
        Err(e) => return Err(format!("cannot read the file: {e}")),
        Ok(m) if m.is_dir() => return Err("a folder, not an audio file".into()),
        Ok(m) if m.len() == 0 => return Err("empty file (0 bytes)".into()),
        Ok(_) => {}
    }
    // The decoder is meant never to panic; if a malformed stream finds a bug, it costs one row.
    let mel =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| crate::audio::mel_db_from_file(&song.audio, params)))
            .map_err(|_| "the decoder failed on this file (a malformed stream)".to_string())?
            .map_err(|e| e.to_string())?;
    let mut warnings: Vec<String> = mel.truncated.iter().cloned().collect();
    let text = match &song.lyric {
        Some(path) => {
            let l = read_lyric(path).map_err(|e| format!("lyric: {e}"))?;
            warnings.extend(l.warnings);
            Some(l.text)
        }
        None => None,
    };
    Ok(Decoded { mel: mel.data, duration_s: mel.duration_s, text, warnings })
}

/// Predicts `songs` with the session's model, `batch` songs per forward, decoding on `workers`
/// threads, appending every song's row to `out` in input order; `progress(done, skipped)` after
/// each batch. Only a failure to write the output stops the job.
pub fn predict_all<B: Backend>(
    s: &mut Session<B>,
    songs: &[SongInput],
    params: &PreprocessParams,
    batch: usize,
    workers: usize,
    out: &mut OutputFile,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Summary> {
    let batch = batch.max(1);
    let workers = workers.max(1);
    // Decoded songs may run this far ahead of the rows written, which bounds the memory held.
    let window = 2 * batch + workers;
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let gate = (Mutex::new(0usize), Condvar::new());
    let (tx, rx) = sync_channel::<(usize, std::result::Result<Decoded, String>)>(window);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, stop, gate) = (&next, &stop, &gate);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= songs.len() {
                        break;
                    }
                    let mut emitted = gate.0.lock().unwrap_or_else(|e| e.into_inner());
                    while i >= *emitted + window && !stop.load(Ordering::Relaxed) {
                        emitted = gate.1.wait(emitted).unwrap_or_else(|e| e.into_inner());
                    }
                    drop(emitted);
                    if stop.load(Ordering::Relaxed) || tx.send((i, decode(&songs[i], params))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut consume = || -> Result<Summary> {
            let mut summary = Summary::default();
            let mut pending = BTreeMap::new();
            let mut group: Vec<(usize, std::result::Result<Decoded, String>)> = Vec::new();
            let mut emitted = 0;
            for (i, r) in rx.iter() {
                pending.insert(i, r);
                while let Some(r) = pending.remove(&emitted) {
                    group.push((emitted, r));
                    emitted += 1;
                    *gate.0.lock().unwrap_or_else(|e| e.into_inner()) = emitted;
                    gate.1.notify_all();
                    if group.iter().filter(|(_, r)| r.is_ok()).count() == batch {
                        write_group(s, songs, params, std::mem::take(&mut group), out, &mut summary)?;
                        progress(emitted, summary.skipped.len());
                    }
                }
            }
            write_group(s, songs, params, group, out, &mut summary)?;
            progress(emitted, summary.skipped.len());
            Ok(summary)
        };
        let result = consume();
        if result.is_err() {
            stop.store(true, Ordering::Relaxed);
            gate.1.notify_all();
        }
        result
    })
}

/// Runs the model on a group's decoded songs and writes the group's rows in order.
fn write_group<B: Backend>(
    s: &mut Session<B>,
    songs: &[SongInput],
    params: &PreprocessParams,
    group: Vec<(usize, std::result::Result<Decoded, String>)>,
    out: &mut OutputFile,
    summary: &mut Summary,
) -> Result<()> {
    let ready: Vec<(usize, &Decoded)> = group.iter().filter_map(|(i, r)| r.as_ref().ok().map(|d| (*i, d))).collect();
    let mut answers: BTreeMap<usize, std::result::Result<(f64, f64), String>> = BTreeMap::new();
    match predict_songs(s, songs, params, &ready) {
        Ok(p) => answers.extend(ready.iter().zip(p).map(|(&(i, _), va)| (i, Ok(va)))),
        // Which song made the batch fail is found by predicting each alone.
        Err(_) => {
            for &one in &ready {
                let r = predict_songs(s, songs, params, &[one]).map(|p| p[0]).map_err(|e| e.to_string());
                answers.insert(one.0, r);
            }
        }
    }
    let mut rows = Vec::with_capacity(group.len());
    for (i, r) in group {
        let path = songs[i].key.clone();
        let outcome = match (r, answers.remove(&i)) {
            (Ok(d), Some(Ok((valence, arousal)))) => {
                summary.predicted += 1;
                Outcome::Predicted { valence, arousal, duration_s: d.duration_s, warnings: d.warnings }
            }
            (Err(reason), _) | (Ok(_), Some(Err(reason))) => {
                summary.skipped.push((path.clone(), reason.clone()));
                Outcome::Skipped { reason }
            }
            (Ok(_), None) => {
                let reason = "the model gave no answer for this song".to_string();
                summary.skipped.push((path.clone(), reason.clone()));
                Outcome::Skipped { reason }
            }
        };
        rows.push(Row { path, outcome });
    }
    out.write(&rows)
}

/// (valence, arousal) of decoded songs (`(index into songs, song)`), as one forward in eval mode.
fn predict_songs<B: Backend>(
    s: &mut Session<B>,
    songs: &[SongInput],
    params: &PreprocessParams,
    ready: &[(usize, &Decoded)],
) -> Result<Vec<(f64, f64)>> {
    if ready.is_empty() {
        return Ok(Vec::new());
    }
    if s.cfg.model.modality != Modality::Audio {
        let texts = ready.iter().map(|(_, d)| d.text.clone().unwrap_or_default()).collect();
        s.lyrics.set_texts(texts)?;
    }
    let records: Vec<SongRecord> = ready
        .iter()
        .map(|&(i, d)| SongRecord {
            id: songs[i].key.clone(),
            spectrogram: songs[i].audio.clone(),
            lyric: songs[i].lyric.clone(),
            valence: f64::NAN,
            arousal: f64::NAN,
            quadrant: Quadrant::Q1,
            duration_s: d.duration_s,
        })
        .collect();
    let audio: Vec<f32> = ready.iter().flat_map(|(_, d)| d.mel.iter().copied()).collect();
    let b = HostBatch {
        songs: (0..ready.len()).collect(),
        audio,
        n_mels: params.n_mels,
        frames: params.frames,
        target: Vec::new(),
    };
    let mut tape = Tape::no_grad(s.store.backend.clone());
    let f = forward_batch(s, &mut tape, &records, &b, false, 0)?;
    let pred = f.out.pred.value().to_f64(&s.store.backend)?;
    (0..ready.len())
        .map(|r| {
            let (v, a) = (pred[2 * r], pred[2 * r + 1]);
            if v.is_finite() && a.is_finite() {
                Ok((v, a))
            } else {
                Err(Error::NonFinite(format!("the model predicts ({v}, {a}) for {}", records[r].id)))
            }
        })
        .collect()
}
