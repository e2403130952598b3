//! Readers for the MERGE dataset layouts (Bimodal, Audio-only, Lyrics-only; Complete and Balanced).
//!
//! # How the layout is detected (first rule that matches)
//! 1. `merge_bimodal_complete_metadata.csv` (else `merge_bimodal_balanced_metadata.csv`) in DIR:
//!    **Bimodal**. Needs the matching `merge_bimodal_<variant>_av_values.csv`; audio under
//!    `audio/Q1..Q4/<Audio_Song>.<ext>`, lyrics under `lyrics/Q1..Q4/<Lyric_Song>.txt`.
//! 2. `merge_audio_<variant>_metadata.csv`: **Audio-only**; `merge_lyrics_<variant>_metadata.csv`:
//!    **Lyrics-only**. A `Song` column; files directly under `DIR/Q1..Q4/`; values from
//!    `merge_<kind>_<variant>_av_values.csv` (`Song`, `Arousal`, `Valence`).
//! 3. Any other single `*_metadata.csv` with its `*_av_values.csv`: Bimodal when `audio/` and
//!    `lyrics/` exist, otherwise Audio-only or Lyrics-only by the column (`Audio_Song`/`Song`) and
//!    by which files (`.txt` or audio) sit in `Q1..Q4/`.
//!
//! Audio files are looked up in the song's quadrant folder as `.mp3`, then `.wav`, `.flac`, `.ogg`.
//! Splits come from `tvt_dataframes/tvt_70_15_15/tvt_70_15_15_{train,validate,test}_<stem>.csv`
//! (column `Song`), where `<stem>` is the metadata name between `merge_` and `_metadata.csv`; when
//! those files are absent the songs have no split and a warning says so.
//!
//! # Bad input
//! The header row must hold the needed columns, or reading stops with an error naming the file and
//! the columns it has. A bad data row (wrong field count, bytes that are not UTF-8, an empty ID, a
//! quadrant other than Q1..Q4, a value that is not a number in [0, 1]) becomes a `Skip` naming the
//! file, the line and the fix. IDs that could leave the data folder (`..`, `/`, `\`, `:`, NUL, a
//! leading `.`) are refused. A UTF-8 byte-order mark and CRLF line ends are accepted; fields are
//! trimmed.
//!
//! Lyrics that are not valid UTF-8 are kept: `read_lyrics` decodes them lossily (U+FFFD for each
//! bad byte) and says so, and `moodgrad preprocess` lists them as warnings, since MERGE's lyrics are
//! meant to be UTF-8 and a stray Latin-1 byte should not cost a song.

use crate::error::{Error, Result};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

pub const QUADRANTS: [&str; 4] = ["Q1", "Q2", "Q3", "Q4"];
pub const AUDIO_EXTENSIONS: [&str; 4] = ["mp3", "wav", "flac", "ogg"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Modality {
    Bimodal,
    AudioOnly,
    LyricsOnly,
}

impl Modality {
    pub fn name(self) -> &'static str {
        match self {
            Modality::Bimodal => "Bimodal",
            Modality::AudioOnly => "Audio-only",
            Modality::LyricsOnly => "Lyrics-only",
        }
    }
    pub fn has_audio(self) -> bool {
        self != Modality::LyricsOnly
    }
    pub fn has_lyrics(self) -> bool {
        self != Modality::AudioOnly
    }
}

