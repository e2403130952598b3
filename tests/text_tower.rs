//! The `LyricsTower` API the training loop uses: the built-in encoder (vocabulary learned from the
//! lyrics, saved as a Hugging Face folder that loads back to the same vectors), the training
//! modes (which parameters get gradients), the frozen vector cache, dropout on and off, and the
//! memory rule of a no-grad forward.

mod text_common;

use moodgrad::backend::Memory;
use moodgrad::backend::cpu::Cpu;
use moodgrad::nn::text::{BuiltinConfig, LyricsTower, Pooling, TowerMode};
use moodgrad::ops;
use moodgrad::params::ParamStore;
use moodgrad::tape::{Tape, Var};
use moodgrad::tensor::Tensor;
use text_common::{fixtures, tmp_dir};

type C = Cpu<f32>;

fn corpus() -> Vec<String> {
    std::fs::read_to_string(fixtures().join("corpus.txt")).unwrap().lines().map(str::to_string).collect()
}

fn small() -> BuiltinConfig {
    BuiltinConfig {
        vocab_size: 400,
        hidden: 32,
        layers: 3,
        heads: 4,
        intermediate: 48,
        max_positions: 64,
        dropout: 0.1,
    }
}

/// Σ of the pooled vectors (a scalar to back-propagate).
fn total(tape: &mut Tape<C>, v: &Var<C>) -> Var<C> {
    let n = v.value().numel();
    let flat = ops::reshape(tape, v, &[1, n]).unwrap();
    let ones = tape.constant(Tensor::from_f64(&tape.backend, &[1, n], &vec![1.0; n]).unwrap());
    let s = ops::linear(tape, &flat, &ones, None).unwrap();
    ops::reshape(tape, &s, &[]).unwrap()
}

#[test]
fn builtin_tower_trains_saves_and_loads_back() {
    let texts = corpus();
    let mut store = ParamStore::new(C::new());
    let tower = LyricsTower::builtin(&mut store, "lyrics_tower", &texts, &small(), Pooling::Cls, 32, 5).unwrap();
    assert_eq!(tower.hidden_size(), 32);
    assert!(tower.tokenizer.vocab_size() <= 400);
    assert_eq!(tower.mode(), TowerMode::Full);
    assert!(store.find("lyrics_tower.encoder.layer.2.attention.self.query.weight").is_some());
    let batch = tower.tokenize(&texts[..4]).unwrap();
    assert_eq!((batch.batch, batch.len), (4, 32));

    // Trained with the rest of the model: every encoder weight gets a gradient (not the pooler,
    // which [CLS] pooling does not use).
    let mut tape = Tape::new(store.backend.clone());
    let v = tower.forward(&mut tape, &store, &batch, true, 1).unwrap();
    assert_eq!(v.shape(), [4, 32]);
    let loss = total(&mut tape, &v);
    tape.backward(&loss, &mut store).unwrap();
    for id in tower.encoder.params() {
        let has = store.grad(id).is_some();
        assert_eq!(has, !store.name(id).contains("pooler"), "{}", store.name(id));
    }

    // Saved as a Hugging Face folder, it loads back through the HF path to the same vectors.
    let dir = tmp_dir("builtin-save");
    tower.save(&store, &dir).unwrap();
    let want = tower.encode(&store, &texts[..6], 4, &mut |_| {}).unwrap();
    let mut store2 = ParamStore::new(C::new());
    let (back, summary) =
        LyricsTower::from_hf(&mut store2, "lyrics_tower", dir.to_str().unwrap(), Pooling::Cls, 32).unwrap();
    assert!(summary.missing.is_empty() && summary.unused.is_empty(), "{}", summary.describe());
    assert_eq!(back.tokenizer.hash(), tower.tokenizer.hash());
    assert_eq!(back.encode(&store2, &texts[..6], 4, &mut |_| {}).unwrap(), want);
    // config.json + tokenizer.json alone (beside a run's checkpoint) rebuild the same encoder shape.
    let files = tmp_dir("builtin-files");
    tower.save_files(&files).unwrap();
    let mut store3 = ParamStore::new(C::new());
    let t3 = LyricsTower::builtin_from_files(&mut store3, "lyrics_tower", &files, Pooling::Cls, 32).unwrap();
    assert_eq!(t3.encoder.params().len(), tower.encoder.params().len());
    assert_eq!(t3.tokenizer.hash(), tower.tokenizer.hash());
}

#[test]
fn modes_choose_what_trains() {
    let texts = corpus();
    let mut store = ParamStore::new(C::new());
    let mut tower = LyricsTower::builtin(&mut store, "lyrics_tower", &texts, &small(), Pooling::Pooler, 32, 5).unwrap();
    let batch = tower.tokenize(&texts[..3]).unwrap();
    let grads_after = |tower: &LyricsTower, store: &mut ParamStore<C>| -> Vec<String> {
        store.zero_grad();
        let mut tape = Tape::new(store.backend.clone());
        let v = tower.forward(&mut tape, store, &batch, true, 3).unwrap();
        if !v.tracked() {
            return vec![];
        }
        let loss = total(&mut tape, &v);
        tape.backward(&loss, store).unwrap();
        tower
            .encoder
            .params()
            .into_iter()
            .filter(|&id| store.grad(id).is_some())
            .map(|id| store.name(id).to_string())
            .collect()
    };
    tower.set_mode(&mut store, TowerMode::FineTuneTop(1)).unwrap();
    let g = grads_after(&tower, &mut store);
    assert!(!g.is_empty());
    assert!(g.iter().all(|n| n.contains("encoder.layer.2.") || n.contains("pooler")), "{g:?}");
    assert!(g.iter().any(|n| n.contains("pooler")));
    tower.set_mode(&mut store, TowerMode::Frozen { dropout: false }).unwrap();
    assert!(grads_after(&tower, &mut store).is_empty());
    assert!(tower.set_mode(&mut store, TowerMode::FineTuneTop(4)).unwrap_err().to_string().contains("only 3"));
    tower.set_mode(&mut store, TowerMode::Full).unwrap();
    assert_eq!(grads_after(&tower, &mut store).len(), tower.encoder.params().len());
    assert_eq!("top:2".parse::<TowerMode>().unwrap(), TowerMode::FineTuneTop(2));
    assert!("half".parse::<TowerMode>().is_err());
}

