//! The SE block folded with the global average pool (`ops::squeeze_excite_pool`):
//! f64 finite differences, equality with the two unfused ops, and the fused and unfused models
//! giving the same loss and gradients.

mod model_common;

use model_common::{C64, loss_and_grads, small_config};
use moodgrad::gradcheck::check_op;
use moodgrad::nn::AttentionKind;
use moodgrad::ops;
use moodgrad::params::ParamStore;
use moodgrad::rng::Rng;
use moodgrad::tape::Tape;
use moodgrad::tensor::Tensor;

/// Central differences with h = 1e-6 in f64 (as tests/ops_gradcheck.rs): truncation and
/// rounding ~1e-9 relative; a wrong gradient is off by O(1).
const TOL: f64 = 1e-6;

#[test]
fn folded_se_pool_passes_finite_differences() {
    // Odd sizes: C = 17, hidden 4, 3 × 5 planes, two samples; and a 1 × 1 plane.
    for shapes in [vec![vec![2, 17, 3, 5], vec![4, 17], vec![17, 4]], vec![vec![3, 6, 1, 1], vec![2, 6], vec![6, 2]]] {
        let errs = check_op(&shapes, 17, 1e-6, |t, v| ops::squeeze_excite_pool(t, &v[0], &v[1], &v[2])).unwrap();
        for (i, e) in errs.iter().enumerate() {
            assert!(*e < TOL, "squeeze_excite_pool {shapes:?}: input {i} relative error {e:.2e}");
        }
    }
}

fn randn(be: &C64, r: &mut Rng, shape: &[usize]) -> Tensor<C64> {
    let n = shape.iter().product();
    Tensor::from_f64(be, shape, &(0..n).map(|_| r.normal()).collect::<Vec<_>>()).unwrap()
}

#[test]
fn folded_op_equals_se_then_global_avgpool() {
    let be = C64::new();
    let mut r = Rng::new(5);
    let (x, w1, w2) = (randn(&be, &mut r, &[3, 16, 4, 7]), randn(&be, &mut r, &[4, 16]), randn(&be, &mut r, &[16, 4]));
    let dy = randn(&be, &mut r, &[3, 16, 1, 1]).to_f64(&be).unwrap();
    let run = |fold: bool| {
        let mut tape = Tape::new(be.clone());
        let (xv, w1v, w2v) = (tape.input(x.clone(), true), tape.input(w1.clone(), true), tape.input(w2.clone(), true));
        let y = if fold {
            ops::squeeze_excite_pool(&mut tape, &xv, &w1v, &w2v).unwrap()
        } else {
            let s = ops::squeeze_excite(&mut tape, &xv, &w1v, &w2v).unwrap();
            ops::global_avgpool(&mut tape, &s).unwrap()
        };
        assert_eq!(y.shape(), [3, 16, 1, 1]);
        let yv = y.value().to_f64(&be).unwrap();
        let seed = moodgrad::backend::Memory::upload(&be, &dy).unwrap();
        let mut store = ParamStore::new(be.clone());
        let g = tape.backward_from(&y, seed, &mut store).unwrap();
        let grads: Vec<Vec<f64>> = [&xv, &w1v, &w2v].iter().map(|v| g.get(v).unwrap().to_vec()).collect();
        (yv, grads)
    };
    let (y0, g0) = run(false);
    let (y1, g1) = run(true);
    // The two differ only in rounding (GAP(x·g) against g·mean(x), summed in other orders):
    // ~1e-16 relative in f64; a wrong term would be O(1).
    close("output", &y1, &y0, 1e-12);
    for (i, (a, b)) in g1.iter().zip(&g0).enumerate() {
        close(&format!("gradient of input {i}"), a, b, 1e-12);
    }
}

/// Every element within `tol` of `want`, relative to want's largest magnitude.
fn close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    close_at(what, got, want, tol, 1e-300)
}

/// As `close`, with the scale at least `floor`.
fn close_at(what: &str, got: &[f64], want: &[f64], tol: f64, floor: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs())).max(floor);
    let err = got.iter().zip(want).fold(0f64, |m, (a, b)| m.max((a - b).abs())) / scale;
    assert!(err <= tol, "{what}: max difference {err:.2e} of the largest magnitude (tolerance {tol:.0e})");
}

#[test]
fn fused_and_unfused_models_give_the_same_loss_and_gradients() {
    for model in ["model3", "model4"] {
        let cfg = small_config(model, AttentionKind::Se);
        let (l0, g0) = loss_and_grads(&cfg, 20, |net| net.set_fused_se_pool(false));
        let (l1, g1) = loss_and_grads(&cfg, 20, |net| net.set_fused_se_pool(true));
        // Same rounding argument as above, through the whole network in f64. Each tensor is
        // judged against its largest entry, floored at 1e-4 of the network's largest: the conv
        // biases BatchNorm cancels have a true gradient of exactly 0, computed as ~1e-17 noise.
        close(&format!("{model} loss"), &[l1], &[l0], 1e-12);
        assert_eq!(g0.len(), g1.len());
        let top = g0.iter().flat_map(|p| p.grad.iter()).fold(0f64, |m, v| m.max(v.abs()));
        for (a, b) in g1.iter().zip(&g0) {
            close_at(&format!("{model} {}", a.name), &a.grad, &b.grad, 1e-10, 1e-4 * top);
        }
    }
}