/// Which files make up the dataset at a root folder.
#[derive(Clone, Debug)]
pub struct Layout {
    pub modality: Modality,
    pub root: PathBuf,
    pub metadata: PathBuf,
    pub av_values: PathBuf,
    /// e.g. `bimodal_complete`: names the split files.
    pub stem: String,
    /// Folder holding Q1..Q4 of audio (`root/audio` or `root`).
    pub audio_dir: PathBuf,
    /// Folder holding Q1..Q4 of lyrics (`root/lyrics` or `root`).
    pub lyrics_dir: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipKind {
    BadCsvRow,
    UnsafeId,
    DuplicateId,
    NoValues,
    MissingAudio,
    MissingLyric,
    Undecodable,
    Empty,
    Unreadable,
}

impl SkipKind {
    /// The short name used in the report and in `skipped.csv`.
    pub fn label(self) -> &'static str {
        match self {
            SkipKind::BadCsvRow => "bad CSV row",
            SkipKind::UnsafeId => "unsafe ID",
            SkipKind::DuplicateId => "duplicate ID",
            SkipKind::NoValues => "no valence/arousal",
            SkipKind::MissingAudio => "missing audio",
            SkipKind::MissingLyric => "missing lyric",
            SkipKind::Undecodable => "undecodable audio",
            SkipKind::Empty => "empty audio",
            SkipKind::Unreadable => "unreadable file",
        }
    }
    /// What the user can do about it.
    pub fn fix(self) -> &'static str {
        match self {
            SkipKind::BadCsvRow => "correct the row (quote fields that contain commas; Q1..Q4; numbers in [0, 1])",
            SkipKind::UnsafeId => "IDs must be plain names (no `..`, `/`, `\\`, `:`, no leading `.`)",
            SkipKind::DuplicateId => "remove the repeated row",
            SkipKind::NoValues => "add the song to the *_av_values.csv file",
            SkipKind::MissingAudio => "put the audio file in its quadrant folder (or fix the quadrant)",
            SkipKind::MissingLyric => "put the lyrics file in its quadrant folder (or fix the quadrant)",
            SkipKind::Undecodable => "re-download or re-encode the file",
            SkipKind::Empty => "the file decodes to no samples: re-download it",
            SkipKind::Unreadable => "check the file's permissions",
        }
    }
}

/// One song left out, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Skip {
    pub song: String,
    pub kind: SkipKind,
    /// The file the problem is in (the CSV for row problems, the audio/lyrics file otherwise).
    pub file: PathBuf,
    /// 1-based line in `file` for CSV problems.
    pub line: Option<u64>,
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Validate,
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validate => "validate",
            Split::Test => "test",
        }
    }
}

/// One usable song: its files exist (their contents are checked later).
#[derive(Clone, Debug, PartialEq)]
pub struct Song {
    /// Audio_Song (Bimodal) or Song.
    pub id: String,
    pub lyric_id: Option<String>,
    pub quadrant: &'static str,
    pub valence: f64,
    pub arousal: f64,
    pub audio: Option<PathBuf>,
    pub lyrics: Option<PathBuf>,
    pub split: Option<Split>,
}

#[derive(Debug)]
pub struct Dataset {
    pub layout: Layout,
    pub songs: Vec<Song>,
    pub skipped: Vec<Skip>,
    pub warnings: Vec<String>,
}

/// Refuses IDs that could name a file outside their folder.
pub fn check_id(id: &str) -> std::result::Result<(), String> {
    if id.is_empty() {
        return Err("empty ID".into());
    }
    if id.contains("..") || id.starts_with('.') {
        return Err(format!("ID `{id}` contains `..` or starts with `.`"));
    }
    if id.chars().any(|c| matches!(c, '/' | '\\' | ':' | '\0') || c.is_control()) {
        return Err(format!("ID `{id}` contains a path separator, `:` or a control character"));
    }
    Ok(())
}

fn exists(p: &Path) -> bool {
    p.exists()
}

