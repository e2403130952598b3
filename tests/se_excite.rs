//! The SE block's `Excite` family (the excitation MLP, one kernel each way) and the SE passes
//! over the activation (squeeze, gate gradient, scale, input gradient), each proved in layers:
//! * the CPU backend's backward against f64 central differences of its own forward;
//! * the CPU backend's f32 forward and backward against the unfused chain it replaces
//!   (matmul, ReLU, matmul, sigmoid and their backward primitives, tested elsewhere);
//! * the kernel backend on `sim` against the CPU backend at odd sizes (C = 37, hid = 5, N = 3;
//!   hid > C; N > 32), bit-reproducible under different schedules, and the plane passes at
//!   planes not a multiple of 4 and planes large enough to be split over several blocks.
//!
//! Tolerances (u = 2⁻²⁴): both backends accumulate every excitation dot product and every
//! plane sum in double, so they differ only by summation order (≤ L·2⁻⁵³·Σ|terms|, below 1e-12
//! of the scale here) before each rounds once to f32: 2u of the output's scale, plus at most an
//! ulp or two where a sigmoid or a dz = d·g·(1 − g) sits in between (glibc's expf on both sides
//! here). The unfused chain instead sums in f32 over up to L = 512 terms: 1e-5 of the scale
//! forward (L·u ≈ 3e-5 worst case, √L·u ≈ 1.3e-6 typical) and 1e-4 backward (two chained
//! reductions). Finite differences (h = 1e-6, f64): truncation h²·|f'''| ≈ 1e-12 and roundoff
//! 2⁻⁵³/h ≈ 1e-10, so 1e-7 of max(1, |g|).

use moodgrad::backend::cpu::Cpu;
use moodgrad::backend::kernel::KernelBackend;
use moodgrad::backend::prelude::*;
use moodgrad::backend::{ChannelGeom, ExciteGeom, MatmulGeom, Unary};
use moodgrad::device::{Device, DeviceChoice};
use moodgrad::rng::Rng;

const U: f64 = 1.0 / (1u64 << 24) as f64;

fn sim() -> KernelBackend {
    match Device::open(DeviceChoice::Sim) {
        Ok(Device::Kernels(b)) => b,
        Ok(_) => unreachable!("sim opens the kernel backend"),
        Err(e) => panic!("sim device: {e}"),
    }
}

fn randn(r: &mut Rng, n: usize, scale: f64) -> Vec<f64> {
    (0..n).map(|_| r.normal() * scale).collect()
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// max |got − want| ≤ tol · max(scale floor, max |want|).
fn close(what: &str, got: &[f32], want: &[f32], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1e-30f64, |m, v| m.max(v.abs() as f64));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let e = (*g as f64 - *w as f64).abs() / scale;
        assert!(e <= tol, "{what}[{i}]: {g} vs {w} (err {e:.2e} of scale {scale:.3e} > {tol:.1e})");
    }
}

/// Random squeezed input (channel means: positive-ish, as after a ReLU) and weights of
/// PyTorch's default init scale.
struct Case {
    g: ExciteGeom,
    sq: Vec<f64>,
    w1: Vec<f64>,
    w2: Vec<f64>,
    dgate: Vec<f64>,
}

fn case(seed: u64, n: usize, c: usize, hid: usize) -> Case {
    let mut r = Rng::new(seed);
    let g = ExciteGeom { n, c, hid };
    let sq = (0..n * c).map(|_| r.normal().abs() * 0.5 + 0.1 * r.normal()).collect();
    let w1 = randn(&mut r, hid * c, 1.0 / (c as f64).sqrt());
    let w2 = randn(&mut r, c * hid, 1.0 / (hid as f64).sqrt());
    let dgate = randn(&mut r, n * c, 1.0);
    Case { g, sq, w1, w2, dgate }
}

/// (hidden, gate, dsq, dw1, dw2) on any backend.
fn run<B: Backend>(b: &B, k: &Case) -> Vec<Vec<f64>> {
    let up = |v: &[f64]| b.upload_f64(v).unwrap();
    let (sq, w1, w2, dg) = (up(&k.sq), up(&k.w1), up(&k.w2), up(&k.dgate));
    let (hidden, gate) = b.excite_forward(&sq, &w1, &w2, &k.g).unwrap();
    let (dsq, dw1, dw2) = b.excite_backward(&dg, &sq, &hidden, &gate, &w1, &w2, &k.g).unwrap();
    [hidden, gate, dsq, dw1, dw2].iter().map(|x| b.download_f64(x).unwrap()).collect()
}

const NAMES: [&str; 5] = ["hidden", "gate", "dsq", "dw1", "dw2"];

