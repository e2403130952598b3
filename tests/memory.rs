//! The tape's memory model, measured with the backend's counting allocator (no timing): a training
//! step keeps only what its backward reads and frees it as backward runs; an evaluation forward
//! holds no more than two activations (plus a convolution's workspace) beside the weights.

use moodgrad::backend::ConvGeom;
use moodgrad::backend::cpu::Cpu;
use moodgrad::backend::prelude::*;
use moodgrad::nn::{AttentionKind, ModelConfig, SeedNet};
use moodgrad::ops;
use moodgrad::params::ParamStore;
use moodgrad::rng::Rng;
use moodgrad::tape::Tape;
use moodgrad::tensor::Tensor;
use moodgrad::train::Batch;

type B = Cpu<f32>;

const N: usize = 2;
const H: usize = 32;
const W: usize = 48;
const CHANNELS: [usize; 4] = [8, 16, 32, 64];
/// Everything the saved-value bound does not itemise: BatchNorm's per-channel mean and inverse
/// std, the SE block's squeezed/hidden/gate vectors and the head's [2, ≤ 256] activations. Each is
/// at most a few KiB at these sizes; 64 KiB is an order of magnitude above their sum.
const SMALL: usize = 64 << 10;

fn setup() -> (SeedNet, ParamStore<B>, Batch<B>) {
    let mut cfg = ModelConfig::preset("model3", AttentionKind::Se).unwrap();
    cfg.channels = CHANNELS.to_vec();
    cfg.lyrics_dim = 6;
    let be = B::new();
    let mut store = ParamStore::new(be.clone());
    let net = SeedNet::new(cfg, &mut store, &mut Rng::new(1)).unwrap();
    let mut r = Rng::new(2);
    let v = |r: &mut Rng, k: usize| -> Vec<f64> { (0..k).map(|_| r.normal()).collect() };
    let batch = Batch::with_vectors(
        Tensor::from_f64(&be, &[N, 1, H, W], &v(&mut r, N * H * W)).unwrap(),
        Tensor::from_f64(&be, &[N, 6], &v(&mut r, N * 6)).unwrap(),
        Tensor::from_f64(&be, &[N, 2], &[0.2, 0.7, 0.6, 0.4]).unwrap(),
    );
    (net, store, batch)
}

/// (elements of each block's conv output, spatial size after its pool), block by block.
fn blocks() -> Vec<(usize, usize, usize, usize)> {
    let (mut h, mut w, mut c_in) = (H, W, 1);
    let mut out = Vec::new();
    for (i, &c) in CHANNELS.iter().enumerate() {
        out.push((c_in, c, h, w));
        c_in = c;
        if i + 1 < CHANNELS.len() {
            (h, w) = (h / 2, w / 2);
        }
    }
    out
}

fn conv_geom(c_in: usize, c: usize, h: usize, w: usize) -> ConvGeom {
    ConvGeom { n: N, c_in, h, w, c_out: c, kh: 3, kw: 3, stride: 1, pad: 1 }
}

/// What the backward of each op of the tower reads, in bytes, beyond the weights and the batch
/// (which are shared, not copied). Fused units (the default): per block the conv output z (f32)
/// and nothing else (the ReLU mask and the pool's arg-max are recomputed from z), plus each later
/// unit's input (the previous block's pooled output, f32); the folded SE + pool saves no map.
/// Unfused: also the ReLU mask (1 byte per element) and the pool's window positions (1 byte per
/// pooled element); the last block's extra 4 bytes per element are headroom left from when the
/// SE block saved its input.
fn saved_bound(fused: bool) -> usize {
    let bs = blocks();
    let mut bytes = 0;
    for (i, &(_, c, h, w)) in bs.iter().enumerate() {
        let e = N * c * h * w;
        bytes += 4 * e;
        let pooled = N * c * (h / 2) * (w / 2);
        match (fused, i + 1 < bs.len()) {
            (true, true) => bytes += 4 * pooled,
            (true, false) => {}
            (false, true) => bytes += e + pooled + 4 * pooled,
            (false, false) => bytes += e + 4 * e,
        }
    }
    bytes + SMALL
}

