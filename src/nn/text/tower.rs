//! The lyrics tower as the training loop uses it: an encoder (a Hugging Face folder, or the small
//! built-in BERT with a vocabulary learned from the training lyrics), its tokenizer, the pooling,
//! and how it trains (frozen, top-K layers, or all of it).
//!
//! Modes ([`TowerMode`]):
//! - `Frozen { dropout: false }` (the default frozen): every encoder weight frozen and dropout off,
//!   so a lyric's vector never changes: [`LyricsTower::frozen_vectors`] encodes each lyric once (in
//!   eval mode) into the on-disk `VectorCache`, keyed by model, tokenizer, pooling, max_len and text.
//! - `Frozen { dropout: true }`: the seed's notebooks froze BERT but left it in train mode, so its
//!   dropout ran; `forward(…, train = true, …)` does the same (no cache: vectors differ per step).
//! - `FineTuneTop(k)`: the top k layers (and the pooler when pooling with it) train, the rest is
//!   frozen (`set_trainable`), so the backward stops below layer L − k.
//! - `Full`: the whole encoder trains (MODEL_5).

use super::builtin::{BuiltinConfig, config_json, save_hf_dir};
use super::encoder::TextEncoder;
use super::inputs::TokenBatch;
use super::load::{LoadSummary, load_hf_weights};
use super::pooling::{Pooling, pool};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::params::ParamStore;
use crate::rng::Rng;
use crate::tape::{Tape, Var};
use crate::text::hash::sha256_fields;
use crate::text::hf::{EncoderConfig, HfModelDir, resolve_model};
use crate::text::tokenize::{EncodedBatch, LyricsTokenizer};
use crate::text::vector_cache::{ModelKey, VectorCache};
use crate::text::vocab::train_wordpiece;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// How the tower trains; see the module doc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TowerMode {
    Frozen { dropout: bool },
    FineTuneTop(usize),
    Full,
}

impl std::str::FromStr for TowerMode {
    type Err = Error;
    /// `frozen`, `frozen-dropout`, `top:K`, `full`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "frozen" => Ok(TowerMode::Frozen { dropout: false }),
            "frozen-dropout" => Ok(TowerMode::Frozen { dropout: true }),
            "full" => Ok(TowerMode::Full),
            _ => s.strip_prefix("top:").and_then(|k| k.parse().ok()).map(TowerMode::FineTuneTop).ok_or_else(|| {
                Error::Invalid(format!("lyrics tower mode `{s}`: use frozen, frozen-dropout, top:K or full"))
            }),
        }
    }
}

/// Where the encoder came from.
#[derive(Clone, Debug)]
pub enum TowerSource {
    Hf(Box<HfModelDir>),
    /// The built-in encoder (config and vocabulary made here, or read back from a saved run).
    Builtin,
}

/// See the module doc.
pub struct LyricsTower {
    pub encoder: TextEncoder,
    pub tokenizer: LyricsTokenizer,
    pub pooling: Pooling,
    /// Tokens per lyric, special tokens included (the seed: 512).
    pub max_len: usize,
    pub source: TowerSource,
    mode: TowerMode,
    fingerprint: OnceLock<String>,
}

impl LyricsTower {
    /// A Hugging Face folder, or a hub name from the hub cache (downloaded first if missing), loaded
    /// into `store` under `prefix`. Starts frozen; see [`set_mode`](Self::set_mode).
    pub fn from_hf<B: Backend>(
        store: &mut ParamStore<B>,
        prefix: &str,
        model: &str,
        pooling: Pooling,
        max_len: usize,
    ) -> Result<(LyricsTower, LoadSummary)> {
        let dir = resolve_model(model)?;
        let tokenizer = dir.tokenizer()?;
        check_max_len(&dir.config, max_len, &dir.config_path)?;
        if pooling == Pooling::Pooler && !dir.config.has_pooler {
            return Err(Error::file(
                &dir.config_path,
                format!("--pool pooler: a {} model has no pooler", dir.config.family.model_type()),
            ));
        }
        let encoder = TextEncoder::new(store, prefix, &dir.config, &mut Rng::new(0))?;
        let summary = load_hf_weights(store, &encoder, &dir)?;
        if pooling == Pooling::Pooler
            && let Some(m) = summary.missing.iter().find(|m| m.contains("pooler"))
        {
            return Err(Error::file(
                &dir.dir,
                format!(
                    "--pool pooler: the checkpoint has no pooler (`{m}` is missing: a masked-LM checkpoint?); use cls or mean"
                ),
            ));
        }
        let mut t = LyricsTower {
            encoder,
            tokenizer,
            pooling,
            max_len,
            source: TowerSource::Hf(Box::new(dir)),
            mode: TowerMode::Full,
            fingerprint: OnceLock::new(),
        };
        t.set_mode(store, TowerMode::Frozen { dropout: false })?;
        Ok((t, summary))
    }

