//! The encoder's ops against central finite differences in f64, on odd sizes (as
//! tests/ops_gradcheck.rs): batched products in every transpose combination, the scaled masked
//! softmax, the fused attention core (with and without dropout), head split/merge, embedding
//! gather, narrow, LayerNorm, GELU's tanh form, dropout.
//!
//! Tolerance 1e-6 relative, as tests/ops_gradcheck.rs: h = 1e-5 central differences in f64 carry
//! truncation ~h²·f''' ≈ 1e-10 and rounding ~1e-16/h ≈ 1e-11 errors; an index or formula error is O(1).

use moodgrad::backend::Unary;
use moodgrad::backend::cpu::Cpu;
use moodgrad::error::Result;
use moodgrad::gradcheck::check_op;
use moodgrad::ops::{self, AttnDropout};
use moodgrad::params::ParamStore;
use moodgrad::tape::{Tape, Var};
use moodgrad::tensor::Tensor;

const H: f64 = 1e-5;
const TOL: f64 = 1e-6;
type C = Cpu<f64>;

fn check(shapes: &[&[usize]], what: &str, f: impl Fn(&mut Tape<C>, &[Var<C>]) -> Result<Var<C>>) {
    let shapes: Vec<Vec<usize>> = shapes.iter().map(|s| s.to_vec()).collect();
    let errs = check_op(&shapes, 23, H, f).unwrap();
    println!("{what}: max relative error per input {:?}", errs.iter().map(|e| format!("{e:.1e}")).collect::<Vec<_>>());
    for (i, e) in errs.iter().enumerate() {
        assert!(*e < TOL, "{what}: input {i} max relative error {e:.3e} above {TOL:.0e} (all: {errs:?})");
    }
}

/// [batch, k] key mask: sample 0 keeps its first keys, sample 1 all but the last, sample 2 none
/// (a fully masked row: zero weights, zero gradient).
fn key_mask(be: &C, batch: usize, k: usize) -> Tensor<C> {
    let mut m = vec![0.0; batch * k];
    for b in 0..batch {
        let keep = match b % 3 {
            0 => k.div_ceil(2),
            1 => k - 1,
            _ => 0,
        };
        for j in 0..keep {
            m[b * k + j] = 1.0;
        }
    }
    Tensor::from_f64(be, &[batch, k], &m).unwrap()
}

#[test]
fn bmm_every_transpose_and_scale() {
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let a: &[usize] = if ta { &[2, 3, 5, 4] } else { &[2, 3, 4, 5] };
        let b: &[usize] = if tb { &[2, 3, 7, 5] } else { &[2, 3, 5, 7] };
        check(&[a, b], &format!("bmm ta {ta} tb {tb}"), |t, v| ops::bmm(t, &v[0], &v[1], ta, tb, 0.37));
    }
}

#[test]
fn masked_softmax_with_partial_and_full_masks() {
    check(&[&[3, 2, 5, 7]], "masked softmax", |t, v| {
        let m = key_mask(&t.backend, 3, 7);
        ops::masked_softmax(t, &v[0], &m, 0.61)
    });
}

#[test]
fn attention_core_with_and_without_dropout() {
    // lq ≠ lk and d ≠ dv so every bmm of the backward is exercised with distinct sizes.
    let shapes: [&[usize]; 3] = [&[3, 2, 5, 4], &[3, 2, 6, 4], &[3, 2, 6, 3]];
    check(&shapes, "attention", |t, v| {
        let m = key_mask(&t.backend, 3, 6);
        ops::attention(t, &v[0], &v[1], &v[2], &m, 0.5, None)
    });
    check(&shapes, "attention + dropout", |t, v| {
        let m = key_mask(&t.backend, 3, 6);
        ops::attention(t, &v[0], &v[1], &v[2], &m, 0.5, Some(AttnDropout { p: 0.3, seed: 99 }))
    });
}

#[test]
fn head_split_and_merge() {
    check(&[&[2, 5, 12]], "split_heads", |t, v| ops::split_heads(t, &v[0], 3));
    check(&[&[2, 3, 5, 4]], "merge_heads", |t, v| ops::merge_heads(t, &v[0]));
}

#[test]
fn embedding_gather_with_repeated_ids() {
    let ids = [3u32, 0, 3, 6, 1, 3, 0, 2, 6];
    check(&[&[7, 5]], "embedding", |t, v| ops::embedding(t, &v[0], &ids, None));
}

#[test]
fn embedding_padding_index_gets_no_gradient() {
    // With padding_idx the pad row's gradient is 0 (PyTorch's rule), every other row as without.
    let be = C::new();
    let ids = [3u32, 0, 3, 6, 1, 0, 0, 2];
    let table: Vec<f64> = (0..35).map(|i| (i as f64 * 0.37).sin()).collect();
    let grad = |pad: Option<u32>| -> Vec<f64> {
        let mut tape = Tape::new(be.clone());
        let w = tape.input(Tensor::from_f64(&be, &[7, 5], &table).unwrap(), true);
        let y = ops::embedding(&mut tape, &w, &ids, pad).unwrap();
        let seed: Vec<f64> = (0..40).map(|i| 1.0 + i as f64).collect();
        let g = tape.backward_from(&y, be.upload_f64(&seed).unwrap(), &mut ParamStore::new(be.clone())).unwrap();
        be.download_f64(g.get(&w).unwrap()).unwrap()
    };
    use moodgrad::backend::Memory;
    let (with, without) = (grad(Some(0)), grad(None));
    assert!(with[..5].iter().all(|&g| g == 0.0), "pad row: {:?}", &with[..5]);
    assert!(without[..5].iter().any(|&g| g != 0.0));
    assert_eq!(with[5..], without[5..]);
    // Row 0 without padding: positions 1, 5, 6 → seeds 6..10 + 26..30 + 31..35.
    assert_eq!(without[0], 6.0 + 26.0 + 31.0);
}

#[test]
fn narrow_middle_axis() {
    check(&[&[2, 7, 3]], "narrow", |t, v| ops::narrow(t, &v[0], 1, 2, 4));
    check(&[&[3, 5]], "narrow first row", |t, v| ops::narrow(t, &v[0], 0, 0, 1));
}

#[test]
fn layer_norm_all_inputs() {
    // eps 1e-5 keeps the normalisation well conditioned for N(0,1) rows of 9.
    check(&[&[4, 3, 9], &[9], &[9]], "layer_norm", |t, v| ops::layer_norm(t, &v[0], &v[1], &v[2], 1e-5));
    // Over 64 rows: the γ/β gradients add several fixed-size chunks.
    check(&[&[130, 5], &[5], &[5]], "layer_norm 130 rows", |t, v| ops::layer_norm(t, &v[0], &v[1], &v[2], 1e-5));
}

#[test]
fn gelu_tanh_and_dropout() {
    check(&[&[3, 7, 5]], "gelu tanh", |t, v| ops::unary(t, Unary::GeluTanh, &v[0]));
    check(&[&[3, 7, 5]], "dropout", |t, v| ops::dropout(t, &v[0], 0.4, true, 1234));
}
