//! Hugging Face model folders, loaded as they are.
//!
//! A folder holds `config.json` (BERT, DistilBERT or RoBERTa: [`config`]), the weights as
//! `model.safetensors` (or shards listed in `model.safetensors.index.json`; bare, or with the
//! `bert.` / `roberta.` / `distilbert.` prefix of a task model: [`keys`]) and the tokenizer
//! (`tokenizer.json`, `vocab.txt`, or `vocab.json` + `merges.txt`). A `pytorch_model.bin` alone is
//! refused with the command that converts it: it is a pickle, and moodgrad never unpickles.
//! [`resolve_model`] also takes a hub name (`org/name[@revision]`), found in the hub cache or
//! downloaded into it ([`resolve`], [`download`], [`hub`]).

pub mod config;
pub mod download;
pub mod hub;
pub mod keys;
pub mod resolve;

pub use config::{Activation, EncoderConfig, Family};
pub use hub::Hub;
pub use keys::{
    CheckpointPlan, CheckpointTensor, KeyMap, TensorSpec, encoder_tensors, family_name, map_checkpoint_key,
    plan_checkpoint,
};
pub use resolve::{CacheRoots, HubName, Need, resolve_model_path};

use crate::error::{Error, Result};
use crate::text::hash::{sha256_fields, sha256_file};
use crate::text::tokenize::{LyricsTokenizer, list_dir};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The tokenizer files a folder provides, in the order they are preferred.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenizerFiles {
    TokenizerJson(PathBuf),
    VocabTxt(PathBuf),
    BpeVocab { vocab: PathBuf, merges: PathBuf },
}

/// A checked Hugging Face model folder.
#[derive(Clone, Debug)]
pub struct HfModelDir {
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub config: EncoderConfig,
    /// `model.safetensors`, or the shards of `model.safetensors.index.json` in name order.
    pub weights: Vec<PathBuf>,
    pub tokenizer_files: TokenizerFiles,
}

/// A folder, or a hub name found in the hub cache or downloaded into it (see [`resolve`]).
pub fn resolve_model(dir_or_name: &str) -> Result<HfModelDir> {
    HfModelDir::open(&resolve_model_path(dir_or_name, Need::Model, &CacheRoots::from_env(), &Hub::from_env())?)
}

impl HfModelDir {
    /// Checks that `dir` has a supported config, safetensors weights and tokenizer files.
    pub fn open(dir: &Path) -> Result<HfModelDir> {
        if !dir.is_dir() {
            return Err(Error::file(
                dir,
                "not a folder (a Hugging Face model folder holds config.json, model.safetensors, tokenizer files)",
            ));
        }
        let config_path = dir.join("config.json");
        if !config_path.is_file() {
            return Err(Error::file(
                dir,
                format!("no config.json: not a Hugging Face model folder (it holds: {})", list_dir(dir)),
            ));
        }
        let config = EncoderConfig::from_file(&config_path)?;
        let weights = find_weights(dir)?;
        let tokenizer_files = find_tokenizer(dir)?;
        Ok(HfModelDir { dir: dir.to_path_buf(), config_path, config, weights, tokenizer_files })
    }

    /// The folder's tokenizer; an error if its vocabulary exceeds the model's `vocab_size` (its ids
    /// would index past the embedding table).
    pub fn tokenizer(&self) -> Result<LyricsTokenizer> {
        let tok = LyricsTokenizer::from_dir(&self.dir)?;
        if tok.vocab_size() > self.config.vocab_size {
            return Err(Error::file(
                &self.dir,
                format!(
                    "the tokenizer has {} tokens but config.json's vocab_size is {}: tokenizer and model do not belong together",
                    tok.vocab_size(),
                    self.config.vocab_size
                ),
            ));
        }
        Ok(tok)
    }

    /// Every tensor of the weight files (names, dtypes, shapes), read from their headers only.
    pub fn checkpoint_tensors(&self) -> Result<Vec<CheckpointTensor>> {
        let mut all = Vec::new();
        for w in &self.weights {
            all.extend(read_safetensors_header(w)?);
        }
        Ok(all)
    }

    /// Which checkpoint key fills which encoder tensor (see [`keys::plan_checkpoint`]).
    pub fn plan(&self) -> Result<CheckpointPlan> {
        let source = self.weights.first().map_or_else(|| self.dir.display().to_string(), |w| w.display().to_string());
        plan_checkpoint(&self.config, &self.checkpoint_tensors()?, &source)
    }

    /// Hex SHA-256 of the weight files' bytes and config.json's bytes: what identifies the model in
    /// the vector cache's key. Reads every weight byte (a 440 MB BERT takes about a second).
    pub fn fingerprint(&self) -> Result<String> {
        let mut fields: Vec<Vec<u8>> = vec![b"moodgrad-hf-model-v1".to_vec()];
        for w in &self.weights {
            fields.push(sha256_file(w)?.into_bytes());
        }
        let config = std::fs::read(&self.config_path)
            .map_err(|e| Error::file(&self.config_path, format!("cannot read: {e}")))?;
        fields.push(config);
        let refs: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
        Ok(sha256_fields(&refs))
    }
}

