//! Every kernel of kernels/*.cu, launched by name through the host SIMT layer exactly as
//! docs/kernel-abi.md specifies (argument list, block, grid), against the CPU backend
//! (`Cpu::<f32>`), on odd shapes: batch 1, channels 1/3/17/512, sizes that are not multiples
//! of the 64-wide tiles or the 256-thread blocks. A few launches also use grids smaller than the
//! ABI's, since every kernel must be correct for any grid.
//!
//! This file tests the kernels themselves; tests/backend_kernels.rs tests the Rust launch code.
//!
//! Tolerances (u = 2⁻²⁴, f32's unit roundoff), each derived from how the two sides compute:
//! * copies, comparisons, selections (ReLU, max-pool, dropout, concat, counts): exact, bit for bit.
//! * a single f32 operation per output (add, mul, scale, bias): exact as well (IEEE rounding is
//!   deterministic; no multiply-add for a compiler to fuse).
//! * short f32 formulas (sigmoid, tanh', BatchNorm apply, Adam): a few u relative to the scale of
//!   the formula's terms: the kernel may fuse a multiply-add where the CPU rounds twice, and libm
//!   transcendentals differ by an ulp or two between implementations.
//! * reductions the ABI accumulates in double: the double sums differ from the CPU's only by
//!   order, ≤ L·2⁻⁵³·Σ|terms| for L terms (≤ 1e-12 of Σ|terms| here), then both round to f32:
//!   2u of the result plus that.
//! * convolutions (f32 accumulation over a reduction of length L = C·R·S, K·R·S or N·OH·OW):
//!   both sides' errors are sums of L roundings of partial sums bounded by S = Σ|w·x| (computed
//!   per output by the CPU backend on |w|, |x|); such errors grow like √L·u·S (random-walk
//!   rounding) and never beyond L·u·S. We allow 4·√L·u·S + 2u·|y|: a wrong index or a missed
//!   tap changes an output by O(S/√L)…O(S), orders of magnitude above that.

use moodgrad::backend::cpu::Cpu;
use moodgrad::backend::cpu::HostBuf;
use moodgrad::backend::prelude::*;
use moodgrad::backend::sim::ffi;
use moodgrad::backend::{AdamStep, BnParams, ChannelGeom, ConcatGeom, ConvGeom, PoolGeom, RowsGeom, Unary};
use moodgrad::rng::Rng;
use std::ffi::c_void;
use std::ops::{Deref, DerefMut};

const U: f64 = 1.0 / (1u64 << 24) as f64;
const BLOCK: [u32; 3] = [256, 1, 1];

// ---- launching ----------------------------------------------------------------------------

/// One kernel argument. Pointers are host pointers: the SIMT layer's device memory is host memory.
enum A {
    /// An input buffer, copied next to a guard page for the duration of the launch (see `Guarded`).
    In(Guarded<u8>),
    /// Memory the caller owns (outputs: allocate them with `nans`/`zeros`, guarded too).
    P(*mut c_void),
    I(i32),
    F(f32),
    U64(u64),
}

/// An input: the kernel reads a guarded copy, so reading past its end faults.
fn p<T: Copy>(v: &[T]) -> A {
    // SAFETY: viewing initialised Copy data as bytes.
    let bytes = unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) };
    A::In(Guarded::new(bytes))
}
/// An output (or in-out) buffer, written in place.
fn pm<T>(v: &mut [T]) -> A {
    A::P(v.as_mut_ptr() as *mut c_void)
}
fn i(x: usize) -> A {
    A::I(i32::try_from(x).expect("size fits the kernels' int"))
}

/// cuLaunchKernel-style: every argument lives in its own 8-byte slot, args[k] points at slot k.
fn launch(name: &str, grid: [u32; 3], block: [u32; 3], args: &[A]) {
    let mut slots: Vec<[u8; 8]> = args
        .iter()
        .map(|a| {
            let mut s = [0u8; 8];
            match a {
                A::In(g) => s.copy_from_slice(&(g.as_ptr() as u64).to_ne_bytes()),
                A::P(ptr) => s.copy_from_slice(&(*ptr as u64).to_ne_bytes()),
                A::I(v) => s[..4].copy_from_slice(&v.to_ne_bytes()),
                A::F(v) => s[..4].copy_from_slice(&v.to_ne_bytes()),
                A::U64(v) => s.copy_from_slice(&v.to_ne_bytes()),
            }
            s
        })
        .collect();
    let mut ptrs: Vec<*mut c_void> = slots.iter_mut().map(|s| s.as_mut_ptr() as *mut c_void).collect();
    // SAFETY: the argument lists follow docs/kernel-abi.md and point at live host buffers.
    unsafe { ffi::launch(name, grid, block, 0, &mut ptrs) }.unwrap_or_else(|e| panic!("launch {name}: {e}"));
}

/// The ABI's EW(n) launch: block 256, grid min(ceil(n/256), 4096).
fn ew(n: usize) -> [u32; 3] {
    [n.div_ceil(256).clamp(1, 4096) as u32, 1, 1]
}

fn grid1(x: usize) -> [u32; 3] {
    [x as u32, 1, 1]
}

// ---- data and comparison ------------------------------------------------------------------

fn randn(r: &mut Rng, n: usize, scale: f64) -> Vec<f32> {
    (0..n).map(|_| (r.normal() * scale) as f32).collect()
}

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

/// Fresh output memory: NaN everywhere, so an element a kernel forgets to write fails the test;
/// guarded, so a write past the end faults.
fn nans(n: usize) -> Guarded<f32> {
    guard(&vec![f32::NAN; n])
}

fn zeros<T: Copy + Default>(n: usize) -> Guarded<T> {
    guard(&vec![T::default(); n])
}

/// got[k] must equal want[k] within tol(k) (NaN matches NaN).
fn check(what: &str, got: &[f32], want: &[f32], tol: impl Fn(usize) -> f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        if g.is_nan() && w.is_nan() {
            continue;
        }
        let err = (g as f64 - w as f64).abs();
        let t = tol(k);
        assert!(err <= t, "{what}[{k}]: got {g:e}, want {w:e}, |err| {err:.3e} > tol {t:.3e}");
    }
}

fn exact(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()), "{what}[{k}]: got {g:e}, want {w:e}");
    }
}

/// Tolerance of an f32 result the kernel reduces in double: 2u of the value, plus the double
/// sums' order difference (≤ 1e-12 of Σ|terms|).
fn dbl(want: f32, sum_abs: f64) -> f64 {
    2.0 * U * want.abs() as f64 + 1e-12 * sum_abs + 1e-37
}

/// The CPU backend as this file's reference, called in the kernels' own positional style over
/// plain vectors (the backend itself takes counted buffers and named geometries).
struct Ref(Cpu<f32>);
type V = Vec<f32>;
type R<T> = moodgrad::error::Result<T>;

fn cpu() -> Ref {
    Ref(Cpu::<f32>::new())
}

