//! Reading one lyric file, with a clear error or warning (naming the file) for what can go wrong.
//!
//! | file | result |
//! |---|---|
//! | UTF-8 (a BOM is dropped) | the text |
//! | UTF-16 with a BOM | decoded, with a warning |
//! | empty or only whitespace | the (empty) text, with [`no_lyrics_warning`]: it encodes as [CLS] [SEP] alone |
//! | larger than [`LARGE_LYRIC_BYTES`] | the text, with a warning: only the first max_len tokens count |
//! | larger than [`MAX_LYRIC_BYTES`] | error: not a lyric |
//! | NUL bytes (binary) | error |
//! | not valid UTF-8 | error with the byte offset and how to convert; or, with [`InvalidUtf8::Replace`], U+FFFD in place of each bad sequence and a warning |
//!
//! The text is otherwise passed on unchanged (no trimming, no newline conversion): what the
//! tokenizer sees is what transformers would see after `open(path, encoding='utf-8').read()`, less a
//! BOM, which Python keeps as U+FEFF but BERT's normalizer drops anyway.

use crate::error::{Error, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Above this a lyric is unusual and gets a warning (a long song is ~5 KB).
pub const LARGE_LYRIC_BYTES: u64 = 256 * 1024;
/// Above this a file is refused as a lyric.
pub const MAX_LYRIC_BYTES: u64 = 64 * 1024 * 1024;

/// A lyric read from a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lyric {
    pub path: PathBuf,
    pub text: String,
    /// Each names the file; for a log or the skipped-songs report.
    pub warnings: Vec<String>,
}

/// What to do with bytes that are not UTF-8.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InvalidUtf8 {
    /// Refuse the file (the default: a silently garbled lyric trains on garbage).
    #[default]
    Error,
    /// Replace each invalid sequence with U+FFFD and warn.
    Replace,
}

/// Reads a lyric, refusing non-UTF-8 files.
pub fn read_lyric(path: &Path) -> Result<Lyric> {
    read_lyric_with(path, InvalidUtf8::Error)
}

/// Reads a lyric with the given policy for invalid UTF-8.
pub fn read_lyric_with(path: &Path, invalid: InvalidUtf8) -> Result<Lyric> {
    let meta = std::fs::metadata(path).map_err(|e| Error::file(path, format!("cannot read the lyric: {e}")))?;
    if meta.is_dir() {
        return Err(Error::file(path, "is a folder, not a lyric file"));
    }
    if meta.len() > MAX_LYRIC_BYTES {
        return Err(Error::file(
            path,
            format!("{} bytes: too large for a lyric (limit {MAX_LYRIC_BYTES}); is this the right file?", meta.len()),
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_LYRIC_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| Error::file(path, format!("cannot read the lyric: {e}")))?;
    decode_lyric(path, &bytes, invalid)
}

/// What every command says of a lyric file with no text (an instrumental song, most likely): it is
/// kept and encoded as transformers encodes an empty text, `[CLS] [SEP]` and padding, so the song
/// is scored like any other instead of being dropped.
pub fn no_lyrics_warning(path: &Path) -> String {
    format!(
        "{}: no lyrics (the file holds no text; an instrumental song?): encoded as [CLS] [SEP] alone, as \
         transformers encodes an empty text",
        path.display()
    )
}

/// The decoding rules of [`read_lyric_with`] applied to bytes already in memory.
pub fn decode_lyric(path: &Path, bytes: &[u8], invalid: InvalidUtf8) -> Result<Lyric> {
    let mut warnings = Vec::new();
    let shown = path.display();
    if bytes.len() as u64 > LARGE_LYRIC_BYTES {
        warnings.push(format!(
            "{shown}: {} bytes is unusually large for a lyric; only its first tokens (max_len) are used",
            bytes.len()
        ));
    }
    let text = if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        utf8(path, rest, invalid, &mut warnings)?
    } else if let Some(units) = utf16_with_bom(bytes) {
        if bytes.len() % 2 == 1 {
            return Err(Error::file(
                path,
                "UTF-16 (by its byte order mark) with an odd number of bytes: truncated; re-save the lyric as UTF-8",
            ));
        }
        warnings.push(format!("{shown}: UTF-16 text (by its byte order mark), decoded"));
        match String::from_utf16(&units) {
            Ok(s) => s,
            Err(_) if invalid == InvalidUtf8::Replace => {
                warnings.push(format!("{shown}: invalid UTF-16 replaced with U+FFFD"));
                String::from_utf16_lossy(&units)
            }
            Err(_) => return Err(Error::file(path, "invalid UTF-16 (unpaired surrogate); re-save the lyric as UTF-8")),
        }
    } else {
        if let Some(at) = bytes.iter().position(|&b| b == 0) {
            return Err(Error::file(path, format!("NUL byte at offset {at}: a binary file, not a lyric")));
        }
        utf8(path, bytes, invalid, &mut warnings)?
    };
    if text.contains('\0') {
        return Err(Error::file(path, "contains NUL characters: a binary file, not a lyric"));
    }
    if text.trim().is_empty() {
        warnings.push(no_lyrics_warning(path));
    }
    Ok(Lyric { path: path.to_path_buf(), text, warnings })
}

fn utf8(path: &Path, bytes: &[u8], invalid: InvalidUtf8, warnings: &mut Vec<String>) -> Result<String> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_string()),
        Err(e) => {
            let at = e.valid_up_to();
            let bad: Vec<String> = bytes[at..bytes.len().min(at + 4)].iter().map(|b| format!("{b:02x}")).collect();
            match invalid {
                InvalidUtf8::Error => Err(Error::file(
                    path,
                    format!(
                        "not UTF-8: invalid bytes {} at offset {at} (line {}); convert it, e.g. `iconv -f windows-1252 -t utf-8`, or read with InvalidUtf8::Replace",
                        bad.join(" "),
                        bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1
                    ),
                )),
                InvalidUtf8::Replace => {
                    let s = String::from_utf8_lossy(bytes).into_owned();
                    let n = s.chars().filter(|&c| c == '\u{FFFD}').count();
                    warnings.push(format!(
                        "{}: not UTF-8 (first invalid bytes {} at offset {at}); {n} sequence(s) replaced with U+FFFD",
                        path.display(),
                        bad.join(" ")
                    ));
                    Ok(s)
                }
            }
        }
    }
}

fn utf16_with_bom(bytes: &[u8]) -> Option<Vec<u16>> {
    let (le, rest) = match bytes {
        [0xFF, 0xFE, rest @ ..] => (true, rest),
        [0xFE, 0xFF, rest @ ..] => (false, rest),
        _ => return None,
    };
    let units = rest
        .chunks_exact(2)
        .map(|c| if le { u16::from_le_bytes([c[0], c[1]]) } else { u16::from_be_bytes([c[0], c[1]]) })
        .collect();
    Some(units)
}
