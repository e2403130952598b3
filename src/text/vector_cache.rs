//! The frozen-encoder vector cache: each lyric is encoded once per model, its vector kept on disk.
//!
//! Format (version 1), one file per model key:
//!
//! ```text
//! ROOT/<model key>.safetensors
//!   tensors   one F32 tensor [dim] per lyric, named by its text key (64 hex digits, text_key)
//!   metadata  format = "moodgrad-vector-cache-v1", model_key = <model key>, dim = <dim>,
//!             model = <ModelKey as JSON: fingerprint, tokenizer, pooling, max_len>
//! ```
//!
//! - model key ([`ModelKey::key`]): 32 hex digits of SHA-256 over the model's fingerprint (its weight
//!   files and config.json, [`HfModelDir::fingerprint`](crate::text::hf::HfModelDir::fingerprint)),
//!   the tokenizer's hash, the pooling name and max_len: change any of them and the vectors are
//!   looked up in (and written to) another file.
//! - text key ([`text_key`]): SHA-256 of the lyric text exactly as given to the tokenizer.
//!
//! `put` keeps vectors in memory; `flush` rewrites the whole file through a temporary file and a
//! rename, so a crash leaves the previous complete file (and loses only what was not flushed). A few
//! thousand lyrics × 768 floats is a few MB, so a rewrite is cheap. One process writes a cache file at
//! a time: two concurrent writers would each keep only their own additions. The file opens with
//! Python's `safetensors.safe_open` for inspection.

use crate::error::{Error, Result};
use crate::text::hash::{sha256_fields, sha256_hex};
use safetensors::Dtype;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub const FORMAT: &str = "moodgrad-vector-cache-v1";

/// What the cached vectors depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelKey {
    /// The model's weights and config (e.g. `HfModelDir::fingerprint`, or a hash of the built-in
    /// encoder's weights file).
    pub fingerprint: String,
    /// `LyricsTokenizer::hash`.
    pub tokenizer: String,
    /// How a lyric's hidden states become one vector, e.g. "cls" or "masked_mean".
    pub pooling: String,
    pub max_len: usize,
}

impl ModelKey {
    /// 32 hex digits naming the cache file.
    pub fn key(&self) -> String {
        let h = sha256_fields(&[
            FORMAT.as_bytes(),
            self.fingerprint.as_bytes(),
            self.tokenizer.as_bytes(),
            self.pooling.as_bytes(),
            &(self.max_len as u64).to_le_bytes(),
        ]);
        h[..32].to_string()
    }
    fn describe(&self) -> String {
        json!({"fingerprint": self.fingerprint, "tokenizer": self.tokenizer, "pooling": self.pooling, "max_len": self.max_len}).to_string()
    }
}

/// The key of a lyric: hex SHA-256 of its UTF-8 bytes.
pub fn text_key(text: &str) -> String {
    sha256_hex(text.as_bytes())
}

/// The vectors of one model; see the module doc.
#[derive(Debug)]
pub struct VectorCache {
    path: PathBuf,
    model_key: String,
    model: String,
    dim: usize,
    entries: HashMap<String, Vec<f32>>,
    dirty: bool,
}

impl VectorCache {
    /// Opens (or starts) the cache of `model` under `root`, for vectors of `dim` floats. An existing
    /// file is read whole; one written for another dim or key is an error naming it.
    pub fn open(root: &Path, model: &ModelKey, dim: usize) -> Result<VectorCache> {
        if dim == 0 {
            return Err(Error::Invalid("vector cache: dim must be positive".into()));
        }
        crate::data::create_dir(root)?;
        let model_key = model.key();
        let path = root.join(format!("{model_key}.safetensors"));
        let mut cache =
            VectorCache { path, model_key, model: model.describe(), dim, entries: HashMap::new(), dirty: false };
        if cache.path.is_file() {
            cache.load()?;
        }
        Ok(cache)
    }

