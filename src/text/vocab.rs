//! The WordPiece vocabulary of the small built-in encoder, learned from the training lyrics.
//!
//! [`train_wordpiece`] builds the same tokenizer as `tools/make_text_fixtures.py`'s
//! `train_wordpiece` does with the Python `tokenizers` library (the fixture test compares the two
//! vocabularies): BERT's uncased pipeline (BertNormalizer: clean text, Chinese characters split,
//! lowercase, accents stripped; BertPreTokenizer; WordPiece with `##` and [UNK]), the specials
//! `[PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4`, `[CLS] $A [SEP]`. Training is deterministic: the
//! same texts in the same order give the same `tokenizer.json`, byte for byte.

use crate::error::{Error, Result};
use crate::text::tokenize::LyricsTokenizer;
use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainer};
use tokenizers::models::TrainerWrapper;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

/// BERT's special tokens, in the id order the trainer gives them.
pub const BERT_SPECIALS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// Learns a WordPiece vocabulary of at most `vocab_size` entries (specials included) from `texts`.
/// Save the result with [`LyricsTokenizer::save`] as a `tokenizer.json`.
pub fn train_wordpiece<S: AsRef<str> + Send + Sync>(texts: &[S], vocab_size: usize) -> Result<LyricsTokenizer> {
    if vocab_size <= BERT_SPECIALS.len() {
        return Err(Error::Invalid(format!(
            "train_wordpiece: vocab_size {vocab_size} leaves no room beyond the {} special tokens",
            BERT_SPECIALS.len()
        )));
    }
    let model = WordPiece::builder()
        .unk_token("[UNK]".into())
        .continuing_subword_prefix("##".into())
        .max_input_chars_per_word(100)
        .build()
        .map_err(|e| Error::Invalid(format!("train_wordpiece: {e}")))?;
    let mut tok = Tokenizer::new(model);
    tok.with_normalizer(Some(BertNormalizer::new(true, true, None, true)));
    tok.with_pre_tokenizer(Some(BertPreTokenizer));
    tok.with_decoder(Some(tokenizers::decoders::wordpiece::WordPiece::new("##".into(), true)));
    let trainer = WordPieceTrainer::builder()
        .vocab_size(vocab_size)
        .min_frequency(0)
        .show_progress(false)
        .special_tokens(BERT_SPECIALS.iter().map(|s| AddedToken::from(*s, true)).collect())
        .continuing_subword_prefix("##".into())
        .build();
    let mut trainer: TrainerWrapper = trainer.into();
    tok.train(&mut trainer, texts.iter().map(|t| t.as_ref()))
        .map_err(|e| Error::Invalid(format!("train_wordpiece: training failed: {e}")))?;
    let id = |t: &str| tok.token_to_id(t).ok_or_else(|| Error::Invalid(format!("train_wordpiece: `{t}` missing after training")));
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    let template = TemplateProcessing::builder()
        .try_single("[CLS]:0 $A:0 [SEP]:0")
        .and_then(|b| b.try_pair("[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1"))
        .map_err(|e| Error::Invalid(format!("train_wordpiece: {e}")))?
        .special_tokens(vec![("[CLS]".to_string(), cls), ("[SEP]".to_string(), sep)])
        .build()
        .map_err(|e| Error::Invalid(format!("train_wordpiece: {e}")))?;
    tok.with_post_processor(Some(template));
    LyricsTokenizer::from_tokenizer(tok, Some("[PAD]"), "train_wordpiece")
}