impl Ref {
    fn h(&self, v: &[f32]) -> HostBuf<f32> {
        self.0.upload(v).unwrap()
    }
    fn ch(n: usize, c: usize, hw: usize) -> ChannelGeom {
        ChannelGeom { n, c, hw }
    }
    fn add(&self, a: &[f32], b: &[f32]) -> R<V> {
        Ok(self.0.add(&self.h(a), &self.h(b))?.to_vec())
    }
    fn mul(&self, a: &[f32], b: &[f32]) -> R<V> {
        Ok(self.0.mul(&self.h(a), &self.h(b))?.to_vec())
    }
    fn add_assign(&self, dst: &mut V, src: &[f32]) -> R<()> {
        let mut d = self.h(dst);
        self.0.add_assign(&mut d, &self.h(src))?;
        *dst = d.to_vec();
        Ok(())
    }
    fn scale_assign(&self, x: &mut V, s: f64) -> R<()> {
        let mut d = self.h(x);
        self.0.scale_assign(&mut d, s)?;
        *x = d.to_vec();
        Ok(())
    }
    fn unary_forward(&self, op: Unary, x: &[f32]) -> R<V> {
        Ok(self.0.unary_forward(op, &self.h(x))?.to_vec())
    }
    fn unary_backward(&self, op: Unary, x: &[f32], y: &[f32], dy: &[f32]) -> R<V> {
        Ok(self.0.unary_backward(op, &self.h(x), &self.h(y), &self.h(dy))?.to_vec())
    }
    fn relu_forward(&self, x: &[f32]) -> R<(V, Vec<u8>)> {
        let (y, m) = self.0.relu_forward(&self.h(x))?;
        Ok((y.to_vec(), m.to_vec()))
    }
    fn relu_backward(&self, dy: &[f32], mask: &[u8]) -> R<V> {
        Ok(self.0.relu_backward(self.h(dy), &self.0.wrap(mask.to_vec()))?.to_vec())
    }
    fn dropout_mask(&self, n: usize, p: f64, seed: u64) -> R<V> {
        Ok(self.0.dropout_mask(n, p, seed)?.to_vec())
    }
    fn add_row_bias(&self, y: &mut V, bias: &[f32], rows: usize) -> R<()> {
        let mut d = self.h(y);
        self.0.add_row_bias(&mut d, &self.h(bias), &RowsGeom { rows, cols: bias.len() })?;
        *y = d.to_vec();
        Ok(())
    }
    fn concat_cols(&self, a: &[f32], b: &[f32], rows: usize, ca: usize, cb: usize) -> R<V> {
        Ok(self.0.concat_cols(&self.h(a), &self.h(b), &ConcatGeom { rows, left: ca, right: cb })?.to_vec())
    }
    fn all_finite(&self, x: &[f32]) -> R<bool> {
        self.0.all_finite(&self.h(x))
    }
    fn sum_rows(&self, x: &[f32], rows: usize, cols: usize) -> R<V> {
        Ok(self.0.sum_rows(&self.h(x), &RowsGeom { rows, cols })?.to_vec())
    }
    fn channel_sums(&self, x: &[f32], n: usize, c: usize, hw: usize) -> R<V> {
        Ok(self.0.channel_sums(&self.h(x), &Self::ch(n, c, hw))?.to_vec())
    }
    fn sum_squares(&self, x: &[f32]) -> R<f64> {
        self.0.sum_squares(&self.h(x))
    }
    fn conv2d_forward(&self, x: &[f32], w: &[f32], b: Option<&V>, g: &ConvGeom) -> R<V> {
        let bias = b.map(|b| self.h(b));
        Ok(self.0.conv2d_forward(&self.h(x), &self.h(w), bias.as_ref(), g)?.to_vec())
    }
    fn conv2d_backward_input(&self, dy: &[f32], w: &[f32], g: &ConvGeom) -> R<V> {
        Ok(self.0.conv2d_backward_input(&self.h(dy), &self.h(w), g)?.to_vec())
    }
    fn conv2d_backward_weight(&self, dy: &[f32], x: &[f32], g: &ConvGeom) -> R<V> {
        Ok(self.0.conv2d_backward_weight(&self.h(dy), &self.h(x), g)?.to_vec())
    }
    #[allow(clippy::too_many_arguments)]
    fn batchnorm_forward_train(
        &self,
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        rm: &mut V,
        rv: &mut V,
        n: usize,
        c: usize,
        hw: usize,
        momentum: f64,
        eps: f64,
    ) -> R<(V, V, V)> {
        let (mut m, mut v) = (self.h(rm), self.h(rv));
        let bp = BnParams { momentum, eps };
        let (y, mean, is) = self.0.batchnorm_forward_train(
            &self.h(x),
            &self.h(gamma),
            &self.h(beta),
            &mut m,
            &mut v,
            &Self::ch(n, c, hw),
            &bp,
        )?;
        (*rm, *rv) = (m.to_vec(), v.to_vec());
        Ok((y.to_vec(), mean.to_vec(), is.to_vec()))
    }
    #[allow(clippy::too_many_arguments)]
    fn batchnorm_forward_eval(
        &self,
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        rm: &[f32],
        rv: &[f32],
        n: usize,
        c: usize,
        hw: usize,
        eps: f64,
    ) -> R<V> {
        let g = Self::ch(n, c, hw);
        let (x, ga, be, m, v) = (self.h(x), self.h(gamma), self.h(beta), self.h(rm), self.h(rv));
        Ok(self.0.batchnorm_forward_eval(&x, &ga, &be, &m, &v, &g, eps)?.to_vec())
    }
    #[allow(clippy::too_many_arguments)]
    fn batchnorm_backward(
        &self,
        dy: &[f32],
        x: &[f32],
        gamma: &[f32],
        mean: &[f32],
        invstd: &[f32],
        n: usize,
        c: usize,
        hw: usize,
    ) -> R<(V, V, V)> {
        let g = Self::ch(n, c, hw);
        let (d, x, ga, m, is) = (self.h(dy), self.h(x), self.h(gamma), self.h(mean), self.h(invstd));
        let (dx, dg, db) = self.0.batchnorm_backward(&d, &x, &ga, &m, &is, &g)?;
        Ok((dx.to_vec(), dg.to_vec(), db.to_vec()))
    }
    fn maxpool2d_forward(&self, x: &[f32], g: &PoolGeom) -> R<(V, Vec<u8>)> {
        let (y, idx) = self.0.maxpool2d_forward(&self.h(x), g)?;
        Ok((y.to_vec(), idx.to_vec()))
    }
    fn maxpool2d_backward(&self, dy: &[f32], idx: &[u8], g: &PoolGeom) -> R<V> {
        Ok(self.0.maxpool2d_backward(&self.h(dy), &self.0.wrap(idx.to_vec()), g)?.to_vec())
    }
    fn global_avgpool_forward(&self, x: &[f32], n: usize, c: usize, hw: usize) -> R<V> {
        Ok(self.0.global_avgpool_forward(&self.h(x), &Self::ch(n, c, hw))?.to_vec())
    }
    fn global_avgpool_backward(&self, dy: &[f32], n: usize, c: usize, hw: usize) -> R<V> {
        Ok(self.0.global_avgpool_backward(&self.h(dy), &Self::ch(n, c, hw))?.to_vec())
    }
    fn channel_scale_forward(&self, x: &[f32], s: &[f32], n: usize, c: usize, hw: usize) -> R<V> {
        Ok(self.0.channel_scale_forward(&self.h(x), &self.h(s), &Self::ch(n, c, hw))?.to_vec())
    }
    fn channel_scale_backward(&self, dy: &[f32], x: &[f32], s: &[f32], n: usize, c: usize, hw: usize) -> R<(V, V)> {
        let (dx, ds) = self.0.channel_scale_backward(&self.h(dy), &self.h(x), &self.h(s), &Self::ch(n, c, hw))?;
        Ok((dx.to_vec(), ds.to_vec()))
    }
    fn mse_forward(&self, p: &[f32], t: &[f32]) -> R<V> {
        Ok(self.0.mse_forward(&self.h(p), &self.h(t))?.to_vec())
    }
    fn mse_backward(&self, p: &[f32], t: &[f32], dl: &[f32]) -> R<V> {
        Ok(self.0.mse_backward(&self.h(p), &self.h(t), &self.h(dl))?.to_vec())
    }
    fn l1_forward(&self, p: &[f32], t: &[f32]) -> R<V> {
        Ok(self.0.l1_forward(&self.h(p), &self.h(t))?.to_vec())
    }
    fn l1_backward(&self, p: &[f32], t: &[f32], dl: &[f32]) -> R<V> {
        Ok(self.0.l1_backward(&self.h(p), &self.h(t), &self.h(dl))?.to_vec())
    }
    fn cross_entropy_forward(&self, logits: &[f32], labels: &[u32], rows: usize, cols: usize) -> R<V> {
        let lab = self.0.upload_index(labels)?;
        Ok(self.0.cross_entropy_forward(&self.h(logits), &lab, &RowsGeom { rows, cols })?.to_vec())
    }
    fn cross_entropy_backward(&self, logits: &[f32], labels: &[u32], rows: usize, cols: usize, dl: &[f32]) -> R<V> {
        let lab = self.0.upload_index(labels)?;
        Ok(self.0.cross_entropy_backward(&self.h(logits), &lab, &RowsGeom { rows, cols }, &self.h(dl))?.to_vec())
    }
    fn adam_update(&self, w: &mut V, g: &[f32], m: &mut V, v: &mut V, hp: &AdamStep) -> R<()> {
        let (mut wb, mut mb, mut vb) = (self.h(w), self.h(m), self.h(v));
        self.0.adam_update(&mut wb, &self.h(g), &mut mb, &mut vb, hp)?;
        (*w, *m, *v) = (wb.to_vec(), mb.to_vec(), vb.to_vec());
        Ok(())
    }
}

