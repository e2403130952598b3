//! Determinism of the kernels under the host SIMT layer's schedule: one real training step of the
//! seed network (model3 with SE, small channels, [2, 1, 32, 48] crops) on the sim backend, run
//! under two different shuffle seeds (different fiber orders inside every block and different
//! block claim orders), must give bit-identical loss, parameter gradients, updated weights and
//! BatchNorm running statistics. A kernel whose result depends on the order threads or blocks
//! run in (a float atomicAdd, a race on shared memory) fails this; the last test shows that the
//! comparison does catch such a kernel (a float-atomic split-K sum, kernels/mutants.cu).

use moodgrad::backend::kernel::KernelBackend;
use moodgrad::backend::prelude::*;
use moodgrad::backend::sim::ffi;
use moodgrad::backend::{BnParams, ChannelGeom, ConvGeom, Precision};
use moodgrad::device::{Device, DeviceChoice};
use moodgrad::nn::{AttentionKind, ModelConfig, SeedNet};
use moodgrad::optim::{Adam, AdamConfig};
use moodgrad::params::{ParamStore, Slot};
use moodgrad::rng::Rng;
use moodgrad::tensor::Tensor;
use moodgrad::train::lyrics::NoLyrics;
use moodgrad::train::{Batch, Objective, StepOptions, train_step};
use std::ffi::c_void;

