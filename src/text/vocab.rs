//! The WordPiece vocabulary of the small built-in encoder, learned from the training lyrics.
//!
//! [`train_wordpiece`] gives a `tokenizers` WordPiece tokenizer with BERT's uncased pipeline
//! (BertNormalizer: clean text, Chinese characters split, lowercase, accents stripped;
//! BertPreTokenizer; `##` continuation, [UNK], words over 100 characters → [UNK]), the specials
//! `[PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4` and `[CLS] $A [SEP]`.
//!
//! Why not `tokenizers::models::wordpiece::WordPieceTrainer` itself: it is not deterministic. It
//! numbers the `##x` continuation tokens in the iteration order of a randomly seeded hash map and
//! breaks count ties by those numbers, so two runs on the same text learn different vocabularies
//! (measured: the Python `tokenizers` 0.23 trainer gave a different `##` order and 10 different
//! merged tokens on two runs over tests/fixtures/text/corpus.txt). The trainer here is a port of
//! that trainer's algorithm (`BpeTrainer::do_train` with a `##` prefix, tokenizers 0.22) with every
//! order fixed:
//!
//! 1. words: the texts normalized and pre-tokenized as above, counted, in sorted order;
//! 2. vocabulary: the specials, then every character seen (sorted by code point), then the `##c`
//!    continuation of each character seen after a word's first, numbered in order of first use;
//! 3. merges: repeatedly the most frequent adjacent pair (ties: the smaller pair of ids, then the
//!    entry queued first) is joined (`a` + `##b` → `ab`, `##a` + `##b` → `##ab`), with tokenizers'
//!    lazy queue (an entry whose count went stale is re-queued; occurrences a merge creates are
//!    queued as a new entry), until the vocabulary has `vocab_size` entries or no pair is left.
//!
//! The same texts in the same order give the same `tokenizer.json`, byte for byte, in any process.
//! `tools/make_text_fixtures.py` has the same algorithm in Python (the tiny BERT fixture's vocab;
//! the tests compare), and on a corpus without ties the result equals tokenizers' own trainer.

use crate::error::{Error, Result};
use crate::text::tokenize::LyricsTokenizer;
use serde_json::json;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{
    AddedToken, NormalizedString, Normalizer, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer,
    Tokenizer,
};

/// BERT's special tokens, with the ids they get.
pub const BERT_SPECIALS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
const PREFIX: &str = "##";

/// Learns a WordPiece vocabulary of at most `vocab_size` entries (specials included) from `texts`
/// (see the module doc). Save the result with [`LyricsTokenizer::save`] as a `tokenizer.json`.
pub fn train_wordpiece<S: AsRef<str>>(texts: &[S], vocab_size: usize) -> Result<LyricsTokenizer> {
    if vocab_size <= BERT_SPECIALS.len() {
        return Err(Error::Invalid(format!(
            "train_wordpiece: vocab_size {vocab_size} leaves no room beyond the {} special tokens",
            BERT_SPECIALS.len()
        )));
    }
    let words = count_words(texts)?;
    let vocab = learn_vocab(&words, vocab_size);
    build_tokenizer(&vocab)
}

/// Word → count over the texts, as BERT's normalizer and pre-tokenizer split them.
pub fn count_words<S: AsRef<str>>(texts: &[S]) -> Result<BTreeMap<String, u64>> {
    let normalizer = BertNormalizer::new(true, true, None, true);
    let mut counts = BTreeMap::new();
    for t in texts {
        let mut n = NormalizedString::from(t.as_ref());
        normalizer.normalize(&mut n).map_err(|e| Error::Invalid(format!("train_wordpiece: {e}")))?;
        let mut p = PreTokenizedString::from(n);
        BertPreTokenizer.pre_tokenize(&mut p).map_err(|e| Error::Invalid(format!("train_wordpiece: {e}")))?;
        for (w, _, _) in p.get_splits(OffsetReferential::Original, OffsetType::Byte) {
            *counts.entry(w.to_string()).or_insert(0) += 1;
        }
    }
    Ok(counts)
}

type Pair = (u32, u32);

/// A queued merge candidate; the heap pops the largest: highest count, then smallest pair, then
/// the earliest queued.
struct Candidate {
    count: i64,
    pair: Pair,
    seq: u64,
    pos: BTreeSet<usize>,
}

impl Ord for Candidate {
    fn cmp(&self, o: &Self) -> Ordering {
        self.count.cmp(&o.count).then_with(|| o.pair.cmp(&self.pair)).then_with(|| o.seq.cmp(&self.seq))
    }
}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl PartialEq for Candidate {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Candidate {}

/// The merge queue: a max-heap of candidates, each stamped with its push number.
#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Candidate>,
    seq: u64,
}

impl Queue {
    fn push(&mut self, count: i64, pair: Pair, pos: BTreeSet<usize>) {
        self.heap.push(Candidate { count, pair, seq: self.seq, pos });
        self.seq += 1;
    }
    /// Queues every pair of `fresh` (in pair order) that still occurs, and empties it.
    fn push_all(&mut self, fresh: &mut BTreeMap<Pair, BTreeSet<usize>>, pair_counts: &HashMap<Pair, i64>) {
        for (pair, pos) in std::mem::take(fresh) {
            let count = pair_counts[&pair];
            if count > 0 {
                self.push(count, pair, pos);
            }
        }
    }
}

/// Token strings in id order, with their index.
#[derive(Default)]
struct Vocab {
    id2w: Vec<String>,
    w2id: HashMap<String, u32>,
}

