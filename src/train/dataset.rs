//! The songs a run trains and evaluates on: a MERGE folder (preprocessed into
//! `DIR/moodgrad-cache/<fixed|legacy>` when needed, reusing a valid cache) or a cache folder,
//! with the train/validate/test split.
//!
//! Splits come from MERGE's `tvt_dataframes` (column `Song` = Audio_Song) when the folder has them,
//! else a seeded quadrant-stratified 70/15/15 split. Songs a split file names but the metadata lacks
//! are reported and skipped, never silently dropped.

use super::config::{Preprocessing, SplitName};
use super::metrics::Quadrant;
use crate::audio::PreprocessParams;
use crate::data::cache::{self, CacheFormat, Manifest};
use crate::data::merge::{CsvTable, Split, detect};
use crate::data::preprocess::{PreprocessOptions, preprocess, report_text};
use crate::error::{Error, Result};
use crate::rng::Rng;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// One song with everything training and evaluation read.
#[derive(Clone, Debug, PartialEq)]
pub struct SongRecord {
    pub id: String,
    /// The spectrogram's file: a `.npy`, or a safetensors shard holding it under `id`.
    pub spectrogram: PathBuf,
    /// The lyric's text file (absent for audio-only data).
    pub lyric: Option<PathBuf>,
    pub valence: f64,
    pub arousal: f64,
    /// The metadata's Quadrant label.
    pub quadrant: Quadrant,
    /// Decoded length before crop/pad.
    pub duration_s: f64,
}

/// Song indices per split.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Splits {
    pub train: Vec<usize>,
    pub validate: Vec<usize>,
    pub test: Vec<usize>,
}

impl Splits {
    pub fn get(&self, s: Split) -> &[usize] {
        match s {
            Split::Train => &self.train,
            Split::Validate => &self.validate,
            Split::Test => &self.test,
        }
    }
}

pub struct TrainData {
    /// The cache folder the spectrograms come from (a run records it; evaluate reuses it).
    pub cache: PathBuf,
    pub songs: Vec<SongRecord>,
    pub splits: Splits,
    /// Where the split came from, skips and warnings, for the user.
    pub notes: Vec<String>,
}

/// The cache folder name for a preprocessing.
pub fn cache_subdir(p: Preprocessing) -> &'static str {
    match p {
        Preprocessing::Fixed => "fixed",
        Preprocessing::Legacy => "legacy",
    }
}

pub fn params_of(p: Preprocessing) -> PreprocessParams {
    match p {
        Preprocessing::Fixed => PreprocessParams::default(),
        Preprocessing::Legacy => PreprocessParams::legacy(),
    }
}

/// The seed of the stratified split. Fixed, not the training seed: runs that differ only in their
/// seed (or in fixed against legacy) must be scored on the same test songs.
pub const SPLIT_SEED: u64 = 0x5eed_5b11;

/// Opens `dir` (a MERGE folder or a cache folder) for `preprocessing`, preprocessing what is
/// missing, and splits it.
pub fn open(dir: &Path, preprocessing: Preprocessing, split: SplitName) -> Result<TrainData> {
    let seed = SPLIT_SEED;
    let mut notes = Vec::new();
    let (cache, merge_root) = if dir.join(cache::MANIFEST).is_file() {
        (dir.to_path_buf(), merge_root_of_cache(dir))
    } else {
        let out = dir.join("moodgrad-cache").join(cache_subdir(preprocessing));
        let legacy = preprocessing == Preprocessing::Legacy;
        let args = PreprocessOptions {
            data: dir,
            out: Some(&out),
            jobs: None,
            legacy,
            format: CacheFormat::Npy,
            tokenizer: None,
            max_len: 512,
        };
        let o = preprocess(&args)?;
        notes.push(format!(
            "cache {}: {} new, {} reused, {} skipped",
            o.out.display(),
            o.new,
            o.unchanged,
            o.skipped.len()
        ));
        let report = report_text(&o);
        notes.extend(report.lines().filter(|l| !l.trim().is_empty() && !l.contains("skipped: none")).map(String::from));
        (o.out, Some(dir.to_path_buf()))
    };
    let want = cache::params_json(&params_of(preprocessing));
    let songs = read_cache(&cache, &want)?;
    if songs.is_empty() {
        return Err(Error::file(&cache, "the cache holds no songs (see skipped.csv there for why)"));
    }
    let splits = match (split, &merge_root) {
        (SplitName::Random, _) => None,
        (name, Some(root)) => read_split_files(root, name, &songs, &mut notes)?,
        (name, None) => {
            notes.push(format!("no MERGE folder above {}: no {} files", cache.display(), name.name()));
            None
        }
    };
    let splits = match splits {
        Some(s) => s,
        None => {
            notes.push(format!("split: quadrant-stratified 70/15/15, seeded ({seed:#x}, the same for every run)"));
            stratified(&songs, seed)
        }
    };
    for (name, part) in [("train", &splits.train), ("validate", &splits.validate), ("test", &splits.test)] {
        if part.is_empty() {
            return Err(Error::file(&cache, format!("the {name} split is empty: a dataset this small cannot train")));
        }
    }
    Ok(TrainData { cache, songs, splits, notes })
}