    /// The built-in encoder: a WordPiece vocabulary of at most `cfg.vocab_size` learned from
    /// `lyrics` (deterministically), a BERT of `cfg`'s sizes initialised from `seed` as
    /// transformers initialises one. Starts in `Full` mode (it is trained with the model).
    pub fn builtin<B: Backend, S: AsRef<str>>(
        store: &mut ParamStore<B>,
        prefix: &str,
        lyrics: &[S],
        cfg: &BuiltinConfig,
        pooling: Pooling,
        max_len: usize,
        seed: u64,
    ) -> Result<LyricsTower> {
        let tokenizer = train_wordpiece(lyrics, cfg.vocab_size)?;
        let config = cfg.encoder_config(&tokenizer)?;
        check_max_len(&config, max_len, Path::new("the built-in encoder"))?;
        let encoder = TextEncoder::new(store, prefix, &config, &mut Rng::new(seed))?;
        Ok(LyricsTower::builtin_parts(encoder, tokenizer, pooling, max_len))
    }

    /// A built-in tower from its parts (it trains whole).
    fn builtin_parts(
        encoder: TextEncoder,
        tokenizer: LyricsTokenizer,
        pooling: Pooling,
        max_len: usize,
    ) -> LyricsTower {
        LyricsTower {
            encoder,
            tokenizer,
            pooling,
            max_len,
            source: TowerSource::Builtin,
            mode: TowerMode::Full,
            fingerprint: OnceLock::new(),
        }
    }

    /// A built-in tower saved with [`save_files`](Self::save_files) (config.json, tokenizer.json):
    /// the encoder is created in `store` at its initial values, for the run's checkpoint to fill.
    pub fn builtin_from_files<B: Backend>(
        store: &mut ParamStore<B>,
        prefix: &str,
        dir: &Path,
        pooling: Pooling,
        max_len: usize,
    ) -> Result<LyricsTower> {
        let config = EncoderConfig::from_file(&dir.join("config.json"))?;
        let tokenizer = LyricsTokenizer::from_tokenizer_json(&dir.join("tokenizer.json"))?;
        check_max_len(&config, max_len, &dir.join("config.json"))?;
        let encoder = TextEncoder::new(store, prefix, &config, &mut Rng::new(0))?;
        Ok(LyricsTower::builtin_parts(encoder, tokenizer, pooling, max_len))
    }

    /// config.json and tokenizer.json into `dir` (beside the run's weights).
    pub fn save_files(&self, dir: &Path) -> Result<()> {
        crate::data::create_dir(dir)?;
        let cfg = serde_json::to_vec_pretty(&config_json(&self.encoder.config))
            .map_err(|e| Error::Invalid(format!("config.json: {e}")))?;
        crate::io::write_atomic(&dir.join("config.json"), &cfg)?;
        self.tokenizer.save(&dir.join("tokenizer.json"))
    }

    /// A complete Hugging Face folder of the tower's current weights (`save_hf_dir`): what
    /// `moodgrad encode --model DIR` and transformers read.
    pub fn save<B: Backend>(&self, store: &ParamStore<B>, dir: &Path) -> Result<()> {
        save_hf_dir(store, &self.encoder, &self.tokenizer, dir)
    }

    pub fn hidden_size(&self) -> usize {
        self.encoder.hidden_size()
    }
    pub fn mode(&self) -> TowerMode {
        self.mode
    }