#[test]
fn frozen_dropout_flag_and_vector_cache() {
    let texts = corpus();
    let mut store = ParamStore::new(C::new());
    let mut tower = LyricsTower::builtin(&mut store, "lyrics_tower", &texts, &small(), Pooling::Mean, 32, 5).unwrap();
    let batch = tower.tokenize(&texts[..2]).unwrap();
    let run = |tower: &LyricsTower, store: &ParamStore<C>, train: bool, seed: u64| -> Vec<f64> {
        let mut tape = Tape::no_grad(store.backend.clone());
        tower.forward(&mut tape, store, &batch, train, seed).unwrap().value().to_f64(&store.backend).unwrap()
    };
    tower.set_mode(&mut store, TowerMode::Frozen { dropout: false }).unwrap();
    assert_eq!(run(&tower, &store, true, 1), run(&tower, &store, false, 1), "frozen: dropout off even when training");
    tower.set_mode(&mut store, TowerMode::Frozen { dropout: true }).unwrap();
    assert_ne!(run(&tower, &store, true, 1), run(&tower, &store, false, 1), "the seed's frozen BERT ran its dropout");
    assert_ne!(run(&tower, &store, true, 1), run(&tower, &store, true, 2), "masks follow the seed");
    assert_eq!(run(&tower, &store, true, 1), run(&tower, &store, true, 1));
    assert!(!tower.uses_vector_cache());
    let root = tmp_dir("vcache");
    assert!(tower.frozen_vectors(&store, &texts[..3], &root, 2, &mut |_| {}).is_err());

    tower.set_mode(&mut store, TowerMode::Frozen { dropout: false }).unwrap();
    let some = &texts[..5];
    let mut encoded = 0;
    let first = tower.frozen_vectors(&store, some, &root, 2, &mut |n| encoded = n).unwrap();
    assert_eq!(encoded, 5);
    assert_eq!(first, tower.encode(&store, some, 2, &mut |_| {}).unwrap());
    // Other batch sizes trim the padding differently: the same vectors up to summation order.
    let other = tower.encode(&store, some, 3, &mut |_| {}).unwrap();
    let diff = first.iter().flatten().zip(other.iter().flatten()).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(diff < 1e-5, "batch 2 vs 3: {diff}");
    // The second time only the new lyrics are encoded; the rest come from the cache file.
    let more = &texts[3..8];
    let mut encoded = 0;
    let second = tower.frozen_vectors(&store, more, &root, 2, &mut |n| encoded = n).unwrap();
    assert_eq!(encoded, 3);
    assert_eq!(second[..2], first[3..]);
    let files: Vec<_> = std::fs::read_dir(&root).unwrap().flatten().collect();
    assert_eq!(files.len(), 1, "one cache file for one model key");
}

#[test]
fn no_grad_forward_keeps_nothing_and_tracked_forward_saves_probabilities_only_when_needed() {
    let texts = corpus();
    let be = C::new();
    let mut store = ParamStore::new(be.clone());
    let mut tower = LyricsTower::builtin(&mut store, "lyrics_tower", &texts, &small(), Pooling::Cls, 32, 5).unwrap();
    let batch = tower.tokenize(&texts[..8]).unwrap();
    let base = be.memory().live_bytes;
    let out_bytes = 8 * 32 * 4;
    // Frozen (every parameter untracked) on a recording tape: nothing is recorded, so after the
    // forward only its output is alive.
    tower.set_mode(&mut store, TowerMode::Frozen { dropout: false }).unwrap();
    for grad in [false, true] {
        let mut tape = if grad { Tape::new(be.clone()) } else { Tape::no_grad(be.clone()) };
        be.reset_peak();
        let v = tower.forward(&mut tape, &store, &batch, false, 0).unwrap();
        assert_eq!(be.memory().live_bytes - base, out_bytes, "grad tape {grad}: intermediates outlived the forward");
        drop((v, tape));
        assert_eq!(be.memory().live_bytes, base);
    }
    let peak_frozen = be.memory().peak_bytes - base;
    // Fine-tuning the top layer keeps that layer's activations (attention probabilities among
    // them) until the backward, and the frozen layers' none.
    tower.set_mode(&mut store, TowerMode::FineTuneTop(1)).unwrap();
    let mut tape = Tape::new(be.clone());
    let v = tower.forward(&mut tape, &store, &batch, false, 0).unwrap();
    let kept_top = be.memory().live_bytes - base;
    drop((v, tape));
    tower.set_mode(&mut store, TowerMode::Full).unwrap();
    let mut tape = Tape::new(be.clone());
    let v = tower.forward(&mut tape, &store, &batch, false, 0).unwrap();
    let kept_full = be.memory().live_bytes - base;
    drop((v, tape));
    println!("no-grad peak {peak_frozen} B; kept for backward: top layer {kept_top} B, whole encoder {kept_full} B");
    assert!(kept_top > out_bytes && kept_full > 2 * kept_top, "top {kept_top}, full {kept_full}");
}
