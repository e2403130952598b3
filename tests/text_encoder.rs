//! The encoder against transformers: the tiny random BERT, DistilBERT and RoBERTa of
//! tests/fixtures/text/models (2 layers, hidden 32, 4 heads), a padded batch of 3 texts at
//! max_len 24, loaded from their folders as they are. Compared: the last hidden state, [CLS], the
//! masked mean, the pooler output, and every parameter's gradient of loss = Σ [CLS]·R.
//!
//! Error measure: max |ours − reference| over a tensor, divided by the reference tensor's largest
//! magnitude (relative to the tensor's scale, what `f32_vs_f64_max_rel` in the fixtures measures).
//! For gradients the denominator is floored at 1% of the largest gradient of the whole model: the
//! attention key biases and the pooler have true gradients of exactly 0 (softmax ignores a shift
//! shared by every key; the loss does not use the pooler), which f64 shows as ~1e-16 noise and f32
//! as ~1e-7, so a relative error there is meaningless.
//!
//! Tolerances:
//! * f64 engine vs transformers' f64 (model.double() of the same weights): 1e-9. Both compute the
//!   same formulas in double with different summation orders: ~1e-15 of the scale expected; any
//!   semantic difference (a mask, an eps, a position offset) is ≥ 1e-6.
//! * f32 engine vs transformers' f64: 1e-5 for outputs and 1e-4 for gradients
//!   (transformers' own f32 is within 3e-6 of its f64, `f32_vs_f64_max_rel`).
//! * sim (the CUDA kernels on the host) vs the f32 CPU backend: 1e-5 / 1e-4 likewise: both are f32
//!   with double reductions; they differ by summation order, expf ulps and, on a GPU, fused
//!   multiply-adds.

mod text_common;

use moodgrad::backend::cpu::Cpu;
use moodgrad::backend::prelude::*;
use moodgrad::device::{Device, DeviceChoice};
use moodgrad::nn::text::{Pooling, TextEncoder, TokenBatch, load_hf_weights, pool};
use moodgrad::ops;
use moodgrad::params::ParamStore;
use moodgrad::rng::Rng;
use moodgrad::tape::Tape;
use moodgrad::tensor::Tensor;
use moodgrad::text::hf::HfModelDir;
use std::collections::BTreeMap;
use text_common::{fixtures, read_st};

const PREFIX: &str = "lyrics_tower";

struct Outputs {
    /// name → values, for hidden, cls, masked_mean, pooler_output.
    values: BTreeMap<String, Vec<f64>>,
    /// family parameter name (no prefix) → gradient.
    grads: BTreeMap<String, Vec<f64>>,
}

fn batch_of(refs: &BTreeMap<String, text_common::Tensor>) -> TokenBatch {
    let ids = refs["input_ids"].i64s();
    let mask = refs["attention_mask"].i64s();
    let (b, l) = (refs["input_ids"].shape[0], refs["input_ids"].shape[1]);
    let types = refs.get("token_type_ids").map(|t| t.i64s());
    TokenBatch::from_i64(b, l, &ids, &mask, types.as_deref()).unwrap()
}

/// Loads the family's folder into a store on `be`, runs the forward (eval) and the backward of
/// Σ cls·R.
fn run<B: Backend>(be: B, family: &str) -> Outputs {
    let dir = HfModelDir::open(&fixtures().join("models").join(family)).unwrap();
    let (refs, _) = read_st(&fixtures().join(format!("models/{family}_reference.safetensors")));
    let batch = batch_of(&refs);
    let mut store = ParamStore::new(be.clone());
    let enc = TextEncoder::new(&mut store, PREFIX, &dir.config, &mut Rng::new(7)).unwrap();
    let summary = load_hf_weights(&mut store, &enc, &dir).unwrap();
    assert!(summary.missing.is_empty(), "{family}: missing {:?}", summary.missing);
    let mut tape = Tape::new(be.clone());
    let hidden = enc.forward(&mut tape, &store, &batch, false, 0).unwrap();
    let mut values = BTreeMap::new();
    values.insert("last_hidden_state".to_string(), hidden.value().to_f64(&be).unwrap());
    let mut kinds = vec![(Pooling::Mean, "masked_mean")];
    if enc.pooler.is_some() {
        kinds.push((Pooling::Pooler, "pooler_output"));
    }
    for (p, name) in kinds {
        let mut t2 = Tape::no_grad(be.clone());
        let h2 = enc.forward(&mut t2, &store, &batch, false, 0).unwrap();
        let v = pool(&mut t2, &store, &enc, &h2, &batch, p).unwrap();
        values.insert(name.to_string(), v.value().to_f64(&be).unwrap());
    }
    let cls = pool(&mut tape, &store, &enc, &hidden, &batch, Pooling::Cls).unwrap();
    drop(hidden);
    values.insert("cls".to_string(), cls.value().to_f64(&be).unwrap());
    let r = refs["R"].f32s().iter().map(|&v| v as f64).collect::<Vec<_>>();
    let n = r.len();
    let flat = ops::reshape(&mut tape, &cls, &[1, n]).unwrap();
    let rv = tape.constant(Tensor::from_f64(&be, &[1, n], &r).unwrap());
    let loss = ops::linear(&mut tape, &flat, &rv, None).unwrap();
    let loss = ops::reshape(&mut tape, &loss, &[]).unwrap();
    tape.backward(&loss, &mut store).unwrap();
    let mut grads = BTreeMap::new();
    for id in enc.params() {
        let name = store.name(id).strip_prefix("lyrics_tower.").unwrap().to_string();
        let g =
            store.grad(id).map(|g| be.download_f64(g).unwrap()).unwrap_or_else(|| vec![0.0; store.value(id).numel()]);
        grads.insert(name, g);
    }
    Outputs { values, grads }
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0f64, |m, x| m.max(x.abs()))
}