fn find_weights(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let mut paths = Vec::new();
        for s in shard_names(&index)? {
            let p = dir.join(&s);
            if !p.is_file() {
                return Err(Error::file(
                    &index,
                    format!("lists shard `{s}`, which is not a file in {}", dir.display()),
                ));
            }
            paths.push(p);
        }
        return Ok(paths);
    }
    for bin in ["pytorch_model.bin", "pytorch_model.bin.index.json"] {
        if dir.join(bin).is_file() {
            let d = dir.display();
            return Err(Error::file(
                dir.join(bin),
                format!(
                    "PyTorch pickle weights: moodgrad reads safetensors only and never unpickles (a pickle can run code). \
                     Convert it to safetensors once, where PyTorch is installed and you trust the file:\n  \
                     python -c \"import torch; from safetensors.torch import save_file; sd = torch.load('{d}/pytorch_model.bin', map_location='cpu', weights_only=True); save_file({{k: v.contiguous().clone() for k, v in sd.items()}}, '{d}/model.safetensors', metadata={{'format': 'pt'}})\"\n\
                     (for a sharded pytorch_model.bin.index.json: `AutoModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)`)"
                ),
            ));
        }
    }
    for other in ["tf_model.h5", "flax_model.msgpack", "model.onnx", "rust_model.ot"] {
        if dir.join(other).is_file() {
            return Err(Error::file(
                dir.join(other),
                "weights in a format moodgrad does not read; save the model with `save_pretrained(dir, safe_serialization=True)` in transformers to get model.safetensors",
            ));
        }
    }
    Err(Error::file(dir, format!("no model.safetensors (the folder holds: {})", list_dir(dir))))
}

/// The shard file names a `model.safetensors.index.json` lists, sorted, each once; names that are
/// not a plain file name (a path, `..`) are an error, as a download must stay in its folder.
pub(crate) fn shard_names(index: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(index).map_err(|e| Error::file(index, format!("cannot read: {e}")))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| Error::file(index, format!("not valid JSON: {e}")))?;
    let map =
        v.get("weight_map").and_then(Value::as_object).ok_or_else(|| Error::file(index, "no `weight_map` object"))?;
    let mut shards: Vec<String> = map.values().filter_map(Value::as_str).map(str::to_string).collect();
    shards.sort();
    shards.dedup();
    if let Some(bad) = shards.iter().find(|s| s.is_empty() || *s == "." || *s == ".." || s.contains(['/', '\\'])) {
        return Err(Error::file(index, format!("lists shard `{bad}`, which is not a plain file name")));
    }
    if shards.is_empty() {
        return Err(Error::file(index, "lists no shards"));
    }
    Ok(shards)
}

fn find_tokenizer(dir: &Path) -> Result<TokenizerFiles> {
    let json = dir.join("tokenizer.json");
    if json.is_file() {
        return Ok(TokenizerFiles::TokenizerJson(json));
    }
    let vocab_txt = dir.join("vocab.txt");
    if vocab_txt.is_file() {
        return Ok(TokenizerFiles::VocabTxt(vocab_txt));
    }
    let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
    if vocab.is_file() && merges.is_file() {
        return Ok(TokenizerFiles::BpeVocab { vocab, merges });
    }
    Err(Error::file(
        dir,
        format!(
            "no tokenizer files: expected tokenizer.json, vocab.txt or vocab.json + merges.txt (the folder holds: {})",
            list_dir(dir)
        ),
    ))
}

/// The tensor list of a safetensors file, from its JSON header alone (the data is not read).
pub fn read_safetensors_header(path: &Path) -> Result<Vec<CheckpointTensor>> {
    let bad = |m: String| Error::file(path, format!("not a valid safetensors file: {m}"));
    let mut f = std::fs::File::open(path).map_err(|e| Error::file(path, format!("cannot open: {e}")))?;
    let file_len = f.metadata().map_err(|e| Error::file(path, format!("cannot read: {e}")))?.len();
    let mut n = [0u8; 8];
    f.read_exact(&mut n).map_err(|_| bad("shorter than its 8-byte header length".into()))?;
    let n = u64::from_le_bytes(n);
    if n > 100 << 20 || n + 8 > file_len {
        return Err(bad(format!("header length {n} does not fit the file ({file_len} bytes)")));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(|e| bad(format!("cannot read the header: {e}")))?;
    let v: Value = serde_json::from_slice(&header).map_err(|e| bad(format!("header is not JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| bad("header is not a JSON object".into()))?;
    let data_len = file_len - 8 - n;
    let mut out = Vec::new();
    for (key, t) in obj {
        if key == "__metadata__" {
            continue;
        }
        let dtype = t.get("dtype").and_then(Value::as_str).ok_or_else(|| bad(format!("`{key}` has no dtype")))?;
        let shape: Vec<usize> = t
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| bad(format!("`{key}` has no shape")))?
            .iter()
            .map(|d| d.as_u64().map(|d| d as usize))
            .collect::<Option<_>>()
            .ok_or_else(|| bad(format!("`{key}` has a bad shape")))?;
        let offsets = t
            .get("data_offsets")
            .and_then(Value::as_array)
            .ok_or_else(|| bad(format!("`{key}` has no data_offsets")))?;
        let end = offsets.get(1).and_then(Value::as_u64).ok_or_else(|| bad(format!("`{key}` has bad data_offsets")))?;
        if end > data_len {
            return Err(bad(format!("`{key}` ends at byte {end} of a {data_len}-byte data section (truncated file?)")));
        }
        out.push(CheckpointTensor { key: key.clone(), dtype: dtype.to_string(), shape });
    }
    Ok(out)
}