#[test]
fn cpu_backward_matches_finite_differences() {
    let cpu = Cpu::<f64>::new();
    let mut branches = [0usize; 2];
    for (seed, n, c, hid) in [(1, 3, 37, 5), (2, 2, 8, 3), (3, 1, 4, 1), (4, 4, 6, 9)] {
        let k = case(seed, n, c, hid);
        let out = run(&cpu, &k);
        // Stay away from ReLU's kink, where the derivative is not defined.
        let up = |v: &[f64]| cpu.upload_f64(v).unwrap();
        let loss = |sq: &[f64], w1: &[f64], w2: &[f64]| -> f64 {
            let (_, gate) = cpu.excite_forward(&up(sq), &up(w1), &up(w2), &k.g).unwrap();
            cpu.download_f64(&gate).unwrap().iter().zip(&k.dgate).map(|(g, d)| g * d).sum()
        };
        let pre: Vec<f64> =
            (0..n * hid).map(|e| (0..c).map(|i| k.sq[(e / hid) * c + i] * k.w1[(e % hid) * c + i]).sum()).collect();
        assert!(pre.iter().all(|p| p.abs() > 1e-4), "case {seed}: a pre-activation sits on the ReLU kink");
        branches[0] += pre.iter().filter(|&&p| p < 0.0).count();
        branches[1] += pre.iter().filter(|&&p| p > 0.0).count();
        let h = 1e-6;
        for (which, grad) in [(0usize, &out[2]), (1, &out[3]), (2, &out[4])] {
            let base = [&k.sq, &k.w1, &k.w2][which];
            for (e, &want) in grad.iter().enumerate() {
                let mut args = [k.sq.clone(), k.w1.clone(), k.w2.clone()];
                args[which][e] = base[e] + h;
                let lp = loss(&args[0], &args[1], &args[2]);
                args[which][e] = base[e] - h;
                let lm = loss(&args[0], &args[1], &args[2]);
                let fd = (lp - lm) / (2.0 * h);
                let err = (fd - want).abs() / want.abs().max(1.0);
                assert!(err < 1e-7, "case {seed} {}[{e}]: analytic {want} vs fd {fd}", NAMES[2 + which]);
            }
        }
    }
    assert!(branches[0] > 3 && branches[1] > 3, "both ReLU branches are exercised: {branches:?}");
}

/// The chain the op ran before `Excite` existed, on the f32 CPU backend.
fn unfused(cpu: &Cpu<f32>, k: &Case) -> Vec<Vec<f64>> {
    let (n, c, hid) = (k.g.n, k.g.c, k.g.hid);
    let up = |v: &[f64]| cpu.upload_f64(v).unwrap();
    let (sq, w1, w2, dgate) = (up(&k.sq), up(&k.w1), up(&k.w2), up(&k.dgate));
    let hidden = cpu.matmul(&sq, &w1, &MatmulGeom { m: n, k: c, n: hid, ta: false, tb: true }).unwrap();
    let hidden = cpu.unary_forward(Unary::Relu, &hidden).unwrap();
    let gate = cpu.matmul(&hidden, &w2, &MatmulGeom { m: n, k: hid, n: c, ta: false, tb: true }).unwrap();
    let gate = cpu.unary_forward(Unary::Sigmoid, &gate).unwrap();
    let dz = cpu.unary_backward(Unary::Sigmoid, &dgate, &gate, &dgate).unwrap();
    let dw2 = cpu.matmul(&dz, &hidden, &MatmulGeom { m: c, k: n, n: hid, ta: true, tb: false }).unwrap();
    let dhidden = cpu.matmul(&dz, &w2, &MatmulGeom::nn(n, c, hid)).unwrap();
    let dpre = cpu.unary_backward(Unary::Relu, &hidden, &hidden, &dhidden).unwrap();
    let dw1 = cpu.matmul(&dpre, &sq, &MatmulGeom { m: hid, k: n, n: c, ta: true, tb: false }).unwrap();
    let dsq = cpu.matmul(&dpre, &w1, &MatmulGeom::nn(n, hid, c)).unwrap();
    [hidden, gate, dsq, dw1, dw2].iter().map(|x| cpu.download_f64(x).unwrap()).collect()
}

const SHAPES: [(u64, usize, usize, usize); 5] =
    [(11, 3, 37, 5), (12, 16, 512, 32), (13, 1, 7, 9), (14, 33, 20, 4), (15, 2, 1, 1)];

#[test]
fn cpu_f32_matches_the_unfused_chain() {
    let cpu = Cpu::<f32>::new();
    for (seed, n, c, hid) in SHAPES {
        let k = case(seed, n, c, hid);
        let (got, want) = (run(&cpu, &k), unfused(&cpu, &k));
        for (j, name) in NAMES.iter().enumerate() {
            let tol = if j < 2 { 1e-5 } else { 1e-4 };
            close(&format!("{n}x{c}x{hid} {name}"), &f32s(&got[j]), &f32s(&want[j]), tol);
        }
    }
}

#[test]
fn sim_kernels_match_the_cpu_backend_and_repeat_bit_for_bit() {
    let (cpu, dev) = (Cpu::<f32>::new(), sim());
    for (seed, n, c, hid) in SHAPES {
        let k = case(seed, n, c, hid);
        let want = run(&cpu, &k);
        let mut first: Option<Vec<Vec<f64>>> = None;
        for sched in [1u64, 0xdead_beef] {
            moodgrad::backend::sim::set_schedule_seed(Some(sched));
            let got = run(&dev, &k);
            for (j, name) in NAMES.iter().enumerate() {
                close(&format!("{n}x{c}x{hid} {name} (sim)"), &f32s(&got[j]), &f32s(&want[j]), 4.0 * U);
            }
            match &first {
                None => first = Some(got),
                Some(f) => assert!(f == &got, "{n}x{c}x{hid}: results depend on the schedule"),
            }
        }
        moodgrad::backend::sim::reset_schedule();
    }
}