// ---- out-of-bounds detection --------------------------------------------------------------

unsafe extern "C" {
    fn mmap(addr: *mut c_void, len: usize, prot: i32, flags: i32, fd: i32, off: i64) -> *mut c_void;
    fn mprotect(addr: *mut c_void, len: usize, prot: i32) -> i32;
    fn munmap(addr: *mut c_void, len: usize) -> i32;
    fn sysconf(name: i32) -> i64;
}
const PROT_NONE: i32 = 0;
const PROT_RW: i32 = 1 | 2;
const MAP_PRIVATE_ANON: i32 = 0x02 | 0x20;
const SC_PAGESIZE: i32 = 30;

/// A copy of `data` whose last element ends exactly where an inaccessible page begins (with
/// another such page in front): a kernel that reads or writes past the end of a buffer faults
/// (the test dies with SIGSEGV) instead of silently reading neighbouring heap memory, which may
/// happen to hold harmless zeros. Tiled kernels get their inputs and outputs this way.
struct Guarded<T> {
    map: *mut c_void,
    map_len: usize,
    data: *mut T,
    len: usize,
}

impl<T: Copy> Guarded<T> {
    fn new(src: &[T]) -> Self {
        // SAFETY: plain anonymous mappings; the data range lies inside the read-write pages and
        // is suitably aligned (it ends on a page boundary and size_of::<T>() divides the page).
        unsafe {
            let page = sysconf(SC_PAGESIZE) as usize;
            let bytes = std::mem::size_of_val(src);
            let body = bytes.div_ceil(page).max(1) * page;
            let map_len = body + 2 * page;
            let map = mmap(std::ptr::null_mut(), map_len, PROT_RW, MAP_PRIVATE_ANON, -1, 0);
            assert!(map as isize != -1, "mmap failed");
            let base = map as *mut u8;
            assert_eq!(mprotect(map, page, PROT_NONE), 0);
            assert_eq!(mprotect(base.add(page + body) as *mut c_void, page, PROT_NONE), 0);
            let data = base.add(page + body - bytes) as *mut T;
            std::ptr::copy_nonoverlapping(src.as_ptr(), data, src.len());
            Guarded { map, map_len, data, len: src.len() }
        }
    }
}

impl<T> Deref for Guarded<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `len` initialised elements live at `data` until drop.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

impl<T> DerefMut for Guarded<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as above, uniquely borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.data, self.len) }
    }
}

impl<T> Drop for Guarded<T> {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { munmap(self.map, self.map_len) };
    }
}

fn guard<T: Copy>(v: &[T]) -> Guarded<T> {
    Guarded::new(v)
}

#[test]
fn guard_pages_fault_past_the_end() {
    // The guard itself: the data ends flush with the protected page, and reads inside work.
    let g = guard(&[1.0f32, 2.0, 3.0]);
    assert_eq!(&g[..], &[1.0, 2.0, 3.0]);
    let page = unsafe { sysconf(SC_PAGESIZE) } as usize;
    assert_eq!((g.as_ptr() as usize + 3 * 4) % page, 0);
}

// ---- elementwise.cu -----------------------------------------------------------------------

#[test]
fn arithmetic_fill_and_grid_stride() {
    let mut r = Rng::new(1);
    for n in [1usize, 255, 257, 5000] {
        let a = randn(&mut r, n, 1.0);
        let b = randn(&mut r, n, 1.0);
        // Each case also runs on a 3-block grid: the grid-stride loop must cover the rest.
        for grid in [ew(n), grid1(3)] {
            let mut y = nans(n);
            launch("fill_f32", grid, BLOCK, &[pm(&mut y), i(n), A::F(1.5)]);
            exact("fill_f32", &y, &vec![1.5; n]);

            let mut y = nans(n);
            launch("add_f32", grid, BLOCK, &[p(&a), p(&b), pm(&mut y), i(n)]);
            exact("add_f32", &y, &cpu().add(&a, &b).unwrap());

            let mut y = nans(n);
            launch("mul_f32", grid, BLOCK, &[p(&a), p(&b), pm(&mut y), i(n)]);
            exact("mul_f32", &y, &cpu().mul(&a, &b).unwrap());

            let mut d = guard(&a);
            launch("add_assign_f32", grid, BLOCK, &[pm(&mut d), p(&b), i(n)]);
            let mut want = a.clone();
            cpu().add_assign(&mut want, &b).unwrap();
            exact("add_assign_f32", &d, &want);

            let mut d = guard(&a);
            launch("scale_assign_f32", grid, BLOCK, &[pm(&mut d), i(n), A::F(-0.37)]);
            let mut want = a.clone();
            cpu().scale_assign(&mut want, -0.37f32 as f64).unwrap();
            exact("scale_assign_f32", &d, &want);
        }
    }
}

#[test]
fn relu_with_byte_mask_and_in_place_backward() {
    let mut r = Rng::new(22);
    for n in [1usize, 255, 1003] {
        let mut x = randn(&mut r, n, 1.0);
        x[0] = -0.0;
        if n > 2 {
            x[1] = f32::NAN;
            x[2] = 0.0;
        }
        let (want_y, want_m) = cpu().relu_forward(&x).unwrap();
        for grid in [ew(n), grid1(3)] {
            let (mut y, mut m) = (nans(n), guard(&vec![7u8; n]));
            launch("relu_forward_mask", grid, BLOCK, &[p(&x), pm(&mut y), pm(&mut m), i(n)]);
            exact("relu_forward_mask y", &y, &want_y);
            assert_eq!(&m[..], &want_m[..], "relu_forward_mask mask");
            // In place: dx is dy's own buffer.
            let dy = randn(&mut r, n, 1.0);
            let want = cpu().relu_backward(&dy, &want_m).unwrap();
            let mut d = guard(&dy);
            let ptr = pm(&mut d);
            let ptr2 = match &ptr {
                A::P(q) => A::P(*q),
                _ => unreachable!(),
            };
            launch("relu_backward_mask", grid, BLOCK, &[ptr, p(&want_m), ptr2, i(n)]);
            exact("relu_backward_mask (in place)", &d, &want);
        }
    }
}

#[test]
fn activations_forward_and_backward() {
    let mut r = Rng::new(2);
    let n = 1000;
    let mut x = randn(&mut r, n, 3.0);
    // Edges: zeros of both signs, saturation, tiny values.
    x[..8].copy_from_slice(&[0.0, -0.0, 30.0, -30.0, 1e-8, -1e-8, 9.0, -9.0]);
    let dy = randn(&mut r, n, 1.0);
    let ops = [(0, Unary::Relu), (1, Unary::Sigmoid), (2, Unary::Tanh), (3, Unary::Gelu), (4, Unary::GeluTanh)];
    for (code, op) in ops {
        let want_y = cpu().unary_forward(op, &x).unwrap();
        let mut y = nans(n);
        launch("unary_forward", ew(n), BLOCK, &[A::I(code), p(&x), pm(&mut y), i(n)]);
        let what = format!("unary_forward {op:?}");
        match op {
            Unary::Relu => exact(&what, &y, &want_y),
            // expf/tanhf: a few ulp between libms.
            Unary::Sigmoid | Unary::Tanh => check(&what, &y, &want_y, |k| 4.0 * U * want_y[k].abs() as f64),
            // 0.5·x·(1 + erf(x/√2)): erff differs by ~1 ulp of 1 between libms, and 1 + erf cancels
            // for x ≪ 0, so the error is absolute in (1 + erf): a few u·|x|.
            Unary::Gelu => check(&what, &y, &want_y, |k| 4.0 * U * (x[k].abs() as f64 + want_y[k].abs() as f64)),
            // 0.5·x·(1 + tanh(inner)): tanhf ulps, and 1 + tanh cancels for x ≪ 0 as above.
            Unary::GeluTanh => check(&what, &y, &want_y, |k| 4.0 * U * (x[k].abs() as f64 + want_y[k].abs() as f64)),
        }

        // Backward from the same saved (x, y) on both sides: only the backward formula is compared.
        let want_dx = cpu().unary_backward(op, &x, &want_y, &dy).unwrap();
        let mut dx = nans(n);
        launch("unary_backward", ew(n), BLOCK, &[A::I(code), p(&x), p(&want_y), p(&dy), pm(&mut dx), i(n)]);
        let what = format!("unary_backward {op:?}");
        match op {
            Unary::Relu => exact(&what, &dx, &want_dx),
            // dy·y·(1−y), dy·(1−y²): ≤ 3 roundings, one multiply-add may be fused.
            Unary::Sigmoid | Unary::Tanh => check(&what, &dx, &want_dx, |k| 4.0 * U * dy[k].abs() as f64),
            // dy·(Φ(x) + x·φ(x)): erff/expf ulps on terms of size ≤ 1 + |x|·φ(x) ≤ 1.25.
            Unary::Gelu => check(&what, &dx, &want_dx, |k| 8.0 * U * dy[k].abs() as f64),
            // dy·(0.5(1+t) + 0.5·x·(1−t²)·inner'): the second term grows like |x|³·(1−t²), which
            // is ≤ ~2 at its peak, so a few ulp of terms ≤ 1 + 2.
            Unary::GeluTanh => check(&what, &dx, &want_dx, |k| 12.0 * U * dy[k].abs() as f64),
        }
    }
}

