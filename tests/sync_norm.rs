//! SyncBatchNorm's op (`ops::sync_batchnorm2d`) in one process: its replicas are `k` mirror
//! images of this one (the cross-replica sum multiplies by k), which is exactly k replicas holding
//! the same batch. So its forward must equal plain BatchNorm over the batch repeated k times, its
//! backward that BatchNorm's gradient on one copy (with the same upstream gradient on every copy),
//! and both must pass central finite differences of the one-replica function (every replica moves
//! with x). Also on sim against the CPU.

use moodgrad::backend::cpu::Cpu;
use moodgrad::backend::kernel::KernelBackend;
use moodgrad::backend::{Backend, Memory};
use moodgrad::device::{Device, DeviceChoice};
use moodgrad::error::Result;
use moodgrad::gradcheck::check_op;
use moodgrad::ops::{self, BatchNormState, Replicas};
use moodgrad::params::ParamStore;
use moodgrad::rng::Rng;
use moodgrad::tape::Tape;
use moodgrad::tensor::Tensor;
use std::sync::Arc;

type C64 = Cpu<f64>;

/// `k` replicas holding this replica's batch.
struct Mirror(f64);

impl Replicas for Mirror {
    fn sum(&self, partials: &mut [f64]) -> Result<()> {
        partials.iter_mut().for_each(|p| *p *= self.0);
        Ok(())
    }
}

const SHAPE: [usize; 4] = [2, 3, 4, 5];
const C: usize = 3;

struct Vals {
    x: Vec<f64>,
    gamma: Vec<f64>,
    beta: Vec<f64>,
    running: [Vec<f64>; 2],
    dy: Vec<f64>,
}

fn draw(seed: u64) -> Vals {
    let mut r = Rng::new(seed);
    let n: usize = SHAPE.iter().product();
    let mut v = |n: usize, f: &dyn Fn(&mut Rng) -> f64| (0..n).map(|_| f(&mut r)).collect::<Vec<f64>>();
    Vals {
        x: v(n, &|r| 2.0 * r.normal() + 0.7),
        gamma: v(C, &|r| r.uniform() + 0.5),
        beta: v(C, &|r| 0.3 * r.normal()),
        running: [v(C, &|r| 0.2 * r.normal()), v(C, &|r| r.uniform() + 0.5)],
        dy: v(n, &|r| r.normal()),
    }
}

/// (y, running mean and variance after, dx, dγ, dβ) of SyncBatchNorm with `replicas` mirrors, or
/// of plain BatchNorm when `replicas` is None, on `x` of `shape`.
fn run<B: Backend>(be: &B, v: &Vals, shape: &[usize], replicas: Option<f64>) -> Vec<Vec<f64>> {
    let mut tape = Tape::new(be.clone());
    let x = tape.input(Tensor::from_f64(be, shape, &v.x).unwrap(), true);
    let gamma = tape.input(Tensor::from_f64(be, &[C], &v.gamma).unwrap(), true);
    let beta = tape.input(Tensor::from_f64(be, &[C], &v.beta).unwrap(), true);
    let mut rm = Tensor::from_f64(be, &[C], &v.running[0]).unwrap();
    let mut rv = Tensor::from_f64(be, &[C], &v.running[1]).unwrap();
    let state = BatchNormState { running_mean: &mut rm, running_var: &mut rv, momentum: 0.1, eps: 1e-5 };
    let y = match replicas {
        Some(k) => {
            let r: Arc<dyn Replicas> = Arc::new(Mirror(k));
            ops::sync_batchnorm2d(&mut tape, &x, &gamma, &beta, state, &r).unwrap()
        }
        None => ops::batchnorm2d(&mut tape, &x, &gamma, &beta, state, true).unwrap(),
    };
    let yv = y.value().to_f64(be).unwrap();
    let mut store = ParamStore::new(be.clone());
    let g = tape.backward_from(&y, be.upload_f64(&v.dy).unwrap(), &mut store).unwrap();
    let mut out = vec![yv, rm.to_f64(be).unwrap(), rv.to_f64(be).unwrap()];
    out.extend([&x, &gamma, &beta].map(|p| be.download_f64(g.get(p).unwrap()).unwrap()));
    out
}

