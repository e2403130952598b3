//! The songs of a batch prediction (`predict --input`): every file of a folder tree, or the rows
//! of a CSV naming audio (and lyric) paths, each with its lyric found by file stem. What can be
//! told before decoding (not an audio file, no lyric, an unreadable folder) is the song's
//! `problem`: it becomes a skipped row, never a stop.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The extensions a folder walk takes as songs (the decoder reads MP3, WAV, FLAC, Ogg Vorbis).
pub const AUDIO_EXTENSIONS: [&str; 6] = ["mp3", "wav", "wave", "flac", "ogg", "oga"];

/// One song to predict, in input order.
#[derive(Clone, Debug, PartialEq)]
pub struct SongInput {
    /// The song's name in the output (its path as found or as the CSV names it): `--resume`
    /// matches rows by it.
    pub key: String,
    pub audio: PathBuf,
    /// The lyric file, when the model reads lyrics and one was found.
    pub lyric: Option<PathBuf>,
    /// Why the song cannot be predicted, known before decoding.
    pub problem: Option<String>,
}

/// Where lyrics are looked for.
#[derive(Clone, Debug)]
pub enum LyricsRule {
    /// The model reads no lyrics.
    Unused,
    /// `<stem>.txt` beside the audio file.
    Beside,
    /// Under a folder: the same relative path with `.txt` first, else the one `<stem>.txt` in it.
    Folder { root: PathBuf, by_stem: HashMap<String, Vec<PathBuf>> },
}

impl LyricsRule {
    /// Indexes `dir`'s `*.txt` files by stem (`None`: beside the audio).
    pub fn new(reads_lyrics: bool, dir: Option<&Path>) -> Result<LyricsRule> {
        if !reads_lyrics {
            return Ok(LyricsRule::Unused);
        }
        let Some(root) = dir else { return Ok(LyricsRule::Beside) };
        if !root.is_dir() {
            return Err(Error::file(root, "--lyrics-dir: not a folder"));
        }
        let mut files = Vec::new();
        let mut unreadable = Vec::new();
        walk(root, &mut files, &mut unreadable);
        if let Some((dir, why)) = unreadable.first() {
            return Err(Error::file(dir, format!("--lyrics-dir: cannot read the folder: {why}")));
        }
        let mut by_stem: HashMap<String, Vec<PathBuf>> = HashMap::new();
        for f in files.into_iter().filter(|f| has_ext(f, &["txt"])) {
            by_stem.entry(stem(&f)).or_default().push(f);
        }
        Ok(LyricsRule::Folder { root: root.to_path_buf(), by_stem })
    }

    /// The lyric of `audio` (at `rel` below the input folder, if any), or why there is none.
    fn find(&self, audio: &Path, rel: Option<&Path>) -> std::result::Result<Option<PathBuf>, String> {
        match self {
            LyricsRule::Unused => Ok(None),
            LyricsRule::Beside => {
                let p = audio.with_extension("txt");
                if p.is_file() {
                    Ok(Some(p))
                } else {
                    Err(format!("no lyric: {} is missing (add it, or give --lyrics-dir DIR)", p.display()))
                }
            }
            LyricsRule::Folder { root, by_stem } => {
                if let Some(rel) = rel {
                    let p = root.join(rel).with_extension("txt");
                    if p.is_file() {
                        return Ok(Some(p));
                    }
                }
                let s = stem(audio);
                match by_stem.get(&s).map(Vec::as_slice) {
                    Some([one]) => Ok(Some(one.clone())),
                    Some(many) if many.len() > 1 => Err(format!(
                        "ambiguous lyric: {} files named {s}.txt under {} ({}); put the right one at the \
                         audio's relative path",
                        many.len(),
                        root.display(),
                        many.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                    )),
                    _ => Err(format!("no lyric: no {s}.txt under {} (add it)", root.display())),
                }
            }
        }
    }
}

/// The songs of `input`: a folder (walked recursively in path order; hidden entries and `*.txt`
/// lyrics are not songs, `skip` — the output file — neither; any other non-audio file is a song
/// with a problem) or a CSV list with an `audio` column and optionally a `lyrics` one (relative
/// paths from the CSV's folder; an empty lyrics cell falls back to `rule`).
pub fn list_songs(input: &Path, rule: &LyricsRule, skip: &Path) -> Result<Vec<SongInput>> {
    if input.is_dir() {
        return Ok(folder_songs(input, rule, skip));
    }
    if input.is_file() && has_ext(input, &["csv"]) {
        return csv_songs(input, rule);
    }
    Err(Error::file(input, "--input: give a folder of audio files or a .csv list (with an `audio` column)"))
}

