//! `moodgrad preprocess`: a MERGE folder → a spectrogram cache (see `crate::data::cache` for the
//! files and the resume rules, `crate::data::merge` for the layouts).

use super::cache::{self, CacheFormat, Entry, Manifest, MasterRow};
use super::create_dir;
use super::merge::{Dataset, Skip, SkipKind, Song, read_lyrics};
use super::preprocess_lyrics::{self, LyricsOutcome};
use crate::audio::{AudioError, PreprocessParams, mel_db_from_file};
use crate::error::{Error, Result};
use crate::io::write_atomic;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub struct PreprocessOptions<'a> {
    pub data: &'a Path,
    /// Default: `<data>/moodgrad-cache/<fixed|legacy>` (where `moodgrad train` looks).
    pub out: Option<&'a Path>,
    /// Default: all cores.
    pub jobs: Option<usize>,
    pub legacy: bool,
    pub format: CacheFormat,
    /// `--tokenizer DIR`: also write `processed_lyrics/<song>.pt` and point `lyrics_path` at them.
    pub tokenizer: Option<&'a str>,
    /// `--max-len` of the tokenized lyrics (the seed: 512).
    pub max_len: usize,
}

/// What a run did (also returned to tests).
#[derive(Debug, Default)]
pub struct Outcome {
    pub out: PathBuf,
    pub listed: usize,
    pub new: usize,
    pub unchanged: usize,
    pub skipped: Vec<Skip>,
    pub warnings: Vec<String>,
    pub seconds: f64,
    pub jobs: usize,
    /// What `--tokenizer` did.
    pub lyrics: Option<LyricsOutcome>,
}

/// A progress line on stderr (only when stderr is a terminal): done/total, clips/s, ETA.
struct Progress {
    total: usize,
    done: AtomicUsize,
    start: Instant,
    last: Mutex<Instant>,
    tty: bool,
}

impl Progress {
    fn new(total: usize) -> Self {
        let now = Instant::now();
        Progress {
            total,
            done: AtomicUsize::new(0),
            start: now,
            last: Mutex::new(now - Duration::from_secs(1)),
            tty: std::io::stderr().is_terminal(),
        }
    }
    fn tick(&self) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if !self.tty {
            return;
        }
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() < Duration::from_millis(150) && done < self.total {
            return;
        }
        *last = Instant::now();
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let rate = done as f64 / secs;
        let eta = if rate > 0.0 { (self.total - done) as f64 / rate } else { 0.0 };
        let width = 30;
        let filled = (width * done) / self.total.max(1);
        eprint!(
            "\r[{}{}] {done}/{} {:.1} clips/s ETA {}   ",
            "#".repeat(filled),
            ".".repeat(width - filled),
            self.total,
            rate,
            fmt_secs(eta)
        );
        let _ = std::io::stderr().flush();
    }
    fn finish(&self) {
        if self.tty && self.total > 0 {
            eprintln!();
        }
    }
}

