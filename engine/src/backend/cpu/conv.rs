//! CPU convolution: the three entry points and the choice of algorithm per pass and shape.
//!
//! Algorithms (each in its own file):
//! * `Im2col`: tiled im2col + the `gemm` crate; any kernel, stride and padding (im2col.rs).
//! * `Direct`: 3×3 stride 1 on packed weights, no unfold; for few input channels (direct.rs).
//! * `WinogradF2` / `WinogradF4`: F(2×2, 3×3) / F(4×4, 3×3), 2.25× / 4× fewer multiplies in
//!   the transformed domain (winograd.rs).
//!
//! `choose` picks one per pass from measurements (docs/perf-conv.md) and numerics
//! (tests/conv_numerics.rs: on every production shape the chosen path's f32 error against f64 is
//! at most twice a plain fixed-order f32 convolution's). The input gradient of a stride-1 convolution is the forward
//! pass of its adjoint (dy with the flipped, transposed kernel), so every algorithm's forward
//! also serves as its input gradient.

pub use super::microkernel::{SIMD_VAR, has_simd};
use super::winograd_transform::{F2, F4};
use super::{direct, im2col, winograd};
use crate::backend::ConvGeom;
use crate::error::{Error, Result};
use crate::float::Float;
use rayon::prelude::*;
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A convolution algorithm of the CPU backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConvAlgo {
    Im2col,
    Direct,
    WinogradF2,
    WinogradF4,
}

impl ConvAlgo {
    pub const ALL: [ConvAlgo; 4] = [ConvAlgo::Im2col, ConvAlgo::Direct, ConvAlgo::WinogradF2, ConvAlgo::WinogradF4];

    /// Whether this algorithm computes `pass` on `g` for elements of `elem` bytes.
    pub fn supports(self, pass: Pass, g: &ConvGeom, elem: usize) -> bool {
        match self {
            ConvAlgo::Im2col => true,
            ConvAlgo::Direct => {
                direct::supports(g) && (pass != Pass::BackwardWeight || direct::weight_grad_fits(g, elem))
            }
            ConvAlgo::WinogradF2 | ConvAlgo::WinogradF4 => winograd::supports(g),
        }
    }
}

/// One of the three passes of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pass {
    Forward,
    BackwardInput,
    BackwardWeight,
}

thread_local! {
    /// The algorithm `with_algo` forces on this thread, if any.
    static FORCED: Cell<Option<ConvAlgo>> = const { Cell::new(None) };
    /// Workspace bytes allocated by the current (last) entry-point call on this thread.
    static WORKSPACE: Cell<usize> = const { Cell::new(0) };
}

