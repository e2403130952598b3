//! The counting allocator's peak for whole MODEL_5 training steps on the CPU: the audio tower
//! (one conv per block, SE) on [B, 1, 128, 1292] spectrograms, the lyrics tower (bert-base shape,
//! random weights, fully fine-tuned, dropout on) on [B, 512] tokens, the head, MSE, backward,
//! gradient clipping and Adam (three groups, as the seed). Prints the peak of the second step (the
//! first allocates Adam's moments) at each batch and the linear extrapolation to batch 16.
//! `cargo run --release --example model5_memory -- 2 4` (batch sizes).

use moodgrad::backend::Memory;
use moodgrad::backend::cpu::Cpu;
use moodgrad::nn::text::{Pooling, TextEncoder, TokenBatch, pool};
use moodgrad::nn::{AttentionKind, ModelConfig, SeedNet};
use moodgrad::ops;
use moodgrad::optim::{Adam, AdamConfig, ParamGroup, clip_coefficient, grad_norm};
use moodgrad::params::ParamStore;
use moodgrad::rng::Rng;
use moodgrad::tape::Tape;
use moodgrad::tensor::Tensor;
use moodgrad::text::hf::{Activation, EncoderConfig, Family};
use std::time::Instant;

type B = Cpu<f32>;
const SEQ: usize = 512;

fn bert_base() -> EncoderConfig {
    EncoderConfig {
        family: Family::Bert,
        vocab_size: 30522,
        hidden: 768,
        layers: 12,
        heads: 12,
        intermediate: 3072,
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

fn mib(b: usize) -> f64 {
    b as f64 / 1048576.0
}

/// Peak bytes of the second of two steps at batch `bsz`, and the bytes live between steps.
fn peak(bsz: usize) -> (usize, usize) {
    let be = B::new();
    let mut store = ParamStore::new(be.clone());
    let mut rng = Rng::new(1);
    let net = SeedNet::new(ModelConfig::preset("model5", AttentionKind::Se).unwrap(), &mut store, &mut rng).unwrap();
    let enc = TextEncoder::new(&mut store, "lyrics_tower", &bert_base(), &mut rng).unwrap();
    // The pooler is unused by [CLS] pooling: frozen, as LyricsTower::set_mode leaves it.
    for (w, b) in enc.pooler.iter().map(|p| (p.0, p.1)) {
        store.set_trainable(w, false);
        store.set_trainable(b, false);
    }
    let group = |name: &str, prefix: &str, lr: f64| ParamGroup {
        name: name.into(),
        prefixes: vec![prefix.into()],
        lr,
        weight_decay: 0.0,
    };
    let mut adam = Adam::with_groups(
        AdamConfig { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, decoupled: false },
        vec![
            group("audio", "audio_tower.", 1e-3),
            group("bert", "lyrics_tower.", 1e-5),
            group("head", "classifier_head.", 1e-3),
        ],
    );
    let audio: Vec<f64> = (0..bsz * 128 * 1292).map(|_| rng.normal()).collect();
    let audio = Tensor::from_f64(&be, &[bsz, 1, 128, 1292], &audio).unwrap();
    let target = Tensor::from_f64(&be, &[bsz, 2], &vec![0.5; bsz * 2]).unwrap();
    let ids: Vec<u32> =
        (0..bsz * SEQ).map(|i| if i % SEQ == 0 { 101 } else { 1000 + rng.below(29000) as u32 }).collect();
    let tb = TokenBatch::new(bsz, SEQ, ids, vec![1; bsz * SEQ], vec![0; bsz * SEQ]).unwrap();
    let mut result = (0, 0);
    for step in 0..2 {
        let t = Instant::now();
        be.reset_peak();
        store.zero_grad();
        let mut tape = Tape::new(be.clone());
        let h = enc.forward(&mut tape, &store, &tb, true, step).unwrap();
        let lyr = pool(&mut tape, &store, &enc, &h, &tb, Pooling::Cls).unwrap();
        drop(h);
        let a = tape.input(audio.clone(), false);
        let y = tape.input(target.clone(), false);
        let out = net.forward(&mut tape, &mut store, &a, &lyr, true, step).unwrap();
        drop((a, lyr));
        let loss = ops::mse_loss(&mut tape, &out.pred, &y).unwrap();
        drop(out);
        tape.backward(&loss, &mut store).unwrap();
        let norm = grad_norm(&store).unwrap();
        adam.step(&mut store, clip_coefficient(norm, 1.0)).unwrap();
        result = (be.memory().peak_bytes, be.memory().live_bytes);
        eprintln!("batch {bsz} step {}: peak {:.1} MiB, {:.1} s", step + 1, mib(result.0), t.elapsed().as_secs_f64());
    }
    result
}

fn main() {
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.len() >= 2 { sizes } else { vec![2, 4] };
    let peaks: Vec<(usize, usize, usize)> = sizes.iter().map(|&b| (b, peak(b))).map(|(b, (p, l))| (b, p, l)).collect();
    for &(b, p, live) in &peaks {
        println!(
            "MODEL_5 step, batch {b}: peak {:.1} MiB ({:.2} GiB); live between steps {:.1} MiB",
            mib(p),
            mib(p) / 1024.0,
            mib(live)
        );
    }
    let (b0, p0, _) = peaks[0];
    let (b1, p1, _) = peaks[peaks.len() - 1];
    let per = (p1 as f64 - p0 as f64) / (b1 - b0) as f64;
    let fixed = p0 as f64 - per * b0 as f64;
    let at16 = fixed + 16.0 * per;
    println!(
        "linear fit: {:.1} MiB fixed (weights, gradients, Adam moments) + {:.1} MiB per sample → batch 16: {:.2} GiB",
        fixed / 1048576.0,
        per / 1048576.0,
        at16 / 1073741824.0
    );
}
