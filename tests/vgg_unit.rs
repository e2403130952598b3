//! The fused VGG unit (`ops::vgg_unit`: conv → BatchNorm → ReLU → optional 2×2 max-pool, issue
//! 10): f64 finite differences, PyTorch goldens, equality with the unfused four-op chain, the
//! kernel backend (sim) against the CPU, and the fused and unfused models' gradients.

mod model_common;

use model_common::{C64, loss_and_grads, small_config};
use moodgrad::backend::Backend;
use moodgrad::backend::Memory;
use moodgrad::backend::batch_split::LaunchCaps;
use moodgrad::backend::cpu::Cpu;
use moodgrad::backend::kernel::KernelBackend;
use moodgrad::device::{Device, DeviceChoice};
use moodgrad::gradcheck::check_op;
use moodgrad::io::{self, TensorFile};
use moodgrad::nn::AttentionKind;
use moodgrad::ops::{self, BatchNormState, UnitVars};
use moodgrad::params::ParamStore;
use moodgrad::rng::Rng;
use moodgrad::tape::Tape;
use moodgrad::tensor::Tensor;
use std::path::Path;

#[derive(Clone, Copy, Debug)]
struct Case {
    n: usize,
    c_in: usize,
    c_out: usize,
    h: usize,
    w: usize,
    pool: bool,
    train: bool,
}

impl Case {
    fn shapes(&self) -> [Vec<usize>; 5] {
        let c = self.c_out;
        [vec![self.n, self.c_in, self.h, self.w], vec![c, self.c_in, 3, 3], vec![c], vec![c], vec![c]]
    }
    fn out_len(&self) -> usize {
        let (h, w) = if self.pool { (self.h / 2, self.w / 2) } else { (self.h, self.w) };
        self.n * self.c_out * h * w
    }
}

/// Odd sizes (the pool drops a row and a column), C_in = 1 (the first layer), evaluation mode.
const CASES: [Case; 5] = [
    Case { n: 2, c_in: 1, c_out: 3, h: 5, w: 7, pool: true, train: true },
    Case { n: 2, c_in: 3, c_out: 2, h: 4, w: 5, pool: false, train: true },
    Case { n: 1, c_in: 2, c_out: 3, h: 6, w: 6, pool: true, train: true },
    Case { n: 2, c_in: 2, c_out: 3, h: 5, w: 5, pool: true, train: false },
    Case { n: 2, c_in: 1, c_out: 2, h: 3, w: 4, pool: false, train: false },
];

/// Everything one unit reads, in f64 (cast by the backend).
#[derive(Clone)]
struct Vals {
    inputs: [Vec<f64>; 5],
    running: [Vec<f64>; 2],
    dy: Vec<f64>,
}

fn draw(case: &Case, seed: u64) -> Vals {
    let mut r = Rng::new(seed);
    let mut v = |n: usize, f: &mut dyn FnMut(&mut Rng) -> f64| (0..n).map(|_| f(&mut r)).collect::<Vec<f64>>();
    let [xs, ws, ..] = case.shapes();
    let c = case.c_out;
    let inputs = [
        v(xs.iter().product(), &mut |r| r.normal()),
        v(ws.iter().product(), &mut |r| r.normal() * 0.4),
        v(c, &mut |r| r.normal() * 0.3),
        v(c, &mut |r| r.uniform() + 0.5),
        v(c, &mut |r| r.normal() * 0.3),
    ];
    let running = [v(c, &mut |r| r.normal() * 0.2), v(c, &mut |r| r.uniform() + 0.5)];
    Vals { inputs, running, dy: v(case.out_len(), &mut |r| r.normal()) }
}