    /// Freezes and unfreezes the encoder's parameters for `mode` (`ParamStore::set_trainable`).
    /// The pooler trains only when the pooling uses it.
    pub fn set_mode<B: Backend>(&mut self, store: &mut ParamStore<B>, mode: TowerMode) -> Result<()> {
        let layers = self.encoder.layers.len();
        if let TowerMode::FineTuneTop(k) = mode
            && k > layers
        {
            return Err(Error::Invalid(format!("fine-tune the top {k} layers: the encoder has only {layers}")));
        }
        let first_trained = match mode {
            TowerMode::Frozen { .. } => layers + 1,
            TowerMode::FineTuneTop(k) => layers - k,
            TowerMode::Full => 0,
        };
        let embed_on = mode == TowerMode::Full;
        for id in self.encoder.embedding_params() {
            store.set_trainable(id, embed_on);
        }
        for (i, l) in self.encoder.layers.iter().enumerate() {
            for id in l.params() {
                store.set_trainable(id, i >= first_trained);
            }
        }
        if let Some((w, b)) = self.encoder.pooler {
            let on = self.pooling == Pooling::Pooler && !matches!(mode, TowerMode::Frozen { .. });
            store.set_trainable(w, on);
            store.set_trainable(b, on);
        }
        self.mode = mode;
        Ok(())
    }

    /// Whether lyric vectors are fixed (frozen, dropout off), so the vector cache applies.
    pub fn uses_vector_cache(&self) -> bool {
        self.mode == TowerMode::Frozen { dropout: false }
    }

    /// Whether a forward with this `train` flag runs dropout.
    pub fn dropout_active(&self, train: bool) -> bool {
        train && self.mode != TowerMode::Frozen { dropout: false }
    }

