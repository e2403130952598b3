//! The lyrics encoder on the CPU at sequence 512: forward (no grad, eval) and forward + backward
//! (train mode with dropout, every parameter trainable) for the bert-base shape and MiniLM's
//! (random weights; the shapes are what costs). Throughput is in tokens; each benchmark also prints
//! the counting allocator's peak bytes above the model's own for one iteration.
//! tools/bench_torch_encoder.py measures PyTorch the same way (docs/perf-encoder.md).
//!
//! `MOODGRAD_BENCH_BATCH` (default 1) sets the batch; `MOODGRAD_BENCH_MODELS` (default
//! `bert-base,minilm`) which shapes run.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use moodgrad::backend::Memory;
use moodgrad::backend::cpu::Cpu;
use moodgrad::nn::text::{Pooling, TextEncoder, TokenBatch, pool};
use moodgrad::ops;
use moodgrad::params::ParamStore;
use moodgrad::rng::Rng;
use moodgrad::tape::Tape;
use moodgrad::tensor::Tensor;
use moodgrad::text::hf::{Activation, EncoderConfig, Family};
use std::time::Duration;

type B = Cpu<f32>;
const SEQ: usize = 512;

/// bert-base-uncased's and all-MiniLM-L6-v2's shapes.
pub fn shape(name: &str) -> EncoderConfig {
    let (vocab, hidden, layers, heads, inter) = match name {
        "bert-base" => (30522, 768, 12, 12, 3072),
        "minilm" => (30522, 384, 6, 12, 1536),
        _ => panic!("unknown shape {name}"),
    };
    EncoderConfig {
        family: Family::Bert,
        vocab_size: vocab,
        hidden,
        layers,
        heads,
        intermediate: inter,
        max_positions: 512,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        activation: Activation::Gelu,
        pad_token_id: 0,
        position_offset: 0,
        has_pooler: true,
        hidden_dropout: 0.1,
        attention_dropout: 0.1,
    }
}

/// A full-length batch (no padding: every token counts) of random ids.
pub fn batch(b: usize, vocab: usize, rng: &mut Rng) -> TokenBatch {
    let ids: Vec<u32> =
        (0..b * SEQ).map(|i| if i % SEQ == 0 { 101 } else { 1000 + rng.below(vocab - 1000) as u32 }).collect();
    TokenBatch::new(b, SEQ, ids, vec![1; b * SEQ], vec![0; b * SEQ]).unwrap()
}

fn encoder(c: &mut Criterion) {
    let bsz: usize = std::env::var("MOODGRAD_BENCH_BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let models = std::env::var("MOODGRAD_BENCH_MODELS").unwrap_or_else(|_| "bert-base,minilm".into());
    let mut g = c.benchmark_group("encoder_seq512");
    g.sample_size(10).measurement_time(Duration::from_secs(20)).warm_up_time(Duration::from_secs(2));
    g.throughput(Throughput::Elements((bsz * SEQ) as u64));
    for name in models.split(',') {
        let be = B::new();
        let cfg = shape(name);
        let mut store = ParamStore::new(be.clone());
        let mut rng = Rng::new(1);
        let enc = TextEncoder::new(&mut store, "lyrics_tower", &cfg, &mut rng).unwrap();
        let tb = batch(bsz, cfg.vocab_size, &mut rng);
        let forward = |store: &ParamStore<B>| {
            let mut tape = Tape::no_grad(be.clone());
            let h = enc.forward(&mut tape, store, &tb, false, 0).unwrap();
            pool(&mut tape, store, &enc, &h, &tb, Pooling::Cls).unwrap()
        };
        let fwd_bwd = |store: &mut ParamStore<B>| {
            store.zero_grad();
            let mut tape = Tape::new(be.clone());
            let h = enc.forward(&mut tape, store, &tb, true, 7).unwrap();
            let cls = pool(&mut tape, store, &enc, &h, &tb, Pooling::Cls).unwrap();
            drop(h);
            let n = cls.value().numel();
            let flat = ops::reshape(&mut tape, &cls, &[1, n]).unwrap();
            let r = tape.constant(Tensor::from_f64(&be, &[1, n], &vec![1e-3; n]).unwrap());
            let loss = ops::linear(&mut tape, &flat, &r, None).unwrap();
            let loss = ops::reshape(&mut tape, &loss, &[]).unwrap();
            tape.backward(&loss, store).unwrap();
        };
        // Peaks above the model itself (weights; for the backward also the gradients, which PyTorch
        // keeps in .grad the same way).
        let base = be.memory().live_bytes;
        be.reset_peak();
        drop(forward(&store));
        let peak_fwd = be.memory().peak_bytes - base;
        be.reset_peak();
        fwd_bwd(&mut store);
        let peak_bwd = be.memory().peak_bytes - base;
        eprintln!(
            "{name} batch {bsz}: weights {:.1} MiB; peak above them: forward {:.1} MiB, forward+backward {:.1} MiB (gradients included)",
            base as f64 / 1048576.0,
            peak_fwd as f64 / 1048576.0,
            peak_bwd as f64 / 1048576.0
        );
        g.bench_function(format!("{name}_forward_b{bsz}"), |bch| bch.iter(|| forward(&store)));
        g.bench_function(format!("{name}_forward_backward_b{bsz}"), |bch| bch.iter(|| fwd_bwd(&mut store)));
    }
    g.finish();
}

criterion_group!(benches, encoder);
criterion_main!(benches);