#[test]
fn dropout_mask_matches_the_cpu_hash_bit_for_bit() {
    for (n, p, seed) in [(3000usize, 0.3f32, 0xdead_beef_cafe_f00du64), (257, 0.5, 7), (1, 0.9, u64::MAX)] {
        let mut m = nans(n);
        launch("dropout_mask", ew(n), BLOCK, &[pm(&mut m), i(n), A::F(p), A::U64(seed)]);
        exact(&format!("dropout_mask n={n} p={p}"), &m, &cpu().dropout_mask(n, p as f64, seed).unwrap());
    }
}

#[test]
fn row_bias_concat_split() {
    let mut r = Rng::new(3);
    for (rows, ca, cb) in [(7usize, 37usize, 3usize), (1, 1, 300), (5, 3, 17)] {
        let a = randn(&mut r, rows * ca, 1.0);
        let b = randn(&mut r, rows * cb, 1.0);

        let bias = randn(&mut r, ca, 1.0);
        let mut y = guard(&a);
        launch("add_row_bias", ew(rows * ca), BLOCK, &[pm(&mut y), p(&bias), i(rows), i(ca)]);
        let mut want = a.clone();
        cpu().add_row_bias(&mut want, &bias, rows).unwrap();
        exact("add_row_bias", &y, &want);

        let n = rows * (ca + cb);
        let mut y = nans(n);
        launch("concat_cols", ew(n), BLOCK, &[p(&a), p(&b), pm(&mut y), i(rows), i(ca), i(cb)]);
        let want = cpu().concat_cols(&a, &b, rows, ca, cb).unwrap();
        exact("concat_cols", &y, &want);

        let (mut sa, mut sb) = (nans(rows * ca), nans(rows * cb));
        launch("split_cols", grid1(2), BLOCK, &[p(&want), pm(&mut sa), pm(&mut sb), i(rows), i(ca), i(cb)]);
        exact("split_cols a", &sa, &a);
        exact("split_cols b", &sb, &b);
    }
}

#[test]
fn count_nonfinite_counts_nan_and_both_infinities() {
    let mut r = Rng::new(4);
    let n = 4099;
    let mut x = randn(&mut r, n, 1e30);
    let mut count = zeros::<u32>(1);
    launch("count_nonfinite", ew(n), BLOCK, &[p(&x), i(n), pm(&mut count)]);
    assert_eq!(count[0], 0);
    assert!(cpu().all_finite(&x).unwrap());
    for (k, v) in [(0, f32::NAN), (300, f32::INFINITY), (301, f32::NEG_INFINITY), (4098, f32::NAN), (2048, -f32::NAN)] {
        x[k] = v;
    }
    let mut count = zeros::<u32>(1);
    launch("count_nonfinite", ew(n), BLOCK, &[p(&x), i(n), pm(&mut count)]);
    assert_eq!(count[0], 5);
    assert!(!cpu().all_finite(&x).unwrap());
}

// ---- reduce.cu ----------------------------------------------------------------------------

#[test]
fn column_and_channel_sums() {
    let mut r = Rng::new(5);
    for (rows, cols) in [(37usize, 300usize), (1, 5), (300, 1)] {
        let x = randn(&mut r, rows * cols, 1.0);
        let want = cpu().sum_rows(&x, rows, cols).unwrap();
        let mut out = nans(cols);
        launch("sum_rows", grid1(cols.div_ceil(256)), BLOCK, &[p(&x), pm(&mut out), i(rows), i(cols)]);
        let sabs = cpu().sum_rows(&abs(&x), rows, cols).unwrap();
        check("sum_rows", &out, &want, |k| dbl(want[k], sabs[k] as f64));
    }
    for (n, c, hw) in [(2usize, 17usize, 117usize), (1, 3, 1), (3, 512, 5), (1, 1, 3001)] {
        let x = randn(&mut r, n * c * hw, 1.0);
        let want = cpu().channel_sums(&x, n, c, hw).unwrap();
        let sabs = cpu().channel_sums(&abs(&x), n, c, hw).unwrap();
        for grid in channel_grids(c, n * hw) {
            let out = channel_sums(&x, n, c, hw, grid);
            check(&format!("channel_sums {grid:?}"), &out, &want, |k| dbl(want[k], sabs[k] as f64));
        }
    }
}

/// Grids for the chunked per-channel reductions (channels, chunks): one chunk; chunks that do
/// not divide the channel's m elements; fewer blocks than channels (blocks stride over
/// channels); more chunks than elements for m < 22 (the last chunks empty), else 24 chunks.
/// The sim pays ~0.5 ms per (channel, chunk) pair (two block reductions of 256 fibers), so
/// many-channel cases get only small chunk counts.
fn channel_grids(c: usize, m: usize) -> Vec<[u32; 3]> {
    if c > 32 {
        return vec![[c as u32, 1, 1], [3, 2, 1]];
    }
    vec![[c as u32, 1, 1], [c as u32, 3, 1], [2, 7, 1], [3, (m + 2).min(24) as u32, 1]]
}

/// channel_sums' partials (NaN-filled first: every one must be written), then the ordered combine.
fn channel_sums(x: &[f32], n: usize, c: usize, hw: usize, grid: [u32; 3]) -> Guarded<f32> {
    let chunks = grid[1] as usize;
    let mut parts = guard(&vec![f64::NAN; c * chunks]);
    launch("channel_sums", grid, BLOCK, &[p(x), pm(&mut parts), i(n), i(c), i(hw), i(0), i(chunks)]);
    let mut out = nans(c);
    launch("channel_sums_combine", ew(c), BLOCK, &[p(&parts), i(chunks), pm(&mut out), i(c)]);
    out
}

#[test]
fn sum_squares_over_many_tensors() {
    let mut r = Rng::new(6);
    let tensors: Vec<Vec<f32>> = [1usize, 300, 5000, 20_011, 7].iter().map(|&n| randn(&mut r, n, 2.0)).collect();
    let ptrs: Vec<u64> = tensors.iter().map(|t| t.as_ptr() as u64).collect();
    let lens: Vec<i32> = tensors.iter().map(|t| t.len() as i32).collect();
    let want: f64 = tensors.iter().map(|t| cpu().sum_squares(t).unwrap()).sum();
    let maxlen = tensors.iter().map(Vec::len).max().unwrap();
    for grid in [[maxlen.div_ceil(256).min(1024) as u32, tensors.len() as u32, 1], [3, 2, 1]] {
        // One partial per block (NaN-filled: each must be written), then sum_f64's ordered sum.
        let nparts = (grid[0] * grid[1]) as usize;
        let mut parts = guard(&vec![f64::NAN; nparts]);
        launch("sum_squares_multi", grid, BLOCK, &[p(&ptrs), p(&lens), i(tensors.len()), pm(&mut parts)]);
        let mut out = guard(&[f64::NAN]);
        launch("sum_f64", [1, 1, 1], BLOCK, &[p(&parts), pm(&mut out), i(nparts)]);
        // Both sides sum exact double squares; only the order differs: ~L·2⁻⁵³ relative.
        assert!((out[0] - want).abs() <= 1e-12 * want, "sum_squares_multi {grid:?}: {} vs {want}", out[0]);
    }
}