fn fmt_secs(s: f64) -> String {
    let s = s.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

fn audio_skip(song: &Song, path: &Path, e: AudioError) -> Skip {
    let (kind, detail) = match e {
        AudioError::Missing => (SkipKind::MissingAudio, "no such file, or not a regular file".to_string()),
        AudioError::Undecodable(why) => (SkipKind::Undecodable, why),
        AudioError::Empty => (SkipKind::Empty, "decodes to zero samples".to_string()),
        AudioError::Io(why) => (SkipKind::Unreadable, why),
    };
    Skip { song: song.id.clone(), kind, file: path.to_path_buf(), line: None, detail }
}

/// Removes temporary files left by an interrupted run (`.<name>.tmp-<pid>-<n>` of dead processes).
fn remove_stale_temps(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix('.').and_then(|n| n.rsplit_once(".tmp-")).map(|(_, r)| r.to_string()) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| p == std::process::id() || Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

pub fn preprocess(args: &PreprocessOptions) -> Result<Outcome> {
    let t0 = Instant::now();
    let data = std::fs::canonicalize(args.data).map_err(|e| {
        Error::file(args.data, format!("cannot open the data folder: {e} (pass --data the MERGE folder)"))
    })?;
    let ds = Dataset::open(&data)?;
    let out = args
        .out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| data.join("moodgrad-cache").join(if args.legacy { "legacy" } else { "fixed" }));
    create_dir(&out)?;
    let out = std::fs::canonicalize(&out).map_err(|e| Error::file(&out, format!("cannot open: {e}")))?;
    remove_stale_temps(&out);
    let params = if args.legacy { PreprocessParams::legacy() } else { PreprocessParams::default() };
    let pj = cache::params_json(&params);
    let manifest = Manifest::load(&out)?;
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .map_err(|e| Error::Invalid(format!("--jobs {jobs}: cannot start the thread pool: {e}")))?;

    let mut skipped = ds.skipped.clone();
    let mut warnings = ds.warnings.clone();
    if manifest.ignored_lines > 0 {
        warnings.push(format!(
            "{}: {} unreadable line(s) ignored (a torn line from an interrupted run); those clips are redone",
            out.join(cache::MANIFEST).display(),
            manifest.ignored_lines
        ));
    }

    // Lyrics: present; empty or not-UTF-8 is kept with a warning (not-UTF-8 read lossily).
    let mut songs = Vec::with_capacity(ds.songs.len());
    let mut lossy = Vec::new();
    for s in &ds.songs {
        if let Some(p) = &s.lyrics {
            match read_lyrics(p) {
                Ok((text, was_lossy)) => {
                    if text.trim().is_empty() {
                        // Kept: an instrumental song is scored like the others (see no_lyrics_warning).
                        warnings.push(crate::text::lyrics::no_lyrics_warning(p));
                    }
                    if was_lossy {
                        lossy.push(p.display().to_string());
                    }
                }
                Err(e) => {
                    skipped.push(Skip {
                        song: s.id.clone(),
                        kind: SkipKind::Unreadable,
                        file: p.clone(),
                        line: None,
                        detail: e.to_string(),
                    });
                    continue;
                }
            }
        }
        songs.push(s.clone());
    }
    if !lossy.is_empty() {
        warnings.push(format!(
            "{} lyrics file(s) are not UTF-8 and are read with U+FFFD for the bad bytes (re-save as UTF-8 for the seed's \
             notebooks, which open them as UTF-8): {}",
            lossy.len(),
            lossy.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        ));
    }

    // Spectrograms.
    let mut done: BTreeMap<String, Entry> = BTreeMap::new();
    let mut unchanged = 0;
    let mut new = 0;
    if ds.layout.modality.has_audio() {
        let audio = |s: &Song| s.audio.clone().unwrap_or_default();
        let new_skips = Mutex::new(Vec::new());
        let truncated: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let new_entries = Mutex::new(Vec::new());
        let compute = |s: &Song| -> Option<(Entry, Vec<f32>)> {
            let path = audio(s);
            let stamp = cache::source_stamp(&path);
            match mel_db_from_file(&path, &params) {
                Ok(m) if m.data.len() != m.n_mels * m.frames || m.frames == 0 => {
                    new_skips.lock().unwrap_or_else(|p| p.into_inner()).push(Skip {
                        song: s.id.clone(),
                        kind: SkipKind::Empty,
                        file: path.clone(),
                        line: None,
                        detail: format!("spectrogram of {} values for {}x{}", m.data.len(), m.n_mels, m.frames),
                    });
                    None
                }
                Ok(m) => {
                    if let Some(why) = &m.truncated {
                        truncated.lock().unwrap_or_else(|p| p.into_inner()).push(format!(
                            "{} ({}): looks truncated, {why}; kept, padded to {} frames — re-download it if the clip \
                             should be longer",
                            s.id,
                            path.display(),
                            params.frames
                        ));
                    }
                    let (size, mtime_ns) = stamp.unwrap_or((0, 0));
                    let e = Entry {
                        song_id: s.id.clone(),
                        source: path.to_string_lossy().into_owned(),
                        size,
                        mtime_ns,
                        duration_s: m.duration_s,
                        source_frames: m.source_frames,
                        frames: m.frames,
                        output: String::new(),
                        format: args.format.name().into(),
                        params: pj.clone(),
                    };
                    let data = m.data;
                    Some((Entry { frames: m.frames, ..e }, data))
                }
                Err(err) => {
                    new_skips.lock().unwrap_or_else(|p| p.into_inner()).push(audio_skip(s, &path, err));
                    None
                }
            }
        };
        let record_err: Mutex<Option<Error>> = Mutex::new(None);
        let fail = |e: Error| {
            let mut g = record_err.lock().unwrap_or_else(|p| p.into_inner());
            if g.is_none() {
                *g = Some(e);
            }
        };
        match args.format {
            CacheFormat::Npy => {
                let (fresh, todo): (Vec<&Song>, Vec<&Song>) =
                    songs.iter().partition(|s| manifest.is_fresh(&s.id, &audio(s), &pj, args.format));
                for s in &fresh {
                    if let Some(e) = manifest.entries.get(&s.id) {
                        done.insert(s.id.clone(), e.clone());
                    }
                }
                unchanged = fresh.len();
                let progress = Progress::new(todo.len());
                pool.install(|| {
                    todo.par_iter().for_each(|s| {
                        if let Some((mut e, data)) = compute(s) {
                            match cache::write_npy(&out, &s.id, params.n_mels, e.frames, &data) {
                                Ok(name) => {
                                    e.output = name;
                                    match manifest.append(&e) {
                                        Ok(()) => new_entries.lock().unwrap_or_else(|p| p.into_inner()).push(e),
                                        Err(err) => fail(err),
                                    }
                                }
                                Err(err) => fail(err),
                            }
                        }
                        progress.tick();
                    })
                });
                progress.finish();
            }
            CacheFormat::Safetensors => {
                let mut sorted: Vec<&Song> = songs.iter().collect();
                sorted.sort_by(|a, b| a.id.cmp(&b.id));
                let chunks: Vec<(String, Vec<&Song>)> = sorted
                    .chunks(cache::SHARD_SIZE)
                    .enumerate()
                    .map(|(k, c)| (format!("spectrograms-{k:05}.safetensors"), c.to_vec()))
                    .collect();
                let mut todo_chunks = Vec::new();
                for (name, chunk) in &chunks {
                    let fresh = chunk.iter().all(|s| {
                        manifest.is_fresh(&s.id, &audio(s), &pj, args.format)
                            && manifest.entries.get(&s.id).is_some_and(|e| &e.output == name)
                    });
                    if fresh {
                        for s in chunk {
                            if let Some(e) = manifest.entries.get(&s.id) {
                                done.insert(s.id.clone(), e.clone());
                            }
                        }
                        unchanged += chunk.len();
                    } else {
                        todo_chunks.push((name.clone(), chunk.clone()));
                    }
                }
                let progress = Progress::new(todo_chunks.iter().map(|c| c.1.len()).sum());
                for (name, chunk) in &todo_chunks {
                    let results: Vec<(Entry, Vec<f32>)> = pool.install(|| {
                        chunk
                            .par_iter()
                            .filter_map(|s| {
                                let r = compute(s);
                                progress.tick();
                                r
                            })
                            .collect()
                    });
                    if results.is_empty() {
                        continue;
                    }
                    let clips: Vec<(String, usize, usize, Vec<f32>)> =
                        results.iter().map(|(e, d)| (e.song_id.clone(), params.n_mels, e.frames, d.clone())).collect();
                    match cache::write_shard(&out.join(name), &clips) {
                        Ok(()) => {
                            for (mut e, _) in results {
                                e.output = name.clone();
                                manifest.append(&e)?;
                                new_entries.lock().unwrap_or_else(|p| p.into_inner()).push(e);
                            }
                        }
                        Err(e) => fail(e),
                    }
                }
                progress.finish();
            }
        }
        if let Some(e) = record_err.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        let entries = new_entries.into_inner().unwrap_or_else(|p| p.into_inner());
        new = entries.len();
        for e in entries {
            done.insert(e.song_id.clone(), e);
        }
        skipped.extend(new_skips.into_inner().unwrap_or_else(|p| p.into_inner()));
        let mut cut = truncated.into_inner().unwrap_or_else(|p| p.into_inner());
        cut.sort();
        warnings.extend(cut);
        // The manifest, compacted: one line per clip of this dataset that is in the cache.
        let keep: Vec<Entry> = done.values().cloned().collect();
        manifest.compact(&keep)?;
    }

    // Tokenized lyrics (--tokenizer): the master list then points at the .pt files.
    let lyrics = match args.tokenizer {
        Some(t) => Some(preprocess_lyrics::tokenize_lyrics(&out, &songs, t, args.max_len, &pool, &mut warnings)?),
        None => None,
    };

    // The seed's master list, in metadata order.
    let mut rows = Vec::new();
    for s in &songs {
        let spectrogram_path = if ds.layout.modality.has_audio() {
            match done.get(&s.id) {
                Some(e) => out.join(&e.output).to_string_lossy().into_owned(),
                None => continue,
            }
        } else {
            String::new()
        };
        rows.push(MasterRow {
            song_id: s.id.clone(),
            spectrogram_path,
            lyrics_path: match lyrics.as_ref().and_then(|l| l.files.get(&s.id)) {
                Some(pt) => pt.to_string_lossy().into_owned(),
                None => s.lyrics.as_ref().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default(),
            },
            valence: s.valence,
            arousal: s.arousal,
            quadrant: s.quadrant.to_string(),
        });
    }
    if !ds.layout.modality.has_audio() {
        new = rows.len();
    }
    write_atomic(&out.join(cache::MASTER_LIST), &cache::master_list_bytes(&rows)?)?;
    write_atomic(&out.join(cache::SKIPPED), &cache::skipped_bytes(&skipped)?)?;
    Ok(Outcome {
        out,
        listed: ds.songs.len() + ds.skipped.len(),
        new,
        unchanged,
        skipped,
        warnings,
        seconds: t0.elapsed().as_secs_f64(),
        jobs,
        lyrics,
    })
}

/// Skips grouped by reason with counts and a few examples; warnings after.
pub fn report_text(o: &Outcome) -> String {
    let mut t = String::new();
    if o.skipped.is_empty() {
        t += "  skipped: none\n";
    } else {
        t += &format!("  skipped {} (details in {}):\n", o.skipped.len(), o.out.join(cache::SKIPPED).display());
        let mut groups: BTreeMap<SkipKind, Vec<&Skip>> = BTreeMap::new();
        for s in &o.skipped {
            groups.entry(s.kind).or_default().push(s);
        }
        for (kind, list) in groups {
            t += &format!("    {:<20} {:>5}   fix: {}\n", kind.label(), list.len(), kind.fix());
            for s in list.iter().take(3) {
                let loc = match s.line {
                    Some(l) => format!("{}:{l}", s.file.display()),
                    None => s.file.display().to_string(),
                };
                t += &format!("      {} — {loc}: {}\n", s.song, s.detail);
            }
            if list.len() > 3 {
                t += &format!("      … and {} more\n", list.len() - 3);
            }
        }
    }
    for w in &o.warnings {
        t += &format!("  warning: {w}\n");
    }
    t
}
