//! The seed's lyric cache file, `processed_lyrics/<song_id>.pt`, written natively.
//!
//! The seed notebooks wrote `torch.save(tokenizer(text, padding='max_length', truncation=True,
//! max_length=512, return_tensors='pt'))` and read `torch.load(path, weights_only=False)
//! ['input_ids'].squeeze(0)` (and `attention_mask`). A transformers BatchEncoding pickles as a dict
//! subclass that `weights_only=True` refuses; the plain dict written here — int64 `input_ids`,
//! `token_type_ids`, `attention_mask`, each `[1, L]` — loads with both settings and gives the seed's
//! code what it indexes.
//!
//! The bytes follow torch.save (PyTorch 2.x, `_use_new_zipfile_serialization`) record for record, as
//! `tools/check_torch_pt.py` verifies against torch.save itself:
//!
//! ```text
//! zip, stored (no compression), every local header: version 0, flags 0x0808 (data descriptor, UTF-8),
//!   time/date 0, CRC and sizes 0 (they follow in a 16-byte data descriptor), an extra field
//!   "FB" + u16 n + n × 'Z' that puts the record's data at a multiple of 64 bytes
//! records, all under <archive>/ (the file name up to its last '.', or "archive" for a path that
//!   is not ASCII, as torch does):
//!   data.pkl                  pickle protocol 2: {name: _rebuild_tensor_v2(persistent storage
//!                             ('storage', LongStorage, key, 'cpu', L), 0, (1, L), (L, 1), False,
//!                             OrderedDict())} with Python's memo numbering
//!   .format_version = "1"     .storage_alignment = "64"    byteorder = "little"
//!   data/0, data/1, data/2    the three int64 rows, little-endian
//!   version = "3\n"
//!   .data/serialization_id    40 decimal digits; torch draws them at random, here they are derived
//!                             from the content so the same input gives the same file
//! central directory (no extras), zip64 end record + locator, end record — as torch writes them.
//! ```
//!
//! Nothing in moodgrad reads .pt files: they are pickles, and unpickling runs code.

use crate::error::{Error, Result};
use crate::text::tokenize::Encoding;
use sha2::{Digest, Sha256};
use std::path::Path;

/// The three tensors of a tokenizer output, in the order transformers' BatchEncoding holds them.
pub const PT_KEYS: [&str; 3] = ["input_ids", "token_type_ids", "attention_mask"];

/// torch's `kFieldAlignment`: record data starts at a multiple of this.
const ALIGN: usize = 64;

/// Writes `enc` as `path` in torch.save's format, atomically.
pub fn write_tokenized_pt(path: &Path, enc: &Encoding) -> Result<()> {
    check(enc).map_err(|m| Error::file(path, m))?;
    let bytes = tokenized_pt_bytes(&archive_name(path), enc);
    crate::io::write_atomic(path, &bytes)
}