// ---- conv.cu ------------------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
fn geom(n: usize, c: usize, h: usize, w: usize, k: usize, kh: usize, kw: usize, stride: usize, pad: usize) -> ConvGeom {
    ConvGeom { n, c_in: c, h, w, c_out: k, kh, kw, stride, pad }
}

/// The ABI's argument tail shared by the three conv kernels.
fn conv_dims(g: &ConvGeom) -> Vec<A> {
    [g.n, g.c_in, g.h, g.w, g.c_out, g.kh, g.kw, g.stride, g.pad, g.out_h(), g.out_w()].iter().map(|&v| i(v)).collect()
}

/// 4·√L·u·S + 2u·|y| (see the header).
fn conv_tol(len: usize, scale: &[f32], want: &[f32]) -> impl Fn(usize) -> f64 {
    let (scale, want) = (scale.to_vec(), want.to_vec());
    move |k| 4.0 * (len as f64).sqrt() * U * scale[k] as f64 + 2.0 * U * want[k].abs() as f64
}

/// Forward (with and without bias), backward input and backward weight of one geometry, at the
/// ABI's grids; `small_grid` reruns all three on grids of a single tile column/row to exercise
/// the kernels' tile loops; the weight gradient is also run with a chunk that is not a multiple of
/// the reduction step.
fn conv_case(g: ConvGeom, seed: u64, small_grid: bool) {
    let mut r = Rng::new(seed);
    let x = randn(&mut r, g.input_len(), 1.0);
    let w = randn(&mut r, g.weight_len(), 0.3);
    let b = randn(&mut r, g.c_out, 1.0);
    let (oh, ow) = (g.out_h(), g.out_w());
    let dy = randn(&mut r, g.output_len(), 1.0);
    let cpu = cpu();
    let tiles = |v: usize| v.div_ceil(64) as u32;
    let crs = g.c_in * g.kh * g.kw;
    let npos = g.n * oh * ow;
    let name = format!("{g:?}");

    // forward
    let fgrid = [tiles(npos), tiles(g.c_out), 1];
    let want = cpu.conv2d_forward(&x, &w, Some(&b), &g).unwrap();
    let scale = cpu.conv2d_forward(&abs(&x), &abs(&w), Some(&abs(&b)), &g).unwrap();
    let want_nb = cpu.conv2d_forward(&x, &w, None, &g).unwrap();
    let scale_nb = cpu.conv2d_forward(&abs(&x), &abs(&w), None, &g).unwrap();
    let mut grids = vec![fgrid];
    if small_grid {
        grids.push([1, 1, 1]);
    }
    for grid in &grids {
        let mut y = nans(g.output_len());
        let mut args = vec![p(&x), p(&w), p(&b), pm(&mut y)];
        args.extend(conv_dims(&g));
        launch("conv2d_forward", *grid, BLOCK, &args);
        check(&format!("conv2d_forward {name} grid {grid:?}"), &y, &want, conv_tol(crs, &scale, &want));

        let mut y = nans(g.output_len());
        let mut args = vec![p(&x), p(&w), A::P(std::ptr::null_mut()), pm(&mut y)];
        args.extend(conv_dims(&g));
        launch("conv2d_forward", *grid, BLOCK, &args);
        check(&format!("conv2d_forward (no bias) {name}"), &y, &want_nb, conv_tol(crs, &scale_nb, &want_nb));
    }

    // backward input: dx is fully written (NaN-filled beforehand)
    let want = cpu.conv2d_backward_input(&dy, &w, &g).unwrap();
    let scale = cpu.conv2d_backward_input(&abs(&dy), &abs(&w), &g).unwrap();
    let krs = g.c_out * g.kh * g.kw;
    let mut grids = vec![[tiles(g.n * g.h * g.w), tiles(g.c_in), 1]];
    if small_grid {
        grids.push([2, 1, 1]);
    }
    for grid in &grids {
        let mut dx = nans(g.input_len());
        let mut args = vec![p(&dy), p(&w), pm(&mut dx)];
        args.extend(conv_dims(&g));
        launch("conv2d_backward_input", *grid, BLOCK, &args);
        check(&format!("conv2d_backward_input {name} grid {grid:?}"), &dx, &want, conv_tol(krs, &scale, &want));
    }

    // backward weight: split-K over chunks of positions, one partial slot per grid z (NaN-filled:
    // every element of every slot must be written), then splitk_sum's ordered sum.
    let want = cpu.conv2d_backward_weight(&dy, &x, &g).unwrap();
    let scale = cpu.conv2d_backward_weight(&abs(&dy), &abs(&x), &g).unwrap();
    // 4096: the backend's chunk; 37: not a multiple of the reduction step; i32::MAX: "no split",
    // which must not overflow the chunk arithmetic; (npos, z = 3): more slots than chunks, the
    // extra slots must hold zeros.
    let mut runs = vec![(4096usize, None), (37, None), (npos, None), (i32::MAX as usize, None)];
    runs.push((npos, Some([tiles(crs), tiles(g.c_out), 3])));
    if small_grid {
        runs.push((16, Some([1u32, 1u32, 1u32])));
        runs.push((16, Some([1u32, 1u32, 2u32])));
    }
    for (chunk, grid) in runs {
        let grid = grid.unwrap_or([tiles(crs), tiles(g.c_out), npos.div_ceil(chunk) as u32]);
        let splits = grid[2] as usize;
        let mut partials = nans(splits * g.weight_len());
        let mut args = vec![p(&dy), p(&x), pm(&mut partials)];
        args.extend(conv_dims(&g));
        args.push(i(chunk));
        launch("conv2d_backward_weight", grid, BLOCK, &args);
        let mut dw = nans(g.weight_len());
        launch("splitk_sum", ew(g.weight_len()), BLOCK, &[p(&partials), pm(&mut dw), i(splits), i(g.weight_len())]);
        // The chunk partials add in a different order again: one more rounding per chunk.
        let chunks = npos.div_ceil(chunk) as f64;
        let tol = conv_tol(npos, &scale, &want);
        check(&format!("conv2d_backward_weight {name} chunk {chunk} grid {grid:?}"), &dw, &want, |k| {
            tol(k) + chunks * U * scale[k] as f64
        });
    }
}

#[test]
fn conv_odd_shapes_17_channels() {
    conv_case(geom(2, 17, 9, 13, 5, 3, 3, 1, 1), 10, true);
}

#[test]
fn conv_single_channel_batch_one() {
    conv_case(geom(1, 1, 11, 7, 3, 3, 3, 1, 1), 11, false);
}

#[test]
fn conv_three_channels_stride_two_5x5() {
    conv_case(geom(1, 3, 10, 12, 17, 5, 5, 2, 2), 12, true);
    // No padding, stride 2, output shrinks to 4×3.
    conv_case(geom(2, 4, 9, 8, 6, 3, 3, 2, 0), 13, false);
}

#[test]
fn conv_non_square_kernel() {
    conv_case(geom(1, 2, 5, 6, 3, 2, 3, 1, 1), 14, false);
}

#[test]
fn conv_64_channels_several_tiles() {
    conv_case(geom(2, 64, 16, 20, 64, 3, 3, 1, 1), 15, false);
}

#[test]
fn conv_512_channels() {
    // 512 input channels: a 4608-long reduction; 512 output channels of a 1x1 conv: 8 row tiles.
    conv_case(geom(1, 512, 3, 5, 7, 3, 3, 1, 1), 16, false);
    conv_case(geom(3, 5, 6, 7, 512, 1, 1, 1, 0), 17, false);
}

// ---- norm.cu ------------------------------------------------------------------------------

