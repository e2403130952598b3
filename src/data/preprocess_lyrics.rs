//! `moodgrad preprocess --tokenizer DIR`: the seed's tokenized lyrics,
//! `<cache>/processed_lyrics/<Audio_Song>.pt` (torch.save of
//! `tokenizer(text, padding='max_length', truncation=True, max_length=L, return_tensors='pt')`),
//! which the master list's `lyrics_path` then points at.
//!
//! `processed_lyrics/manifest.json` records the tokenizer's hash (`LyricsTokenizer::hash`: equal
//! hashes tokenize identically), max_len, and each file's source (path, size, mtime). A lyric is
//! redone when its source changed or its .pt is gone; every lyric is redone when the tokenizer or
//! max_len changed. Each .pt is written atomically and the manifest last, so an interrupted run
//! leaves complete files and redoes at most what it had not recorded.

use super::cache::source_stamp;
use super::create_dir;
use super::merge::{Song, read_lyrics};
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::text::hf::{CacheRoots, Hub, Need, resolve_model_path};
use crate::text::tokenize::LyricsTokenizer;
use crate::text::torch_pt::write_tokenized_pt;
use rayon::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const DIR: &str = "processed_lyrics";
pub const MANIFEST: &str = "manifest.json";
const FORMAT: &str = "moodgrad-processed-lyrics-v1";

/// What the lyrics step did.
#[derive(Debug, Default, Clone)]
pub struct LyricsOutcome {
    /// song id → its .pt.
    pub files: BTreeMap<String, PathBuf>,
    pub new: usize,
    pub unchanged: usize,
    pub tokenizer: String,
    pub max_len: usize,
}

struct Recorded {
    source: String,
    size: u64,
    mtime_ns: u128,
}

/// Tokenizes every song's lyric into `<out>/processed_lyrics/`, on the pool's threads.
pub fn tokenize_lyrics(
    out: &Path,
    songs: &[Song],
    tokenizer: &str,
    max_len: usize,
    pool: &rayon::ThreadPool,
    warnings: &mut Vec<String>,
) -> Result<LyricsOutcome> {
    if max_len < 2 {
        return Err(Error::Invalid(format!("--max-len {max_len}: need room for [CLS] and [SEP] (at least 2)")));
    }
    let dir = resolve_model_path(tokenizer, Need::Tokenizer, &CacheRoots::from_env(), &Hub::from_env())?;
    let tok = LyricsTokenizer::from_dir(&dir)?;
    let pdir = out.join(DIR);
    create_dir(&pdir)?;
    let manifest_path = pdir.join(MANIFEST);
    let old = read_manifest(&manifest_path, tok.hash(), max_len, warnings);
    let todo: Vec<&Song> = songs.iter().filter(|s| s.lyrics.is_some()).collect();
    let results: Vec<Result<(String, Recorded, bool)>> = pool.install(|| {
        todo.par_iter()
            .map(|s| {
                let src = s.lyrics.as_ref().expect("filtered on lyrics");
                let (size, mtime_ns) = source_stamp(src).map_err(|e| Error::file(src, format!("cannot read: {e}")))?;
                let source = src.to_string_lossy().into_owned();
                let target = pdir.join(format!("{}.pt", s.id));
                let fresh =
                    old.get(&s.id).is_some_and(|r| r.source == source && r.size == size && r.mtime_ns == mtime_ns)
                        && target.is_file();
                if !fresh {
                    let (text, _) =
                        read_lyrics(src).map_err(|e| Error::file(src, format!("cannot read the lyric: {e}")))?;
                    let enc = tok.encode(&text, max_len).map_err(|e| Error::file(src, e.to_string()))?;
                    write_tokenized_pt(&target, &enc)?;
                }
                Ok((s.id.clone(), Recorded { source, size, mtime_ns }, fresh))
            })
            .collect()
    });
    let mut o = LyricsOutcome { tokenizer: tok.source().to_string(), max_len, ..Default::default() };
    let mut files = serde_json::Map::new();
    for r in results {
        let (id, rec, fresh) = r?;
        if fresh {
            o.unchanged += 1;
        } else {
            o.new += 1;
        }
        files.insert(
            id.clone(),
            json!({"source": rec.source, "size": rec.size, "mtime_ns": rec.mtime_ns.to_string(), "output": format!("{id}.pt")}),
        );
        o.files.insert(id.clone(), pdir.join(format!("{id}.pt")));
    }
    let manifest = json!({
        "format": FORMAT,
        "tokenizer": tok.hash(),
        "tokenizer_source": tok.source(),
        "max_len": max_len,
        "files": files,
    });
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::file(&manifest_path, e.to_string()))?;
    write_atomic(&manifest_path, &text)?;
    Ok(o)
}

/// The recorded files of a manifest written with this tokenizer and max_len (empty otherwise: a
/// changed tokenizer redoes every file).
fn read_manifest(path: &Path, hash: &str, max_len: usize, warnings: &mut Vec<String>) -> BTreeMap<String, Recorded> {
    let mut out = BTreeMap::new();
    let Ok(bytes) = std::fs::read(path) else { return out };
    let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
        warnings.push(format!("{}: unreadable; every lyric is tokenized again", path.display()));
        return out;
    };
    let same = v.get("format").and_then(Value::as_str) == Some(FORMAT)
        && v.get("tokenizer").and_then(Value::as_str) == Some(hash)
        && v.get("max_len").and_then(Value::as_u64) == Some(max_len as u64);
    if !same {
        warnings.push(format!(
            "{}: written with another tokenizer or max_len; every lyric is tokenized again",
            path.display()
        ));
        return out;
    }
    if let Some(files) = v.get("files").and_then(Value::as_object) {
        for (id, f) in files {
            let rec = (|| {
                Some(Recorded {
                    source: f.get("source")?.as_str()?.to_string(),
                    size: f.get("size")?.as_u64()?,
                    mtime_ns: f.get("mtime_ns")?.as_str()?.parse().ok()?,
                })
            })();
            if let Some(r) = rec {
                out.insert(id.clone(), r);
            }
        }
    }
    out
}