/// Finds the layout at `root`, or explains which file was expected.
pub fn detect(root: &Path) -> Result<Layout> {
    if !root.is_dir() {
        return Err(Error::file(root, "no such folder (pass --data the MERGE dataset folder)"));
    }
    let bimodal = |stem: &str| Layout {
        modality: Modality::Bimodal,
        root: root.to_path_buf(),
        metadata: root.join(format!("merge_{stem}_metadata.csv")),
        av_values: root.join(format!("merge_{stem}_av_values.csv")),
        stem: stem.to_string(),
        audio_dir: root.join("audio"),
        lyrics_dir: root.join("lyrics"),
    };
    let single = |stem: &str, modality: Modality| Layout {
        modality,
        root: root.to_path_buf(),
        metadata: root.join(format!("merge_{stem}_metadata.csv")),
        av_values: root.join(format!("merge_{stem}_av_values.csv")),
        stem: stem.to_string(),
        audio_dir: root.to_path_buf(),
        lyrics_dir: root.to_path_buf(),
    };
    let mut found = None;
    for variant in ["complete", "balanced"] {
        if exists(&root.join(format!("merge_bimodal_{variant}_metadata.csv"))) {
            found = Some(bimodal(&format!("bimodal_{variant}")));
            break;
        }
    }
    if found.is_none() {
        'outer: for variant in ["complete", "balanced"] {
            for (kind, m) in [("audio", Modality::AudioOnly), ("lyrics", Modality::LyricsOnly)] {
                if exists(&root.join(format!("merge_{kind}_{variant}_metadata.csv"))) {
                    found = Some(single(&format!("{kind}_{variant}"), m));
                    break 'outer;
                }
            }
        }
    }
    if found.is_none() {
        found = detect_generic(root)?;
    }
    let Some(layout) = found else {
        let mut msg = String::from(
            "not a MERGE dataset folder: expected merge_bimodal_complete_metadata.csv (Bimodal, with \
             merge_bimodal_complete_av_values.csv, audio/Q1..Q4/ and lyrics/Q1..Q4/), or \
             merge_audio_complete_metadata.csv / merge_lyrics_complete_metadata.csv with Q1..Q4/ \
             (Audio-only / Lyrics-only; `balanced` variants likewise)",
        );
        // A common slip: pointing at the folder above the dataset.
        if let Ok(rd) = std::fs::read_dir(root) {
            let subs: Vec<String> = rd
                .flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| {
                    let p = e.path();
                    detect_names(&p).then(|| p.display().to_string())
                })
                .collect();
            if !subs.is_empty() {
                msg += &format!("; did you mean --data {}?", subs.join(" or "));
            }
        }
        return Err(Error::file(root, msg));
    };
    if !layout.av_values.is_file() {
        return Err(Error::file(
            &layout.av_values,
            format!(
                "missing: the {} layout needs this valence/arousal file beside {}",
                layout.modality.name(),
                layout.metadata.display()
            ),
        ));
    }
    let dirs: Vec<&Path> = match layout.modality {
        Modality::Bimodal => vec![&layout.audio_dir, &layout.lyrics_dir],
        Modality::AudioOnly => vec![&layout.audio_dir],
        Modality::LyricsOnly => vec![&layout.lyrics_dir],
    };
    for d in dirs {
        if !QUADRANTS.iter().any(|q| d.join(q).is_dir()) {
            return Err(Error::file(
                d,
                format!("no Q1..Q4 folders here: the {} layout keeps its files in them", layout.modality.name()),
            ));
        }
    }
    Ok(layout)
}

fn detect_names(dir: &Path) -> bool {
    ["bimodal", "audio", "lyrics"]
        .iter()
        .any(|k| ["complete", "balanced"].iter().any(|v| dir.join(format!("merge_{k}_{v}_metadata.csv")).exists()))
}

/// Rule 3: any one `*_metadata.csv` with its `*_av_values.csv`.
fn detect_generic(root: &Path) -> Result<Option<Layout>> {
    let Ok(rd) = std::fs::read_dir(root) else { return Ok(None) };
    let mut metas: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.ends_with("_metadata.csv"))
        .collect();
    metas.sort();
    let Some(name) = metas.first() else { return Ok(None) };
    let prefix = name.trim_end_matches("_metadata.csv");
    let stem = prefix.strip_prefix("merge_").unwrap_or(prefix).to_string();
    let metadata = root.join(name);
    let av_values = root.join(format!("{prefix}_av_values.csv"));
    let modality = if root.join("audio").is_dir() && root.join("lyrics").is_dir() {
        Modality::Bimodal
    } else {
        let mut txt = false;
        let mut audio = false;
        for q in QUADRANTS {
            for e in std::fs::read_dir(root.join(q)).into_iter().flatten().flatten() {
                let ext = e.path().extension().and_then(|x| x.to_str()).unwrap_or("").to_ascii_lowercase();
                txt |= ext == "txt";
                audio |= AUDIO_EXTENSIONS.contains(&ext.as_str());
            }
        }
        match (audio, txt) {
            (true, _) => Modality::AudioOnly,
            (false, true) => Modality::LyricsOnly,
            _ => return Ok(None),
        }
    };
    let (audio_dir, lyrics_dir) = match modality {
        Modality::Bimodal => (root.join("audio"), root.join("lyrics")),
        _ => (root.to_path_buf(), root.to_path_buf()),
    };
    Ok(Some(Layout { modality, root: root.to_path_buf(), metadata, av_values, stem, audio_dir, lyrics_dir }))
}

