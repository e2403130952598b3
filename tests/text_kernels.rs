//! The encoder families' primitives (`Attention`, `Sequence`, `LayerNorm`, GELU's tanh form, the
//! reworked cross-entropy backward) through the kernel backend's own launch code on the host SIMT
//! layer (and on CUDA when a GPU answers), against the f32 CPU backend, on odd shapes: rows not a
//! multiple of a block's 8 warps, key counts above and not a multiple of 32, a fully masked sample,
//! more LayerNorm rows than one γ/β chunk.
//!
//! Tolerances (relative to each output's largest magnitude), as tests/backend_kernels.rs:
//! * copies and gathers (head permutes, narrow, embedding forward): exact.
//! * embedding backward: exact — both sides add each row's tokens in the same order in double.
//! * softmax, LayerNorm, GELU: 1e-5 — f32 formulas with double sums; expf/tanhf differ by an ulp or
//!   two between glibc and CUDA, the double sums by summation order only.
//! * batched products: 1e-5 — sim runs the CPU's own GEMM (bit-identical); cuBLAS sums in another
//!   order: ≲ √k·2⁻²⁴ of the scale for k ≤ 64.
//! * cross-entropy backward over 1000 classes: 1e-5 (double throughout).

use moodgrad::backend::Precision;
use moodgrad::backend::cpu::Cpu;
use moodgrad::backend::kernel::KernelBackend;
use moodgrad::backend::prelude::*;
use moodgrad::backend::{BmmGeom, EmbedGeom, HeadsGeom, LayerNormGeom, NarrowGeom, RowsGeom, SoftmaxGeom, Unary};
use moodgrad::device::kernel_devices;
use moodgrad::ops::group_by_id;
use moodgrad::rng::Rng;

fn devices() -> Vec<KernelBackend> {
    // The text kernels have no convolution: the precision does not matter; FP32 names it.
    kernel_devices(Some(Precision::Fp32)).unwrap().into_iter().map(|(_, b)| b).collect()
}

fn randn(r: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| r.normal() as f32).collect()
}

fn close(what: &str, got: &[f32], want: &[f32], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1e-30f64, |m, v| m.max(v.abs() as f64));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let e = (*g as f64 - *w as f64).abs() / scale;
        assert!(e <= tol, "{what}[{i}]: {g} vs {w} (err {e:.2e} of scale {scale:.3e} > {tol:.0e})");
    }
}

/// Runs `f` on the CPU and on each kernel device, comparing every returned buffer.
macro_rules! same {
    ($what:expr, $tol:expr, |$b:ident, $up:ident, $idx:ident| $body:expr) => {{
        let cpu = Cpu::<f32>::new();
        let want: Vec<Vec<f32>> = {
            let $b = &cpu;
            let $up = |v: &[f32]| cpu.upload(v).unwrap();
            let $idx = |v: &[u32]| cpu.upload_index(v).unwrap();
            $body
        };
        for dev in devices() {
            let got: Vec<Vec<f32>> = {
                let $b = &dev;
                let $up = |v: &[f32]| dev.upload(v).unwrap();
                let $idx = |v: &[u32]| dev.upload_index(v).unwrap();
                $body
            };
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                close(&format!("{} on {} (output {k})", $what, dev.name()), g, w, $tol);
            }
        }
    }};
}

fn dl<B: Backend>(b: &B, x: &B::Buf) -> Vec<f32> {
    b.download_f64(x).unwrap().into_iter().map(|v| v as f32).collect()
}

#[test]
fn batched_products_every_transpose() {
    let mut r = Rng::new(11);
    let (batch, m, k, n) = (5, 7, 33, 9);
    let a = randn(&mut r, batch * m * k);
    let bv = randn(&mut r, batch * k * n);
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let g = BmmGeom { batch, m, k, n, ta, tb, alpha: 0.7 };
        same!(format!("bmm ta {ta} tb {tb}"), 1e-5, |b, up, _i| vec![dl(b, &b.bmm(&up(&a), &up(&bv), &g).unwrap())]);
    }
}

#[test]
fn masked_softmax_forward_backward() {
    let mut r = Rng::new(12);
    // 3 samples × 3 heads × 5 queries = 45 rows (not a multiple of 8); 37 keys (> 32, odd).
    let g = SoftmaxGeom { batch: 3, heads: 3, q: 5, k: 37, scale: 0.125 };
    let s: Vec<f32> = randn(&mut r, g.len()).iter().map(|v| v * 4.0).collect();
    let dp = randn(&mut r, g.len());
    let mut mask = vec![1.0f32; g.mask_len()];
    mask[37 - 5..37].iter_mut().for_each(|m| *m = 0.0); // sample 0: last 5 keys padding
    mask[37..74].iter_mut().for_each(|m| *m = 0.0); // sample 1: every key masked
    same!("masked softmax", 1e-5, |b, up, _i| {
        let p = b.masked_softmax_forward(&up(&s), &up(&mask), &g).unwrap();
        let ds = b.masked_softmax_backward(&p, &up(&dp), &g).unwrap();
        vec![dl(b, &p), dl(b, &ds)]
    });
    // The rows sum to 1 (0 for the fully masked sample), masked keys get exactly 0.
    let cpu = Cpu::<f32>::new();
    let p = dl(&cpu, &cpu.masked_softmax_forward(&cpu.upload(&s).unwrap(), &cpu.upload(&mask).unwrap(), &g).unwrap());
    for (row, pr) in p.chunks(37).enumerate() {
        let sample = row / 15;
        let sum: f64 = pr.iter().map(|&v| v as f64).sum();
        let want = if sample == 1 { 0.0 } else { 1.0 };
        assert!((sum - want).abs() < 1e-6, "row {row}: sum {sum}");
        if sample == 0 {
            assert!(pr[32..].iter().all(|&v| v == 0.0));
        }
    }
}

