//! Every op's backward against central finite differences in f64, on odd sizes.
//!
//! Unless stated otherwise the tolerance is 1e-6 relative: with h = 1e-5, central differences
//! in f64 carry a truncation error of order h²·f''' ≈ 1e-10 and a rounding error of order
//! 1e-16/h ≈ 1e-11, both far below it, while any indexing or formula bug gives errors of order 1.

use moodgrad::backend::Unary;
use moodgrad::backend::cpu::Cpu;
use moodgrad::error::Result;
use moodgrad::gradcheck::check_op;
use moodgrad::ops::{self, BatchNormState};
use moodgrad::tape::{Tape, Var};
use moodgrad::tensor::Tensor;

const H: f64 = 1e-5;
const TOL: f64 = 1e-6;

fn assert_all(errs: &[f64], tol: f64, what: &str) {
    for (i, e) in errs.iter().enumerate() {
        assert!(*e < tol, "{what}: input {i} max relative error {e:.3e} above {tol:.0e} (all: {errs:?})");
    }
}

fn check(
    shapes: &[&[usize]],
    tol: f64,
    what: &str,
    f: impl Fn(&mut Tape<Cpu<f64>>, &[Var<Cpu<f64>>]) -> Result<Var<Cpu<f64>>>,
) {
    let shapes: Vec<Vec<usize>> = shapes.iter().map(|s| s.to_vec()).collect();
    let errs = check_op(&shapes, 17, H, f).unwrap();
    assert_all(&errs, tol, what);
}

#[test]
fn conv2d_3x3_pad1() {
    check(&[&[2, 3, 7, 9], &[5, 3, 3, 3], &[5]], TOL, "conv2d 3x3", |t, v| {
        ops::conv2d(t, &v[0], &v[1], Some(&v[2]), 1, 1)
    });
}

#[test]
fn conv2d_general_kernel_stride_padding() {
    check(&[&[1, 2, 9, 11], &[3, 2, 2, 3]], TOL, "conv2d 2x3 s2 p0", |t, v| ops::conv2d(t, &v[0], &v[1], None, 2, 0));
    check(&[&[3, 1, 5, 7], &[1, 1, 5, 5], &[1]], TOL, "conv2d 5x5 s3 p2", |t, v| {
        ops::conv2d(t, &v[0], &v[1], Some(&v[2]), 3, 2)
    });
}

fn bn(t: &mut Tape<Cpu<f64>>, v: &[Var<Cpu<f64>>], train: bool) -> Result<Var<Cpu<f64>>> {
    let c = v[0].shape()[1];
    let be = t.backend.clone();
    let mut rm = Tensor::from_f64(&be, &[c], &vec![0.3; c])?;
    let mut rv = Tensor::from_f64(&be, &[c], &vec![1.7; c])?;
    let st = BatchNormState { running_mean: &mut rm, running_var: &mut rv, momentum: 0.1, eps: 1e-5 };
    ops::batchnorm2d(t, &v[0], &v[1], &v[2], st, train)
}

#[test]
fn batchnorm2d_train_and_eval() {
    // Train mode: the batch statistics depend on every input, so this exercises the full
    // three-term backward. 1e-6 holds because the normalised values are O(1).
    check(&[&[3, 5, 3, 7], &[5], &[5]], TOL, "batchnorm train", |t, v| bn(t, v, true));
    check(&[&[3, 5, 3, 7], &[5], &[5]], TOL, "batchnorm eval", |t, v| bn(t, v, false));
}

#[test]
fn pointwise_activations() {
    for op in [Unary::Relu, Unary::Sigmoid, Unary::Tanh, Unary::Gelu] {
        // ReLU's kink at 0 is never within h of a N(0,1) draw at these sizes (probability ~1e-4).
        check(&[&[3, 7, 5]], TOL, &format!("{op:?}"), |t, v| ops::unary(t, op, &v[0]));
    }
}

#[test]
fn maxpool_floor_mode_odd_sizes() {
    check(&[&[2, 3, 7, 9]], TOL, "maxpool 2x2", |t, v| ops::maxpool2d(t, &v[0], 2, 2));
    check(&[&[1, 1, 9, 7]], TOL, "maxpool 3x3 s2", |t, v| ops::maxpool2d(t, &v[0], 3, 2));
}

#[test]
fn global_avgpool_and_channel_scale() {
    check(&[&[3, 5, 3, 7]], TOL, "global avgpool", |t, v| ops::global_avgpool(t, &v[0]));
    check(&[&[3, 5, 3, 7], &[3, 5]], TOL, "channel scale", |t, v| ops::channel_scale(t, &v[0], &v[1]));
}