/// max |a − b| / max(max |b|, floor).
fn err(a: &[f64], b: &[f64], floor: f64) -> f64 {
    assert_eq!(a.len(), b.len());
    let d = a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    d / max_abs(b).max(floor)
}

/// F32 or F64 values as f64.
fn floats(t: &text_common::Tensor) -> Vec<f64> {
    match t.dtype {
        safetensors::Dtype::F64 => t.bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
        _ => t.f32s().iter().map(|&v| v as f64).collect(),
    }
}

fn reference(family: &str, dtype: &str) -> Outputs {
    let (refs, _) = read_st(&fixtures().join(format!("models/{family}_reference.safetensors")));
    let get = |k: &str| -> Vec<f64> { floats(&refs[&format!("{dtype}.{k}")]) };
    let mut values = BTreeMap::new();
    for k in ["last_hidden_state", "cls", "masked_mean", "pooler_output"] {
        if refs.contains_key(&format!("{dtype}.{k}")) {
            values.insert(k.to_string(), get(k));
        }
    }
    let grads = refs
        .keys()
        .filter_map(|k| k.strip_prefix(&format!("{dtype}.grad.")).map(|n| (n.to_string(), get(&format!("grad.{n}")))))
        .collect();
    Outputs { values, grads }
}

/// Compares, prints and returns the worst (output error, gradient error).
fn compare(what: &str, ours: &Outputs, want: &Outputs) -> (f64, f64) {
    let mut worst_out = 0.0f64;
    for (k, w) in &want.values {
        let e = err(&ours.values[k], w, 0.0);
        println!("{what}: {k:<18} {e:.2e}");
        worst_out = worst_out.max(e);
    }
    assert_eq!(ours.grads.keys().collect::<Vec<_>>(), want.grads.keys().collect::<Vec<_>>(), "{what}: parameter names");
    let floor = 0.01 * want.grads.values().map(|g| max_abs(g)).fold(0.0, f64::max);
    let mut worst_grad = (0.0f64, String::new());
    for (k, w) in &want.grads {
        let e = err(&ours.grads[k], w, floor);
        if e > worst_grad.0 {
            worst_grad = (e, k.clone());
        }
    }
    println!("{what}: worst gradient {:.2e} ({}) over {} tensors", worst_grad.0, worst_grad.1, want.grads.len());
    (worst_out, worst_grad.0)
}

fn goldens(family: &str) {
    // f32 inputs stored in the fixture are what both sides used; the f64 reference ran on the
    // same (f32-valued) weights.
    let f64_ref = reference(family, "f64");
    let ours64 = run(Cpu::<f64>::new(), family);
    let (o, g) = compare(&format!("{family} f64"), &ours64, &f64_ref);
    assert!(o <= 1e-9 && g <= 1e-9, "{family} f64: outputs {o:.2e}, gradients {g:.2e} above 1e-9");
    let ours32 = run(Cpu::<f32>::new(), family);
    let (o, g) = compare(&format!("{family} f32"), &ours32, &f64_ref);
    assert!(o <= 1e-5, "{family} f32: outputs {o:.2e} above 1e-5");
    assert!(g <= 1e-4, "{family} f32: gradients {g:.2e} above 1e-4");
    // And against transformers' own f32 run.
    let (o, g) = compare(&format!("{family} f32 vs transformers f32"), &ours32, &reference(family, "f32"));
    assert!(o <= 1e-5 && g <= 1e-4, "{family}: vs transformers f32: {o:.2e} / {g:.2e}");
}

#[test]
fn bert_matches_transformers() {
    goldens("bert");
}

#[test]
fn distilbert_matches_transformers() {
    goldens("distilbert");
}

#[test]
fn roberta_matches_transformers() {
    goldens("roberta");
}

#[test]
fn sim_runs_the_encoder_like_the_cpu() {
    let Device::Kernels(sim) = Device::open(DeviceChoice::Sim).unwrap() else { unreachable!() };
    for family in ["bert", "distilbert", "roberta"] {
        let cpu = run(Cpu::<f32>::new(), family);
        let dev = run(sim.clone(), family);
        let (o, g) = compare(&format!("{family} sim vs cpu f32"), &dev, &cpu);
        assert!(o <= 1e-5 && g <= 1e-4, "{family}: sim vs CPU {o:.2e} / {g:.2e}");
    }
}