/// What one step produced, as raw bits.
#[derive(PartialEq, Debug)]
struct Step {
    loss: u64,
    grad_norm: u64,
    /// (name, gradient bits) per trainable parameter.
    grads: Vec<(String, Vec<u32>)>,
    /// (name, value bits) per parameter and buffer after the Adam step.
    values: Vec<(String, Vec<u32>)>,
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn sim() -> KernelBackend {
    sim_with(Precision::Fp32)
}

fn sim_with(p: Precision) -> KernelBackend {
    match Device::open_with(DeviceChoice::Sim, Some(p)) {
        Ok(Device::Kernels(b)) => b,
        Ok(_) => unreachable!("the sim device is a kernel backend"),
        Err(e) => panic!("the sim device must always open: {e}"),
    }
}

/// One step from the same initial weights and batch, every launch under schedule `seed`.
fn step(seed: u64) -> Step {
    step_with(seed, Precision::Fp32)
}

/// The same with the convolutions in `p`.
fn step_with(seed: u64, p: Precision) -> Step {
    ffi::set_schedule_seed(Some(seed));
    assert_eq!(ffi::schedule_seed(), Some(seed));
    let be = sim_with(p);
    let mut cfg = ModelConfig::preset("model3", AttentionKind::Se).unwrap();
    cfg.channels = vec![8, 16, 16, 32];
    cfg.lyrics_dim = 12;
    cfg.dropout = 0.25; // live dropout masks: drawn from the step seed, not the schedule
    let mut store = ParamStore::new(be.clone());
    let net = SeedNet::new(cfg, &mut store, &mut Rng::new(3)).unwrap();

    let (n, h, w, t) = (2, 32, 48, 12);
    let mut r = Rng::new(11);
    let mut normal = |k: usize| -> Vec<f64> { (0..k).map(|_| r.normal()).collect() };
    let audio = normal(n * h * w);
    let lyrics = normal(n * t);
    let target: Vec<f64> = normal(n * 2).iter().map(|v| 0.5 + 0.25 * v).collect();
    let batch = Batch::with_vectors(
        Tensor::from_f64(&be, &[n, 1, h, w], &audio).unwrap(),
        Tensor::from_f64(&be, &[n, t], &lyrics).unwrap(),
        Tensor::from_f64(&be, &[n, 2], &target).unwrap(),
    );

    // The training step itself; its hook reads the gradients between backward and the update.
    let mut opt = Adam::new(AdamConfig { lr: 1e-3, weight_decay: 1e-4, ..Default::default() });
    let mut grads = Vec::new();
    let mut read_grads = |store: &ParamStore<KernelBackend>, _norm: f64| -> moodgrad::Result<()> {
        for id in store.param_ids() {
            let g = store.grad(id).unwrap_or_else(|| panic!("{} has no gradient", store.name(id)));
            grads.push((store.name(id).to_string(), bits(&be.download(g)?)));
        }
        Ok(())
    };
    let options = StepOptions { objective: Objective::MSE, clip: Some(1.0), seed: 5 };
    let r = train_step(&net, &mut store, &mut opt, &mut NoLyrics, &batch, &options, Some(&mut read_grads)).unwrap();
    let (loss, norm) = (r.loss, r.grad_norm);
    let values = store
        .entries()
        .iter()
        .filter_map(|e| match &e.slot {
            Slot::Param { value, .. } | Slot::Buffer { value } => {
                Some((e.name.clone(), bits(&be.download(value.buf()).unwrap())))
            }
            Slot::Counter(_) => None,
        })
        .collect();
    ffi::reset_schedule();
    Step { loss: loss.to_bits(), grad_norm: norm.to_bits(), grads, values }
}

/// The (name: what differs) list of entries whose bits differ between two runs.
fn differing(x: &[(String, Vec<u32>)], y: &[(String, Vec<u32>)]) -> Vec<String> {
    x.iter()
        .zip(y)
        .filter(|(p, q)| p != q)
        .map(|(p, q)| {
            let n = p.1.iter().zip(&q.1).filter(|(u, v)| u != v).count();
            format!("{} ({n} of {} differ)", p.0, p.1.len())
        })
        .collect()
}

/// The two schedules every comparison here uses (fiber order in every block, block claim order).
const SCHEDULE_A: u64 = 0x0123_4567_89ab_cdef;
const SCHEDULE_B: u64 = 42;

#[test]
fn a_training_step_is_bit_identical_under_two_schedules() {
    // At these shapes the first two convs' weight gradients are split (the first, C_in = 1, in
    // conv_cin1's chunks, the second split-K), clipping reads the gradient norm, and every BatchNorm runs its
    // statistics and backward reductions: every multi-block reduction of the step is on the path.
    let a = step(SCHEDULE_A);
    let b = step(SCHEDULE_B);
    assert!(f64::from_bits(a.loss).is_finite() && a.grads.len() > 10, "a real step: {} grads", a.grads.len());
    assert_eq!(a.loss, b.loss, "loss {} vs {}", f64::from_bits(a.loss), f64::from_bits(b.loss));
    let g = differing(&a.grads, &b.grads);
    assert!(g.is_empty(), "gradients differ between schedules: {g:?}");
    assert_eq!(a.grad_norm, b.grad_norm, "grad norm");
    assert!(a.values.iter().any(|(n, _)| n.contains("running_")), "the BatchNorm running statistics are compared");
    let v = differing(&a.values, &b.values);
    assert!(v.is_empty(), "updated weights/buffers differ between schedules: {v:?}");
}

#[test]
fn a_tf32_training_step_is_bit_identical_under_two_schedules() {
    // The tensor-core convolutions (kernels/conv_tc.cu: mma.sync, cp.async, split-K slots added
    // by splitk_sum) for every conv but the first (C_in = 1 keeps its FP32 kernels).
    let a = step_with(SCHEDULE_A, Precision::Tf32);
    let b = step_with(SCHEDULE_B, Precision::Tf32);
    assert_eq!(a.loss, b.loss, "loss {} vs {}", f64::from_bits(a.loss), f64::from_bits(b.loss));
    let g = differing(&a.grads, &b.grads);
    assert!(g.is_empty(), "gradients differ between schedules: {g:?}");
    let v = differing(&a.values, &b.values);
    assert!(v.is_empty(), "updated weights/buffers differ between schedules: {v:?}");
    // …and it ran in TF32: not the FP32 step's bits.
    assert_ne!(a.loss, step(SCHEDULE_A).loss, "the TF32 step's loss equals the FP32 one");
}

#[test]
fn the_gradient_norm_reduction_is_bit_identical_under_two_schedules() {
    // sum_squares_multi (grad_norm's kernel): ~1300 blocks each store a double partial, which
    // sum_f64 adds in index order; with the old double atomicAdd the block order could change
    // the last bits of the norm.
    let be = sim();
    let mut r = Rng::new(9);
    let host: Vec<Vec<f32>> =
        [70_000usize, 1_000, 250_000].iter().map(|&k| (0..k).map(|_| r.normal() as f32).collect()).collect();
    let bufs: Vec<_> = host.iter().map(|h| be.upload(h).unwrap()).collect();
    let refs: Vec<_> = bufs.iter().collect();
    let mut sums = Vec::new();
    for seed in [SCHEDULE_A, SCHEDULE_B, 3, 4] {
        ffi::set_schedule_seed(Some(seed));
        sums.push(be.sum_squares_many(&refs).unwrap().to_bits());
    }
    ffi::reset_schedule();
    assert!(
        sums.iter().all(|&s| s == sums[0]),
        "Σx² under 4 seeds: {:?}",
        sums.iter().map(|&s| f64::from_bits(s)).collect::<Vec<_>>()
    );
}

/// BatchNorm forward statistics, backward reductions and channel sums through the backend, at a
/// shape where each channel is split over several blocks (n·hw = 20480: 3 chunks per channel)
/// and the weight gradient over many split-K slots; the step's shapes run one chunk per channel.
fn channel_reductions(seed: u64) -> Vec<(String, Vec<u32>)> {
    ffi::set_schedule_seed(Some(seed));
    let be = sim();
    let g = ChannelGeom { n: 4, c: 3, hw: 64 * 80 };
    let mut r = Rng::new(17);
    let mut normal = |k: usize, m: f64| -> Vec<f32> { (0..k).map(|_| (m + r.normal()) as f32).collect() };
    let (x, dy) = (be.upload(&normal(g.len(), 100.0)).unwrap(), be.upload(&normal(g.len(), 0.0)).unwrap());
    let (gamma, beta) = (be.upload(&normal(g.c, 1.0)).unwrap(), be.upload(&normal(g.c, 0.0)).unwrap());
    let (mut rm, mut rv) = (be.upload(&normal(g.c, 0.0)).unwrap(), be.upload(&normal(g.c, 2.0)).unwrap());
    let bp = BnParams { momentum: 0.1, eps: 1e-5 };
    let (_, mean, invstd) = be.batchnorm_forward_train(&x, &gamma, &beta, &mut rm, &mut rv, &g, &bp).unwrap();
    let (dx, dgamma, dbeta) = be.batchnorm_backward(&dy, &x, &gamma, &mean, &invstd, &g).unwrap();
    let sums = be.channel_sums(&dy, &g).unwrap();
    let cg = ConvGeom { n: 4, c_in: 3, h: 64, w: 80, c_out: 5, kh: 3, kw: 3, stride: 1, pad: 1 };
    let dw = be.conv2d_backward_weight(&be.upload(&normal(cg.output_len(), 0.0)).unwrap(), &x, &cg).unwrap();
    ffi::reset_schedule();
    let named = [
        ("mean", &mean),
        ("invstd", &invstd),
        ("running_mean", &rm),
        ("running_var", &rv),
        ("dx", &dx),
        ("dgamma", &dgamma),
        ("dbeta", &dbeta),
        ("channel_sums", &sums),
        ("conv dw", &dw),
    ];
    named.iter().map(|(n, b)| (n.to_string(), bits(&be.download(b).unwrap()))).collect()
}

#[test]
fn many_block_channel_reductions_are_bit_identical_under_two_schedules() {
    let a = channel_reductions(SCHEDULE_A);
    let b = channel_reductions(SCHEDULE_B);
    let d = differing(&a, &b);
    assert!(d.is_empty(), "per-channel reductions differ between schedules: {d:?}");
}

/// One split-K second pass over `partials` ([splits][len]) under schedule `seed`: the
/// production `splitk_sum` (EW grid), or `mut_splitk_sum_atomic` (kernels/mutants.cu: a float
/// atomicAdd per slot, one block per (column, slot)), as `(kernel, output bits)`.
fn split_k_second_pass(kernel: &str, partials: &[f32], splits: usize, len: usize, seed: u64) -> (String, Vec<u32>) {
    let mut out = vec![0f32; len]; // zeroed, as the atomic variant needs
    let grid = match kernel {
        "splitk_sum" => [len.div_ceil(256) as u32, 1, 1],
        _ => [len.div_ceil(256) as u32, splits as u32, 1],
    };
    let mut slots: Vec<u64> =
        vec![partials.as_ptr() as u64, out.as_mut_ptr() as u64, splits as u32 as u64, len as u32 as u64];
    let mut ptrs: Vec<*mut c_void> = slots.iter_mut().map(|s| s as *mut u64 as *mut c_void).collect();
    ffi::set_schedule_seed(Some(seed));
    // SAFETY: both kernels take (const float* partials [splits·len], float* out [len], int, int);
    // the buffers are live host memory of those sizes (the sim's device memory is host memory).
    unsafe { ffi::launch(kernel, grid, [256, 1, 1], 0, &mut ptrs) }.unwrap_or_else(|e| panic!("{kernel}: {e}"));
    ffi::reset_schedule();
    (kernel.to_string(), bits(&out))
}

#[test]
fn the_same_comparison_catches_a_float_atomic_split_k_sum() {
    // The harness's power: the bit comparison above (`differing`, schedules A and B) is only
    // evidence of determinism if it would see a reduction whose result depends on block order.
    // Here it is given the mutation most likely to creep in, split-K partials summed with float
    // atomicAdd (one block per slot, so each element's 48 additions happen in block-claim
    // order), and must report a difference, while the production fixed-order splitk_sum over the
    // same partials must not. Not flaky: the partials span 2^±24, so nearly every reordering of
    // an element's 48 terms changes its rounded sum, and the two seeds claim the 8×48 blocks in
    // different permutations (and 2 OS threads interleave them further); over 2048 elements the
    // chance that no sum changes is nil. Several seed pairs and data seeds make that visible.
    let (splits, len) = (48usize, 2048usize);
    for (data_seed, (sa, sb)) in [(1u64, (SCHEDULE_A, SCHEDULE_B)), (2, (1, 2)), (3, (3, 0xdead_beef))] {
        let mut r = Rng::new(data_seed);
        let partials: Vec<f32> =
            (0..splits * len).map(|k| (r.normal() * 2f64.powi((k * 7919 % 49) as i32 - 24)) as f32).collect();
        let fixed_a = split_k_second_pass("splitk_sum", &partials, splits, len, sa);
        let fixed_b = split_k_second_pass("splitk_sum", &partials, splits, len, sb);
        let d = differing(&[fixed_a], &[fixed_b]);
        assert!(d.is_empty(), "splitk_sum must be schedule-independent: {d:?}");
        let atomic_a = split_k_second_pass("mut_splitk_sum_atomic", &partials, splits, len, sa);
        let atomic_b = split_k_second_pass("mut_splitk_sum_atomic", &partials, splits, len, sb);
        let d = differing(&[atomic_a], &[atomic_b]);
        assert!(!d.is_empty(), "schedules {sa:#x} and {sb:#x}: float-atomic split-K sums were bit-identical");
        eprintln!("float-atomic split-K under schedules {sa:#x}/{sb:#x}: {d:?}");
    }
}