fn largest_activation() -> usize {
    blocks().iter().map(|&(_, c, h, w)| 4 * N * c * h * w).max().unwrap()
}

fn max_workspace() -> usize {
    blocks().iter().map(|&(ci, c, h, w)| B::conv_workspace_bytes(&conv_geom(ci, c, h, w))).max().unwrap()
}

#[test]
fn a_training_step_keeps_what_backward_reads_and_frees_it_as_backward_runs() {
    for fused in [true, false] {
        training_step_memory(fused);
    }
}

fn training_step_memory(fused: bool) {
    let (mut net, mut store, batch) = setup();
    net.set_fused_units(fused);
    let be = store.backend.clone();
    let params: usize = store.param_ids().iter().map(|&id| 4 * store.value(id).numel()).sum();
    let live0 = be.memory().live_bytes;
    be.reset_peak();
    let mut tape = Tape::new(be.clone());
    let a = tape.input(batch.audio.clone().unwrap(), false);
    let l = tape.input(batch.lyrics_vectors().unwrap().clone(), false);
    let t = tape.input(batch.target.clone().unwrap(), false);
    let out = net.forward(&mut tape, &mut store, &a, &l, true, 0).unwrap();
    let loss = ops::mse_loss(&mut tape, &out.pred, &t).unwrap();
    drop(out);
    let saved = be.memory().live_bytes - live0;
    let bound = saved_bound(fused);
    // The old tape kept every intermediate: per block the conv, BN and ReLU outputs in f32, the
    // pool's output and its u32 arg-max (a quarter of the elements each), and the SE output.
    let kept_everything: usize = blocks().iter().map(|&(_, c, h, w)| (12 + 2) * N * c * h * w).sum::<usize>()
        + 4 * N * CHANNELS[3] * blocks()[3].2 * blocks()[3].3;
    assert!(
        saved <= bound,
        "fused {fused}: the tape holds {saved} B after the forward; the ops' backwards read at most {bound} B"
    );
    eprintln!("fused units {fused}: {saved} B saved after the forward (bound {bound} B)");
    assert!(
        saved * 100 < 55 * kept_everything,
        "{saved} B saved: not much below keeping everything ({kept_everything} B)"
    );
    tape.backward(&loss, &mut store).unwrap();
    drop(loss);
    let m = be.memory();
    // After backward only the parameter gradients remain beside what was live before.
    assert_eq!(
        m.live_bytes,
        live0 + params,
        "backward left {} B behind",
        m.live_bytes as i64 - (live0 + params) as i64
    );
    // At no point more than the saved values, the gradients, two activations and a workspace.
    let peak = m.peak_bytes - live0;
    let limit = saved + params + 2 * largest_activation() + max_workspace();
    assert!(peak <= limit, "peak {peak} B above {limit} B (saved {saved}, grads {params})");
}

#[test]
fn an_evaluation_forward_holds_two_activations_at_most() {
    let (net, mut store, batch) = setup();
    let be = store.backend.clone();
    let live0 = be.memory().live_bytes;
    be.reset_peak();
    let mut tape = Tape::no_grad(be.clone());
    let a = tape.input(batch.audio.clone().unwrap(), false);
    let l = tape.input(batch.lyrics_vectors().unwrap().clone(), false);
    let out = net.forward(&mut tape, &mut store, &a, &l, false, 0).unwrap();
    let peak = be.memory().peak_bytes - live0;
    // An op's input and output are live together, and a convolution adds its workspace; nothing
    // else may be: no value outlives its last use.
    let limit = 2 * largest_activation() + max_workspace() + SMALL;
    assert!(peak <= limit, "evaluation peaked {peak} B above the weights, limit {limit} B");
    drop(out);
    assert!(be.memory().live_bytes - live0 <= SMALL, "values outlived the forward");
    // A recording tape holds its saved values after the same forward: the test can tell them apart.
    let mut tape = Tape::new(be.clone());
    let a = tape.input(batch.audio.clone().unwrap(), true);
    let _out = net.forward(&mut tape, &mut store, &a, &l, true, 0).unwrap();
    assert!(be.memory().live_bytes - live0 > largest_activation(), "a recording tape should hold its saved values");
}