/// A CSV file read as trimmed string rows with 1-based line numbers; bad rows come back as skips.
pub struct CsvTable {
    pub path: PathBuf,
    pub headers: Vec<String>,
    pub rows: Vec<(u64, Vec<String>)>,
    pub bad: Vec<Skip>,
}

impl CsvTable {
    pub fn read(path: &Path) -> Result<CsvTable> {
        let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
        Self::parse(&bytes, path)
    }

    pub fn parse(bytes: &[u8], path: &Path) -> Result<CsvTable> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        // Line numbers from byte offsets (the csv crate's own line count lags on CRLF files).
        let newlines: Vec<u64> =
            bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i as u64).collect();
        // A record's reported start can sit on the line end before it: step over line ends.
        let line_at = |byte: u64| {
            let mut b = byte as usize;
            while b < bytes.len() && matches!(bytes[b], b'\r' | b'\n') {
                b += 1;
            }
            1 + newlines.partition_point(|&n| n < b as u64) as u64
        };
        let mut rdr = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(bytes);
        let headers: Vec<String> = rdr
            .byte_headers()
            .map_err(|e| Error::file(path, format!("cannot read the header row: {e}")))?
            .iter()
            .map(|h| String::from_utf8_lossy(h).trim().trim_start_matches('\u{feff}').to_string())
            .collect();
        if headers.iter().all(|h| h.is_empty()) {
            return Err(Error::file(path, "empty file: expected a header row of column names"));
        }
        let mut rows = Vec::new();
        let mut bad = Vec::new();
        let bad_row = |song: String, line, detail: String| Skip {
            song,
            kind: SkipKind::BadCsvRow,
            file: path.to_path_buf(),
            line: Some(line),
            detail,
        };
        let mut rec = csv::ByteRecord::new();
        loop {
            let line_before = line_at(rdr.position().byte());
            match rdr.read_byte_record(&mut rec) {
                Ok(false) => break,
                Ok(true) => {
                    let line = rec.position().map(|p| line_at(p.byte())).unwrap_or(line_before);
                    if rec.iter().all(|f| f.is_empty()) {
                        continue; // blank line
                    }
                    let first = String::from_utf8_lossy(rec.get(0).unwrap_or(b"")).to_string();
                    let mut fields = Vec::with_capacity(rec.len());
                    let mut utf8_err = None;
                    for (i, f) in rec.iter().enumerate() {
                        match std::str::from_utf8(f) {
                            Ok(s) => fields.push(s.to_string()),
                            Err(_) => {
                                utf8_err = Some(i);
                                break;
                            }
                        }
                    }
                    if let Some(i) = utf8_err {
                        let column = headers.get(i).map(String::as_str).unwrap_or("?");
                        let why = format!("column `{column}` is not UTF-8 text (save the file as UTF-8)");
                        bad.push(bad_row(first, line, why));
                    } else if fields.len() != headers.len() {
                        let why = format!(
                            "{} fields where the header has {} (a field with a comma must be in double quotes)",
                            fields.len(),
                            headers.len()
                        );
                        bad.push(bad_row(first, line, why));
                    } else {
                        rows.push((line, fields));
                    }
                }
                Err(e) => {
                    let line = e.position().map(|p| line_at(p.byte())).unwrap_or(line_before);
                    bad.push(bad_row("?".into(), line, format!("unreadable row: {e}")));
                    if !matches!(e.kind(), csv::ErrorKind::Utf8 { .. } | csv::ErrorKind::UnequalLengths { .. }) {
                        break;
                    }
                }
            }
        }
        Ok(CsvTable { path: path.to_path_buf(), headers, rows, bad })
    }

    /// Index of a column, or an error listing the columns the file has.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.headers.iter().position(|h| h.eq_ignore_ascii_case(name)).ok_or_else(|| {
            Error::file(&self.path, format!("no `{name}` column (the header row has: {})", self.headers.join(", ")))
        })
    }

    fn skip(&self, song: &str, line: u64, kind: SkipKind, detail: String) -> Skip {
        Skip { song: song.to_string(), kind, file: self.path.clone(), line: Some(line), detail }
    }
}

