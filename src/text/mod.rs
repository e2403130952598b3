//! The text side of the lyrics tower: everything between a lyric file and the encoder's input, and
//! between a Hugging Face model folder and the encoder's weights — but not the encoder's math.
//!
//! - [`lyrics`]: reading a lyric file (empty, huge, non-UTF-8 and binary files give a clear error or
//!   a warning naming the file).
//! - [`tokenize`]: [`LyricsTokenizer`](tokenize::LyricsTokenizer) from a `tokenizer.json`, a BERT
//!   `vocab.txt` or a RoBERTa `vocab.json` + `merges.txt`; `encode(text, max_len)` gives the ids,
//!   token type ids and attention mask of transformers'
//!   `tokenizer(text, padding='max_length', truncation=True, max_length=max_len)`, whatever padding or
//!   truncation the file bakes in. Huge lyrics are cut before tokenizing, without changing a token.
//! - [`vocab`]: `train_wordpiece`, the ~8k WordPiece vocabulary of the small built-in encoder.
//! - [`hf`]: Hugging Face model folders (`config.json` of BERT, DistilBERT, RoBERTa; safetensors
//!   weights; tokenizer files), model names resolved in the local hub cache only, and the mapping of
//!   checkpoint keys to the encoder's canonical names.
//! - [`torch_pt`]: writes the seed's `processed_lyrics/<song_id>.pt` in torch.save's own zip layout.
//! - [`vector_cache`]: the on-disk cache of frozen-encoder vectors, keyed by model and lyric.
//!
//! Nothing here unpickles a file or touches the network.

pub mod hash;
pub mod hf;
pub mod lyrics;
pub mod tokenize;
pub mod torch_pt;
pub mod vector_cache;
pub mod vocab;
