//! The TF32 tensor-core convolutions (kernels/conv_tc.cu) on sim, against a CPU reference that
//! rounds the operands to TF32 the same way (cvt.rna) and then convolves in f64.
//!
//! Tolerance, per output element: the kernels accumulate in FP32, one mma.sync (8 products,
//! which sim sums exactly and rounds once, as an FP32-or-better accumulator may) after another,
//! plus the bias or the split-K sums. Recursive FP32 summation of m terms errs by at most
//! (m − 1)·u·Σ|terms| to first order (u = 2⁻²⁴), so the bound is (m + 2)·u·s with m = the number
//! of mma steps (+ splits) and s = Σ|a·b| = the same convolution on absolute values. A wrong
//! fragment, a gather off by one tap or a stage read before it landed is off by O(s), 10³-10⁵
//! times more. The reference's own rounding (f64) is ~1e-9 of the bound.

use moodgrad::backend::batch_split::LaunchCaps;
use moodgrad::backend::cpu::Cpu;
use moodgrad::backend::kernel::KernelBackend;
use moodgrad::backend::kernel::profile::{ARCHES, DeviceProfile};
use moodgrad::backend::kernel::sim::SimDevice;
use moodgrad::backend::prelude::*;
use moodgrad::backend::{ConvGeom, Precision};
use moodgrad::device::{Device, DeviceChoice, kernel_devices};
use moodgrad::rng::Rng;
use std::sync::Arc;

fn sim(p: Precision) -> KernelBackend {
    match Device::open_with(DeviceChoice::Sim, Some(p)).unwrap() {
        Device::Kernels(b) => b,
        Device::Cpu(_) => unreachable!(),
    }
}

fn tf32(x: f32) -> f64 {
    if !x.is_finite() {
        return x as f64;
    }
    f32::from_bits((x.to_bits() + 0x1000) & 0xffff_e000) as f64
}

fn randn(r: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| r.normal() as f32).collect()
}

/// Which convolution: forward (x, w), input gradient (dy, w), weight gradient (dy, x).
#[derive(Clone, Copy, Debug)]
enum Pass {
    Forward,
    Input,
    Weight,
}

/// The pass in f64 on the CPU over `a`, `b` mapped by `f` (TF32 rounding, or |TF32|).
fn reference(pass: Pass, g: &ConvGeom, a: &[f32], b: &[f32], f: impl Fn(f32) -> f64) -> Vec<f64> {
    let cpu = Cpu::<f64>::new();
    let up = |v: &[f32]| cpu.upload(&v.iter().map(|&x| f(x)).collect::<Vec<_>>()).unwrap();
    let (a, b) = (up(a), up(b));
    let out = match pass {
        Pass::Forward => cpu.conv2d_forward(&a, &b, None, g),
        Pass::Input => cpu.conv2d_backward_input(&a, &b, g),
        Pass::Weight => cpu.conv2d_backward_weight(&a, &b, g),
    };
    cpu.download_f64(&out.unwrap()).unwrap()
}

fn run(be: &KernelBackend, pass: Pass, g: &ConvGeom, a: &[f32], b: &[f32]) -> Vec<f32> {
    let (a, b) = (be.upload(a).unwrap(), be.upload(b).unwrap());
    let out = match pass {
        Pass::Forward => be.conv2d_forward(&a, &b, None, g),
        Pass::Input => be.conv2d_backward_input(&a, &b, g),
        Pass::Weight => be.conv2d_backward_weight(&a, &b, g),
    };
    be.download_f64(&out.unwrap()).unwrap().into_iter().map(|v| v as f32).collect()
}

/// Operands of `pass` for geometry `g`, drawn from `r`.
fn operands(r: &mut Rng, pass: Pass, g: &ConvGeom) -> (Vec<f32>, Vec<f32>) {
    match pass {
        Pass::Forward => (randn(r, g.input_len()), randn(r, g.weight_len())),
        Pass::Input => (randn(r, g.output_len()), randn(r, g.weight_len())),
        Pass::Weight => (randn(r, g.output_len()), randn(r, g.input_len())),
    }
}

/// Mma steps (8-term groups) in one output's FP32 accumulation chain, plus the split sums.
fn chain(pass: Pass, g: &ConvGeom) -> usize {
    let rs = g.kh * g.kw;
    match pass {
        Pass::Forward => (g.c_in * rs).div_ceil(8),
        Pass::Input => (g.c_out * rs).div_ceil(8),
        Pass::Weight => {
            // Every split is one chain; the split sums add one term each.
            let positions = g.n * g.out_h() * g.out_w();
            positions.div_ceil(8) + positions.div_ceil(512)
        }
    }
}

