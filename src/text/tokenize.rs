//! Lyrics → token ids, exactly as transformers'
//! `tokenizer(text, padding='max_length', truncation=True, max_length=max_len)` gives them.
//!
//! A [`LyricsTokenizer`] wraps a Hugging Face `tokenizers` tokenizer with its own truncation and
//! padding removed: whatever a `tokenizer.json` bakes in (all-MiniLM-L6-v2's says 128) never
//! applies. Each `encode(text, max_len)` truncates on the right to `max_len` (the special tokens
//! included), adds [CLS]/[SEP] (or `<s>`/`</s>` for RoBERTa) through the file's post-processor, and
//! pads on the right with the pad id up to exactly `max_len`, mask 0 and token type 0 there.
//!
//! Huge lyrics: only the first `max_len` tokens are kept, so tokenizing a 1 MB text whole would be
//! wasted work. When the tokenizer splits words at whitespace (BERT's and byte-level BPE's
//! pre-tokenizers do) and normalizes character by character, `encode` tokenizes a prefix of the text
//! that ends just before a whitespace run (so its last word is complete), and uses it if it already
//! fills `max_len`; otherwise it retries with a 4× longer prefix, up to the whole text. Words before
//! such a cut are tokenized exactly as in the whole text, so the first `max_len` ids cannot change
//! (`tests/text_tokenize.rs` checks this against whole-text tokenization on random texts).
//! A tokenizer without that guarantee (custom regex splits, SentencePiece-style normalizers) always
//! tokenizes the whole text.

use crate::error::{Error, Result};
use crate::text::hash::sha256_fields;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokenizers::models::bpe::BPE;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{
    AddedToken, NormalizerWrapper, PaddingDirection, PaddingParams, PaddingStrategy, PreTokenizerWrapper, Tokenizer,
    TruncationDirection, TruncationParams, TruncationStrategy,
};

/// One encoded lyric: three int64 rows of exactly `max_len` entries (torch's dtype for them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoding {
    pub input_ids: Vec<i64>,
    pub token_type_ids: Vec<i64>,
    pub attention_mask: Vec<i64>,
}

impl Encoding {
    /// The padded length (`max_len`).
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }
    /// Real tokens, special tokens included (the ones with mask 1).
    pub fn n_tokens(&self) -> usize {
        self.attention_mask.iter().filter(|&&m| m != 0).count()
    }
}

/// A batch of encodings as row-major `[batch, max_len]` arrays, what an encoder consumes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedBatch {
    pub batch: usize,
    pub max_len: usize,
    pub input_ids: Vec<i64>,
    pub token_type_ids: Vec<i64>,
    pub attention_mask: Vec<i64>,
}

impl EncodedBatch {
    /// Stacks encodings of one length; an error names the first one of another length.
    pub fn stack(encodings: &[Encoding]) -> Result<EncodedBatch> {
        let max_len = encodings.first().map_or(0, Encoding::len);
        let mut b = EncodedBatch {
            batch: encodings.len(),
            max_len,
            input_ids: Vec::with_capacity(encodings.len() * max_len),
            token_type_ids: Vec::with_capacity(encodings.len() * max_len),
            attention_mask: Vec::with_capacity(encodings.len() * max_len),
        };
        for (i, e) in encodings.iter().enumerate() {
            if e.len() != max_len {
                return Err(Error::shape(
                    "EncodedBatch::stack",
                    format!("encoding {i} has {} tokens, encoding 0 has {max_len}", e.len()),
                ));
            }
            b.input_ids.extend_from_slice(&e.input_ids);
            b.token_type_ids.extend_from_slice(&e.token_type_ids);
            b.attention_mask.extend_from_slice(&e.attention_mask);
        }
        Ok(b)
    }
}

/// How transformers' `BertTokenizer(vocab=...)` treats text (its defaults, also those of
/// bert-base-uncased's `tokenizer_config.json`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BertVocabOptions {
    pub lowercase: bool,
    /// `None`: strip accents exactly when lowercasing (BERT's rule).
    pub strip_accents: Option<bool>,
    pub chinese_chars: bool,
    pub unk: String,
    pub cls: String,
    pub sep: String,
    pub pad: String,
    pub mask: String,
}