    fn load(&mut self) -> Result<()> {
        let path = self.path.clone();
        let fix = "it is only a cache: delete it and the vectors will be recomputed";
        let bytes =
            std::fs::read(&path).map_err(|e| Error::file(&path, format!("cannot read the vector cache: {e}")))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| Error::file(&path, format!("not a valid vector cache ({e}); {fix}")))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let field = |k: &str| meta.get(k).map(String::as_str).unwrap_or("");
        if field("format") != FORMAT || field("model_key") != self.model_key {
            return Err(Error::file(
                &path,
                format!(
                    "not a {FORMAT} file for model key {} (format `{}`, key `{}`); {fix}",
                    self.model_key,
                    field("format"),
                    field("model_key")
                ),
            ));
        }
        if field("dim") != self.dim.to_string() {
            return Err(Error::file(&path, format!("holds vectors of dim {}, not {}; {fix}", field("dim"), self.dim)));
        }
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| Error::file(&path, format!("not a valid vector cache ({e}); {fix}")))?;
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 || view.shape() != [self.dim] {
                return Err(Error::file(
                    &path,
                    format!("tensor `{name}` is {:?} {:?}, not F32 [{}]; {fix}", view.dtype(), view.shape(), self.dim),
                ));
            }
            let v = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            self.entries.insert(name, v);
        }
        Ok(())
    }

    /// The vector of the lyric with this text key.
    pub fn get(&self, text_key: &str) -> Option<&[f32]> {
        self.entries.get(text_key).map(Vec::as_slice)
    }
    /// The vector of this lyric text.
    pub fn get_text(&self, text: &str) -> Option<&[f32]> {
        self.get(&text_key(text))
    }

    /// Stores a vector (in memory until `flush`). It must have `dim` finite values.
    pub fn put(&mut self, text_key: &str, vector: Vec<f32>) -> Result<()> {
        if vector.len() != self.dim {
            return Err(Error::shape(
                "VectorCache::put",
                format!("vector of {} values, the cache holds dim {}", vector.len(), self.dim),
            ));
        }
        if let Some(i) = vector.iter().position(|x| !x.is_finite()) {
            return Err(Error::NonFinite(format!("lyric vector {text_key}: value {i} is {}; not cached", vector[i])));
        }
        if text_key.len() != 64 || !text_key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Invalid(format!(
                "vector cache: `{text_key}` is not a text key (64 hex digits from text_key)"
            )));
        }
        self.entries.insert(text_key.to_string(), vector);
        self.dirty = true;
        Ok(())
    }
    /// `put` under the key of this lyric text.
    pub fn put_text(&mut self, text: &str, vector: Vec<f32>) -> Result<()> {
        self.put(&text_key(text), vector)
    }

    /// Writes every vector to the cache file if anything changed since the last flush.
    pub fn flush(&mut self) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let bytes = self.encode();
        crate::io::write_atomic(&self.path, &bytes)?;
        self.dirty = false;
        Ok(())
    }

    /// The safetensors bytes, written here rather than by `safetensors::serialize` so that the same
    /// vectors always give the same bytes (the library writes metadata in hash-map order): header
    /// keys sorted, tensors in key order, header padded with spaces to a multiple of 8.
    fn encode(&self) -> Vec<u8> {
        let sorted: BTreeMap<&String, &Vec<f32>> = self.entries.iter().collect();
        let mut header = serde_json::Map::new();
        let meta =
            json!({"dim": self.dim.to_string(), "format": FORMAT, "model": self.model, "model_key": self.model_key});
        header.insert("__metadata__".into(), meta);
        let size = self.dim * 4;
        for (i, k) in sorted.keys().enumerate() {
            header.insert(
                (*k).clone(),
                json!({"dtype": "F32", "shape": [self.dim], "data_offsets": [i * size, (i + 1) * size]}),
            );
        }
        let mut h = serde_json::Value::Object(header).to_string().into_bytes();
        h.resize(h.len().div_ceil(8) * 8, b' ');
        let mut out = Vec::with_capacity(8 + h.len() + sorted.len() * size);
        out.extend_from_slice(&(h.len() as u64).to_le_bytes());
        out.extend_from_slice(&h);
        for v in sorted.values() {
            out.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        }
        out
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// The cache file (it exists once something was flushed).
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Whether vectors were put since the last flush.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }
}
