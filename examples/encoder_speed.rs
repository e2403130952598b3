//! Quick timing of the encoder at sequence 512 (tokens/s and the allocator's peak), for the
//! figures in docs/perf-encoder.md beside tools/bench_torch_encoder.py:
//! `cargo run --release --example encoder_speed -- bert-base 1 3` (shape, batch, repetitions).

use moodgrad::backend::Memory;
use moodgrad::backend::cpu::Cpu;
use moodgrad::nn::text::{Pooling, TextEncoder, TokenBatch, pool};
use moodgrad::ops;
use moodgrad::params::ParamStore;
use moodgrad::rng::Rng;
use moodgrad::tape::Tape;
use moodgrad::tensor::Tensor;
use moodgrad::text::hf::{Activation, EncoderConfig, Family};
use std::time::Instant;

type B = Cpu<f32>;
const SEQ: usize = 512;

fn shape(name: &str) -> EncoderConfig {
    let (hidden, layers, heads, inter) = match name {
        "bert-base" => (768, 12, 12, 3072),
        "minilm" => (384, 6, 12, 1536),
        _ => panic!("shape: bert-base or minilm"),
    };
    EncoderConfig {
        family: Family::Bert,
        vocab_size: 30522,
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

/// VmHWM (peak resident set) of this process, in KiB.
fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map_or("bert-base", String::as_str);
    let bsz: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(1);
    let reps: usize = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(3);
    let mode = args.get(4).map_or("both", String::as_str);
    let be = B::new();
    let cfg = shape(name);
    let mut store = ParamStore::new(be.clone());
    let mut rng = Rng::new(1);
    let enc = TextEncoder::new(&mut store, "lyrics_tower", &cfg, &mut rng).unwrap();
    let ids: Vec<u32> =
        (0..bsz * SEQ).map(|i| if i % SEQ == 0 { 101 } else { 1000 + rng.below(29000) as u32 }).collect();
    let tb = TokenBatch::new(bsz, SEQ, ids, vec![1; bsz * SEQ], vec![0; bsz * SEQ]).unwrap();
    let base = be.memory().live_bytes;
    let hwm0 = vm_hwm_kib();
    let tokens = (bsz * SEQ) as f64;
    if mode != "bwd" {
        let mut best = f64::MAX;
        be.reset_peak();
        for _ in 0..reps {
            let t = Instant::now();
            let mut tape = Tape::no_grad(be.clone());
            let h = enc.forward(&mut tape, &store, &tb, false, 0).unwrap();
            let v = pool(&mut tape, &store, &enc, &h, &tb, Pooling::Cls).unwrap();
            drop((h, v));
            best = best.min(t.elapsed().as_secs_f64());
        }
        let peak = be.memory().peak_bytes - base;
        println!(
            "{{\"impl\": \"moodgrad\", \"model\": \"{name}\", \"mode\": \"forward\", \"batch\": {bsz}, \"seq\": {SEQ}, \"threads\": {}, \"seconds\": {best:.4}, \"tokens_per_s\": {:.1}, \"peak_mib\": {:.1}, \"rss_hwm_delta_mib\": {:.1}}}",
            rayon::current_num_threads(),
            tokens / best,
            peak as f64 / 1048576.0,
            (vm_hwm_kib() - hwm0) as f64 / 1024.0
        );
    }
    if mode != "fwd" {
        let mut best = f64::MAX;
        be.reset_peak();
        for _ in 0..reps {
            let t = Instant::now();
            store.zero_grad();
            let mut tape = Tape::new(be.clone());
            let h = enc.forward(&mut tape, &store, &tb, true, 7).unwrap();
            let cls = pool(&mut tape, &store, &enc, &h, &tb, Pooling::Cls).unwrap();
            drop(h);
            let n = cls.value().numel();
            let flat = ops::reshape(&mut tape, &cls, &[1, n]).unwrap();
            let r = tape.constant(Tensor::from_f64(&be, &[1, n], &vec![1e-3; n]).unwrap());
            let loss = ops::linear(&mut tape, &flat, &r, None).unwrap();
            let loss = ops::reshape(&mut tape, &loss, &[]).unwrap();
            tape.backward(&loss, &mut store).unwrap();
            best = best.min(t.elapsed().as_secs_f64());
        }
        let peak = be.memory().peak_bytes - base;
        println!(
            "{{\"impl\": \"moodgrad\", \"model\": \"{name}\", \"mode\": \"forward_backward\", \"batch\": {bsz}, \"seq\": {SEQ}, \"threads\": {}, \"seconds\": {best:.4}, \"tokens_per_s\": {:.1}, \"peak_mib\": {:.1}, \"rss_hwm_delta_mib\": {:.1}}}",
            rayon::current_num_threads(),
            tokens / best,
            peak as f64 / 1048576.0,
            (vm_hwm_kib() - hwm0) as f64 / 1024.0
        );
    }
}