/// max |got − want| / max |want|.
fn err(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1e-30f64, |m, v| m.max(v.abs()));
    got.iter().zip(want).fold(0f64, |m, (a, b)| m.max((a - b).abs())) / scale
}

#[test]
fn mirrored_replicas_equal_batchnorm_over_the_repeated_batch() {
    let be = C64::new();
    let v = draw(1);
    for k in [1usize, 3] {
        let sync = run(&be, &v, &SHAPE, Some(k as f64));
        // The batch repeated k times, the same upstream gradient on every copy.
        let rep = Vals {
            x: v.x.repeat(k),
            gamma: v.gamma.clone(),
            beta: v.beta.clone(),
            running: v.running.clone(),
            dy: v.dy.repeat(k),
        };
        let mut shape = SHAPE;
        shape[0] *= k;
        let plain = run(&be, &rep, &shape, None);
        let n = v.x.len();
        // f64 on both sides, sums in other orders: ~1e-15; a wrong count or term is O(1e-2) or more.
        let tol = 1e-12;
        let checks = [
            ("y", &sync[0][..], &plain[0][..n]),
            ("running mean", &sync[1], &plain[1]),
            ("running var", &sync[2], &plain[2]),
            ("dx", &sync[3], &plain[3][..n]),
        ];
        for (what, got, want) in checks {
            let e = err(got, want);
            assert!(e < tol, "{k} replicas: {what}: {e:.2e}");
        }
        // dγ, dβ stay this replica's own (the data-parallel gradient sum adds the others'): 1/k of
        // the repeated batch's.
        for (what, got, want) in [("dgamma", &sync[4], &plain[4]), ("dbeta", &sync[5], &plain[5])] {
            let want: Vec<f64> = want.iter().map(|w| w / k as f64).collect();
            let e = err(got, &want);
            assert!(e < tol, "{k} replicas: {what}: {e:.2e}");
        }
    }
}

#[test]
fn gradients_pass_finite_differences_with_one_and_with_three_replicas() {
    // Central differences in f64 with h = 1e-5 (as tests/vgg_unit.rs: BatchNorm is smooth, the
    // truncation O(h²) ≲ 1e-10, rounding ε·|L|/h ~1e-11 relative); a wrong term is O(1). With
    // mirrors, moving x moves every replica's x: the finite difference of this replica's output is
    // then exactly what SyncBatchNorm's backward gives one replica when all send the same dy.
    let v = draw(2);
    for k in [1.0, 3.0] {
        let shapes = vec![SHAPE.to_vec(), vec![C], vec![C]];
        let errs = check_op(&shapes, 7, 1e-5, |t, x| {
            let be = t.backend.clone();
            let mut rm = Tensor::from_f64(&be, &[C], &v.running[0])?;
            let mut rv = Tensor::from_f64(&be, &[C], &v.running[1])?;
            let state = BatchNormState { running_mean: &mut rm, running_var: &mut rv, momentum: 0.1, eps: 1e-5 };
            let r: Arc<dyn Replicas> = Arc::new(Mirror(k));
            ops::sync_batchnorm2d(t, &x[0], &x[1], &x[2], state, &r)
        })
        .unwrap();
        for (name, e) in ["x", "gamma", "beta"].iter().zip(&errs) {
            assert!(*e < 1e-6, "{k} replicas: gradient of {name}: relative error {e:.2e}");
        }
    }
}

#[test]
fn on_sim_it_agrees_with_the_cpu() {
    let sim: KernelBackend = match Device::open(DeviceChoice::Sim) {
        Ok(Device::Kernels(b)) => b,
        _ => panic!("the sim device must always be available"),
    };
    let v = draw(3);
    let (want, got) = (run(&Cpu::<f32>::new(), &v, &SHAPE, Some(2.0)), run(&sim, &v, &SHAPE, Some(2.0)));
    // f32 on both sides, per-channel sums of 40 terms in other orders: a few ulps of the outputs'
    // scale; 1e-5 leaves room, an indexing error is O(1).
    for (k, what) in ["y", "running mean", "running var", "dx", "dgamma", "dbeta"].iter().enumerate() {
        let e = err(&got[k], &want[k]);
        assert!(e < 1e-5, "{what} on {}: {e:.2e}", sim.name());
    }
}