#[test]
fn head_permutes_and_narrow() {
    let mut r = Rng::new(13);
    let hg = HeadsGeom { batch: 3, seq: 7, heads: 4, head_dim: 5 };
    let x = randn(&mut r, hg.len());
    same!("split/merge heads", 0.0, |b, up, _i| {
        let s = b.split_heads(&up(&x), &hg).unwrap();
        let back = b.merge_heads(&s, &hg).unwrap();
        vec![dl(b, &s), dl(b, &back)]
    });
    let ng = NarrowGeom { outer: 3, dim: 7, inner: 5, start: 2, len: 3 };
    let x = randn(&mut r, ng.input_len());
    let dy = randn(&mut r, ng.output_len());
    same!("narrow", 0.0, |b, up, _i| {
        vec![dl(b, &b.narrow_forward(&up(&x), &ng).unwrap()), dl(b, &b.narrow_backward(&up(&dy), &ng).unwrap())]
    });
}

#[test]
fn embedding_forward_and_grouped_backward() {
    let mut r = Rng::new(14);
    let g = EmbedGeom { tokens: 41, vocab: 13, dim: 37 };
    let table = randn(&mut r, g.table_len());
    let ids: Vec<u32> = (0..g.tokens).map(|_| r.below(g.vocab) as u32).collect();
    let dy = randn(&mut r, g.output_len());
    let (order, offsets) = group_by_id(&ids, g.vocab, Some(ids[0]));
    same!("embedding", 0.0, |b, up, idx| {
        let y = b.embedding_forward(&up(&table), &idx(&ids), &g).unwrap();
        let dt = b.embedding_backward(&up(&dy), &idx(&order), &idx(&offsets), &g).unwrap();
        vec![dl(b, &y), dl(b, &dt)]
    });
}

#[test]
fn layernorm_forward_backward() {
    let mut r = Rng::new(15);
    // 130 rows: three γ/β chunks of 64; 45 columns (not a multiple of 32).
    let g = LayerNormGeom { rows: 130, cols: 45, eps: 1e-12 };
    let x: Vec<f32> = randn(&mut r, g.len()).iter().map(|v| v * 3.0 + 1.5).collect();
    let (gamma, beta, dy) = (randn(&mut r, 45), randn(&mut r, 45), randn(&mut r, g.len()));
    same!("layernorm", 1e-5, |b, up, _i| {
        let xb = up(&x);
        let gb = up(&gamma);
        let (y, m, is) = b.layernorm_forward(&xb, &gb, &up(&beta), &g).unwrap();
        let (dx, dg, dbeta) = b.layernorm_backward(&up(&dy), &xb, &gb, &m, &is, &g).unwrap();
        vec![dl(b, &y), dl(b, &m), dl(b, &is), dl(b, &dx), dl(b, &dg), dl(b, &dbeta)]
    });
}

#[test]
fn gelu_tanh_and_wide_cross_entropy_backward() {
    let mut r = Rng::new(16);
    let (x, d) = (randn(&mut r, 1037), randn(&mut r, 1037));
    same!("gelu tanh", 1e-5, |b, up, _i| {
        let (xb, db) = (up(&x), up(&d));
        let y = b.unary_forward(Unary::GeluTanh, &xb).unwrap();
        vec![dl(b, &y), dl(b, &b.unary_backward(Unary::GeluTanh, &xb, &y, &db).unwrap())]
    });
    // A vocabulary-sized softmax row (the old kernel was O(classes²) per row); 11 rows.
    let g = RowsGeom { rows: 11, cols: 1000 };
    let logits: Vec<f32> = randn(&mut r, g.len()).iter().map(|v| v * 3.0).collect();
    let labels: Vec<u32> = (0..11).map(|i| (i * 97 % 1000) as u32).collect();
    same!("cross entropy", 1e-5, |b, up, idx| {
        let lb = idx(&labels);
        let dlb = up(&[0.75]);
        let l = b.cross_entropy_forward(&up(&logits), &lb, &g).unwrap();
        vec![dl(b, &l), dl(b, &b.cross_entropy_backward(&up(&logits), &lb, &g, &dlb).unwrap())]
    });
}

#[test]
fn lengths_are_checked_before_any_launch() {
    for dev in devices() {
        let g = BmmGeom { batch: 2, m: 3, k: 4, n: 5, ta: false, tb: false, alpha: 1.0 };
        let Err(e) = dev.bmm(&dev.zeros(24).unwrap(), &dev.zeros(39).unwrap(), &g) else { panic!("accepted") };
        let e = e.to_string();
        assert!(e.contains("bmm") && e.contains("`B` holds 39"), "{e}");
        let lg = LayerNormGeom { rows: 4, cols: 3, eps: 1e-5 };
        let Err(e) =
            dev.layernorm_forward(&dev.zeros(12).unwrap(), &dev.zeros(2).unwrap(), &dev.zeros(3).unwrap(), &lg)
        else {
            panic!("accepted")
        };
        assert!(e.to_string().contains("`gamma` holds 2"), "{e}");
    }
}
