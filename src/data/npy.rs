//! NumPy `.npy` format version 1.0, float32 little-endian, C order: what `np.save` writes for the
//! seed's spectrograms, and what `np.load` reads back.
//!
//! Layout: the magic `\x93NUMPY`, version bytes `1 0`, a little-endian u16 header length, then an
//! ASCII header dict `{'descr': '<f4', 'fortran_order': False, 'shape': (128, 1292), }` padded with
//! spaces and ended by `\n` so that the data starts on a 64-byte boundary, then the raw values.

use crate::error::{Error, Result};
use std::path::Path;

pub const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The header dict exactly as NumPy formats it for a float32 C-order array.
pub fn header_dict(shape: &[usize]) -> String {
    let dims = match shape {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}")
}

/// A whole `.npy` file (v1.0) as bytes.
pub fn encode_f32(shape: &[usize], data: &[f32]) -> Result<Vec<u8>> {
    let n: usize = shape.iter().product();
    if n != data.len() {
        return Err(Error::Invalid(format!("npy: shape {shape:?} holds {n} values, got {}", data.len())));
    }
    let dict = header_dict(shape);
    // 6 magic + 2 version + 2 length + dict + padding + '\n' ≡ 0 (mod 64).
    let unpadded = 10 + dict.len() + 1;
    let total = unpadded.div_ceil(64) * 64;
    let header_len = total - 10;
    if header_len > u16::MAX as usize {
        return Err(Error::Invalid(format!("npy: shape {shape:?} needs a version 2.0 header")));
    }
    let mut out = Vec::with_capacity(total + 4 * data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(total - 1, b' ');
    out.push(b'\n');
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}

/// Reads a float32 C-order `.npy` (v1.0/2.0/3.0), as `np.save` or `encode_f32` wrote it.
pub fn decode_f32(bytes: &[u8], path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let bad = |m: &str| Error::file(path, format!("not a float32 .npy file: {m}"));
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad("missing the \\x93NUMPY magic"));
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(bad(&format!("unsupported version {v}"))),
    };
    let header = bytes.get(start..start + hlen).ok_or_else(|| bad("truncated header"))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("header is not text"))?;
    if !(header.contains("'descr': '<f4'") || header.contains("\"descr\": \"<f4\"")) {
        return Err(bad(&format!("dtype is not '<f4' (header {})", header.trim())));
    }
    if header.contains("'fortran_order': True") {
        return Err(bad("Fortran order is not supported; save with C order"));
    }
    let shape_txt = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split_once('(').map(|(_, r)| r))
        .and_then(|s| s.split_once(')').map(|(l, _)| l))
        .ok_or_else(|| bad("no shape in header"))?;
    let shape: Vec<usize> = shape_txt
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad(&format!("bad shape ({shape_txt})")))?;
    let n: usize = shape.iter().product();
    let body = &bytes[start + hlen..];
    if body.len() != 4 * n {
        return Err(bad(&format!("shape {shape:?} needs {} data bytes, file has {}", 4 * n, body.len())));
    }
    let data = body.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok((shape, data))
}

pub fn read_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    decode_f32(&bytes, path)
}
