//! A minimal RIFF/WAVE writer and reader: 16-bit PCM, mono, little-endian.

use crate::error::{Error, Result};
use std::path::Path;

/// Samples in [-1, 1] (clipped) as a 16-bit PCM mono WAV file.
pub fn encode_pcm16(samples: &[f32], sample_rate: u32) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // channels
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * 2).to_le_bytes()); // byte rate
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for &s in samples {
        let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Reads back what `encode_pcm16` writes (mono 16-bit PCM): (sample rate, samples in [-1, 1]).
pub fn decode_pcm16(bytes: &[u8], path: &Path) -> Result<(u32, Vec<f32>)> {
    let bad = |m: &str| Error::file(path, format!("not a 16-bit PCM mono WAV: {m}"));
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(bad("no RIFF/WAVE header"));
    }
    let mut pos = 12;
    let mut rate = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32::from_le_bytes([bytes[pos + 4], bytes[pos + 5], bytes[pos + 6], bytes[pos + 7]]) as usize;
        let body = bytes.get(pos + 8..pos + 8 + len).ok_or_else(|| bad("truncated chunk"))?;
        if id == b"fmt " {
            if len < 16 {
                return Err(bad("short fmt chunk"));
            }
            let fmt = u16::from_le_bytes([body[0], body[1]]);
            let ch = u16::from_le_bytes([body[2], body[3]]);
            let bits = u16::from_le_bytes([body[14], body[15]]);
            if fmt != 1 || ch != 1 || bits != 16 {
                return Err(bad(&format!("format {fmt}, {ch} channels, {bits} bits")));
            }
            rate = Some(u32::from_le_bytes([body[4], body[5], body[6], body[7]]));
        } else if id == b"data" {
            let rate = rate.ok_or_else(|| bad("data before fmt"))?;
            let s = body.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]]) as f32 / 32767.0).collect();
            return Ok((rate, s));
        }
        pos += 8 + len + (len & 1);
    }
    Err(bad("no data chunk"))
}
