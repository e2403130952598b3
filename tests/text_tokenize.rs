//! Tokenization against transformers' ids (tests/fixtures/text/tokenizer_goldens.json, made by
//! tools/make_text_fixtures.py), the long-text prefix cut, the WordPiece trainer.

mod text_common;

use moodgrad::text::tokenize::{BertVocabOptions, BpeVocabOptions, EncodedBatch, LyricsTokenizer, whitespace_prefix};
use moodgrad::text::vocab::train_wordpiece;
use serde_json::Value;
use std::time::Instant;
use text_common::*;

fn goldens() -> Value {
    read_json(&fixtures().join("tokenizer_goldens.json"))
}

fn rows(v: &Value) -> Vec<Vec<i64>> {
    v.as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect()).collect()
}

/// Every text of the golden file, at every length, through `tok`, equals transformers' output.
fn check_goldens(tok: &LyricsTokenizer, golden_name: &str, label: &str) {
    let g = goldens();
    let texts: Vec<&str> = g["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    let names: Vec<&str> = g["names"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    let mut n_cases = 0;
    for case in g["cases"].as_array().unwrap().iter().filter(|c| c["tokenizer"] == golden_name) {
        let max_len = case["max_len"].as_u64().unwrap() as usize;
        let (ids, types, mask) =
            (rows(&case["input_ids"]), rows(&case["token_type_ids"]), rows(&case["attention_mask"]));
        for (i, text) in texts.iter().enumerate() {
            let e = tok.encode(text, max_len).unwrap();
            assert_eq!(e.input_ids, ids[i], "{label}: input_ids of `{}` at max_len {max_len}", names[i]);
            assert_eq!(e.token_type_ids, types[i], "{label}: token_type_ids of `{}` at max_len {max_len}", names[i]);
            assert_eq!(e.attention_mask, mask[i], "{label}: attention_mask of `{}` at max_len {max_len}", names[i]);
            // The whole-text path gives the same (the prefix cut is invisible).
            assert_eq!(tok.encode_whole(text, max_len).unwrap(), e, "{label}: whole-text path, `{}`", names[i]);
        }
        // Batch encoding: same rows, same order.
        let batch = tok.encode_batch(&texts, max_len).unwrap();
        let stacked = EncodedBatch::stack(&batch).unwrap();
        assert_eq!(stacked.input_ids, ids.concat(), "{label}: encode_batch at {max_len}");
        n_cases += 1;
    }
    assert_eq!(n_cases, 2, "{label}: golden cases for 512 and 16 expected");
    println!("{label}: {} texts x 2 lengths match transformers", texts.len());
}

#[test]
fn minilm_tokenizer_json_matches_transformers_and_ignores_baked_128() {
    let path = fixtures().join("minilm/tokenizer.json");
    let raw = read_json(&path);
    assert_eq!(raw["truncation"]["max_length"], 128, "the fixture should bake in 128 (what this test overrides)");
    let tok = LyricsTokenizer::from_tokenizer_json(&path).unwrap();
    assert_eq!((tok.pad_id(), tok.pad_token(), tok.vocab_size(), tok.n_special()), (0, "[PAD]", 30522, 2));
    check_goldens(&tok, "minilm_tokenizer_json", "MiniLM tokenizer.json");
    let dir_tok = LyricsTokenizer::from_dir(&fixtures().join("minilm")).unwrap();
    assert_eq!(dir_tok.hash(), tok.hash(), "from_dir reads the same tokenizer.json");
    // The long lyric fills 512, not the file's 128.
    let long = goldens()["texts"].as_array().unwrap().last().unwrap().as_str().unwrap().to_string();
    let e = tok.encode(&long, 512).unwrap();
    assert_eq!((e.len(), e.n_tokens()), (512, 512));
    assert_eq!((e.input_ids[0], e.input_ids[511]), (101, 102), "[CLS] first, [SEP] last after truncation");
}

#[test]
fn vocab_txt_alone_matches_bert_tokenizer() {
    let d = minilm_vocab_only_dir("vocab-only");
    let tok = LyricsTokenizer::from_vocab_txt(&d.join("vocab.txt"), &BertVocabOptions::default()).unwrap();
    check_goldens(&tok, "minilm_vocab_txt", "MiniLM vocab.txt (from_vocab_txt)");
    let from_dir = LyricsTokenizer::from_dir(&d).unwrap();
    check_goldens(&from_dir, "minilm_vocab_txt", "MiniLM vocab.txt (from_dir)");
    // BertTokenizer semantics, spelled out: lowercase, accents stripped, CJK characters split.
    let t = |s: &str| {
        let ids = tok.token_ids(s).unwrap();
        ids.iter().map(|&i| tok.id_to_token(i).unwrap()).collect::<Vec<_>>().join(" ")
    };
    assert_eq!(t("Café NAÏVE"), "[CLS] cafe naive [SEP]");
    assert_eq!(t("京都"), "[CLS] 京 都 [SEP]", "each CJK character is its own word");
    // A cased option is honoured (and differs).
    let cased = LyricsTokenizer::from_vocab_txt(
        &d.join("vocab.txt"),
        &BertVocabOptions { lowercase: false, ..Default::default() },
    )
    .unwrap();
    assert_ne!(cased.token_ids("Café").unwrap(), tok.token_ids("Café").unwrap());
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn roberta_bpe_matches_roberta_tokenizer_fast() {
    let dir = fixtures().join("models/roberta");
    let from_json = LyricsTokenizer::from_dir(&dir).unwrap();
    assert_eq!((from_json.pad_id(), from_json.pad_token()), (1, "<pad>"));
    check_goldens(&from_json, "tiny_roberta", "tiny RoBERTa tokenizer.json");
    let from_files =
        LyricsTokenizer::from_bpe_files(&dir.join("vocab.json"), &dir.join("merges.txt"), &BpeVocabOptions::default())
            .unwrap();
    check_goldens(&from_files, "tiny_roberta", "tiny RoBERTa vocab.json + merges.txt");
    // from_dir falls back to the vocab files when there is no tokenizer.json.
    let d = tmp_dir("bpe-only");
    for f in ["vocab.json", "merges.txt", "tokenizer_config.json"] {
        std::fs::copy(dir.join(f), d.join(f)).unwrap();
    }
    check_goldens(
        &LyricsTokenizer::from_dir(&d).unwrap(),
        "tiny_roberta",
        "tiny RoBERTa from_dir without tokenizer.json",
    );
    let e = from_json.encode("Oh!", 8).unwrap();
    assert_eq!((e.input_ids[0], e.input_ids[e.n_tokens() - 1], e.input_ids[7]), (0, 2, 1), "<s> … </s> then <pad>=1");
    let _ = std::fs::remove_dir_all(d);
}

/// The tiny model folders' tokenizers give the reference batch's ids (fixtures (b)).
#[test]
fn tiny_model_tokenizers_match_reference_batches() {
    for fam in ["bert", "distilbert", "roberta"] {
        let (t, meta) = read_st(&fixtures().join(format!("models/{fam}_reference.safetensors")));
        let texts: Vec<String> = serde_json::from_str(&meta["texts"]).unwrap();
        let max_len: usize = meta["max_len"].parse().unwrap();
        let tok = LyricsTokenizer::from_dir(&fixtures().join(format!("models/{fam}"))).unwrap();
        let b = EncodedBatch::stack(&tok.encode_batch(&texts, max_len).unwrap()).unwrap();
        assert_eq!(b.input_ids, t["input_ids"].i64s(), "{fam} input_ids");
        assert_eq!(b.attention_mask, t["attention_mask"].i64s(), "{fam} attention_mask");
        if let Some(tt) = t.get("token_type_ids") {
            assert_eq!(b.token_type_ids, tt.i64s(), "{fam} token_type_ids");
        }
    }
}

#[test]
fn too_short_max_len_is_an_error_not_a_panic() {
    let tok = LyricsTokenizer::from_tokenizer_json(&fixtures().join("minilm/tokenizer.json")).unwrap();
    let err = tok.encode("hello", 2).unwrap_err().to_string();
    assert!(err.contains("max_len 2") && err.contains("2 special tokens"), "{err}");
    assert_eq!(tok.encode("hello world", 3).unwrap().input_ids, vec![101, 7592, 102]);
}

#[test]
fn missing_or_bad_tokenizer_files_name_the_file() {
    let d = tmp_dir("bad-tok");
    let err = LyricsTokenizer::from_dir(&d).unwrap_err().to_string();
    assert!(err.contains("no tokenizer here") && err.contains(&d.display().to_string()), "{err}");
    std::fs::write(d.join("tokenizer.json"), "{not json").unwrap();
    let err = LyricsTokenizer::from_dir(&d).unwrap_err().to_string();
    assert!(err.contains("tokenizer.json") && err.contains("not a Hugging Face tokenizer.json"), "{err}");
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn hash_identifies_the_tokenizer() {
    let a = LyricsTokenizer::from_tokenizer_json(&fixtures().join("minilm/tokenizer.json")).unwrap();
    let b = LyricsTokenizer::from_tokenizer_json(&fixtures().join("minilm/tokenizer.json")).unwrap();
    let c = LyricsTokenizer::from_dir(&fixtures().join("models/bert")).unwrap();
    assert_eq!(a.hash(), b.hash());
    assert_ne!(a.hash(), c.hash());
    assert_eq!(a.hash().len(), 64);
}

/// A small deterministic generator (xorshift64*), so the random texts are the same every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Pieces that stress word boundaries: Unicode whitespace of every kind BERT and byte-level BPE
/// treat differently, combining marks, controls, CJK, emoji, special tokens, punctuation runs.
const PIECES: &[&str] = &[
    "love",
    "night",
    "Café",
    "naïve",
    "ΣΟΦΙΑ",
    "русский",
    "it's",
    "we'll",
    "123",
    "4.5",
    ",",
    "!",
    "...",
    "—",
    "(",
    ")",
    "😀",
    "👩\u{200d}👩\u{200d}👧",
    "你好",
    "東京",
    "노래",
    "[MASK]",
    "<mask>",
    "<s>",
    "[cls]",
    " ",
    " ",
    " ",
    "  ",
    "\n",
    "\t",
    "\r\n",
    "\u{3000}",
    "\u{a0}",
    "\u{b}",
    "\u{c}",
    "\u{85}",
    "\u{2028}",
    "e\u{301}",
    "\u{301}",
    "\u{7}",
    "\u{200b}",
    "\u{ad}",
    "ﬁ",
    "İ",
    "ǅ",
];

fn random_text(rng: &mut Rng, n: usize) -> String {
    let mut s = String::new();
    for _ in 0..n {
        if rng.below(40) == 0 {
            s.push_str(&"a".repeat(95 + rng.below(10))); // around WordPiece's 100-character limit
        } else {
            s.push_str(PIECES[rng.below(PIECES.len())]);
        }
    }
    s
}

/// The prefix cut never changes the first max_len tokens: on random texts, with the first prefix
/// as short as 1 byte per token (so cuts land everywhere), encode equals whole-text encoding.
#[test]
fn prefix_cut_never_changes_the_first_max_len_tokens() {
    let mut toks = [
        ("MiniLM", LyricsTokenizer::from_tokenizer_json(&fixtures().join("minilm/tokenizer.json")).unwrap()),
        ("tiny BERT", LyricsTokenizer::from_dir(&fixtures().join("models/bert")).unwrap()),
        ("tiny RoBERTa", LyricsTokenizer::from_dir(&fixtures().join("models/roberta")).unwrap()),
    ];
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for (name, tok) in toks.iter_mut() {
        assert!(tok.cuts_long_texts(), "{name} should use the prefix cut");
        tok.set_prefix_bytes_per_token(1);
        let (mut cut_used, mut naive_differs) = (0, 0);
        for _ in 0..400 {
            let n = 20 + rng.below(120);
            let text = random_text(&mut rng, n);
            let max_len = 3 + rng.below(60);
            let fast = tok.encode(&text, max_len).unwrap();
            let whole = tok.encode_whole(&text, max_len).unwrap();
            assert_eq!(fast, whole, "{name}: max_len {max_len}, text {text:?}");
            if whitespace_prefix(&text, max_len).is_some() && fast.n_tokens() == max_len {
                cut_used += 1;
            }
            // Control: cutting at an arbitrary character instead does change tokens, so this test
            // can tell a safe cut from an unsafe one.
            let mid = text.char_indices().map(|(i, _)| i).nth(text.chars().count() / 2).unwrap_or(0);
            let naive = tok.encode_whole(&text[..mid], max_len).unwrap();
            if naive != whole {
                naive_differs += 1;
            }
        }
        println!(
            "{name}: 400 random texts equal; prefix cut possible in {cut_used}, naive mid-text cut differs in {naive_differs}"
        );
        assert!(cut_used > 100, "{name}: too few texts exercised the cut ({cut_used})");
        assert!(naive_differs > 0, "{name}: the control never differed");
    }
}

#[test]
fn whitespace_prefix_cuts_only_before_a_whitespace_run() {
    assert_eq!(whitespace_prefix("short", 10), None);
    assert_eq!(whitespace_prefix("one two three", 2), Some("one"));
    assert_eq!(whitespace_prefix("one  two", 4), None, "4 is inside the run: the next run starts later (none)");
    assert_eq!(whitespace_prefix("one  two three", 4), Some("one  two"));
    assert_eq!(whitespace_prefix("a\u{3000} b c", 1), Some("a\u{3000} b"), "U+3000 before the space: not a cut");
    assert_eq!(whitespace_prefix("nowhitespaceatall", 3), None);
}

/// A 1 MB lyric: the same ids as whole-text tokenization, in a fraction of its time.
#[test]
fn huge_lyric_is_tokenized_from_a_short_prefix() {
    let tok = LyricsTokenizer::from_tokenizer_json(&fixtures().join("minilm/tokenizer.json")).unwrap();
    let verse = "I walked along the river and the night was cold, singing slowly home again.\n";
    let text = verse.repeat(1_000_000 / verse.len() + 1);
    assert!(text.len() >= 1_000_000);
    let _ = tok.encode("warm up", 512).unwrap();
    let t0 = Instant::now();
    let before = tok.bytes_tokenized();
    let fast = tok.encode(&text, 512).unwrap();
    let (fast_s, fast_bytes) = (t0.elapsed().as_secs_f64(), tok.bytes_tokenized() - before);
    let t0 = Instant::now();
    let before = tok.bytes_tokenized();
    let whole = tok.encode_whole(&text, 512).unwrap();
    let (whole_s, whole_bytes) = (t0.elapsed().as_secs_f64(), tok.bytes_tokenized() - before);
    assert_eq!(fast, whole);
    let used = whitespace_prefix(&text, 512 * 8).unwrap().len();
    println!(
        "1 MB lyric: prefix of {used} bytes, {:.2} ms; whole text {:.1} ms (timings for information only)",
        fast_s * 1e3,
        whole_s * 1e3
    );
    assert!(used < 8 * 512 + 100, "prefix {used} bytes");
    // The work saved, counted (a timing would depend on the machine and its load): the cut
    // tokenized the prefix alone, the reference all of the text.
    assert_eq!(fast_bytes, used as u64, "encode tokenized {fast_bytes} bytes, not the {used}-byte prefix");
    assert_eq!(whole_bytes, text.len() as u64);
    // No whitespace at all: the cut cannot apply, the text is tokenized whole (and still correct).
    let blob = "x".repeat(1_000_000);
    let t0 = Instant::now();
    let e = tok.encode(&blob, 512).unwrap();
    println!(
        "1 MB without whitespace: {:.1} ms (whole text), {} tokens",
        t0.elapsed().as_secs_f64() * 1e3,
        e.n_tokens()
    );
    assert_eq!(e.input_ids[..3], [101, 100, 102], "one word over 100 characters is [UNK]");
}

/// train_wordpiece learns what the Python port of its algorithm in tools/make_text_fixtures.py
/// learned (the tiny BERT's vocab.txt), and is deterministic.
#[test]
fn train_wordpiece_matches_the_python_port_and_is_deterministic() {
    let corpus = std::fs::read_to_string(fixtures().join("corpus.txt")).unwrap();
    let lines: Vec<&str> = corpus.split('\n').filter(|l| !l.is_empty()).collect();
    let a = train_wordpiece(&lines, 300).unwrap();
    let python_vocab: Vec<String> =
        std::fs::read_to_string(fixtures().join("models/bert/vocab.txt")).unwrap().lines().map(String::from).collect();
    let ours: Vec<String> = (0..a.vocab_size() as u32).map(|i| a.id_to_token(i).unwrap()).collect();
    assert_eq!(ours.len(), 300);
    assert_eq!(ours, python_vocab, "vocabulary differs from the Python port's");
    assert_eq!(ours[..5], ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]);
    let d = tmp_dir("train");
    a.save(&d.join("a.json")).unwrap();
    train_wordpiece(&lines, 300).unwrap().save(&d.join("b.json")).unwrap();
    let (ja, jb) = (std::fs::read(d.join("a.json")).unwrap(), std::fs::read(d.join("b.json")).unwrap());
    assert_eq!(ja, jb, "two trainings on the same input differ");
    // The saved file loads back and tokenizes as transformers' BertTokenizer over the same vocab.
    let reloaded = LyricsTokenizer::from_tokenizer_json(&d.join("a.json")).unwrap();
    let reference = LyricsTokenizer::from_dir(&fixtures().join("models/bert")).unwrap();
    for line in lines.iter().take(60) {
        assert_eq!(reloaded.encode(line, 24).unwrap(), reference.encode(line, 24).unwrap(), "{line}");
    }
    assert!(train_wordpiece(&lines, 5).is_err());
    let _ = std::fs::remove_dir_all(d);
}

/// tokenizers' own WordPieceTrainer numbers its `##` tokens, and so breaks count ties, differently
/// on every run. On a corpus where six of its runs agree (no tie decides anything), moodgrad's
/// trainer must learn the same vocabulary: the same tokens, the merged ones in the same order (the
/// `##` block may be ordered differently). Random corpora are tried until three have no ties.
#[test]
fn train_wordpiece_equals_the_tokenizers_trainer_where_it_is_deterministic() {
    use tokenizers::models::TrainerWrapper;
    use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainer};
    let size = 48;
    let upstream = |texts: &[String]| {
        let mut tok = tokenizers::Tokenizer::new(WordPiece::default());
        tok.with_normalizer(Some(tokenizers::normalizers::bert::BertNormalizer::new(true, true, None, true)));
        tok.with_pre_tokenizer(Some(tokenizers::pre_tokenizers::bert::BertPreTokenizer));
        let trainer = WordPieceTrainer::builder()
            .vocab_size(size)
            .show_progress(false)
            .special_tokens(
                moodgrad::text::vocab::BERT_SPECIALS.iter().map(|s| tokenizers::AddedToken::from(*s, true)).collect(),
            )
            .build();
        let mut trainer: TrainerWrapper = trainer.into();
        tok.train(&mut trainer, texts.iter()).unwrap();
        (0..tok.get_vocab_size(false) as u32).map(|i| tok.id_to_token(i).unwrap()).collect::<Vec<String>>()
    };
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    let letters: Vec<char> = "abcdefgh".chars().collect();
    let mut checked = 0;
    for seed in 1..400u64 {
        // Word counts are distinct powers of two, so equal pair counts need equal sets of words.
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut texts = Vec::new();
        for k in 0..12 {
            let len = 3 + rng.below(4);
            let word: String = (0..len).map(|_| letters[rng.below(letters.len())]).collect();
            texts.extend(std::iter::repeat_n(word, 1 << k));
        }
        let runs: Vec<Vec<String>> = (0..6).map(|_| upstream(&texts)).collect();
        let ours = train_wordpiece(&texts, size).unwrap();
        let ours: Vec<String> = (0..ours.vocab_size() as u32).map(|i| ours.id_to_token(i).unwrap()).collect();
        let merged_start = ours.iter().rposition(|t| t.starts_with("##") && t.chars().count() == 3).unwrap() + 1;
        let agree = runs.iter().all(|r| sorted(r) == sorted(&runs[0]) && r[merged_start..] == runs[0][merged_start..]);
        if !agree {
            continue;
        }
        let same = sorted(&ours) == sorted(&runs[0]) && ours[merged_start..] == runs[0][merged_start..];
        // Six agreeing runs can still hide a tie that broke the same way six times: before calling
        // a difference a failure, make sure 24 more upstream runs agree too.
        if !same
            && (0..24)
                .map(|_| upstream(&texts))
                .any(|r| sorted(&r) != sorted(&runs[0]) || r[merged_start..] != runs[0][merged_start..])
        {
            continue;
        }
        assert_eq!(sorted(&ours), sorted(&runs[0]), "corpus {seed}: the same vocabulary as tokenizers' trainer");
        assert_eq!(ours[merged_start..], runs[0][merged_start..], "corpus {seed}: the same merges in the same order");
        println!(
            "corpus {seed}: {} tokens, {} merged, equal to 6 agreeing runs of tokenizers' WordPieceTrainer",
            ours.len(),
            ours.len() - merged_start
        );
        checked += 1;
        if checked == 3 {
            return;
        }
    }
    panic!("only {checked} random corpora without ties found");
}

/// With MOODGRAD_MINILM_DIR pointing at the real all-MiniLM-L6-v2 folder: its own tokenizer gives
/// the ids of fixture (c). Skipped without it, a failure then under MOODGRAD_REQUIRE_MINILM=1.
#[path = "minilm_common/mod.rs"]
mod minilm_common;

#[test]
fn minilm_dir_from_env_matches_reference_ids() {
    let Some(dir) = minilm_common::minilm_dir() else { return };
    let (t, meta) = read_st(&fixtures().join("minilm_reference.safetensors"));
    let texts: Vec<String> = serde_json::from_str(&meta["texts"]).unwrap();
    let max_len: usize = meta["max_len"].parse().unwrap();
    let model = moodgrad::text::hf::HfModelDir::open(&dir).unwrap();
    let tok = model.tokenizer().unwrap();
    let b = EncodedBatch::stack(&tok.encode_batch(&texts, max_len).unwrap()).unwrap();
    assert_eq!(b.input_ids, t["input_ids"].i64s());
    assert_eq!(b.attention_mask, t["attention_mask"].i64s());
    assert!(b.token_type_ids.iter().all(|&x| x == 0));
    let plan = model.plan().unwrap();
    assert_eq!(plan.load.len(), 103);
    assert_eq!(plan.unused.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["embeddings.position_ids"]);
    println!("{}: 12 texts' ids match, 103 tensors planned", dir.display());
}