#[test]
fn batchnorm_train_eval_backward() {
    let mut r = Rng::new(20);
    // (n, c, hw): odd plane; M = 1 (unbiased variance falls back to biased); 512 channels with
    // tiny planes; one channel with a plane larger than the block.
    for (n, c, hw) in [(2usize, 17usize, 117usize), (1, 3, 1), (4, 512, 3), (1, 1, 3001)] {
        let len = n * c * hw;
        // An offset mean (3) makes a cancellation-prone variance formula show.
        let x: Vec<f32> = randn(&mut r, len, 2.0).iter().map(|v| v + 3.0).collect();
        let gamma = randn(&mut r, c, 1.0);
        let beta = randn(&mut r, c, 1.0);
        let rm0 = randn(&mut r, c, 1.0);
        let rv0: Vec<f32> = randn(&mut r, c, 1.0).iter().map(|v| v.abs() + 0.5).collect();
        // The kernel receives momentum and eps as f32: give the CPU the same values so that only
        // the kernels' arithmetic is compared.
        let (mom, eps) = (0.1f32, 1e-5f32);
        let cpu = cpu();
        let (mut rm, mut rv) = (rm0.clone(), rv0.clone());
        let (want_y, want_mean, want_is) =
            cpu.batchnorm_forward_train(&x, &gamma, &beta, &mut rm, &mut rv, n, c, hw, mom as f64, eps as f64).unwrap();

        let what = format!("n={n} c={c} hw={hw}");
        let xabs = cpu.channel_sums(&abs(&x), n, c, hw).unwrap();
        let m = (n * hw) as f64;
        let mut first = None; // the ABI grid's statistics, for bn_apply below
        for grid in channel_grids(c, n * hw) {
            let (mean, is, grm, grv) = bn_stats(&x, n, c, hw, grid, &rm0, &rv0, mom, eps);
            let what = format!("{what} grid {grid:?}");
            // Double statistics rounded once: 2u plus double-order noise, relative to Σ|x| / M.
            check(&format!("bn_stats mean {what}"), &mean, &want_mean, |k| dbl(want_mean[k], xabs[k] as f64 / m));
            check(&format!("bn_stats invstd {what}"), &is, &want_is, |k| 4.0 * U * want_is[k] as f64);
            // (1−m)·r + m·stat in double, rounded once.
            check(&format!("bn_stats running_mean {what}"), &grm, &rm, |k| 4.0 * U * (rm0[k].abs() + 10.0) as f64);
            check(&format!("bn_stats running_var {what}"), &grv, &rv, |k| 4.0 * U * rv[k] as f64);
            first.get_or_insert((mean, is));
        }
        let (mean, is) = first.expect("at least one grid");

        // y = (x − mean)·(invstd·γ) + β: terms of size |x − mean|·|s| and |β|, a few roundings.
        let ytol = |mean: &[f32], is: &[f32], k: usize| {
            let ch = k / hw % c;
            let s = (is[ch] * gamma[ch]).abs() as f64;
            4.0 * U * (((x[k] - mean[ch]).abs() as f64 + mean[ch].abs() as f64) * s + beta[ch].abs() as f64)
        };
        let mut y = nans(len);
        launch(
            "bn_apply",
            ew(len),
            BLOCK,
            &[p(&x), p(&gamma), p(&beta), p(&mean), p(&is), pm(&mut y), i(n), i(c), i(hw)],
        );
        check(&format!("bn_apply (train) {what}"), &y, &want_y, |k| ytol(&want_mean, &want_is, k));

        // Evaluation: invstd from the running variance, then the same apply with the running mean.
        let want_eval = cpu.batchnorm_forward_eval(&x, &gamma, &beta, &rm0, &rv0, n, c, hw, eps as f64).unwrap();
        let mut eis = nans(c);
        launch("bn_eval_invstd", ew(c), BLOCK, &[p(&rv0), pm(&mut eis), i(c), A::F(eps)]);
        let want_eis: Vec<f32> = rv0.iter().map(|&v| (1.0 / (v as f64 + eps as f64).sqrt()) as f32).collect();
        check(&format!("bn_eval_invstd {what}"), &eis, &want_eis, |k| 2.0 * U * want_eis[k] as f64);
        let mut y = nans(len);
        launch(
            "bn_apply",
            grid1(3),
            BLOCK,
            &[p(&x), p(&gamma), p(&beta), p(&rm0), p(&eis), pm(&mut y), i(n), i(c), i(hw)],
        );
        check(&format!("bn_apply (eval) {what}"), &y, &want_eval, |k| ytol(&rm0, &eis, k));

        // Backward from the CPU's saved statistics (both sides see the same mean/invstd).
        let dy = randn(&mut r, len, 1.0);
        let (want_dx, want_dg, want_db) =
            cpu.batchnorm_backward(&dy, &x, &gamma, &want_mean, &want_is, n, c, hw).unwrap();
        // Σ|dy| and Σ|dy·x̂| per channel bound the double sums' order noise.
        let xhat: Vec<f32> = (0..len).map(|k| (x[k] - want_mean[k / hw % c]) * want_is[k / hw % c]).collect();
        let dyabs = cpu.channel_sums(&abs(&dy), n, c, hw).unwrap();
        let dyxabs = cpu.channel_sums(&abs(&cpu.mul(&dy, &xhat).unwrap()), n, c, hw).unwrap();
        let mut first = None; // the ABI grid's (dγ, dβ), for bn_backward_apply below
        for grid in channel_grids(c, n * hw) {
            let (dg, db) = bn_backward_reduce(&dy, &x, &want_mean, &want_is, n, c, hw, grid);
            let what = format!("{what} grid {grid:?}");
            check(&format!("bn_backward_reduce dbeta {what}"), &db, &want_db, |k| dbl(want_db[k], dyabs[k] as f64));
            // dγ: the kernel multiplies Σ dy·(x − mean) by invstd once at the end (one more
            // rounding in double), the CPU multiplies each term.
            check(&format!("bn_backward_reduce dgamma {what}"), &dg, &want_dg, |k| dbl(want_dg[k], dyxabs[k] as f64));
            first.get_or_insert((dg, db));
        }
        let (dg, db) = first.expect("at least one grid");

        let mut dx = nans(len);
        launch(
            "bn_backward_apply",
            ew(len),
            BLOCK,
            &[
                p(&dy),
                p(&x),
                p(&gamma),
                p(&want_mean),
                p(&want_is),
                p(&dg),
                p(&db),
                pm(&mut dx),
                i(n),
                i(c),
                i(hw),
                i(n),
            ],
        );
        // Evaluated in double on both sides; the kernel sees dβ, dγ rounded to f32 (the CPU keeps
        // them in double), which moves dx by ≤ u·γ·invstd/M·(|dβ| + |x̂|·|dγ|).
        check(&format!("bn_backward_apply {what}"), &dx, &want_dx, |k| {
            let ch = k / hw % c;
            let kk = (gamma[ch] as f64 * want_is[ch] as f64 / m).abs();
            let xhat = ((x[k] - want_mean[ch]) as f64 * want_is[ch] as f64).abs();
            2.0 * U
                * (want_dx[k].abs() as f64
                    + kk * (m * dy[k].abs() as f64 + db[ch].abs() as f64 + xhat * dg[ch].abs() as f64))
        });
    }
}

/// bn_stats' chunk partials (NaN-filled: every one must be written), then bn_stats_combine:
/// (mean, invstd, running_mean, running_var) from running statistics rm0, rv0.
#[allow(clippy::too_many_arguments)]
fn bn_stats(
    x: &[f32],
    n: usize,
    c: usize,
    hw: usize,
    grid: [u32; 3],
    rm0: &[f32],
    rv0: &[f32],
    mom: f32,
    eps: f32,
) -> (Guarded<f32>, Guarded<f32>, Guarded<f32>, Guarded<f32>) {
    let chunks = grid[1] as usize;
    let mut parts = guard(&vec![f64::NAN; 3 * c * chunks]);
    launch("bn_stats", grid, BLOCK, &[p(x), pm(&mut parts), i(n), i(c), i(hw), i(0), i(chunks)]);
    let (mut mean, mut is) = (nans(c), nans(c));
    let (mut grm, mut grv) = (guard(rm0), guard(rv0));
    let args = [
        p(&parts),
        i(chunks),
        pm(&mut mean),
        pm(&mut is),
        pm(&mut grm),
        pm(&mut grv),
        A::P(std::ptr::null_mut()),
        i(n),
        i(c),
        i(hw),
        A::F(mom),
        A::F(eps),
    ];
    launch("bn_stats_combine", ew(c), BLOCK, &args);
    (mean, is, grm, grv)
}