fn parse_unit(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite() && (0.0..=1.0).contains(v))
}

fn parse_quadrant(s: &str) -> Option<&'static str> {
    QUADRANTS.iter().copied().find(|q| q.eq_ignore_ascii_case(s))
}

/// The audio file of a song in its quadrant folder: `.mp3`, then the other known extensions.
pub fn find_audio(dir: &Path, quadrant: &str, id: &str) -> Option<PathBuf> {
    AUDIO_EXTENSIONS.iter().map(|ext| dir.join(quadrant).join(format!("{id}.{ext}"))).find(|p| p.exists())
}

/// Reads a lyrics file; not-UTF-8 bytes are replaced by U+FFFD, and the flag says whether any were.
pub fn read_lyrics(path: &Path) -> std::io::Result<(String, bool)> {
    let bytes = std::fs::read(path)?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    match String::from_utf8(bytes.to_vec()) {
        Ok(s) => Ok((s, false)),
        Err(e) => Ok((String::from_utf8_lossy(e.as_bytes()).into_owned(), true)),
    }
}

impl Dataset {
    /// Detects the layout at `root` and reads it.
    pub fn open(root: &Path) -> Result<Dataset> {
        let layout = detect(root)?;
        Self::read(layout)
    }

    pub fn read(layout: Layout) -> Result<Dataset> {
        let mut skipped = Vec::new();
        let mut warnings = Vec::new();
        let bimodal = layout.modality == Modality::Bimodal;
        let id_col = if bimodal { "Audio_Song" } else { "Song" };

        // Valence and arousal by song.
        let av = CsvTable::read(&layout.av_values)?;
        let (a_id, a_ar, a_va) = (
            av.column(id_col).or_else(|e| if bimodal { Err(e) } else { av.column("Audio_Song") })?,
            av.column("Arousal")?,
            av.column("Valence")?,
        );
        skipped.extend(av.bad.iter().cloned());
        let mut values: HashMap<String, (f64, f64)> = HashMap::new();
        for (line, r) in &av.rows {
            let id = &r[a_id];
            match (parse_unit(&r[a_va]), parse_unit(&r[a_ar])) {
                (Some(v), Some(a)) => {
                    values.insert(id.clone(), (v, a));
                }
                _ => skipped.push(av.skip(
                    id,
                    *line,
                    SkipKind::BadCsvRow,
                    format!("Valence `{}` / Arousal `{}`: expected numbers in [0, 1]", r[a_va], r[a_ar]),
                )),
            }
        }

        // Splits.
        let mut splits: HashMap<String, Split> = HashMap::new();
        let tvt = layout.root.join("tvt_dataframes").join("tvt_70_15_15");
        let mut found_split = false;
        for s in [Split::Train, Split::Validate, Split::Test] {
            let p = tvt.join(format!("tvt_70_15_15_{}_{}.csv", s.name(), layout.stem));
            if !p.is_file() {
                continue;
            }
            found_split = true;
            let t = CsvTable::read(&p)?;
            let c = t.column("Song")?;
            for (_, r) in &t.rows {
                splits.insert(r[c].clone(), s);
            }
            for b in &t.bad {
                warnings.push(format!("{}:{}: {} (row ignored)", p.display(), b.line.unwrap_or(0), b.detail));
            }
        }
        if !found_split {
            warnings.push(format!(
                "no split files {}/tvt_70_15_15_{{train,validate,test}}_{}.csv: songs have no split",
                tvt.display(),
                layout.stem
            ));
        }

        let meta = CsvTable::read(&layout.metadata)?;
        let m_id = meta.column(id_col)?;
        let m_lyr = if bimodal { Some(meta.column("Lyric_Song")?) } else { None };
        let m_q = meta.column("Quadrant")?;
        skipped.extend(meta.bad.iter().cloned());
        let mut seen = HashSet::new();
        let mut songs = Vec::new();
        for (line, r) in &meta.rows {
            let line = *line;
            let id = r[m_id].as_str();
            if let Err(why) = check_id(id) {
                let kind = if id.is_empty() { SkipKind::BadCsvRow } else { SkipKind::UnsafeId };
                skipped.push(meta.skip(id, line, kind, format!("{id_col}: {why}")));
                continue;
            }
            let lyric_id = match m_lyr {
                Some(c) => {
                    let l = r[c].as_str();
                    if let Err(why) = check_id(l) {
                        let kind = if l.is_empty() { SkipKind::BadCsvRow } else { SkipKind::UnsafeId };
                        skipped.push(meta.skip(id, line, kind, format!("Lyric_Song: {why}")));
                        continue;
                    }
                    Some(l.to_string())
                }
                None => None,
            };
            let Some(quadrant) = parse_quadrant(&r[m_q]) else {
                skipped.push(meta.skip(
                    id,
                    line,
                    SkipKind::BadCsvRow,
                    format!("Quadrant `{}`: expected Q1, Q2, Q3 or Q4", r[m_q]),
                ));
                continue;
            };
            if !seen.insert(id.to_string()) {
                skipped.push(meta.skip(id, line, SkipKind::DuplicateId, format!("{id_col} `{id}` appears again")));
                continue;
            }
            let Some(&(valence, arousal)) = values.get(id) else {
                // A bad row in the values file already names this song: one skip is enough.
                if skipped.iter().any(|k| k.song == id && k.file == layout.av_values) {
                    continue;
                }
                skipped.push(Skip {
                    song: id.to_string(),
                    kind: SkipKind::NoValues,
                    file: layout.av_values.clone(),
                    line: None,
                    detail: format!("{id_col} `{id}` (metadata line {line}) has no row here"),
                });
                continue;
            };
            let audio = if layout.modality.has_audio() {
                match find_audio(&layout.audio_dir, quadrant, id) {
                    Some(p) => Some(p),
                    None => {
                        let p = layout.audio_dir.join(quadrant).join(format!("{id}.mp3"));
                        skipped.push(Skip {
                            song: id.to_string(),
                            kind: SkipKind::MissingAudio,
                            detail: "no such file (also tried .wav, .flac, .ogg)".into(),
                            file: p,
                            line: None,
                        });
                        continue;
                    }
                }
            } else {
                None
            };
            let lyrics = if layout.modality.has_lyrics() {
                let name = lyric_id.as_deref().unwrap_or(id);
                let p = layout.lyrics_dir.join(quadrant).join(format!("{name}.txt"));
                if !p.is_file() {
                    let detail = if p.exists() { "not a regular file" } else { "no such file" };
                    skipped.push(Skip {
                        song: id.to_string(),
                        kind: SkipKind::MissingLyric,
                        file: p,
                        line: None,
                        detail: detail.into(),
                    });
                    continue;
                }
                Some(p)
            } else {
                None
            };
            songs.push(Song {
                id: id.to_string(),
                lyric_id,
                quadrant,
                valence,
                arousal,
                audio,
                lyrics,
                split: splits.get(id).copied(),
            });
        }
        let extra = values.keys().filter(|k| !seen.contains(k.as_str())).count();
        if extra > 0 {
            warnings.push(format!(
                "{}: {extra} rows name songs that are not in {} (ignored)",
                layout.av_values.display(),
                layout.metadata.display()
            ));
        }
        Ok(Dataset { layout, songs, skipped, warnings })
    }
}
