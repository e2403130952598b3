//! The SE passes over the activation (kernels/pool.cu global_avgpool_forward/backward and
//! channel_scale_forward, kernels/se.cu channel_dot and se_backward_input, kernels/plane_split.cu)
//! launched by name on `sim` at every 16-byte phase of their operands: float4 is taken only where
//! the addresses allow it (a misaligned float4 fails the launch on sim, as it faults on the GPU),
//! the scalar head/tail and the all-scalar fallback give the same values, nothing is written
//! outside the outputs, and grids smaller than the ABI's still cover everything.
//!
//! References are computed here in f64 from the definitions. Tolerances (u = 2⁻²⁴): elementwise
//! maps are the same f32 operations in the same order (sim does not contract a·b + c): bit for
//! bit. Plane sums accumulate in double in another order: ≤ L·2⁻⁵³·Σ|terms| (< 1e-12 of
//! Σ|terms| here) before one rounding to f32, so 2u of the result plus 1e-12 of Σ|terms|.

use moodgrad::backend::sim::ffi;
use moodgrad::rng::Rng;
use std::ffi::c_void;

const U: f64 = 1.0 / (1u64 << 24) as f64;
const BLOCK: [u32; 3] = [256, 1, 1];

enum A {
    P(*mut f32),
    I(i32),
}

fn launch(name: &str, grid: [u32; 3], block: [u32; 3], args: &[A]) {
    let mut slots: Vec<[u8; 8]> = args
        .iter()
        .map(|a| {
            let mut s = [0u8; 8];
            match a {
                A::P(ptr) => s.copy_from_slice(&(*ptr as u64).to_ne_bytes()),
                A::I(v) => s[..4].copy_from_slice(&v.to_ne_bytes()),
            }
            s
        })
        .collect();
    let mut ptrs: Vec<*mut c_void> = slots.iter_mut().map(|s| s.as_mut_ptr() as *mut c_void).collect();
    // SAFETY: the argument lists follow docs/kernel-abi.md and point into live `Placed` buffers
    // whose views hold the lengths the kernels index.
    unsafe { ffi::launch(name, grid, block, 0, &mut ptrs) }.unwrap_or_else(|e| panic!("launch {name}: {e}"));
}

fn i(x: usize) -> A {
    A::I(i32::try_from(x).expect("size fits an int"))
}

/// `len` floats starting `phase` floats past a 16-byte boundary, NaN guard zones on both sides
/// (checked untouched by `guards_intact`).
struct Placed {
    buf: Vec<f32>,
    start: usize,
    len: usize,
}

const GUARD: usize = 8;

impl Placed {
    fn new(values: &[f32], phase: usize) -> Placed {
        let mut buf = vec![f32::NAN; values.len() + 2 * GUARD + 8];
        let addr = buf.as_ptr() as usize;
        let to16 = (16 - addr % 16) % 16 / 4;
        let start = to16 + GUARD + phase;
        buf[start..start + values.len()].copy_from_slice(values);
        Placed { buf, start, len: values.len() }
    }
    fn nans(len: usize, phase: usize) -> Placed {
        Placed::new(&vec![f32::NAN; len], phase)
    }
    fn ptr(&mut self) -> A {
        A::P(self.buf[self.start..].as_mut_ptr())
    }
    fn view(&self) -> &[f32] {
        &self.buf[self.start..self.start + self.len]
    }
    fn guards_intact(&self, what: &str) {
        let mut outside = self.buf[..self.start].iter().chain(&self.buf[self.start + self.len..]);
        assert!(outside.all(|v| v.is_nan()), "{what}: wrote outside its output");
    }
}

fn randn(r: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| r.normal() as f32).collect()
}

/// Σ over planes of f(k) in f64 → (value, Σ|·|).
fn plane_sums(planes: usize, hw: usize, f: impl Fn(usize) -> f64) -> Vec<(f64, f64)> {
    (0..planes).map(|p| (p * hw..(p + 1) * hw).fold((0.0, 0.0), |(s, a), k| (s + f(k), a + f(k).abs()))).collect()
}

fn check_sums(what: &str, got: &[f32], want: &[(f64, f64)], div: f64) {
    for (p, (g, &(s, sabs))) in got.iter().zip(want).enumerate() {
        let w = (s / div) as f32 as f64;
        let tol = 2.0 * U * w.abs() + 1e-12 * sabs / div;
        assert!((*g as f64 - w).abs() <= tol, "{what}[{p}]: {g} vs {w}");
    }
}

/// Shapes: planes not a multiple of 4 floats (every plane at its own phase), the model's 2576,
/// planes shorter than a float4, and more float4 per plane than one round of 256 threads.
const SHAPES: [(usize, usize); 5] = [(3, 37), (2, 2576), (5, 3), (4, 1), (2, 4099)];
/// The ABI's grids and a smaller one (the kernels must grid-stride).
fn grids(planes: usize) -> [[u32; 3]; 2] {
    [[planes as u32, 1, 1], [2, 1, 1]]
}
fn ew(n: usize) -> [u32; 3] {
    [n.div_ceil(256).clamp(1, 4096) as u32, 1, 1]
}