#[test]
fn linear_with_and_without_bias() {
    check(&[&[3, 7], &[5, 7], &[5]], TOL, "linear", |t, v| ops::linear(t, &v[0], &v[1], Some(&v[2])));
    check(&[&[1, 9], &[3, 9]], TOL, "linear no bias", |t, v| ops::linear(t, &v[0], &v[1], None));
}

#[test]
fn elementwise_concat_reshape_dropout() {
    check(&[&[3, 7], &[3, 7]], TOL, "mul", |t, v| ops::mul(t, &v[0], &v[1]));
    check(&[&[3, 7], &[3, 7]], TOL, "add", |t, v| ops::add(t, &v[0], &v[1]));
    check(&[&[3, 5], &[3, 7]], TOL, "concat", |t, v| ops::concat_cols(t, &v[0], &v[1]));
    check(&[&[3, 5, 1, 1]], TOL, "reshape", |t, v| ops::reshape(t, &v[0], &[3, 5]));
    // A fixed seed gives the same mask on every evaluation, so dropout is a fixed linear map.
    check(&[&[5, 9]], TOL, "dropout", |t, v| ops::dropout(t, &v[0], 0.4, true, 99));
}

#[test]
fn losses() {
    check(&[&[5, 3], &[5, 3]], TOL, "mse", |t, v| ops::mse_loss(t, &v[0], &v[1]));
    // L1's kink at pred = target is never within h of two independent normal draws here.
    check(&[&[5, 3], &[5, 3]], TOL, "l1", |t, v| ops::l1_loss(t, &v[0], &v[1]));
    check(&[&[5, 3]], TOL, "cross entropy", |t, v| ops::cross_entropy(t, &v[0], &[0, 2, 1, 1, 0]));
}

#[test]
fn se_block_composed_from_ops() {
    // The SE block end to end: squeeze, excitation MLP, sigmoid gate, channel scale.
    check(&[&[2, 17, 3, 5], &[4, 17], &[17, 4]], TOL, "SE block", |t, v| {
        let (n, c) = (v[0].shape()[0], v[0].shape()[1]);
        let s = ops::global_avgpool(t, &v[0])?;
        let s = ops::reshape(t, &s, &[n, c])?;
        let s = ops::linear(t, &s, &v[1], None)?;
        let s = ops::relu(t, &s)?;
        let s = ops::linear(t, &s, &v[2], None)?;
        let s = ops::sigmoid(t, &s)?;
        ops::channel_scale(t, &v[0], &s)
    });
}

#[test]
fn fused_se_op_matches_finite_differences() {
    check(&[&[2, 17, 3, 5], &[4, 17], &[17, 4]], TOL, "fused SE", |t, v| ops::squeeze_excite(t, &v[0], &v[1], &v[2]));
}

#[test]
fn a_value_used_twice_gets_both_contributions() {
    // y = x ⊙ x: dy/dx = 2x only if both uses accumulate.
    check(&[&[3, 5]], TOL, "x*x", |t, v| ops::mul(t, &v[0], &v[0]));
}

#[test]
fn conv2d_adjoint_path_with_many_input_channels() {
    // c_in ≥ 16 takes the tiled adjoint-convolution backward; batch 1 and 17 channels are odd.
    check(&[&[1, 17, 5, 7], &[3, 17, 3, 3], &[3]], TOL, "conv2d 17 channels", |t, v| {
        ops::conv2d(t, &v[0], &v[1], Some(&v[2]), 1, 1)
    });
}

#[test]
fn mel_projection() {
    // A random "filterbank" (dense, so every bin is visited). Only the power's gradient exists:
    // the filterbank is a constant of the op (librosa's), so its column is not checked.
    let errs = check_op(&[vec![2, 7, 5], vec![3, 7]], 17, H, |t, v| ops::mel_project(t, &v[0], &v[1])).unwrap();
    assert_all(&errs[..1], TOL, "mel_project");
}

#[test]
fn power_to_db_with_reference_and_floor() {
    // power = a² + b² > 0 from two normal inputs. top_db 3 dB floors part of each clip, so the
    // floor's dependence on the clip's largest power is exercised; ref_max likewise for the
    // reference. The kinks (y at the floor, ties for the max) are never within h on these draws.
    for (ref_max, top_db) in [(false, None), (false, Some(3.0)), (true, None), (true, Some(3.0))] {
        check(&[&[3, 4, 5], &[3, 4, 5]], TOL, &format!("power_to_db ref_max={ref_max} top_db={top_db:?}"), |t, v| {
            let a2 = ops::mul(t, &v[0], &v[0])?;
            let b2 = ops::mul(t, &v[1], &v[1])?;
            let p = ops::add(t, &a2, &b2)?;
            ops::power_to_db(t, &p, ref_max, 1e-10, top_db)
        });
    }
}