/// The unit on `be`, fused or as the four PyTorch modules' ops: (y, running mean and variance
/// after, gradients of x, weight, bias, γ, β).
fn run<B: Backend>(be: &B, case: &Case, v: &Vals, fused: bool) -> (Vec<f64>, [Vec<f64>; 2], Vec<Vec<f64>>) {
    let mut tape = Tape::new(be.clone());
    let shapes = case.shapes();
    let vars: Vec<_> =
        v.inputs.iter().zip(&shapes).map(|(d, s)| tape.input(Tensor::from_f64(be, s, d).unwrap(), true)).collect();
    let c = [case.c_out];
    let mut rm = Tensor::from_f64(be, &c, &v.running[0]).unwrap();
    let mut rv = Tensor::from_f64(be, &c, &v.running[1]).unwrap();
    let state = BatchNormState { running_mean: &mut rm, running_var: &mut rv, momentum: 0.1, eps: 1e-5 };
    let y = if fused {
        let p = UnitVars { weight: &vars[1], bias: Some(&vars[2]), gamma: &vars[3], beta: &vars[4] };
        ops::vgg_unit(&mut tape, &vars[0], p, state, (1, 1), case.train, case.pool).unwrap()
    } else {
        let z = ops::conv2d(&mut tape, &vars[0], &vars[1], Some(&vars[2]), 1, 1).unwrap();
        let a = ops::batchnorm2d(&mut tape, &z, &vars[3], &vars[4], state, case.train).unwrap();
        let r = ops::relu(&mut tape, &a).unwrap();
        if case.pool { ops::maxpool2d(&mut tape, &r, 2, 2).unwrap() } else { r }
    };
    let yv = y.value().to_f64(be).unwrap();
    let seed = be.upload_f64(&v.dy).unwrap();
    let mut store = ParamStore::new(be.clone());
    let g = tape.backward_from(&y, seed, &mut store).unwrap();
    let grads = vars.iter().map(|x| be.download_f64(g.get(x).unwrap()).unwrap()).collect();
    (yv, [rm.to_f64(be).unwrap(), rv.to_f64(be).unwrap()], grads)
}

/// max |got − want| / max(max |want|, floor).
fn err(got: &[f64], want: &[f64], floor: f64) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(floor, |m, v| m.max(v.abs()));
    got.iter().zip(want).fold(0f64, |m, (a, b)| m.max((a - b).abs())) / scale
}

const NAMES: [&str; 5] = ["x", "weight", "bias", "gamma", "beta"];

#[test]
fn fused_unit_passes_finite_differences() {
    // Central differences in f64 with h = 1e-5: the unit is piecewise linear in evaluation mode
    // and nearly so in training, so truncation is O(h²) ≲ 1e-10 and rounding, ε·|L|/h, is what
    // limits small gradient elements (with h = 1e-6 one element of the evaluation case measured
    // 1.3e-6, with 1e-7 4.8e-6: rounding, growing as 1/h). A wrong term is O(1). ReLU and
    // max-pool kinks within h of these normal draws would show as O(1) errors.
    for (k, case) in CASES.iter().enumerate() {
        let seed = 40 + k as u64;
        let v = draw(case, seed);
        let errs = check_op(&case.shapes(), seed, 1e-5, |t, x| {
            let be = t.backend.clone();
            let c = [case.c_out];
            let (mut rm, mut rv) =
                (Tensor::from_f64(&be, &c, &v.running[0])?, Tensor::from_f64(&be, &c, &v.running[1])?);
            let state = BatchNormState { running_mean: &mut rm, running_var: &mut rv, momentum: 0.1, eps: 1e-5 };
            let p = UnitVars { weight: &x[1], bias: Some(&x[2]), gamma: &x[3], beta: &x[4] };
            ops::vgg_unit(t, &x[0], p, state, (1, 1), case.train, case.pool)
        })
        .unwrap();
        eprintln!("{case:?}: worst relative errors {:?}", errs.iter().map(|e| format!("{e:.1e}")).collect::<Vec<_>>());
        for (name, e) in NAMES.iter().zip(&errs) {
            assert!(*e < 1e-6, "{case:?}: gradient of {name}: relative error {e:.2e}");
        }
    }
}

#[test]
fn conv_bias_gradient_is_exactly_zero_in_training_only() {
    let be = C64::new();
    for case in &CASES {
        let (_, _, g) = run(&be, case, &draw(case, 7), true);
        let biggest = g[2].iter().fold(0f64, |m, v| m.max(v.abs()));
        if case.train {
            assert!(g[2].iter().all(|&v| v == 0.0), "{case:?}: conv bias gradient {:?}, expected exactly 0", g[2]);
        } else {
            // Evaluation normalises with fixed statistics: the bias shifts the output.
            assert!(biggest > 1e-3, "{case:?}: conv bias gradient {:?} vanishes in evaluation", g[2]);
        }
    }
}

