//! Decoding any supported file (MP3, WAV, FLAC, OGG/Vorbis) to mono f32 samples with symphonia.
//!
//! Gapless playback is on, so MP3 encoder delay and padding (LAME/Xing tag) are trimmed the way
//! libsndfile's mpg123 reader does for librosa. Mono is the mean of the channels (`librosa.to_mono`).
//! Every failure is an [`AudioError`]; a panic inside the decoder on hostile bytes is caught and
//! reported as `Undecodable`.

use super::AudioError;
use std::fs::File;
use std::path::Path;
use symphonia::core::audio::{AudioBufferRef, Signal};
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// Decoded audio: mono samples and their sample rate.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
    /// Channels in the file before the mono mix-down.
    pub channels: usize,
    /// Set when the file looks cut short: its last frame failed to decode, or it decoded to less
    /// than 90 % of the length its header (or Xing/Info frame) declares. The audio is still usable.
    pub truncated: Option<String>,
}

/// A file that decodes to less than this share of its declared length is reported as truncated.
pub const TRUNCATED_BELOW: f64 = 0.9;

/// Opens `path` and decodes it to mono. Missing paths and directories are `Missing`.
pub fn decode_file(path: &Path) -> Result<Decoded, AudioError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(AudioError::Missing),
        Err(e) => return Err(AudioError::Io(e.to_string())),
    };
    if !meta.is_file() {
        return Err(AudioError::Missing);
    }
    if meta.len() == 0 {
        return Err(AudioError::Empty);
    }
    let file = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => AudioError::Missing,
        _ => AudioError::Io(e.to_string()),
    })?;
    let ext = path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase());
    let source: Box<dyn symphonia::core::io::MediaSource> = Box::new(file);
    guarded(move || decode_source(source, ext.as_deref()))
}

/// Decodes an in-memory file (`ext` is a hint such as "mp3"; the content decides).
pub fn decode_bytes(bytes: Vec<u8>, ext: Option<&str>) -> Result<Decoded, AudioError> {
    if bytes.is_empty() {
        return Err(AudioError::Empty);
    }
    let ext = ext.map(|e| e.to_ascii_lowercase());
    let source: Box<dyn symphonia::core::io::MediaSource> = Box::new(std::io::Cursor::new(bytes));
    guarded(move || decode_source(source, ext.as_deref()))
}

/// Runs the decoder and turns a panic on malformed input into `Undecodable`.
fn guarded<F: FnOnce() -> Result<Decoded, AudioError>>(f: F) -> Result<Decoded, AudioError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let why = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "decoder panicked".into());
            Err(AudioError::Undecodable(format!("decoder failure: {why}")))
        }
    }
}

fn sym_err(e: SymError) -> AudioError {
    match e {
        SymError::IoError(io) => AudioError::Undecodable(format!("truncated or unreadable stream: {io}")),
        SymError::Unsupported(what) => AudioError::Undecodable(format!("unsupported format: {what}")),
        other => AudioError::Undecodable(other.to_string()),
    }
}