/// Runs `f` with every convolution on this thread computed by `algo` wherever it supports the
/// pass and shape (the others keep their usual choice): how tests reach a path through the
/// tape (`ops::conv2d`), whose calls run on the caller's thread.
pub fn with_algo<R>(algo: ConvAlgo, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<ConvAlgo>);
    impl Drop for Restore {
        fn drop(&mut self) {
            FORCED.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(FORCED.with(|c| c.replace(Some(algo))));
    f()
}

/// The algorithm the entry points use for `pass` on `g`.
///
/// Without a SIMD micro-kernel for T on this CPU (f64; no AVX-512) everything stays on the
/// `gemm` crate. Otherwise, for 3×3 stride-1 convolutions (padding ≤ 2), from the measurements
/// in docs/perf-conv.md and the numerics in tests/conv_numerics.rs:
/// * C_in < 16 (the C_in = 1 first layer): the direct forward (~1.9× im2col's); both gradients
///   stay on im2col, which measured faster there (the input gradient is col2im, and the tape
///   does not ask for it when the input is data).
/// * C_in ≥ 16: Winograd F(2×2) for all three passes (2-4× im2col's). F(4×4) is faster still on
///   most shapes but rounds 2-6× (RMS) and up to 13× (max) worse than a plain f32 convolution, over
///   the rule's 2×, so it is off; the direct path is slower.
pub fn choose<T: Float>(pass: Pass, g: &ConvGeom) -> ConvAlgo {
    let elem = size_of::<T>();
    if let Some(a) = FORCED.with(|c| c.get())
        && a.supports(pass, g, elem)
    {
        return a;
    }
    if !has_simd::<T>() || !winograd::supports(g) {
        return ConvAlgo::Im2col;
    }
    match (g.c_in < 16, pass) {
        (true, Pass::Forward) => ConvAlgo::Direct,
        (true, _) => ConvAlgo::Im2col,
        (false, _) => ConvAlgo::WinogradF2,
    }
}

pub fn forward<T: Float>(x: &[T], w: &[T], b: Option<&[T]>, g: &ConvGeom) -> Vec<T> {
    run_forward(choose::<T>(Pass::Forward, g), x, w, b, g)
}

pub fn backward_input<T: Float>(dy: &[T], w: &[T], g: &ConvGeom) -> Vec<T> {
    run_backward_input(choose::<T>(Pass::BackwardInput, g), dy, w, g)
}

pub fn backward_weight<T: Float>(dy: &[T], x: &[T], g: &ConvGeom) -> Vec<T> {
    run_backward_weight(choose::<T>(Pass::BackwardWeight, g), dy, x, g)
}

fn check<T: Float>(algo: ConvAlgo, pass: Pass, g: &ConvGeom) -> Result<()> {
    if algo.supports(pass, g, size_of::<T>()) {
        Ok(())
    } else {
        Err(Error::Invalid(format!("conv2d {pass:?}: {algo:?} does not support {g:?}; use ConvAlgo::Im2col")))
    }
}

/// The forward pass by `algo` (tests and benches); an error if it does not support `g`.
pub fn forward_with<T: Float>(algo: ConvAlgo, x: &[T], w: &[T], b: Option<&[T]>, g: &ConvGeom) -> Result<Vec<T>> {
    check::<T>(algo, Pass::Forward, g)?;
    Ok(run_forward(algo, x, w, b, g))
}

/// The input gradient by `algo` (tests and benches); an error if it does not support `g`.
pub fn backward_input_with<T: Float>(algo: ConvAlgo, dy: &[T], w: &[T], g: &ConvGeom) -> Result<Vec<T>> {
    check::<T>(algo, Pass::BackwardInput, g)?;
    Ok(run_backward_input(algo, dy, w, g))
}

/// The weight gradient by `algo` (tests and benches); an error if it does not support `g`.
pub fn backward_weight_with<T: Float>(algo: ConvAlgo, dy: &[T], x: &[T], g: &ConvGeom) -> Result<Vec<T>> {
    check::<T>(algo, Pass::BackwardWeight, g)?;
    Ok(run_backward_weight(algo, dy, x, g))
}

fn run_forward<T: Float>(algo: ConvAlgo, x: &[T], w: &[T], b: Option<&[T]>, g: &ConvGeom) -> Vec<T> {
    WORKSPACE.with(|c| c.set(0));
    match algo {
        ConvAlgo::Im2col => im2col::forward(x, w, b, g),
        ConvAlgo::Direct => direct::forward(x, w, b, g),
        ConvAlgo::WinogradF2 => winograd::forward::<F2, T>(x, w, b, g),
        ConvAlgo::WinogradF4 => winograd::forward::<F4, T>(x, w, b, g),
    }
}

fn run_backward_input<T: Float>(algo: ConvAlgo, dy: &[T], w: &[T], g: &ConvGeom) -> Vec<T> {
    WORKSPACE.with(|c| c.set(0));
    if algo == ConvAlgo::Im2col {
        return im2col::backward_input(dy, w, g);
    }
    // Stride 1, 3×3, pad ≤ 2 (checked by `supports`): dx = conv(dy, flip(W)ᵀ), pad 2 - pad.
    match algo {
        ConvAlgo::Direct => direct::forward(dy, &im2col::flip_transpose(w, g), None, &im2col::adjoint(g)),
        ConvAlgo::WinogradF2 => winograd::backward_input::<F2, T>(dy, w, g),
        _ => winograd::backward_input::<F4, T>(dy, w, g),
    }
}

fn run_backward_weight<T: Float>(algo: ConvAlgo, dy: &[T], x: &[T], g: &ConvGeom) -> Vec<T> {
    WORKSPACE.with(|c| c.set(0));
    match algo {
        ConvAlgo::Im2col => im2col::backward_weight(dy, x, g),
        ConvAlgo::Direct => direct::backward_weight(dy, x, g),
        ConvAlgo::WinogradF2 => winograd::backward_weight::<F2, T>(dy, x, g),
        ConvAlgo::WinogradF4 => winograd::backward_weight::<F4, T>(dy, x, g),
    }
}

/// Bytes of private workspace `algo` allocates for `pass` on `g` with elements T, with the
/// current rayon pool (the per-worker buffers scale with its thread count). Not counted: the
/// result itself, and the `gemm` crate's internal packing buffers (im2col only).
///
/// * Im2col forward and weight gradient: the unfolded tile, 9·C_in × (rows per tile · ow).
///   Input gradient: C_in ≥ 16: the flipped kernel + the adjoint's forward; else the whole
///   unfolded gradient 9·C_in × oh·ow (col2im).
/// * Direct forward: packed weights and bias (C_out rounded up to 8) + per worker three padded
///   input rows per input channel and an 8 × 32 tail. Weight gradient: per worker the strip,
///   one dy row and C_out·C_in·9·16 partial sums (≤ 1 MiB, else direct does not apply).
/// * Winograd F(m) forward, with A = m + 2: U = A²·C_out·C_in (C_out rounded up to 8) + per
///   worker one block: V = A²·C_in·32·panels + M = A²·32·panels·min(C_out, 64) + transform
///   scratch, panels chosen so V ≈ 1 MiB (4 panels where
///   that stays ≤ 4 MiB). Weight gradient: Mw = A²·C_out·C_in + one block's
///   transformed x and dy, A²·32·panels·(C_in + C_out) ≈ 8 MiB, + per worker a 32×32·A² transpose
///   buffer and scratch (channel counts rounded up to 8 and 32).
/// * Input gradients: Winograd, its forward pass on the adjoint geometry (reading the kernel
///   flipped); direct, the flipped kernel + its forward pass on the adjoint geometry.
pub fn workspace_bytes<T: Float>(algo: ConvAlgo, pass: Pass, g: &ConvGeom) -> usize {
    let e = size_of::<T>();
    let elems = match (algo, pass) {
        (ConvAlgo::Im2col, _) => im2col::workspace_elems(pass, g),
        (ConvAlgo::Direct, Pass::BackwardInput) => g.weight_len() + forward_elems(algo, &im2col::adjoint(g), e),
        (_, Pass::BackwardInput) => forward_elems(algo, &im2col::adjoint(g), e),
        (_, Pass::Forward) => forward_elems(algo, g, e),
        (ConvAlgo::Direct, Pass::BackwardWeight) => direct::backward_weight_workspace(g),
        (ConvAlgo::WinogradF2, Pass::BackwardWeight) => winograd::backward_weight_workspace::<F2>(g, e),
        (ConvAlgo::WinogradF4, Pass::BackwardWeight) => winograd::backward_weight_workspace::<F4>(g, e),
    };
    elems * e
}

fn forward_elems(algo: ConvAlgo, g: &ConvGeom, e: usize) -> usize {
    match algo {
        ConvAlgo::Im2col => im2col::workspace_elems(Pass::Forward, g),
        ConvAlgo::Direct => direct::forward_workspace(g),
        ConvAlgo::WinogradF2 => winograd::forward_workspace::<F2>(g, e),
        ConvAlgo::WinogradF4 => winograd::forward_workspace::<F4>(g, e),
    }
}

/// Workspace bytes the last entry-point call on this thread allocated (what `workspace_bytes`
/// promises; tests compare the two).
pub fn last_workspace_bytes() -> usize {
    WORKSPACE.with(|c| c.get())
}

/// A zeroed workspace of `len` elements, counted towards the running call's total. Every path
/// allocates its workspace through here, on the calling thread.
pub(super) fn arena<T: Float>(len: usize) -> Vec<T> {
    WORKSPACE.with(|c| c.set(c.get() + len * size_of::<T>()));
    zeroed(len)
}

/// A zeroed buffer of `len` elements. From 4 MiB up it asks Linux for transparent huge pages
/// before anything touches it: such a buffer is a fresh mapping (above glibc's mmap threshold),
/// and on this VM first-touch faults of 4 KiB pages dominated the direct forward of block 1 (its
/// 42 MB output: CPU time 32 → 13 ms with huge pages, and the two threads stopped serialising on
/// the fault path's locks). A hint only: the contents and size are unchanged.
pub(super) fn zeroed<T: Float>(len: usize) -> Vec<T> {
    let mut v = vec![T::ZERO; len];
    crate::hugepages::advise(v.as_mut_ptr() as *mut u8, len * size_of::<T>());
    v
}

/// Runs jobs 0..njobs on one worker per `per`-element chunk of `arena`, each taking the next job
/// when it finishes one (so a core slowed by other load takes fewer).
pub(super) fn workers<T: Float>(arena: &mut [T], per: usize, njobs: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let next = AtomicUsize::new(0);
    arena.par_chunks_mut(per).for_each(|buf| {
        loop {
            let j = next.fetch_add(1, Ordering::Relaxed);
            if j >= njobs {
                break;
            }
            f(j, buf);
        }
    });
}

/// Per-channel sums over n and hw, accumulated in f64.
pub fn channel_sums<T: Float>(dy: &[T], n: usize, c: usize, hw: usize) -> Vec<T> {
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let s: f64 = (0..n)
                .map(|i| dy[(i * c + ch) * hw..(i * c + ch + 1) * hw].iter().map(|v| v.to_f64()).sum::<f64>())
                .sum();
            T::from_f64(s)
        })
        .collect()
}

/// Elements of private workspace the entry point for `pass` registers on `g`: that of the
/// algorithm `choose` picks (for the backend's memory ledger).
pub fn chosen_workspace_elems<T: Float>(pass: Pass, g: &ConvGeom) -> usize {
    workspace_bytes::<T>(choose::<T>(pass, g), pass, g) / size_of::<T>()
}