/// A cache inside a MERGE folder (`ROOT/moodgrad-cache/<params>/`) points back at ROOT.
fn merge_root_of_cache(cache: &Path) -> Option<PathBuf> {
    let up = cache.parent()?;
    let root = if up.file_name()? == "moodgrad-cache" { up.parent()? } else { up };
    root.join("tvt_dataframes").is_dir().then(|| root.to_path_buf())
}

/// The master list and manifest of a cache made with `want` parameters.
fn read_cache(cache: &Path, want: &serde_json::Value) -> Result<Vec<SongRecord>> {
    let manifest = Manifest::load(cache)?;
    if let Some(e) = manifest.entries.values().find(|e| &e.params != want) {
        return Err(Error::file(
            cache,
            format!(
                "this cache was made with other preprocessing parameters ({}; e.g. song {}) than the config asks for; \
                 point --data at the MERGE folder so the right cache is built, or change [data] preprocessing",
                e.params, e.song_id
            ),
        ));
    }
    let list = cache.join(cache::MASTER_LIST);
    let t = CsvTable::read(&list)?;
    let col = |n: &str| t.column(n);
    let (c_id, c_sp, c_ly, c_v, c_a, c_q) = (
        col("song_id")?,
        col("spectrogram_path")?,
        col("lyrics_path")?,
        col("valence")?,
        col("arousal")?,
        col("quadrant")?,
    );
    let mut songs = Vec::new();
    for (line, r) in &t.rows {
        let bad = |what: String| Error::file(&list, format!("line {line}: {what}"));
        let id = r[c_id].clone();
        let entry = manifest.entries.get(&id).ok_or_else(|| {
            bad(format!("song {id} has no manifest entry (the cache is incomplete: rerun `moodgrad preprocess`)"))
        })?;
        let num = |c: usize, what: &str| -> Result<f64> {
            r[c].parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| bad(format!("{what} `{}` is not a number", r[c])))
        };
        let quadrant = Quadrant::parse(&r[c_q]).ok_or_else(|| bad(format!("quadrant `{}` is not Q1-Q4", r[c_q])))?;
        songs.push(SongRecord {
            spectrogram: PathBuf::from(&r[c_sp]),
            lyric: (!r[c_ly].is_empty()).then(|| PathBuf::from(&r[c_ly])),
            valence: num(c_v, "valence")?,
            arousal: num(c_a, "arousal")?,
            quadrant,
            duration_s: entry.duration_s,
            id,
        });
    }
    Ok(songs)
}

/// MERGE's split files for `name`, or None when the folder has none.
fn read_split_files(
    root: &Path,
    name: SplitName,
    songs: &[SongRecord],
    notes: &mut Vec<String>,
) -> Result<Option<Splits>> {
    let stem = detect(root)?.stem;
    let dir = root.join("tvt_dataframes").join(name.name());
    let index: HashMap<&str, usize> = songs.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
    let mut splits = Splits::default();
    let mut found = false;
    let mut unknown = BTreeMap::new();
    for s in [Split::Train, Split::Validate, Split::Test] {
        let p = dir.join(format!("{}_{}_{}.csv", name.name(), s.name(), stem));
        if !p.is_file() {
            continue;
        }
        found = true;
        let t = CsvTable::read(&p)?;
        let c = t.column("Song")?;
        for (line, r) in &t.rows {
            match index.get(r[c].as_str()) {
                Some(&i) => match s {
                    Split::Train => splits.train.push(i),
                    Split::Validate => splits.validate.push(i),
                    Split::Test => splits.test.push(i),
                },
                None => {
                    unknown.insert(r[c].clone(), format!("{}:{line}", p.display()));
                }
            }
        }
    }
    if !found {
        notes.push(format!("no split files in {}: using a seeded split instead", dir.display()));
        return Ok(None);
    }
    notes.push(format!(
        "split: {} ({} / {} / {})",
        dir.display(),
        splits.train.len(),
        splits.validate.len(),
        splits.test.len()
    ));
    if !unknown.is_empty() {
        let shown: Vec<String> = unknown.iter().take(5).map(|(s, at)| format!("{s} ({at})")).collect();
        notes.push(format!(
            "skipped {} song(s) named in the split files but not in the metadata or not cached: {} — fix the split \
             files or the metadata (see skipped.csv in the cache for songs preprocessing skipped)",
            unknown.len(),
            shown.join(", ")
        ));
    }
    Ok(Some(splits))
}

/// 70/15/15 within each quadrant, in a seeded order.
fn stratified(songs: &[SongRecord], seed: u64) -> Splits {
    let mut rng = Rng::new(seed ^ 0x5b11_7000);
    let mut splits = Splits::default();
    for q in 0..4 {
        let mut idx: Vec<usize> = (0..songs.len()).filter(|&i| songs[i].quadrant.index() == q).collect();
        for i in (1..idx.len()).rev() {
            idx.swap(i, rng.below(i + 1));
        }
        let n = idx.len();
        let (n_train, n_val) = ((n as f64 * 0.70).round() as usize, (n as f64 * 0.15).round() as usize);
        splits.train.extend(&idx[..n_train.min(n)]);
        splits.validate.extend(&idx[n_train.min(n)..(n_train + n_val).min(n)]);
        splits.test.extend(&idx[(n_train + n_val).min(n)..]);
    }
    splits
}