#[test]
fn fused_unit_equals_the_unfused_chain_in_f64() {
    let be = C64::new();
    for (k, case) in CASES.iter().enumerate() {
        let v = draw(case, 60 + k as u64);
        let (y0, r0, g0) = run(&be, case, &v, false);
        let (y1, r1, g1) = run(&be, case, &v, true);
        // The same maths in other orders (one-pass shifted statistics, the bias folded): ~1e-16
        // relative in f64; a wrong term is O(1).
        assert!(err(&y1, &y0, 1e-300) < 1e-12, "{case:?}: output");
        for (what, a, b) in [("running_mean", &r1[0], &r0[0]), ("running_var", &r1[1], &r0[1])] {
            assert!(err(a, b, 1e-300) < 1e-12, "{case:?}: {what} {a:?} vs {b:?}");
        }
        for (i, name) in NAMES.iter().enumerate() {
            // The bias's true training gradient is 0: the unfused chain holds ~1e-17 of noise
            // there, so it is judged against the largest gradient of x.
            let floor = 1e-3 * g0[0].iter().fold(0f64, |m, v| m.max(v.abs()));
            let e = err(&g1[i], &g0[i], floor);
            assert!(e < 1e-12, "{case:?}: gradient of {name}: {e:.2e}");
        }
    }
}

fn golden() -> TensorFile {
    io::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/unit/vgg_unit.safetensors")).unwrap()
}

fn golden_case(f: &TensorFile, key: &str) -> (Case, Vals) {
    let get = |k: &str| f.tensors[&format!("{key}.{k}")].to_f64();
    let shape = |k: &str| f.tensors[&format!("{key}.{k}")].shape.clone();
    let meta: serde_json::Value = serde_json::from_str(&f.metadata[key]).unwrap();
    let xs = shape("x");
    let case = Case {
        n: xs[0],
        c_in: xs[1],
        c_out: meta["c_out"].as_u64().unwrap() as usize,
        h: xs[2],
        w: xs[3],
        pool: meta["pool"].as_bool().unwrap(),
        train: meta["train"].as_bool().unwrap(),
    };
    let inputs = ["x", "weight", "bias", "gamma", "beta"].map(get);
    (case, Vals { inputs, running: ["running_mean", "running_var"].map(get), dy: get("dy") })
}

fn check_golden<B: Backend>(be: &B, tol: f64) {
    let f = golden();
    for key in ["a", "b", "c"] {
        let (case, v) = golden_case(&f, key);
        let want = |k: &str| f.tensors[&format!("{key}.{k}")].to_f64();
        let (y, r, g) = run(be, &case, &v, true);
        let what = format!("golden {key} {case:?} on {}", be.name());
        assert!(err(&y, &want("y"), 1e-300) < tol, "{what}: output {:.2e}", err(&y, &want("y"), 1e-300));
        for (i, k) in ["after.running_mean", "after.running_var"].iter().enumerate() {
            assert!(err(&r[i], &want(k), 1e-300) < tol, "{what}: {k}");
        }
        let gx_scale = want("grad.x").iter().fold(0f64, |m, v| m.max(v.abs()));
        for (i, name) in NAMES.iter().enumerate() {
            // PyTorch's training bias gradient is rounding noise around the true 0 (~1e-15 of
            // the input gradient in float64), ours exactly 0: judged against the input
            // gradient's scale. The others against 1e-3 of it at least (none is that small).
            let floor = if i == 2 && case.train { gx_scale } else { 1e-3 * gx_scale };
            let e = err(&g[i], &want(&format!("grad.{name}")), floor);
            assert!(e < tol, "{what}: gradient of {name}: {e:.2e}");
        }
    }
}

#[test]
fn fused_unit_matches_pytorch_in_f64_and_f32() {
    // f64: the reference is PyTorch's float64 run: only summation order differs (~1e-15).
    check_golden(&C64::new(), 1e-12);
    // f32: ~10 roundings along the chain and sums of ≤ 400 terms: a few 1e-6 relative.
    check_golden(&Cpu::<f32>::new(), 2e-5);
}

fn sim() -> KernelBackend {
    match Device::open(DeviceChoice::Sim) {
        Ok(Device::Kernels(b)) => b,
        _ => panic!("the sim device must always be available"),
    }
}