    /// Pooled vectors [batch, hidden] of a token batch (trimmed to its longest lyric first: the
    /// same result but for summation order, at the cost of the real tokens). `train` turns dropout on (see the
    /// modes); its masks come from `dropout_seed`.
    pub fn forward<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        store: &ParamStore<B>,
        batch: &TokenBatch,
        train: bool,
        dropout_seed: u64,
    ) -> Result<Var<B>> {
        let batch = batch.trimmed();
        let hidden = self.encoder.forward(tape, store, &batch, self.dropout_active(train), dropout_seed)?;
        pool(tape, store, &self.encoder, &hidden, &batch, self.pooling)
    }

    /// [`forward`](Self::forward) from int64 arrays [batch, len] (what `.pt` files and the
    /// tokenizer hold); `type_ids` None means all 0.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_ids<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        store: &ParamStore<B>,
        shape: [usize; 2],
        ids: &[i64],
        mask: &[i64],
        type_ids: Option<&[i64]>,
        train: bool,
        dropout_seed: u64,
    ) -> Result<Var<B>> {
        let b = TokenBatch::from_i64(shape[0], shape[1], ids, mask, type_ids)?;
        self.forward(tape, store, &b, train, dropout_seed)
    }

    /// Tokenizes lyrics at `max_len` (transformers' `padding='max_length', truncation=True`).
    pub fn tokenize<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<TokenBatch> {
        let enc = self.tokenizer.encode_batch(texts, self.max_len)?;
        TokenBatch::from_encoded(&EncodedBatch::stack(&enc)?)
    }

    /// Tokenizes and encodes lyrics in eval mode on a no-grad tape, `batch_size` at a time (lyrics
    /// of similar length batched together, so little padding is computed), calling `progress` with
    /// the number done after each batch. Vectors come back in input order.
    pub fn encode<B: Backend, S: AsRef<str> + Sync>(
        &self,
        store: &ParamStore<B>,
        texts: &[S],
        batch_size: usize,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
        let all = self.tokenize(texts)?;
        let lengths = all.lengths();
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
        let mut out = vec![Vec::new(); texts.len()];
        let be = store.backend.clone();
        let mut done = 0;
        for chunk in order.chunks(batch_size.max(1)) {
            let rows: Vec<TokenBatch> = chunk.iter().map(|&i| all.rows(i, i + 1)).collect();
            let batch = concat_rows(&rows)?;
            let mut tape = Tape::no_grad(be.clone());
            let v = self.forward(&mut tape, store, &batch, false, 0)?;
            let h = self.hidden_size();
            let flat = v.value().to_f64(&be)?;
            for (r, &i) in chunk.iter().enumerate() {
                out[i] = flat[r * h..(r + 1) * h].iter().map(|&x| x as f32).collect();
            }
            done += chunk.len();
            progress(done);
        }
        Ok(out)
    }

    /// What the cached vectors depend on: the model (its files, or for the built-in encoder its
    /// current weights), the tokenizer, the pooling and max_len.
    pub fn model_key<B: Backend>(&self, store: &ParamStore<B>) -> Result<ModelKey> {
        let fingerprint = match self.fingerprint.get() {
            Some(f) => f.clone(),
            None => {
                let f = match &self.source {
                    TowerSource::Hf(d) => d.fingerprint()?,
                    TowerSource::Builtin => self.weights_hash(store)?,
                };
                // The built-in encoder's weights change as it trains: never cache its hash.
                if matches!(self.source, TowerSource::Hf(_)) {
                    let _ = self.fingerprint.set(f.clone());
                }
                f
            }
        };
        Ok(ModelKey {
            fingerprint,
            tokenizer: self.tokenizer.hash().to_string(),
            pooling: self.pooling.name().to_string(),
            max_len: self.max_len,
        })
    }

    fn weights_hash<B: Backend>(&self, store: &ParamStore<B>) -> Result<String> {
        let mut fields: Vec<Vec<u8>> = vec![b"moodgrad-encoder-weights-v1".to_vec()];
        for id in self.encoder.params() {
            fields.push(store.name(id).as_bytes().to_vec());
            let v = store.value(id).to_f64(&store.backend)?;
            fields.push(v.iter().flat_map(|&x| (x as f32).to_le_bytes()).collect());
        }
        let refs: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
        Ok(sha256_fields(&refs))
    }

    /// One vector per lyric for a frozen tower (dropout off): read from the vector cache under
    /// `cache_root`, the missing ones encoded (`batch_size` at a time) and added to it.
    pub fn frozen_vectors<B: Backend, S: AsRef<str> + Sync>(
        &self,
        store: &ParamStore<B>,
        texts: &[S],
        cache_root: &Path,
        batch_size: usize,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
        if !self.uses_vector_cache() {
            return Err(Error::Invalid(format!(
                "lyrics vectors are cached only for a frozen tower with dropout off (mode {:?})",
                self.mode
            )));
        }
        let key = self.model_key(store)?;
        let mut cache = VectorCache::open(cache_root, &key, self.hidden_size())?;
        let missing: Vec<usize> = (0..texts.len()).filter(|&i| cache.get_text(texts[i].as_ref()).is_none()).collect();
        if !missing.is_empty() {
            let todo: Vec<&str> = missing.iter().map(|&i| texts[i].as_ref()).collect();
            let vecs = self.encode(store, &todo, batch_size, progress)?;
            for (t, v) in todo.iter().zip(vecs) {
                cache.put_text(t, v)?;
            }
            cache.flush()?;
        }
        texts
            .iter()
            .map(|t| {
                cache
                    .get_text(t.as_ref())
                    .map(<[f32]>::to_vec)
                    .ok_or_else(|| Error::Invalid("vector cache: a vector just added is missing".into()))
            })
            .collect()
    }

    /// The folder of a Hugging Face tower (None for the built-in one).
    pub fn model_dir(&self) -> Option<PathBuf> {
        match &self.source {
            TowerSource::Hf(d) => Some(d.dir.clone()),
            TowerSource::Builtin => None,
        }
    }
}

/// Rows of several batches of one length stacked.
fn concat_rows(parts: &[TokenBatch]) -> Result<TokenBatch> {
    let len = parts.first().map_or(0, |p| p.len);
    let (mut ids, mut mask, mut types) = (Vec::new(), Vec::new(), Vec::new());
    let mut batch = 0;
    for p in parts {
        if p.len != len {
            return Err(Error::shape("concat_rows", format!("rows of {} and {len} tokens", p.len)));
        }
        ids.extend_from_slice(&p.ids);
        mask.extend_from_slice(&p.mask);
        types.extend_from_slice(&p.type_ids);
        batch += p.batch;
    }
    TokenBatch::new(batch, len, ids, mask, types)
}

fn check_max_len(config: &EncoderConfig, max_len: usize, what: &Path) -> Result<()> {
    if max_len < 2 || max_len > config.max_len() {
        return Err(Error::file(
            what,
            format!(
                "--max-len {max_len}: the model takes 2 to {} tokens (max_position_embeddings {})",
                config.max_len(),
                config.max_positions
            ),
        ));
    }
    Ok(())
}