impl Vocab {
    fn add(&mut self, s: String) -> u32 {
        if let Some(&id) = self.w2id.get(&s) {
            return id;
        }
        let id = self.id2w.len() as u32;
        self.w2id.insert(s.clone(), id);
        self.id2w.push(s);
        id
    }
}

/// The vocabulary, tokens in id order (steps 2 and 3 of the module doc).
pub fn learn_vocab(word_counts: &BTreeMap<String, u64>, vocab_size: usize) -> Vec<String> {
    let mut v = Vocab::default();
    for s in BERT_SPECIALS {
        v.add(s.to_string());
    }
    let alphabet: BTreeSet<char> = word_counts.keys().flat_map(|w| w.chars()).collect();
    for c in &alphabet {
        v.add(c.to_string());
    }
    // Words as symbol ids; continuation tokens numbered in order of first use.
    let mut words: Vec<Vec<u32>> = Vec::with_capacity(word_counts.len());
    let mut counts: Vec<i64> = Vec::with_capacity(word_counts.len());
    for (w, &n) in word_counts {
        let symbols = w
            .chars()
            .enumerate()
            .map(|(i, c)| if i == 0 { v.add(c.to_string()) } else { v.add(format!("{PREFIX}{c}")) })
            .collect();
        words.push(symbols);
        counts.push(n as i64);
    }
    let mut pair_counts: HashMap<Pair, i64> = HashMap::new();
    let mut fresh: BTreeMap<Pair, BTreeSet<usize>> = BTreeMap::new();
    for (i, w) in words.iter().enumerate() {
        for p in w.windows(2) {
            *pair_counts.entry((p[0], p[1])).or_insert(0) += counts[i];
            fresh.entry((p[0], p[1])).or_default().insert(i);
        }
    }
    let mut queue = Queue::default();
    queue.push_all(&mut fresh, &pair_counts);
    while v.id2w.len() < vocab_size {
        let Some(top) = queue.heap.pop() else { break };
        let current = pair_counts[&top.pair];
        if top.count != current {
            queue.push(current, top.pair, top.pos);
            continue;
        }
        if top.count < 1 {
            break;
        }
        let (a, b) = (&v.id2w[top.pair.0 as usize], &v.id2w[top.pair.1 as usize]);
        let joined = format!("{a}{}", b.strip_prefix(PREFIX).unwrap_or(b));
        let new_id = v.add(joined);
        for &i in &top.pos {
            for (pair, change) in merge_word(&mut words[i], top.pair, new_id) {
                *pair_counts.entry(pair).or_insert(0) += change * counts[i];
                if change > 0 {
                    fresh.entry(pair).or_default().insert(i);
                }
            }
        }
        queue.push_all(&mut fresh, &pair_counts);
    }
    v.id2w
}

/// Joins every non-overlapping occurrence of `pair` (left to right) and returns the pair-count
/// changes, as tokenizers' `Word::merge` does (the joined pair's own count is left as it was).
fn merge_word(word: &mut Vec<u32>, pair: Pair, new_id: u32) -> Vec<(Pair, i64)> {
    let mut changes = Vec::new();
    let mut i = 0;
    while i < word.len() {
        if word[i] == pair.0 && i + 1 < word.len() && word[i + 1] == pair.1 {
            if i > 0 {
                changes.push(((word[i - 1], pair.0), -1));
                changes.push(((word[i - 1], new_id), 1));
            }
            word[i] = new_id;
            word.remove(i + 1);
            if i + 1 < word.len() {
                changes.push(((pair.1, word[i + 1]), -1));
                changes.push(((new_id, word[i + 1]), 1));
            }
        }
        i += 1;
    }
    changes
}

/// The BERT-style tokenizer around a vocabulary in id order.
pub fn build_tokenizer(vocab: &[String]) -> Result<LyricsTokenizer> {
    let err = |e: &dyn std::fmt::Display| Error::Invalid(format!("train_wordpiece: {e}"));
    let map: serde_json::Map<String, serde_json::Value> =
        vocab.iter().enumerate().map(|(i, t)| (t.clone(), json!(i))).collect();
    // From text, not from a Value: WordPiece's deserializer borrows its `type` string.
    let model: WordPiece = serde_json::from_str(
        &json!({
            "type": "WordPiece",
            "unk_token": "[UNK]",
            "continuing_subword_prefix": PREFIX,
            "max_input_chars_per_word": 100,
            "vocab": map,
        })
        .to_string(),
    )
    .map_err(|e| err(&e))?;
    let mut tok = Tokenizer::new(model);
    tok.with_normalizer(Some(BertNormalizer::new(true, true, None, true)));
    tok.with_pre_tokenizer(Some(BertPreTokenizer));
    tok.with_decoder(Some(tokenizers::decoders::wordpiece::WordPiece::new(PREFIX.into(), true)));
    tok.add_special_tokens(&BERT_SPECIALS.iter().map(|s| AddedToken::from(*s, true)).collect::<Vec<_>>());
    let template = TemplateProcessing::builder()
        .try_single("[CLS]:0 $A:0 [SEP]:0")
        .and_then(|b| b.try_pair("[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1"))
        .map_err(|e| err(&e))?
        .special_tokens(vec![("[CLS]".to_string(), 2), ("[SEP]".to_string(), 3)])
        .build()
        .map_err(|e| err(&e))?;
    tok.with_post_processor(Some(template));
    LyricsTokenizer::from_tokenizer(tok, Some("[PAD]"), "train_wordpiece")
}