fn decode_source(source: Box<dyn symphonia::core::io::MediaSource>, ext: Option<&str>) -> Result<Decoded, AudioError> {
    let mss = MediaSourceStream::new(source, Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = ext {
        hint.with_extension(ext);
    }
    let fmt_opts = FormatOptions { enable_gapless: true, ..Default::default() };
    let probed =
        symphonia::default::get_probe().format(&hint, mss, &fmt_opts, &MetadataOptions::default()).map_err(sym_err)?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| AudioError::Undecodable("no audio track".into()))?;
    let track_id = track.id;
    let mut sample_rate = track.codec_params.sample_rate;
    let mut decoder =
        symphonia::default::get_codecs().make(&track.codec_params, &DecoderOptions::default()).map_err(sym_err)?;
    let declared = track.codec_params.n_frames;
    let capacity = declared.unwrap_or(0).min(1 << 26) as usize;
    let mut samples: Vec<f32> = Vec::with_capacity(capacity);
    let mut channels = 0usize;
    let mut decoded_any = false;
    let mut last_error: Option<String> = None;
    // Whether the most recent packet failed to decode (the stream ended mid-frame if it was last).
    let mut last_failed = false;

    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            // End of stream (or a stream cut short: keep what was decoded, as libsndfile does).
            Err(SymError::IoError(_)) => break,
            Err(SymError::ResetRequired) => break,
            Err(e) => {
                if decoded_any {
                    break;
                }
                return Err(sym_err(e));
            }
        };
        if packet.track_id() != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(buf) => {
                let spec = *buf.spec();
                let ch = spec.channels.count();
                if ch == 0 {
                    continue;
                }
                if channels == 0 {
                    channels = ch;
                } else if channels != ch {
                    return Err(AudioError::Undecodable("channel count changes mid-stream".into()));
                }
                match sample_rate {
                    None => sample_rate = Some(spec.rate),
                    Some(r) if r != spec.rate => {
                        return Err(AudioError::Undecodable("sample rate changes mid-stream".into()));
                    }
                    _ => {}
                }
                decoded_any = true;
                last_failed = false;
                mix_into(&buf, &mut samples);
            }
            // A corrupt frame: skip it, as mpg123 does.
            Err(SymError::DecodeError(why)) => {
                last_error = Some(why.to_string());
                last_failed = true;
            }
            Err(SymError::IoError(_)) => break,
            Err(e) => return Err(sym_err(e)),
        }
    }
    if let (false, Some(why)) = (decoded_any, last_error.clone()) {
        return Err(AudioError::Undecodable(why));
    }
    let sample_rate = sample_rate.unwrap_or(0);
    if samples.is_empty() {
        return Err(AudioError::Empty);
    }
    if sample_rate == 0 {
        return Err(AudioError::Undecodable("no sample rate".into()));
    }
    let frames = samples.len() as u64; // mono already
    let truncated = match declared {
        Some(n) if n > 0 && (frames as f64) < TRUNCATED_BELOW * n as f64 => Some(format!(
            "decoded {:.2} s of the {:.2} s its header declares",
            frames as f64 / sample_rate as f64,
            n as f64 / sample_rate as f64
        )),
        _ if last_failed => Some(format!(
            "the stream ends mid-frame ({}); decoded {:.2} s",
            last_error.unwrap_or_default(),
            frames as f64 / sample_rate as f64
        )),
        _ => None,
    };
    Ok(Decoded { samples, sample_rate, channels, truncated })
}

/// Appends the mean of the channels of one decoded buffer (f32, as librosa's float32 load).
fn mix_into(buf: &AudioBufferRef<'_>, out: &mut Vec<f32>) {
    macro_rules! mix {
        ($b:expr, $conv:expr) => {{
            let b = $b;
            let n = b.frames();
            let ch = b.spec().channels.count();
            let start = out.len();
            out.resize(start + n, 0.0);
            let dst = &mut out[start..];
            if ch == 1 {
                for (d, &s) in dst.iter_mut().zip(b.chan(0)) {
                    *d = $conv(s);
                }
            } else {
                for c in 0..ch {
                    for (d, &s) in dst.iter_mut().zip(b.chan(c)) {
                        *d += $conv(s);
                    }
                }
                let inv = ch as f32;
                for d in dst.iter_mut() {
                    *d /= inv;
                }
            }
        }};
    }
    match buf {
        AudioBufferRef::F32(b) => mix!(b, |s: f32| s),
        AudioBufferRef::F64(b) => mix!(b, |s: f64| s as f32),
        AudioBufferRef::S8(b) => mix!(b, |s: i8| s as f32 / 128.0),
        AudioBufferRef::S16(b) => mix!(b, |s: i16| s as f32 / 32768.0),
        AudioBufferRef::S24(b) => mix!(b, |s: symphonia::core::sample::i24| s.inner() as f32 / 8388608.0),
        AudioBufferRef::S32(b) => mix!(b, |s: i32| (s as f64 / 2147483648.0) as f32),
        AudioBufferRef::U8(b) => mix!(b, |s: u8| (s as f32 - 128.0) / 128.0),
        AudioBufferRef::U16(b) => mix!(b, |s: u16| (s as f32 - 32768.0) / 32768.0),
        AudioBufferRef::U24(b) => {
            mix!(b, |s: symphonia::core::sample::u24| (s.inner() as f32 - 8388608.0) / 8388608.0)
        }
        AudioBufferRef::U32(b) => mix!(b, |s: u32| ((s as f64 - 2147483648.0) / 2147483648.0) as f32),
    }
}