fn folder_songs(root: &Path, rule: &LyricsRule, skip: &Path) -> Vec<SongInput> {
    let mut files = Vec::new();
    let mut unreadable = Vec::new();
    walk(root, &mut files, &mut unreadable);
    let skip = std::fs::canonicalize(skip).ok();
    let mut songs: Vec<SongInput> = files
        .into_iter()
        .filter(|f| !has_ext(f, &["txt"]) && (skip.is_none() || std::fs::canonicalize(f).ok() != skip))
        .map(|f| {
            let rel = f.strip_prefix(root).ok().map(Path::to_path_buf);
            let mut song = SongInput { key: f.display().to_string(), audio: f, lyric: None, problem: None };
            if !has_ext(&song.audio, &AUDIO_EXTENSIONS) {
                song.problem = Some(format!("not an audio file (moodgrad reads {})", AUDIO_EXTENSIONS.join(", ")));
                return song;
            }
            match rule.find(&song.audio, rel.as_deref()) {
                Ok(l) => song.lyric = l,
                Err(why) => song.problem = Some(why),
            }
            song
        })
        .collect();
    songs.extend(unreadable.into_iter().map(|(dir, why)| SongInput {
        key: dir.display().to_string(),
        audio: dir,
        lyric: None,
        problem: Some(format!("cannot read the folder: {why}")),
    }));
    songs
}

fn csv_songs(list: &Path, rule: &LyricsRule) -> Result<Vec<SongInput>> {
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(list)
        .map_err(|e| Error::file(list, format!("cannot read the list: {e}")))?;
    let headers = r.headers().map_err(|e| Error::file(list, format!("cannot read the header: {e}")))?.clone();
    let column = |names: &[&str]| headers.iter().position(|h| names.contains(&h.trim().to_ascii_lowercase().as_str()));
    let audio_col = column(&["audio", "path", "audio_path"]).ok_or_else(|| {
        Error::file(
            list,
            format!("no `audio` column (the header is: {}); name the audio paths' column `audio`", {
                headers.iter().collect::<Vec<_>>().join(",")
            }),
        )
    })?;
    let lyric_col = column(&["lyrics", "lyric", "lyrics_path"]);
    let base = list.parent().unwrap_or(Path::new("."));
    let mut songs = Vec::new();
    for (k, row) in r.records().enumerate() {
        let line = k + 2;
        let row = row.map_err(|e| Error::file(list, format!("line {line}: {e}")))?;
        let cell = |c: Option<usize>| c.and_then(|c| row.get(c)).map(str::trim).filter(|s| !s.is_empty());
        let Some(audio) = cell(Some(audio_col)) else {
            songs.push(SongInput {
                key: format!("{}:{line}", list.display()),
                audio: PathBuf::new(),
                lyric: None,
                problem: Some(format!("line {line} of the list names no audio file")),
            });
            continue;
        };
        let audio = base.join(audio);
        let mut song = SongInput { key: audio.display().to_string(), audio, lyric: None, problem: None };
        match (rule, cell(lyric_col)) {
            (LyricsRule::Unused, _) => {}
            (_, Some(l)) => song.lyric = Some(base.join(l)),
            (_, None) => match rule.find(&song.audio, None) {
                Ok(l) => song.lyric = l,
                Err(why) => song.problem = Some(why),
            },
        }
        songs.push(song);
    }
    Ok(songs)
}

/// Every file under `dir` in path order (symlinked folders are not followed, so a link cycle
/// cannot loop); folders that cannot be read go to `unreadable` with the reason.
fn walk(dir: &Path, files: &mut Vec<PathBuf>, unreadable: &mut Vec<(PathBuf, String)>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => return unreadable.push((dir.to_path_buf(), e.to_string())),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    paths.sort();
    for p in paths {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => walk(&p, files, unreadable),
            Ok(m) if m.is_symlink() && p.is_dir() => {}
            Ok(_) => files.push(p),
            Err(e) => unreadable.push((p, e.to_string())),
        }
    }
}

fn has_ext(p: &Path, exts: &[&str]) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| exts.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn stem(p: &Path) -> String {
    p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}