impl Default for BertVocabOptions {
    fn default() -> Self {
        BertVocabOptions {
            lowercase: true,
            strip_accents: None,
            chinese_chars: true,
            unk: "[UNK]".into(),
            cls: "[CLS]".into(),
            sep: "[SEP]".into(),
            pad: "[PAD]".into(),
            mask: "[MASK]".into(),
        }
    }
}

/// How transformers' `RobertaTokenizer(vocab=..., merges=...)` builds a byte-level BPE tokenizer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BpeVocabOptions {
    pub add_prefix_space: bool,
    pub bos: String,
    pub eos: String,
    pub unk: String,
    pub pad: String,
    pub mask: String,
}

impl Default for BpeVocabOptions {
    fn default() -> Self {
        BpeVocabOptions {
            add_prefix_space: false,
            bos: "<s>".into(),
            eos: "</s>".into(),
            unk: "<unk>".into(),
            pad: "<pad>".into(),
            mask: "<mask>".into(),
        }
    }
}

/// First prefix tried for a long text: this many bytes per wanted token (English lyrics average
/// 4-5 bytes per WordPiece token; 8 makes a retry rare).
const PREFIX_BYTES_PER_TOKEN: usize = 8;

/// A tokenizer for lyrics; see the module doc for what `encode` guarantees.
pub struct LyricsTokenizer {
    base: Tokenizer,
    pad_id: u32,
    pad_token: String,
    n_special: usize,
    source: String,
    hash: String,
    prefix_cut: bool,
    prefix_bytes_per_token: usize,
    configured: RwLock<HashMap<usize, Arc<Tokenizer>>>,
    /// Bytes of text handed to the tokenizer so far: what the prefix cut saves, counted rather
    /// than timed.
    bytes_tokenized: AtomicU64,
}

impl std::fmt::Debug for LyricsTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LyricsTokenizer")
            .field("source", &self.source)
            .field("vocab_size", &self.vocab_size())
            .field("pad_id", &self.pad_id)
            .field("n_special", &self.n_special)
            .finish()
    }
}