fn geoms() -> Vec<ConvGeom> {
    vec![
        ConvGeom { n: 2, c_in: 3, h: 9, w: 13, c_out: 5, kh: 3, kw: 3, stride: 1, pad: 1 },
        ConvGeom { n: 1, c_in: 1, h: 17, w: 11, c_out: 17, kh: 3, kw: 3, stride: 1, pad: 1 },
        ConvGeom { n: 3, c_in: 17, h: 7, w: 6, c_out: 3, kh: 3, kw: 3, stride: 2, pad: 1 },
        // The 128-row kernels: two row tiles (130 > 128 output channels), three column tiles, 18
        // reduction tiles; at most 64 rows the `_m64_` kernels run.
        ConvGeom { n: 1, c_in: 64, h: 16, w: 20, c_out: 130, kh: 3, kw: 3, stride: 1, pad: 1 },
        ConvGeom { n: 2, c_in: 5, h: 6, w: 7, c_out: 9, kh: 1, kw: 1, stride: 1, pad: 0 },
        ConvGeom { n: 1, c_in: 4, h: 11, w: 10, c_out: 6, kh: 5, kw: 5, stride: 2, pad: 2 },
        // 70 input channels: the input gradient's 128-row kernel (the others have ≤ 64 rows).
        ConvGeom { n: 1, c_in: 70, h: 9, w: 10, c_out: 20, kh: 3, kw: 3, stride: 1, pad: 1 },
        // 4000 positions: the weight gradient splits its reduction 8 ways.
        ConvGeom { n: 2, c_in: 3, h: 40, w: 50, c_out: 8, kh: 3, kw: 3, stride: 1, pad: 1 },
    ]
}

/// The kernel backend on sim emulating `arch` (its SM count sets the split-K, its shared memory
/// the tensor-core tiles, its compute capability whether mma.sync may run at all).
fn sim_card(arch: &str, p: Precision) -> KernelBackend {
    let card = DeviceProfile::emulated(arch).unwrap();
    KernelBackend::new(Arc::new(SimDevice::with_profile(card))).with_conv_precision(p)
}

/// The tensor-core convolutions launched one sample at a time, as a batch past the kernels'
/// 32-bit indices is (x, y, dy, dx at each part's first sample; the parts' weight gradients
/// added in batch order).
#[test]
fn tensor_core_convolutions_split_over_the_batch_match_the_reference() {
    let caps = LaunchCaps { samples: 1, ..LaunchCaps::default() };
    check_on_odd_shapes(&sim_card("sm_90", Precision::Tf32).with_launch_caps(caps), Precision::Tf32);
}

/// On every card the kernels are built for: TF32 on the four Ampere-and-later profiles (the
/// 128-row tiles on sm_80/sm_90, the 64-row ones that fit sm_86/sm_89's 99 KiB), FP32 on the T4's
/// sm_75, which has no TF32.
#[test]
fn convolutions_match_a_rounded_reference_on_odd_shapes_on_every_card() {
    for arch in ARCHES {
        let precision = if arch == "sm_75" { Precision::Fp32 } else { Precision::Tf32 };
        eprintln!("{arch}, {precision:?}:");
        check_on_odd_shapes(&sim_card(arch, precision), precision);
    }
    // And on the GPU when one is there, at its default (TF32 from sm_80 on), with its own limits.
    for (choice, b) in kernel_devices(None).unwrap() {
        if choice == DeviceChoice::Cuda(0) {
            eprintln!("{} ({}), {:?}:", b.name(), b.profile().arch_name(), b.conv_precision());
            check_on_odd_shapes(&b, b.conv_precision());
        }
    }
}

fn check_on_odd_shapes(tc: &KernelBackend, precision: Precision) {
    let mut r = Rng::new(21);
    for g in geoms() {
        for pass in [Pass::Forward, Pass::Input, Pass::Weight] {
            let (a, b) = operands(&mut r, pass, &g);
            let got = run(tc, pass, &g, &a, &b);
            // One input channel: the forward and the weight gradient take the FP32 first-layer
            // kernels (kernels/conv_cin1.cu) at either precision, so their reference is FP32's.
            let first_layer = g.c_in == 1 && !matches!(pass, Pass::Input);
            let fp32 = first_layer || precision == Precision::Fp32;
            let round = |x: f32| if fp32 { x as f64 } else { tf32(x) };
            let want = reference(pass, &g, &a, &b, round);
            let scale = reference(pass, &g, &a, &b, |x| round(x).abs());
            // The FP32 kernels add their terms one at a time: a chain of every term.
            let terms = if fp32 { chain(pass, &g) * 8 } else { chain(pass, &g) };
            let bound = (terms + 2) as f64 * f64::powi(2.0, -24);
            let mut worst = 0.0f64;
            for (i, ((&x, &w), &s)) in got.iter().zip(&want).zip(&scale).enumerate() {
                let e = (x as f64 - w).abs();
                assert!(e <= bound * s, "{pass:?} {g:?}[{i}]: {x} vs {w} (err {e:.3e} > {:.3e})", bound * s);
                if s > 0.0 {
                    worst = worst.max(e / (bound * s));
                }
            }
            eprintln!("{pass:?} {g:?}: worst error {worst:.3} of the bound");
            if matches!(pass, Pass::Forward) && !fp32 {
                // The bias is added to the finished accumulator: exactly got + bias in FP32 (the
                // first-layer kernels start from the bias instead).
                let bias = randn(&mut r, g.c_out);
                let (xb, wb, bb) = (tc.upload(&a).unwrap(), tc.upload(&b).unwrap(), tc.upload(&bias).unwrap());
                let y = tc.download_f64(&tc.conv2d_forward(&xb, &wb, Some(&bb), &g).unwrap()).unwrap();
                let plane = g.out_h() * g.out_w();
                for (i, (&yb, &y0)) in y.iter().zip(&got).enumerate() {
                    let k = i / plane % g.c_out;
                    assert_eq!((yb as f32).to_bits(), (y0 + bias[k]).to_bits(), "{g:?} biased y[{i}]");
                }
            }
        }
    }
}