#[test]
fn plane_reductions_at_every_phase() {
    let mut r = Rng::new(5);
    for (planes, hw) in SHAPES {
        let len = planes * hw;
        let (a, b) = (randn(&mut r, len), randn(&mut r, len));
        let mean = plane_sums(planes, hw, |k| a[k] as f64);
        let dot = plane_sums(planes, hw, |k| a[k] as f64 * b[k] as f64);
        for (pa, pb) in [(0, 0), (1, 1), (2, 2), (3, 3), (0, 1), (3, 2), (1, 0)] {
            for grid in grids(planes) {
                let what = format!("{planes}x{hw} phases ({pa},{pb}) grid {}", grid[0]);
                let mut x = Placed::new(&a, pa);
                let mut y = Placed::nans(planes, pb);
                launch("global_avgpool_forward", grid, BLOCK, &[x.ptr(), y.ptr(), i(planes), i(hw)]);
                check_sums(&format!("mean {what}"), y.view(), &mean, hw as f64);
                y.guards_intact("global_avgpool_forward");

                let mut xb = Placed::new(&b, pb);
                let mut d = Placed::nans(planes, pa);
                launch("channel_dot", grid, BLOCK, &[x.ptr(), xb.ptr(), d.ptr(), i(planes), i(hw)]);
                check_sums(&format!("dot {what}"), d.view(), &dot, 1.0);
                d.guards_intact("channel_dot");
            }
        }
    }
}

#[test]
fn split_plane_reductions_at_every_phase() {
    let mut r = Rng::new(6);
    for (planes, hw, chunk) in [(3usize, 37usize, 12usize), (2, 4099, 1028), (1, 2576, 4), (2, 10, 16)] {
        let splits = hw.div_ceil(chunk);
        let len = planes * hw;
        let (a, b) = (randn(&mut r, len), randn(&mut r, len));
        let mean = plane_sums(planes, hw, |k| a[k] as f64);
        let dot = plane_sums(planes, hw, |k| a[k] as f64 * b[k] as f64);
        for (pa, pb) in [(0, 0), (1, 1), (3, 3), (0, 2), (2, 1)] {
            for gx in [planes, 1] {
                let what = format!("{planes}x{hw} chunk {chunk} phases ({pa},{pb}) grid {gx}");
                let grid = [gx as u32, splits as u32, 1];
                let (mut x, mut xb) = (Placed::new(&a, pa), Placed::new(&b, pb));
                for (name, want, div) in [("plane_sum_partial", &mean, hw), ("plane_dot_partial", &dot, 1)] {
                    // Double partials: 2 floats each, at an 8-byte boundary.
                    let mut part = Placed::nans(2 * planes * splits, 0);
                    let mut args = vec![x.ptr()];
                    if name == "plane_dot_partial" {
                        args.push(xb.ptr());
                    }
                    args.extend([part.ptr(), i(planes), i(hw), i(chunk)]);
                    launch(name, grid, BLOCK, &args);
                    part.guards_intact(name);
                    let mut out = Placed::nans(planes, pb);
                    let args = [part.ptr(), out.ptr(), i(planes), i(splits), i(div)];
                    launch("plane_partials_combine", ew(planes), BLOCK, &args);
                    check_sums(&format!("{name} {what}"), out.view(), want, div as f64);
                    out.guards_intact("plane_partials_combine");
                }
            }
        }
    }
}

#[test]
fn elementwise_passes_at_every_phase_bit_for_bit() {
    let mut r = Rng::new(7);
    for (planes, hw) in SHAPES {
        let len = planes * hw;
        let (x, s, t) = (randn(&mut r, len), randn(&mut r, planes), randn(&mut r, planes));
        let inv = (1.0 / hw as f64) as f32;
        let scaled: Vec<f32> = (0..len).map(|k| x[k] * s[k / hw]).collect();
        let dx: Vec<f32> = (0..len).map(|k| x[k] * s[k / hw] + t[k / hw] * inv).collect();
        let spread: Vec<f32> = (0..len).map(|k| t[k / hw] * inv).collect();
        for (pi, po) in [(0, 0), (1, 1), (3, 3), (1, 0), (0, 2), (2, 3)] {
            for grid in [ew(len), [1, 1, 1]] {
                let what = format!("{planes}x{hw} phases ({pi},{po}) grid {}", grid[0]);
                let mut xin = Placed::new(&x, pi);
                let (mut sp, mut tp) = (Placed::new(&s, 0), Placed::new(&t, 3));
                let mut y = Placed::nans(len, po);
                launch("channel_scale_forward", grid, BLOCK, &[xin.ptr(), sp.ptr(), y.ptr(), i(planes), i(hw)]);
                assert!(y.view() == scaled.as_slice(), "channel_scale_forward {what}");
                y.guards_intact("channel_scale_forward");

                let mut d = Placed::nans(len, po);
                let args = [xin.ptr(), sp.ptr(), tp.ptr(), d.ptr(), i(planes), i(hw)];
                launch("se_backward_input", grid, BLOCK, &args);
                assert!(d.view() == dx.as_slice(), "se_backward_input {what}");
                d.guards_intact("se_backward_input");

                let mut g = Placed::nans(len, po);
                launch("global_avgpool_backward", grid, BLOCK, &[tp.ptr(), g.ptr(), i(planes), i(hw)]);
                assert!(g.view() == spread.as_slice(), "global_avgpool_backward {what}");
                g.guards_intact("global_avgpool_backward");
            }
        }
    }
}