impl LyricsTokenizer {
    /// The tokenizer files of a Hugging Face folder: `tokenizer.json` if present, else `vocab.txt`
    /// (BERT), else `vocab.json` + `merges.txt` (byte-level BPE, RoBERTa). `tokenizer_config.json`,
    /// when present, gives the pad token and (for vocab.txt) `do_lower_case`, `strip_accents`,
    /// `tokenize_chinese_chars`, as transformers reads them.
    pub fn from_dir(dir: &Path) -> Result<LyricsTokenizer> {
        let config = read_tokenizer_config(dir)?;
        let pad = config.as_ref().and_then(|c| token_name(c, "pad_token"));
        let json = dir.join("tokenizer.json");
        if json.is_file() {
            return Self::from_tokenizer_json_with_pad(&json, pad.as_deref());
        }
        let vocab_txt = dir.join("vocab.txt");
        if vocab_txt.is_file() {
            let mut o = BertVocabOptions::default();
            if let Some(c) = &config {
                if let Some(b) = c.get("do_lower_case").and_then(Value::as_bool) {
                    o.lowercase = b;
                }
                o.strip_accents = c.get("strip_accents").and_then(Value::as_bool);
                if let Some(b) = c.get("tokenize_chinese_chars").and_then(Value::as_bool) {
                    o.chinese_chars = b;
                }
                for (key, slot) in [
                    ("unk_token", &mut o.unk),
                    ("cls_token", &mut o.cls),
                    ("sep_token", &mut o.sep),
                    ("pad_token", &mut o.pad),
                    ("mask_token", &mut o.mask),
                ] {
                    if let Some(name) = token_name(c, key) {
                        *slot = name;
                    }
                }
            }
            return Self::from_vocab_txt(&vocab_txt, &o);
        }
        let (vocab_json, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
        if vocab_json.is_file() && merges.is_file() {
            let mut o = BpeVocabOptions::default();
            if let Some(c) = &config {
                if let Some(b) = c.get("add_prefix_space").and_then(Value::as_bool) {
                    o.add_prefix_space = b;
                }
                for (key, slot) in [
                    ("bos_token", &mut o.bos),
                    ("eos_token", &mut o.eos),
                    ("unk_token", &mut o.unk),
                    ("pad_token", &mut o.pad),
                    ("mask_token", &mut o.mask),
                ] {
                    if let Some(name) = token_name(c, key) {
                        *slot = name;
                    }
                }
            }
            return Self::from_bpe_files(&vocab_json, &merges, &o);
        }
        Err(Error::file(
            dir,
            format!(
                "no tokenizer here: expected tokenizer.json, vocab.txt (BERT) or vocab.json + merges.txt (RoBERTa); the folder holds: {}",
                list_dir(dir)
            ),
        ))
    }

    /// A Hugging Face `tokenizer.json`. The pad token is the file's padding token if it bakes one in,
    /// else `[PAD]` or `<pad>`.
    pub fn from_tokenizer_json(path: &Path) -> Result<LyricsTokenizer> {
        Self::from_tokenizer_json_with_pad(path, None)
    }

    /// As [`from_tokenizer_json`](Self::from_tokenizer_json), with the pad token named (what
    /// `tokenizer_config.json` says; it wins over the file's own padding settings, as in transformers).
    pub fn from_tokenizer_json_with_pad(path: &Path, pad_token: Option<&str>) -> Result<LyricsTokenizer> {
        let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
        let tok = Tokenizer::from_bytes(&bytes)
            .map_err(|e| Error::file(path, format!("not a Hugging Face tokenizer.json ({e})")))?;
        let baked_pad = tok.get_padding().map(|p| p.pad_token.clone());
        let pad = pad_token.map(str::to_string).or(baked_pad);
        Self::from_tokenizer(tok, pad.as_deref(), &path.display().to_string())
    }

    /// A BERT `vocab.txt` alone, built as transformers' `BertTokenizer(vocab=path)` builds it:
    /// BertNormalizer (clean text, Chinese characters split, lowercase and accent stripping per
    /// `options`), BertPreTokenizer, WordPiece (`##`, [UNK], words over 100 characters → [UNK]),
    /// the five special tokens matched before normalization, `[CLS] $A [SEP]`.
    pub fn from_vocab_txt(path: &Path, options: &BertVocabOptions) -> Result<LyricsTokenizer> {
        let p = path_str(path)?;
        let model = WordPiece::from_file(p)
            .unk_token(options.unk.clone())
            .continuing_subword_prefix("##".into())
            .max_input_chars_per_word(100)
            .build()
            .map_err(|e| Error::file(path, format!("not a WordPiece vocab.txt ({e})")))?;
        let mut tok = Tokenizer::new(model);
        tok.with_normalizer(Some(BertNormalizer::new(
            true,
            options.chinese_chars,
            options.strip_accents,
            options.lowercase,
        )));
        tok.with_pre_tokenizer(Some(BertPreTokenizer));
        tok.with_decoder(Some(tokenizers::decoders::wordpiece::WordPiece::new("##".into(), true)));
        let specials: Vec<AddedToken> = [&options.pad, &options.unk, &options.cls, &options.sep, &options.mask]
            .iter()
            .map(|s| AddedToken::from(s.to_string(), true))
            .collect();
        tok.add_special_tokens(&specials);
        let id = |t: &str| tok.token_to_id(t).ok_or_else(|| Error::file(path, format!("vocab has no `{t}`")));
        let (cls, sep) = (id(&options.cls)?, id(&options.sep)?);
        let template = TemplateProcessing::builder()
            .try_single(format!("{}:0 $A:0 {}:0", options.cls, options.sep))
            .and_then(|b| b.try_pair(format!("{c}:0 $A:0 {s}:0 $B:1 {s}:1", c = options.cls, s = options.sep)))
            .map_err(|e| Error::file(path, format!("cannot build the [CLS]/[SEP] template: {e}")))?
            .special_tokens(vec![(options.cls.clone(), cls), (options.sep.clone(), sep)])
            .build()
            .map_err(|e| Error::file(path, format!("cannot build the [CLS]/[SEP] template: {e}")))?;
        tok.with_post_processor(Some(template));
        Self::from_tokenizer(tok, Some(&options.pad), &path.display().to_string())
    }

    /// A byte-level BPE `vocab.json` + `merges.txt`, built as transformers'
    /// `RobertaTokenizer(vocab=..., merges=...)` builds it: ByteLevel pre-tokenizer, the special
    /// tokens matched before pre-tokenization, `<s> $A </s>`.
    pub fn from_bpe_files(vocab_json: &Path, merges_txt: &Path, options: &BpeVocabOptions) -> Result<LyricsTokenizer> {
        let model = BPE::from_file(path_str(vocab_json)?, path_str(merges_txt)?)
            .continuing_subword_prefix(String::new())
            .end_of_word_suffix(String::new())
            .build()
            .map_err(|e| {
                Error::file(
                    vocab_json,
                    format!("not a BPE vocab.json + merges.txt pair ({e}); merges: {}", merges_txt.display()),
                )
            })?;
        let mut tok = Tokenizer::new(model);
        tok.with_pre_tokenizer(Some(ByteLevel::new(options.add_prefix_space, true, true)));
        tok.with_decoder(Some(tokenizers::decoders::byte_level::ByteLevel::default()));
        let specials: Vec<AddedToken> = [&options.bos, &options.pad, &options.eos, &options.unk, &options.mask]
            .iter()
            .map(|s| AddedToken::from(s.to_string(), true))
            .collect();
        tok.add_special_tokens(&specials);
        let id = |t: &str| tok.token_to_id(t).ok_or_else(|| Error::file(vocab_json, format!("vocab has no `{t}`")));
        let (bos, eos) = (id(&options.bos)?, id(&options.eos)?);
        let processor = RobertaProcessing::new((options.eos.clone(), eos), (options.bos.clone(), bos))
            .trim_offsets(true)
            .add_prefix_space(options.add_prefix_space);
        tok.with_post_processor(Some(processor));
        Self::from_tokenizer(tok, Some(&options.pad), &vocab_json.display().to_string())
    }

    /// Wraps a `tokenizers` tokenizer; `source` names it in errors. The pad token is `pad_token`, or
    /// `[PAD]`, or `<pad>`, whichever the vocabulary has first.
    pub fn from_tokenizer(mut tok: Tokenizer, pad_token: Option<&str>, source: &str) -> Result<LyricsTokenizer> {
        tok.with_padding(None);
        tok.with_truncation(None).map_err(|e| Error::Invalid(format!("tokenizer {source}: {e}")))?;
        let candidates: Vec<&str> = pad_token.into_iter().chain(["[PAD]", "<pad>"]).collect();
        let (pad_token, pad_id) = candidates
            .iter()
            .find_map(|t| tok.token_to_id(t).map(|id| (t.to_string(), id)))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "tokenizer {source}: no padding token in the vocabulary (tried {}); name it with `pad_token` in tokenizer_config.json",
                    candidates.join(", ")
                ))
            })?;
        let n_special = tok.get_post_processor().map_or(0, |p| tokenizers::PostProcessor::added_tokens(p, false));
        let serialized =
            tok.to_string(false).map_err(|e| Error::Invalid(format!("tokenizer {source}: cannot serialize: {e}")))?;
        let hash = sha256_fields(&[b"moodgrad-tokenizer-v1", serialized.as_bytes(), pad_token.as_bytes()]);
        let prefix_cut = prefix_cut_is_safe(&tok);
        Ok(LyricsTokenizer {
            base: tok,
            pad_id,
            pad_token,
            n_special,
            source: source.to_string(),
            hash,
            prefix_cut,
            prefix_bytes_per_token: PREFIX_BYTES_PER_TOKEN,
            configured: RwLock::new(HashMap::new()),
            bytes_tokenized: AtomicU64::new(0),
        })
    }

    /// `text` → exactly `max_len` ids, token types and mask (see the module doc).
    pub fn encode(&self, text: &str, max_len: usize) -> Result<Encoding> {
        let tok = self.configured(max_len)?;
        if !self.prefix_cut {
            return self.run(&tok, text);
        }
        let mut budget = max_len.saturating_mul(self.prefix_bytes_per_token).max(1);
        loop {
            let Some(prefix) = whitespace_prefix(text, budget) else {
                return self.run(&tok, text);
            };
            let e = self.run(&tok, prefix)?;
            // No padding means the prefix already held at least max_len tokens: the ids are final.
            if e.attention_mask.iter().all(|&m| m == 1) {
                return Ok(e);
            }
            budget = budget.saturating_mul(4);
        }
    }

    /// The same result as [`encode`](Self::encode), always from the whole text (the reference that the
    /// prefix cut is tested against).
    pub fn encode_whole(&self, text: &str, max_len: usize) -> Result<Encoding> {
        let tok = self.configured(max_len)?;
        self.run(&tok, text)
    }

    /// Encodes several lyrics in parallel; results are in input order.
    pub fn encode_batch<S: AsRef<str> + Sync>(&self, texts: &[S], max_len: usize) -> Result<Vec<Encoding>> {
        use rayon::prelude::*;
        texts.par_iter().map(|t| self.encode(t.as_ref(), max_len)).collect()
    }

    /// Untruncated, unpadded ids of `text` with the special tokens (its full length in tokens).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>> {
        let e = self.base.encode(text, true).map_err(|e| self.err(e))?;
        Ok(e.get_ids().to_vec())
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }
    pub fn pad_token(&self) -> &str {
        &self.pad_token
    }
    /// Vocabulary size including added tokens (must not exceed the encoder's `vocab_size`).
    pub fn vocab_size(&self) -> usize {
        self.base.get_vocab_size(true)
    }
    /// Special tokens the post-processor adds to one sequence (2: [CLS] and [SEP], or <s> and </s>).
    pub fn n_special(&self) -> usize {
        self.n_special
    }
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.base.token_to_id(token)
    }
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.base.id_to_token(id)
    }
    /// Where it was loaded from.
    pub fn source(&self) -> &str {
        &self.source
    }
    /// Hex SHA-256 of the tokenizer's canonical JSON (truncation and padding removed) and its pad
    /// token: equal hashes tokenize identically. For cache manifests.
    pub fn hash(&self) -> &str {
        &self.hash
    }
    /// Whether long texts are cut at whitespace before tokenizing (see the module doc).
    pub fn cuts_long_texts(&self) -> bool {
        self.prefix_cut
    }
    /// The first prefix tried is `max_len * bytes_per_token` bytes (default 8). Smaller values only
    /// cost retries; tests set 1 to exercise many cut positions.
    pub fn set_prefix_bytes_per_token(&mut self, bytes_per_token: usize) {
        self.prefix_bytes_per_token = bytes_per_token.max(1);
    }
    /// The wrapped tokenizer, without truncation and padding.
    pub fn inner(&self) -> &Tokenizer {
        &self.base
    }
    /// Writes the wrapped tokenizer as a `tokenizer.json` (pretty, like transformers), atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let s = self.base.to_string(true).map_err(|e| self.err(e))?;
        crate::io::write_atomic(path, s.as_bytes())
    }

    /// Bytes of text this tokenizer has tokenized so far (all calls together).
    pub fn bytes_tokenized(&self) -> u64 {
        self.bytes_tokenized.load(Ordering::Relaxed)
    }

    fn run(&self, tok: &Tokenizer, text: &str) -> Result<Encoding> {
        self.bytes_tokenized.fetch_add(text.len() as u64, Ordering::Relaxed);
        let e = tok.encode(text, true).map_err(|e| self.err(e))?;
        let widen = |v: &[u32]| v.iter().map(|&x| x as i64).collect::<Vec<i64>>();
        Ok(Encoding {
            input_ids: widen(e.get_ids()),
            token_type_ids: widen(e.get_type_ids()),
            attention_mask: widen(e.get_attention_mask()),
        })
    }

    /// The base tokenizer with truncation to `max_len` and right padding to exactly `max_len`
    /// (transformers' padding='max_length', truncation=True), built once per length.
    fn configured(&self, max_len: usize) -> Result<Arc<Tokenizer>> {
        if max_len <= self.n_special {
            return Err(Error::Invalid(format!(
                "max_len {max_len} leaves no room for text: tokenizer {} adds {} special tokens",
                self.source, self.n_special
            )));
        }
        if let Some(t) = self.configured.read().unwrap_or_else(|p| p.into_inner()).get(&max_len) {
            return Ok(t.clone());
        }
        let mut t = self.base.clone();
        t.with_truncation(Some(TruncationParams {
            direction: TruncationDirection::Right,
            max_length: max_len,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        }))
        .map_err(|e| self.err(e))?;
        t.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::Fixed(max_len),
            direction: PaddingDirection::Right,
            pad_to_multiple_of: None,
            pad_id: self.pad_id,
            pad_type_id: 0,
            pad_token: self.pad_token.clone(),
        }));
        let t = Arc::new(t);
        self.configured.write().unwrap_or_else(|p| p.into_inner()).insert(max_len, t.clone());
        Ok(t)
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Invalid(format!("tokenizer {}: {e}", self.source))
    }
}