#[test]
fn tf32_rounding_really_happens_and_stays_within_tf32_of_fp32() {
    // Against the exact convolution of the unrounded inputs the TF32 result is off by ~2⁻¹¹
    // relative, far beyond FP32 rounding; against the FP32 kernels it agrees to that level.
    let (tc, fp) = (sim(Precision::Tf32), sim(Precision::Fp32));
    let mut r = Rng::new(5);
    let g = ConvGeom { n: 1, c_in: 8, h: 12, w: 14, c_out: 16, kh: 3, kw: 3, stride: 1, pad: 1 };
    for pass in [Pass::Forward, Pass::Input, Pass::Weight] {
        let (a, b) = operands(&mut r, pass, &g);
        let got = run(&tc, pass, &g, &a, &b);
        let exact = reference(pass, &g, &a, &b, |x| x as f64);
        let scale = reference(pass, &g, &a, &b, |x| (x as f64).abs());
        let fp32 = run(&fp, pass, &g, &a, &b);
        let rel = |v: &[f32]| {
            v.iter()
                .zip(&exact)
                .zip(&scale)
                .map(|((&x, &e), &s)| (x as f64 - e).abs() / s.max(1e-30))
                .fold(0.0, f64::max)
        };
        let (e_tf32, e_fp32) = (rel(&got), rel(&fp32));
        eprintln!("{pass:?}: max error / Σ|ab|: tf32 {e_tf32:.2e}, fp32 {e_fp32:.2e}");
        // The FP32 kernels err ~1e-7 of s; TF32 operand rounding (≤ 2⁻¹¹ each) ~1e-4 of s.
        assert!(e_fp32 < 2e-6, "{pass:?}: fp32 kernels {e_fp32:.2e}");
        assert!(e_tf32 > 20.0 * e_fp32, "{pass:?}: tf32 {e_tf32:.2e} is no coarser than fp32 {e_fp32:.2e}");
        assert!(e_tf32 < 2.0 * f64::powi(2.0, -11), "{pass:?}: tf32 {e_tf32:.2e} beyond two operand roundings");
    }
}

#[test]
fn tf32_convolutions_are_bit_identical_under_two_schedules() {
    // No atomics: every output element (and every split-K partial, added in split order) is
    // written by one thread, so the block and fiber order cannot change a bit.
    let tc = sim(Precision::Tf32);
    let mut r = Rng::new(8);
    let g = ConvGeom { n: 2, c_in: 3, h: 40, w: 50, c_out: 8, kh: 3, kw: 3, stride: 1, pad: 1 };
    for pass in [Pass::Forward, Pass::Input, Pass::Weight] {
        let (a, b) = operands(&mut r, pass, &g);
        moodgrad::backend::sim::ffi::set_schedule_seed(Some(1));
        let one = run(&tc, pass, &g, &a, &b);
        moodgrad::backend::sim::ffi::set_schedule_seed(Some(0xfeed));
        let two = run(&tc, pass, &g, &a, &b);
        moodgrad::backend::sim::ffi::reset_schedule();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&one), bits(&two), "{pass:?}");
    }
}

#[test]
fn the_cpu_refuses_tf32_and_devices_default_as_pytorch() {
    let err = Device::open_with(DeviceChoice::Cpu, Some(Precision::Tf32)).err().expect("cpu + tf32 must fail");
    assert!(err.to_string().contains("--precision tf32"), "{err}");
    assert_eq!(Device::open(DeviceChoice::Cpu).unwrap().precision(), Precision::Fp32);
    assert_eq!(Device::open(DeviceChoice::Sim).unwrap().precision(), Precision::Fp32);
    for (choice, b) in kernel_devices(None).unwrap() {
        if choice == DeviceChoice::Cuda(0) {
            let want = if b.profile().has_tf32() { Precision::Tf32 } else { Precision::Fp32 };
            assert_eq!(b.conv_precision(), want, "cuda convolutions default as PyTorch's on {}", b.profile().name);
        }
    }
}
