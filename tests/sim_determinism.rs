//! Determinism of the kernels under the host SIMT layer's schedule: one real training step of the
//! seed network (model3 with SE, small channels, [2, 1, 32, 48] crops) on the sim backend, run
//! under two different shuffle seeds (different fiber orders inside every block and different
//! block claim orders), must give bit-identical loss, parameter gradients, updated weights and
//! BatchNorm running statistics. A kernel whose result depends on the order threads or blocks
//! run in (a float atomicAdd, a race on shared memory) fails this.

use moodgrad::backend::kernel::KernelBackend;
use moodgrad::backend::prelude::*;
use moodgrad::backend::sim::ffi;
use moodgrad::device::{Device, DeviceChoice};
use moodgrad::nn::{AttentionKind, ModelConfig, SeedNet};
use moodgrad::optim::{Adam, AdamConfig, clip_coefficient, grad_norm};
use moodgrad::params::{ParamStore, Slot};
use moodgrad::rng::Rng;
use moodgrad::tensor::Tensor;
use moodgrad::train::{Batch, forward_backward};

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
    match Device::open(DeviceChoice::Sim) {
        Ok(Device::Kernels(b)) => b,
        Ok(_) => unreachable!("the sim device is a kernel backend"),
        Err(e) => panic!("the sim device must always open: {e}"),
    }
}

/// One step from the same initial weights and batch, every launch under schedule `seed`.
fn step(seed: u64) -> Step {
    ffi::set_schedule_seed(Some(seed));
    assert_eq!(ffi::schedule_seed(), Some(seed));
    let be = sim();
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
    let batch = Batch {
        audio: Tensor::from_f64(&be, &[n, 1, h, w], &audio).unwrap(),
        lyrics: Tensor::from_f64(&be, &[n, t], &lyrics).unwrap(),
        target: Tensor::from_f64(&be, &[n, 2], &target).unwrap(),
    };

    // train_step, opened up so the gradients can be read before Adam consumes them.
    let mut opt = Adam::new(AdamConfig { lr: 1e-3, weight_decay: 1e-4, ..Default::default() });
    let loss = forward_backward(&net, &mut store, &batch, true, 5).unwrap();
    let norm = grad_norm(&store).unwrap();
    let grads = store
        .param_ids()
        .into_iter()
        .map(|id| {
            let g = store.grad(id).unwrap_or_else(|| panic!("{} has no gradient", store.name(id)));
            (store.name(id).to_string(), bits(&be.download(g).unwrap()))
        })
        .collect();
    opt.step(&mut store, clip_coefficient(norm, 1.0)).unwrap();
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

/// The gradients summed with float atomicAdd across blocks: conv2d_backward_weight's split-K
/// (kernels/conv.cu) adds each block's 64×64 partial tile into dw, in whatever order the blocks
/// finish. At these shapes the first two convs split their reduction over several chunks; the
/// deeper ones (fewer output positions) run one chunk, one add per element, and are exact.
const SPLIT_K_CONV_GRADS: [&str; 2] = ["audio_tower.features.0.weight", "audio_tower.features.4.weight"];

#[test]
#[ignore = "not bit-identical today: conv2d_backward_weight (split-K float atomicAdd into dw) and \
            sum_squares_multi (double atomicAdd of block partials, the gradient norm that scales \
            Adam's step through clipping) sum in block-completion order; both need a fixed-order \
            reduction (per-chunk partials in a workspace, then one ordered sum)"]
fn a_training_step_is_bit_identical_under_two_schedules() {
    let a = step(0x0123_4567_89ab_cdef);
    let b = step(42);
    assert_eq!(a.loss, b.loss, "loss {} vs {}", f64::from_bits(a.loss), f64::from_bits(b.loss));
    let g = differing(&a.grads, &b.grads);
    assert!(g.is_empty(), "gradients differ between schedules: {g:?}");
    assert_eq!(a.grad_norm, b.grad_norm, "grad norm");
    let v = differing(&a.values, &b.values);
    assert!(v.is_empty(), "updated weights/buffers differ between schedules: {v:?}");
}

#[test]
fn every_kernel_but_the_atomic_reductions_is_schedule_independent() {
    // What holds today: the forward pass (loss) and every gradient except the split-K conv ones
    // are bit-identical, so no other kernel of the step depends on thread or block order. The
    // updated weights are not compared: the gradient norm (sum_squares_multi, double atomics)
    // scales every one of them through clipping.
    let a = step(0x0123_4567_89ab_cdef);
    let b = step(42);
    assert!(f64::from_bits(a.loss).is_finite() && a.grads.len() > 10, "a real step: {} grads", a.grads.len());
    assert_eq!(a.loss, b.loss, "loss {} vs {}", f64::from_bits(a.loss), f64::from_bits(b.loss));
    let keep = |s: &Step| -> Vec<(String, Vec<u32>)> {
        s.grads.iter().filter(|(n, _)| !SPLIT_K_CONV_GRADS.contains(&n.as_str())).cloned().collect()
    };
    let g = differing(&keep(&a), &keep(&b));
    assert!(g.is_empty(), "gradients differ between schedules (beyond {SPLIT_K_CONV_GRADS:?}): {g:?}");
    // BatchNorm's running statistics come from the forward pass alone: exact too.
    let stats = |s: &Step| -> Vec<(String, Vec<u32>)> {
        s.values.iter().filter(|(n, _)| n.contains("running_")).cloned().collect()
    };
    assert!(!stats(&a).is_empty());
    let v = differing(&stats(&a), &stats(&b));
    assert!(v.is_empty(), "running statistics differ: {v:?}");
}

#[test]
#[ignore = "not bit-identical today: sum_squares_multi adds per-block double partials with atomicAdd \
            in block-completion order (differs in the last bits); needs a fixed-order reduction"]
fn the_gradient_norm_reduction_is_bit_identical_under_two_schedules() {
    // sum_squares_multi (grad_norm's kernel): blocks reduce in double and add one partial each
    // with a double atomicAdd, so the block order could change the last bits of the norm.
    let be = sim();
    let mut r = Rng::new(9);
    let host: Vec<Vec<f32>> =
        [70_000usize, 1_000, 250_000].iter().map(|&k| (0..k).map(|_| r.normal() as f32).collect()).collect();
    let bufs: Vec<_> = host.iter().map(|h| be.upload(h).unwrap()).collect();
    let refs: Vec<_> = bufs.iter().collect();
    let mut sums = Vec::new();
    for seed in [1u64, 2, 3, 4] {
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