/// bn_backward_reduce's chunk partials, then bn_backward_combine: (dγ, dβ).
#[allow(clippy::too_many_arguments)]
fn bn_backward_reduce(
    dy: &[f32],
    x: &[f32],
    mean: &[f32],
    invstd: &[f32],
    n: usize,
    c: usize,
    hw: usize,
    grid: [u32; 3],
) -> (Guarded<f32>, Guarded<f32>) {
    let chunks = grid[1] as usize;
    let mut parts = guard(&vec![f64::NAN; 2 * c * chunks]);
    let args = [p(dy), p(x), p(mean), pm(&mut parts), i(n), i(c), i(hw), i(0), i(chunks)];
    launch("bn_backward_reduce", grid, BLOCK, &args);
    let (mut dg, mut db) = (nans(c), nans(c));
    let args = [p(&parts), i(chunks), p(invstd), pm(&mut dg), pm(&mut db), i(c)];
    launch("bn_backward_combine", ew(c), BLOCK, &args);
    (dg, db)
}

#[test]
fn batchnorm_statistics_at_mean_100_sd_1() {
    // Activations far from zero relative to their spread: mean 100, sd 1. A naive float
    // Σx²/M − mean² loses everything (10⁴ − 10⁴ in 24 bits: an absolute error ≳ 10⁴·2⁻²⁴ ≈ 6e-4
    // from one rounding alone, ~1e3·u relative to var = 1), and even a double one keeps only
    // ~12 digits. The kernels' shifted sums and Chan merges must give the f64 two-pass reference
    // to f32's own rounding: momentum 1 makes running_var = the unbiased variance rounded once
    // to f32, so |err| ≤ u·var (one rounding) + 1e-12·var (double noise, cancellation-free).
    let mut r = Rng::new(21);
    // (n, c, hw): one chunk; M not a multiple of the chunk; tiny planes; M = 2.
    for (n, c, hw) in [(4usize, 3usize, 2500usize), (3, 2, 7001), (16, 5, 3), (2, 4, 1)] {
        let x: Vec<f32> = randn(&mut r, n * c * hw, 1.0).iter().map(|v| v + 100.0).collect();
        let m = n * hw;
        let (want_mean, want_var): (Vec<f64>, Vec<f64>) = (0..c)
            .map(|ch| {
                let vals: Vec<f64> =
                    (0..n).flat_map(|q| (0..hw).map(move |k| (q * c + ch) * hw + k)).map(|k| x[k] as f64).collect();
                let mean = vals.iter().sum::<f64>() / m as f64;
                let ss = vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>();
                (mean, ss / (m as f64 - 1.0))
            })
            .unzip();
        let (rm0, rv0) = (vec![0.0f32; c], vec![0.0f32; c]);
        let mut worst = 0.0f64;
        for grid in channel_grids(c, m) {
            let (mean, is, _, rv) = bn_stats(&x, n, c, hw, grid, &rm0, &rv0, 1.0, 1e-5);
            for ch in 0..c {
                let what = format!("n={n} c={c} hw={hw} grid {grid:?} channel {ch}");
                let (gm, gv) = (mean[ch] as f64, rv[ch] as f64);
                // mean: one rounding of ~100 to f32.
                assert!((gm - want_mean[ch]).abs() <= U * 100.5, "{what}: mean {gm} vs {}", want_mean[ch]);
                let err = (gv - want_var[ch]).abs();
                worst = worst.max(err / want_var[ch]);
                let tol = (U + 1e-12) * want_var[ch];
                assert!(err <= tol, "{what}: unbiased var {gv:e} vs {:e}: |err| {err:.2e} > {tol:.2e}", want_var[ch]);
                // invstd = 1/sqrt(biased var + eps): sqrt, divide and a final rounding.
                let want_is = 1.0 / (want_var[ch] * (m as f64 - 1.0) / m as f64 + 1e-5f32 as f64).sqrt();
                assert!((is[ch] as f64 - want_is).abs() <= 2.0 * U * want_is, "{what}: invstd {} vs {want_is}", is[ch]);
            }
        }
        // The tolerance has teeth: the naive float formula misses it by orders of magnitude.
        let vals: Vec<f32> = (0..n).flat_map(|q| x[q * c * hw..q * c * hw + hw].to_vec()).collect();
        let (s1, s2) = vals.iter().fold((0f32, 0f32), |(a, b), &v| (a + v, b + v * v));
        let mf = m as f32;
        let naive = ((s2 / mf - (s1 / mf) * (s1 / mf)) * mf / (mf - 1.0)) as f64;
        let naive_err = (naive - want_var[0]).abs() / want_var[0];
        assert!(naive_err > 100.0 * U, "naive float variance {naive} vs {}: the test could not fail", want_var[0]);
        eprintln!(
            "mean 100, sd 1, n={n} c={c} hw={hw}: worst |var err|/var {worst:.2e} (tolerance u = {U:.2e}); naive float {naive_err:.2e}"
        );
    }
}

// ---- pool.cu ------------------------------------------------------------------------------

#[test]
fn maxpool_ties_nan_and_overlap() {
    let mut r = Rng::new(30);
    // (n, c, h, w, k, stride): odd sizes (floor mode drops the last row/column), overlapping
    // windows (stride < k: several windows' gradients meet in one element), channels 1/3/17.
    for (n, c, h, w, k, s) in
        [(2usize, 3usize, 9usize, 13usize, 2usize, 2usize), (1, 1, 7, 7, 3, 2), (1, 17, 5, 6, 2, 1)]
    {
        let g = PoolGeom { n, c, h, w, k, stride: s };
        let (oh, ow) = (g.out_h(), g.out_w());
        // Values on a coarse grid so windows contain ties; a few NaNs.
        let mut x: Vec<f32> = randn(&mut r, n * c * h * w, 1.0).iter().map(|v| (v * 2.0).round() / 2.0).collect();
        for idx in [0, 5, x.len() / 2, x.len() - 1] {
            x[idx] = f32::NAN;
        }
        let (want_y, want_idx) = cpu().maxpool2d_forward(&x, &g).unwrap();
        let total = n * c * oh * ow;
        let mut y = nans(total);
        let mut idx = guard(&vec![u8::MAX; total]);
        launch(
            "maxpool2d_forward",
            ew(total),
            BLOCK,
            &[p(&x), pm(&mut y), pm(&mut idx), i(n), i(c), i(h), i(w), i(k), i(s), i(oh), i(ow)],
        );
        exact(&format!("maxpool2d_forward y {g:?}"), &y, &want_y);
        assert_eq!(&idx[..], &want_idx[..], "maxpool2d_forward argmax {g:?}");

        let dy = randn(&mut r, total, 1.0);
        let want = cpu().maxpool2d_backward(&dy, &want_idx, &g).unwrap();
        // The backward gathers, one thread per input element, and writes every element (no zero
        // fill): NaN-filled output catches a missed one. Also on a 3-block grid.
        for grid in [ew(n * c * h * w), grid1(3)] {
            let mut dx = nans(n * c * h * w);
            let args = [p(&dy), p(&want_idx), pm(&mut dx), i(n), i(c), i(h), i(w), i(k), i(s), i(oh), i(ow)];
            launch("maxpool2d_backward", grid, BLOCK, &args);
            // Overlapping windows add several dy in window order, as the CPU: exact.
            exact(&format!("maxpool2d_backward {g:?}"), &dx, &want);
        }
    }
}