#[test]
fn kernels_on_sim_agree_with_the_cpu_and_pytorch() {
    // Also launched one sample at a time, as a batch past the kernels' 32-bit indices is: the
    // statistics and the parameter gradients merged over the parts.
    let split = sim().with_launch_caps(LaunchCaps { samples: 1, flat: 97, ..LaunchCaps::default() });
    let (cpu, sim) = (Cpu::<f32>::new(), sim());
    let runs = CASES.iter().enumerate().flat_map(|(k, case)| [(k, case, &sim), (k, case, &split)]);
    for (k, case, dev) in runs {
        let v = draw(case, 80 + k as u64);
        let (y0, r0, g0) = run(&cpu, case, &v, true);
        let (y1, r1, g1) = run(dev, case, &v, true);
        // f32 on both, sums in other orders (the kernels' block reductions, the CPU's plane
        // order): ≲ L·2⁻²⁴ relative for L ≤ 100 terms; an indexing error is O(1).
        let tol = 1e-5;
        let on = dev.name();
        assert!(err(&y1, &y0, 1e-30) < tol, "{case:?} on {on}: output");
        for i in 0..2 {
            assert!(err(&r1[i], &r0[i], 1e-30) < tol, "{case:?} on {on}: running statistic {i}");
        }
        let floor = 1e-3 * g0[0].iter().fold(0f64, |m, v| m.max(v.abs()));
        for (i, name) in NAMES.iter().enumerate() {
            let e = err(&g1[i], &g0[i], floor);
            assert!(e < 1e-4, "{case:?} on {on}: gradient of {name}: {e:.2e}");
        }
    }
    check_golden(&sim, 2e-5);
}

#[test]
fn a_map_too_small_for_the_pool_is_refused() {
    let be = C64::new();
    let case = Case { n: 2, c_in: 1, c_out: 2, h: 1, w: 6, pool: true, train: true };
    let v = draw(&case, 1);
    let mut tape = Tape::new(be.clone());
    let vars: Vec<_> = v
        .inputs
        .iter()
        .zip(&case.shapes())
        .map(|(d, s)| tape.input(Tensor::from_f64(&be, s, d).unwrap(), true))
        .collect();
    let (mut rm, mut rv) = (Tensor::zeros(&be, &[2]).unwrap(), Tensor::zeros(&be, &[2]).unwrap());
    let state = BatchNormState { running_mean: &mut rm, running_var: &mut rv, momentum: 0.1, eps: 1e-5 };
    let p = UnitVars { weight: &vars[1], bias: Some(&vars[2]), gamma: &vars[3], beta: &vars[4] };
    let e = ops::vgg_unit(&mut tape, &vars[0], p, state, (1, 1), true, true).err().expect("must fail");
    assert!(e.to_string().contains("vgg_unit") && e.to_string().contains("too small"), "{e}");
}

#[test]
fn fused_and_unfused_models_give_the_same_loss_and_gradients() {
    for (model, attention) in
        [("model3", AttentionKind::Se), ("model4", AttentionKind::Se), ("model3", AttentionKind::Legacy)]
    {
        let cfg = small_config(model, attention);
        let (l0, g0) = loss_and_grads(&cfg, 21, |net| net.set_fused_units(false));
        let (l1, g1) = loss_and_grads(&cfg, 21, |net| net.set_fused_units(true));
        // f64 through the whole network, other summation orders: ~1e-15. Conv biases: exactly 0
        // fused, ~1e-17 noise unfused (their true gradient is 0): judged against 1e-4 of the
        // largest gradient.
        assert!((l1 - l0).abs() <= 1e-12 * l0.abs(), "{model} {attention:?}: loss {l1} vs {l0}");
        let top = g0.iter().flat_map(|p| p.grad.iter()).fold(0f64, |m, v| m.max(v.abs()));
        let mut conv_biases = 0;
        for (a, b) in g1.iter().zip(&g0) {
            let e = err(&a.grad, &b.grad, 1e-4 * top);
            assert!(e < 1e-10, "{model} {attention:?}: {}: {e:.2e}", a.name);
            if a.conv_bias {
                conv_biases += 1;
                let g = &a.grad;
                assert!(g.iter().all(|&v| v == 0.0), "{model}: {}: fused gradient {g:?}, expected exactly 0", a.name);
            }
        }
        assert_eq!(conv_biases, 3 * cfg.convs_per_block, "{model}: every conv bias seen");
    }
}