/// The longest prefix of `text` that ends just before the first whitespace run starting at byte
/// `min_len` or later, or `None` when there is none (then the whole text is needed). Only ASCII
/// space, tab, newline and carriage return start a cut: every tokenizer treats them as whitespace
/// (BERT removes some other Unicode "whitespace" as control characters instead).
pub fn whitespace_prefix(text: &str, min_len: usize) -> Option<&str> {
    if text.len() <= min_len {
        return None;
    }
    let mut prev_ws = true;
    for (i, c) in text.char_indices() {
        let cut_char = matches!(c, ' ' | '\t' | '\n' | '\r');
        if i >= min_len && cut_char && !prev_ws {
            return Some(&text[..i]);
        }
        prev_ws = c.is_whitespace();
    }
    None
}

/// True when cutting before a whitespace run cannot change the tokens before it: the pre-tokenizer
/// splits at whitespace (and only refines pieces further), the normalizer works per character, and
/// no added token contains whitespace.
fn prefix_cut_is_safe(tok: &Tokenizer) -> bool {
    fn ws_split(p: &PreTokenizerWrapper) -> Option<bool> {
        // Some(true): splits at whitespace; Some(false): only refines pieces; None: unsafe.
        match p {
            PreTokenizerWrapper::BertPreTokenizer(_)
            | PreTokenizerWrapper::Whitespace(_)
            | PreTokenizerWrapper::WhitespaceSplit(_) => Some(true),
            PreTokenizerWrapper::ByteLevel(b) => b.use_regex.then_some(true),
            PreTokenizerWrapper::Punctuation(_)
            | PreTokenizerWrapper::Digits(_)
            | PreTokenizerWrapper::UnicodeScripts(_) => Some(false),
            PreTokenizerWrapper::Sequence(s) => {
                let parts: Option<Vec<bool>> = s.as_ref().iter().map(ws_split).collect();
                parts.map(|v| v.into_iter().any(|b| b))
            }
            _ => None,
        }
    }
    fn per_char(n: &NormalizerWrapper) -> bool {
        match n {
            NormalizerWrapper::Sequence(s) => s.as_ref().iter().all(per_char),
            NormalizerWrapper::Replace(_) | NormalizerWrapper::Precompiled(_) => false,
            _ => true,
        }
    }
    let pre_ok = tok.get_pre_tokenizer().and_then(ws_split) == Some(true);
    let norm_ok = tok.get_normalizer().is_none_or(per_char);
    let added_ok = tok
        .get_added_vocabulary()
        .get_added_tokens_decoder()
        .values()
        .all(|t| !t.content.chars().any(char::is_whitespace));
    pre_ok && norm_ok && added_ok
}

fn read_tokenizer_config(dir: &Path) -> Result<Option<Value>> {
    let path = dir.join("tokenizer_config.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::file(&path, format!("cannot read: {e}")))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| Error::file(&path, format!("not valid JSON: {e}")))?;
    Ok(Some(v))
}

/// A special-token entry of tokenizer_config.json: a string or `{"content": ...}`.
fn token_name(config: &Value, key: &str) -> Option<String> {
    match config.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str().ok_or_else(|| Error::file(path, "the path is not valid UTF-8; rename the folder"))
}

pub(crate) fn list_dir(dir: &Path) -> String {
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            let mut names: Vec<String> =
                rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
            names.sort();
            if names.is_empty() { "nothing".into() } else { names.join(", ") }
        }
        Err(e) => format!("(cannot list: {e})"),
    }
}