#[test]
fn global_avgpool_and_channel_scale() {
    let mut r = Rng::new(31);
    for (planes, hw) in [(34usize, 117usize), (3, 1), (1, 3001), (512, 5)] {
        let len = planes * hw;
        let x = randn(&mut r, len, 1.0);
        let want = cpu().global_avgpool_forward(&x, planes, 1, hw).unwrap();
        let sabs = cpu().global_avgpool_forward(&abs(&x), planes, 1, hw).unwrap();
        let mut y = nans(planes);
        launch("global_avgpool_forward", grid1(planes), BLOCK, &[p(&x), pm(&mut y), i(planes), i(hw)]);
        check("global_avgpool_forward", &y, &want, |k| dbl(want[k], sabs[k] as f64));

        let dy = randn(&mut r, planes, 1.0);
        let mut dx = nans(len);
        launch("global_avgpool_backward", ew(len), BLOCK, &[p(&dy), pm(&mut dx), i(planes), i(hw)]);
        exact("global_avgpool_backward", &dx, &cpu().global_avgpool_backward(&dy, planes, 1, hw).unwrap());

        let s = randn(&mut r, planes, 1.0);
        let mut y = nans(len);
        launch("channel_scale_forward", ew(len), BLOCK, &[p(&x), p(&s), pm(&mut y), i(planes), i(hw)]);
        exact("channel_scale_forward", &y, &cpu().channel_scale_forward(&x, &s, planes, 1, hw).unwrap());

        let dy = randn(&mut r, len, 1.0);
        let (want_dx, want_ds) = cpu().channel_scale_backward(&dy, &x, &s, planes, 1, hw).unwrap();
        let (_, sabs) = cpu().channel_scale_backward(&abs(&dy), &abs(&x), &s, planes, 1, hw).unwrap();
        for grid in [grid1(planes), grid1(2)] {
            let (mut dx, mut ds) = (nans(len), nans(planes));
            launch(
                "channel_scale_backward",
                grid,
                BLOCK,
                &[p(&dy), p(&x), p(&s), pm(&mut dx), pm(&mut ds), i(planes), i(hw)],
            );
            exact("channel_scale_backward dx", &dx, &want_dx);
            check("channel_scale_backward ds", &ds, &want_ds, |k| dbl(want_ds[k], sabs[k] as f64));
        }
    }
}

// ---- loss.cu ------------------------------------------------------------------------------

#[test]
fn regression_losses() {
    let mut r = Rng::new(40);
    for n in [1usize, 37, 600] {
        let pr = randn(&mut r, n, 1.0);
        let mut t = randn(&mut r, n, 1.0);
        // Equal pairs: sign(0) = 0 for L1.
        for k in (0..n).step_by(5) {
            t[k] = pr[k];
        }
        let dl = [0.7f32];
        let cpu = cpu();
        let sabs: f64 = pr.iter().zip(&t).map(|(a, b)| ((a - b) as f64).powi(2) + (a - b).abs() as f64).sum();

        let want = cpu.mse_forward(&pr, &t).unwrap();
        let mut out = nans(1);
        launch("mse_forward", [1, 1, 1], BLOCK, &[p(&pr), p(&t), pm(&mut out), i(n)]);
        check("mse_forward", &out, &want, |_| dbl(want[0], sabs));

        let want = cpu.mse_backward(&pr, &t, &dl[..]).unwrap();
        let mut dp = nans(n);
        launch("mse_backward", ew(n), BLOCK, &[p(&pr), p(&t), p(&dl), pm(&mut dp), i(n)]);
        exact("mse_backward", &dp, &want);

        let want = cpu.l1_forward(&pr, &t).unwrap();
        let mut out = nans(1);
        launch("l1_forward", [1, 1, 1], BLOCK, &[p(&pr), p(&t), pm(&mut out), i(n)]);
        check("l1_forward", &out, &want, |_| dbl(want[0], sabs));

        let want = cpu.l1_backward(&pr, &t, &dl[..]).unwrap();
        let mut dp = nans(n);
        launch("l1_backward", ew(n), BLOCK, &[p(&pr), p(&t), p(&dl), pm(&mut dp), i(n)]);
        exact("l1_backward", &dp, &want);
    }
}

#[test]
fn cross_entropy() {
    let mut r = Rng::new(41);
    // A 2-class head, a wide row (lanes of a warp split the classes), one row of one class.
    for (rows, classes) in [(5usize, 3usize), (3, 300), (1, 1), (37, 2)] {
        let logits = randn(&mut r, rows * classes, 3.0);
        let labels: Vec<u32> = (0..rows).map(|_| r.below(classes) as u32).collect();
        let dl = [1.3f32];
        let cpu = cpu();
        let want = cpu.cross_entropy_forward(&logits, &labels, rows, classes).unwrap();
        let mut out = nans(1);
        launch("cross_entropy_forward", [1, 1, 1], BLOCK, &[p(&logits), p(&labels), pm(&mut out), i(rows), i(classes)]);
        // Double log-sum-exp (libm exp/log differ by an ulp of double), rounded once.
        let sabs: f64 = logits.iter().map(|v| v.abs() as f64).sum::<f64>() + rows as f64;
        check(&format!("cross_entropy_forward {rows}x{classes}"), &out, &want, |_| dbl(want[0], sabs));

        let want = cpu.cross_entropy_backward(&logits, &labels, rows, classes, &dl[..]).unwrap();
        let n = rows * classes;
        let mut dx = nans(n);
        launch(
            "cross_entropy_backward",
            ew(n),
            BLOCK,
            &[p(&logits), p(&labels), p(&dl), pm(&mut dx), i(rows), i(classes)],
        );
        check(&format!("cross_entropy_backward {rows}x{classes}"), &dx, &want, |k| {
            2.0 * U * want[k].abs() as f64 + 1e-12 * dl[0] as f64 / rows as f64
        });
    }
}

// ---- adam.cu ------------------------------------------------------------------------------

#[test]
fn adam_and_adamw_steps() {
    let mut r = Rng::new(50);
    let n = 1001;
    // (weight decay, decoupled, grad scale, step)
    for (wd, decoupled, gs, step) in [(0.0, false, 1.0, 1u64), (0.01, false, 0.5, 3), (0.05, true, 0.25, 7)] {
        let w0 = randn(&mut r, n, 1.0);
        let g = randn(&mut r, n, 1.0);
        let m0 = if step == 1 { vec![0.0; n] } else { randn(&mut r, n, 0.1) };
        let v0: Vec<f32> = if step == 1 { vec![0.0; n] } else { randn(&mut r, n, 0.1).iter().map(|v| v * v).collect() };
        let hp = AdamStep {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: wd,
            decoupled,
            step,
            grad_scale: gs,
        };
        let (mut w, mut m, mut v) = (w0.clone(), m0.clone(), v0.clone());
        cpu().adam_update(&mut w, &g, &mut m, &mut v, &hp).unwrap();

        // The host's f64 → f32 roundings, exactly as engine/src/backend/cpu/adam.rs forms them.
        let t = step as i32;
        let step_size = (hp.lr / (1.0 - hp.beta1.powi(t))) as f32;
        let bc2_sqrt = (1.0 - hp.beta2.powi(t)).sqrt() as f32;
        let decay = (1.0 - hp.lr * hp.weight_decay) as f32;
        let (mut gw, mut gm, mut gv) = (guard(&w0), guard(&m0), guard(&v0));
        launch(
            "adam_update",
            ew(n),
            BLOCK,
            &[
                pm(&mut gw),
                p(&g),
                pm(&mut gm),
                pm(&mut gv),
                i(n),
                A::F(step_size),
                A::F((1.0 - hp.beta1) as f32),
                A::F(hp.beta2 as f32),
                A::F((1.0 - hp.beta2) as f32),
                A::F(hp.eps as f32),
                A::F(wd as f32),
                A::I(decoupled as i32),
                A::F(bc2_sqrt),
                A::F(gs as f32),
                A::F(decay),
            ],
        );
        let what = format!("adam wd={wd} decoupled={decoupled} step={step}");
        // Same float operations in the same order; a fused multiply-add may save a rounding in
        // each of m, v and the update: a few u of each quantity's terms.
        check(&format!("{what} m"), &gm, &m, |k| 4.0 * U * (m0[k].abs() + g[k].abs() + w0[k].abs() * 0.05) as f64);
        check(&format!("{what} v"), &gv, &v, |k| 4.0 * U * (v0[k] + g[k] * g[k] + w0[k].abs() * 0.05) as f64);
        check(&format!("{what} w"), &gw, &w, |k| {
            // The update's size is ≤ step_size·|m|/(√v/bc2 + eps), about lr·(1 … 10) here.
            let upd = (w0[k] - w[k]).abs() as f64;
            4.0 * U * (w0[k].abs() as f64 + 8.0 * upd)
        });
    }
}