#[test]
fn excite_rejects_wrong_lengths_and_empty_layers() {
    let (cpu, dev) = (Cpu::<f32>::new(), sim());
    let g = ExciteGeom { n: 2, c: 4, hid: 2 };
    let e = cpu.excite_forward(&cpu.zeros(8).unwrap(), &cpu.zeros(7).unwrap(), &cpu.zeros(8).unwrap(), &g);
    assert!(e.unwrap_err().to_string().contains("`w1` holds 7"));
    let e = dev.excite_forward(&dev.zeros(8).unwrap(), &dev.zeros(8).unwrap(), &dev.zeros(9).unwrap(), &g);
    assert!(e.err().expect("w2 of 9 floats is rejected").to_string().contains("`w2` holds 9"));
    let g0 = ExciteGeom { n: 2, c: 4, hid: 0 };
    let e = cpu.excite_forward(&cpu.zeros(8).unwrap(), &cpu.zeros(0).unwrap(), &cpu.zeros(0).unwrap(), &g0);
    assert!(e.unwrap_err().to_string().contains("hidden units"));
}

/// (mean, dot, scaled, dx, pooled dx) through the `Pool` primitives the SE ops run.
fn passes<B: Backend>(b: &B, g: &ChannelGeom, x: &[f64], dy: &[f64], s: &[f64], t: &[f64]) -> Vec<Vec<f64>> {
    let up = |v: &[f64]| b.upload_f64(v).unwrap();
    let (x, dy, s, t) = (up(x), up(dy), up(s), up(t));
    let outs = [
        b.global_avgpool_forward(&x, g).unwrap(),
        b.channel_dot(&dy, &x, g).unwrap(),
        b.channel_scale_forward(&x, &s, g).unwrap(),
        b.se_backward_input(&dy, &s, &t, g).unwrap(),
        b.global_avgpool_backward(&t, g).unwrap(),
    ];
    outs.iter().map(|o| b.download_f64(o).unwrap()).collect()
}

#[test]
fn sim_plane_passes_match_the_cpu_backend() {
    let (cpu, dev) = (Cpu::<f32>::new(), sim());
    // hw not a multiple of 4 (planes start at every 16-byte phase), the model's 2576, tiny
    // planes, and few large planes (split over several blocks: 32771 = 2·16384 + 3, 3·16384+1).
    for (n, c, hw) in [(2, 3, 37), (1, 2, 2576), (4, 5, 3), (2, 1, 32771), (1, 3, 49153), (1, 1, 1)] {
        let g = ChannelGeom { n, c, hw };
        let mut r = Rng::new((n * 1000 + c * 10 + hw) as u64);
        let (x, dy) = (randn(&mut r, g.len(), 1.0), randn(&mut r, g.len(), 1.0));
        let (s, t) = (randn(&mut r, g.planes(), 1.0), randn(&mut r, g.planes(), 1.0));
        // Round through f32 first so both backends see the same inputs.
        let rt = |v: &[f64]| v.iter().map(|&a| a as f32 as f64).collect::<Vec<_>>();
        let (x, dy, s, t) = (rt(&x), rt(&dy), rt(&s), rt(&t));
        let want = passes(&cpu, &g, &x, &dy, &s, &t);
        let got = passes(&dev, &g, &x, &dy, &s, &t);
        let what = format!("{n}x{c}x{hw}");
        // The sums: 2u of Σ|terms| (the means' and dots' scales are their Σ|·|, not the result,
        // which may cancel).
        let sabs_mean: Vec<f64> = x.chunks(hw).map(|p| p.iter().map(|v| v.abs()).sum::<f64>() / hw as f64).collect();
        let sabs_dot: Vec<f64> =
            x.chunks(hw).zip(dy.chunks(hw)).map(|(a, b)| a.iter().zip(b).map(|(p, q)| (p * q).abs()).sum()).collect();
        for (k, sabs) in [(0usize, &sabs_mean), (1, &sabs_dot)] {
            for (p, ((gv, wv), sa)) in got[k].iter().zip(&want[k]).zip(sabs).enumerate() {
                let tol = 2.0 * U * wv.abs() + 1e-12 * sa;
                assert!((gv - wv).abs() <= tol, "{what} {}[{p}]: {gv} vs {wv}", ["mean", "dot"][k]);
            }
        }
        // The elementwise maps: the same f32 operations in the same order, bit for bit.
        for (k, name) in [(2usize, "channel_scale_forward"), (3, "se_backward_input"), (4, "global_avgpool_backward")] {
            assert!(got[k] == want[k], "{what} {name}: not bit-identical to the CPU backend");
        }
    }
}