/// The bytes of [`write_tokenized_pt`] with the given archive folder name.
pub fn tokenized_pt_bytes(archive: &str, enc: &Encoding) -> Vec<u8> {
    let l = enc.len();
    let rows = [&enc.input_ids, &enc.token_type_ids, &enc.attention_mask];
    let pickle = pickle_dict(l);
    let storages: Vec<Vec<u8>> = rows.iter().map(|r| r.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
    let serialization_id = serialization_id(&pickle, &storages);
    let mut records: Vec<(String, &[u8])> = vec![
        (format!("{archive}/data.pkl"), &pickle),
        (format!("{archive}/.format_version"), b"1"),
        (format!("{archive}/.storage_alignment"), b"64"),
        (format!("{archive}/byteorder"), b"little"),
    ];
    for (i, s) in storages.iter().enumerate() {
        records.push((format!("{archive}/data/{i}"), s));
    }
    records.push((format!("{archive}/version"), b"3\n"));
    records.push((format!("{archive}/.data/serialization_id"), serialization_id.as_bytes()));
    zip_stored(&records)
}

/// torch's archive folder: the file name without its last extension, or "archive" when the path is
/// not ASCII (torch then writes through a Python stream) or the name is empty.
pub fn archive_name(path: &Path) -> String {
    let Some(full) = path.to_str().filter(|s| s.is_ascii()) else {
        return "archive".into();
    };
    let base = full.rsplit(['/', '\\']).next().unwrap_or("");
    let stem = match base.rfind('.') {
        Some(i) => &base[..i],
        None => base,
    };
    if stem.is_empty() { "archive".into() } else { stem.to_string() }
}

fn check(enc: &Encoding) -> std::result::Result<(), String> {
    let l = enc.input_ids.len();
    if l == 0 || enc.token_type_ids.len() != l || enc.attention_mask.len() != l {
        return Err(format!(
            "cannot write an encoding with rows of lengths {}, {}, {} (need one length > 0)",
            l,
            enc.token_type_ids.len(),
            enc.attention_mask.len()
        ));
    }
    Ok(())
}

/// Pickle protocol 2, opcode for opcode what Python's pickler writes for torch.save's dict.
struct Pickle {
    out: Vec<u8>,
    memo: Vec<String>,
}

impl Pickle {
    fn put(&mut self, what: &str) {
        let i = self.memo.len();
        self.memo.push(what.to_string());
        if i < 256 {
            self.out.extend_from_slice(&[b'q', i as u8]);
        } else {
            self.out.push(b'r');
            self.out.extend_from_slice(&(i as u32).to_le_bytes());
        }
    }
    /// A memoized object: BINGET when seen before, else `emit` then BINPUT.
    fn memoized(&mut self, what: &str, emit: impl FnOnce(&mut Vec<u8>)) {
        if let Some(i) = self.memo.iter().position(|m| m == what) {
            if i < 256 {
                self.out.extend_from_slice(&[b'h', i as u8]);
            } else {
                self.out.push(b'j');
                self.out.extend_from_slice(&(i as u32).to_le_bytes());
            }
        } else {
            emit(&mut self.out);
            self.put(what);
        }
    }
    fn string(&mut self, s: &str) {
        self.memoized(&format!("str:{s}"), |o| {
            o.push(b'X');
            o.extend_from_slice(&(s.len() as u32).to_le_bytes());
            o.extend_from_slice(s.as_bytes());
        });
    }
    /// A string that is not memo-shared (dict keys and storage keys are distinct objects).
    fn fresh_string(&mut self, s: &str, tag: &str) {
        self.out.push(b'X');
        self.out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.out.extend_from_slice(s.as_bytes());
        self.put(tag);
    }
    fn global(&mut self, module: &str, name: &str) {
        self.memoized(&format!("global:{module}.{name}"), |o| {
            o.push(b'c');
            o.extend_from_slice(module.as_bytes());
            o.push(b'\n');
            o.extend_from_slice(name.as_bytes());
            o.push(b'\n');
        });
    }
    fn int(&mut self, v: usize) {
        if v < 256 {
            self.out.extend_from_slice(&[b'K', v as u8]);
        } else if v < 65536 {
            self.out.push(b'M');
            self.out.extend_from_slice(&(v as u16).to_le_bytes());
        } else {
            self.out.push(b'J');
            self.out.extend_from_slice(&(v as i32).to_le_bytes());
        }
    }
}

fn pickle_dict(l: usize) -> Vec<u8> {
    let mut p = Pickle { out: vec![0x80, 2, b'}'], memo: Vec::new() };
    p.put("dict");
    p.out.push(b'(');
    for (i, key) in PT_KEYS.iter().enumerate() {
        p.fresh_string(key, &format!("key:{key}"));
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.out.extend_from_slice(b"((");
        p.string("storage");
        p.global("torch", "LongStorage");
        p.fresh_string(&i.to_string(), &format!("storage-key:{i}"));
        p.string("cpu");
        p.int(l);
        p.out.push(b't');
        p.put(&format!("persid:{i}"));
        p.out.push(b'Q');
        p.int(0);
        p.int(1);
        p.int(l);
        p.out.push(0x86);
        p.put(&format!("size:{i}"));
        p.int(l);
        p.int(1);
        p.out.push(0x86);
        p.put(&format!("stride:{i}"));
        p.out.push(0x89);
        p.global("collections", "OrderedDict");
        p.out.extend_from_slice(b")R");
        p.put(&format!("hooks:{i}"));
        p.out.push(b't');
        p.put(&format!("args:{i}"));
        p.out.push(b'R');
        p.put(&format!("tensor:{i}"));
    }
    p.out.extend_from_slice(b"u.");
    p.out
}

fn serialization_id(pickle: &[u8], storages: &[Vec<u8>]) -> String {
    let mut h = Sha256::new();
    h.update(pickle);
    for s in storages {
        h.update(s);
    }
    let d = h.finalize();
    let a = u64::from_le_bytes(d[..8].try_into().unwrap_or_default());
    let b = u64::from_le_bytes(d[8..16].try_into().unwrap_or_default());
    format!("{a:020}{b:020}")
}

fn zip_stored(records: &[(String, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in records {
        let offset = out.len();
        let crc = crc32(data);
        // torch's getPadding: data starts after the 30-byte header, the name and a 4-byte "FB" field.
        let start = offset + 30 + name.len() + 4;
        let pad = (ALIGN - start % ALIGN) % ALIGN;
        put32(&mut out, 0x0403_4b50);
        put16(&mut out, 0); // version needed
        put16(&mut out, 0x0808); // data descriptor follows; UTF-8 names
        put16(&mut out, 0); // stored
        put16(&mut out, 0); // time
        put16(&mut out, 0); // date
        put32(&mut out, 0); // CRC (in the descriptor)
        put32(&mut out, 0);
        put32(&mut out, 0);
        put16(&mut out, name.len() as u16);
        put16(&mut out, (4 + pad) as u16);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"FB");
        put16(&mut out, pad as u16);
        out.resize(out.len() + pad, b'Z');
        out.extend_from_slice(data);
        put32(&mut out, 0x0807_4b50);
        put32(&mut out, crc);
        put32(&mut out, data.len() as u32);
        put32(&mut out, data.len() as u32);

        put32(&mut central, 0x0201_4b50);
        put16(&mut central, 0); // made by
        put16(&mut central, 0); // needed
        put16(&mut central, 0x0808);
        put16(&mut central, 0);
        put16(&mut central, 0);
        put16(&mut central, 0);
        put32(&mut central, crc);
        put32(&mut central, data.len() as u32);
        put32(&mut central, data.len() as u32);
        put16(&mut central, name.len() as u16);
        put16(&mut central, 0); // extra
        put16(&mut central, 0); // comment
        put16(&mut central, 0); // disk
        put16(&mut central, 0); // internal attributes
        put32(&mut central, 0); // external attributes
        put32(&mut central, offset as u32);
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len();
    out.extend_from_slice(&central);
    let n = records.len() as u64;
    let zip64_offset = out.len();
    put32(&mut out, 0x0606_4b50);
    out.extend_from_slice(&44u64.to_le_bytes());
    put16(&mut out, 0x031e);
    put16(&mut out, 0x002d);
    put32(&mut out, 0);
    put32(&mut out, 0);
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&(central.len() as u64).to_le_bytes());
    out.extend_from_slice(&(cd_offset as u64).to_le_bytes());
    put32(&mut out, 0x0706_4b50);
    put32(&mut out, 0);
    out.extend_from_slice(&(zip64_offset as u64).to_le_bytes());
    put32(&mut out, 1);
    put32(&mut out, 0x0605_4b50);
    put16(&mut out, 0);
    put16(&mut out, 0);
    put16(&mut out, n as u16);
    put16(&mut out, n as u16);
    put32(&mut out, central.len() as u32);
    put32(&mut out, cd_offset as u32);
    put16(&mut out, 0);
    out
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// CRC-32 (IEEE 802.3, reflected, as zip uses), bitwise: the records are a few KB.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}
