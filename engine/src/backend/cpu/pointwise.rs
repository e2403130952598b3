//! Elementwise maps, activations and dropout masks.

use super::fastmath;
use crate::backend::Unary;
use crate::float::Float;
use crate::rng::hash_uniform;
use rayon::prelude::*;

const INV_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
/// 1/sqrt(2π), the standard normal density's constant.
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;
/// sqrt(2/π) and the cubic coefficient of GELU's tanh form (PyTorch's constants).
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const GELU_TANH_CUBIC: f64 = 0.044_715;

/// GELU's tanh form and its derivative, in T as PyTorch computes them in f32.
fn gelu_tanh<T: Float>(v: T) -> (T, T) {
    let (half, c, a) = (T::from_f64(0.5), T::from_f64(SQRT_2_OVER_PI), T::from_f64(GELU_TANH_CUBIC));
    let inner = c * (v + a * v * v * v);
    let t = inner.tanh();
    let y = half * v * (T::ONE + t);
    let three = T::from_f64(3.0);
    let dinner = c * (T::ONE + three * a * v * v);
    let dy = half * (T::ONE + t) + half * v * (T::ONE - t * t) * dinner;
    (y, dy)
}

/// f over two operands, in parallel chunks of plain loops (which vectorise, unlike a per-element
/// parallel collect).
pub fn zip_map<T: Float>(a: &[T], b: &[T], f: impl Fn(T, T) -> T + Sync) -> Vec<T> {
    let mut out = vec![T::ZERO; a.len()];
    out.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK))).for_each(|(o, (x, y))| {
        for ((o, &x), &y) in o.iter_mut().zip(x).zip(y) {
            *o = f(x, y);
        }
    });
    out
}

/// Elements per parallel task of the f32 fast paths.
const CHUNK: usize = 4096;

/// The f32 buffers of a T = f32 backend (None for f64, which keeps the library functions).
pub(crate) fn as_f32<T: Float>(x: &[T]) -> Option<&[f32]> {
    // SAFETY: T is f32 exactly when it has f32's DTYPE; then the slice is a slice of f32.
    (T::DTYPE == safetensors::Dtype::F32)
        .then(|| unsafe { std::slice::from_raw_parts(x.as_ptr() as *const f32, x.len()) })
}

pub(crate) fn as_f32_mut<T: Float>(x: &mut [T]) -> Option<&mut [f32]> {
    // SAFETY: as above.
    (T::DTYPE == safetensors::Dtype::F32)
        .then(|| unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr() as *mut f32, x.len()) })
}

pub fn unary_forward<T: Float>(op: Unary, x: &[T]) -> Vec<T> {
    if op == Unary::Gelu
        && let Some(xf) = as_f32(x)
    {
        let mut y = vec![T::ZERO; x.len()];
        let yf = as_f32_mut(&mut y).expect("T is f32");
        yf.par_chunks_mut(CHUNK).zip(xf.par_chunks(CHUNK)).for_each(|(o, i)| fastmath::gelu_forward(i, o));
        return y;
    }
    let half = T::from_f64(0.5);
    let r2 = T::from_f64(INV_SQRT_2);
    x.par_iter()
        .map(|&v| match op {
            Unary::Relu => {
                if v > T::ZERO {
                    v
                } else {
                    T::ZERO
                }
            }
            Unary::Sigmoid => T::ONE / (T::ONE + (-v).exp()),
            Unary::Tanh => v.tanh(),
            Unary::Gelu => half * v * (T::ONE + (v * r2).erf()),
            Unary::GeluTanh => gelu_tanh(v).0,
        })
        .collect()
}

pub fn unary_backward<T: Float>(op: Unary, x: &[T], y: &[T], dy: &[T]) -> Vec<T> {
    if op == Unary::Gelu
        && let (Some(xf), Some(df)) = (as_f32(x), as_f32(dy))
    {
        let mut dx = vec![T::ZERO; x.len()];
        let of = as_f32_mut(&mut dx).expect("T is f32");
        of.par_chunks_mut(CHUNK)
            .zip(xf.par_chunks(CHUNK).zip(df.par_chunks(CHUNK)))
            .for_each(|(o, (i, d))| fastmath::gelu_backward(i, d, o));
        return dx;
    }
    let half = T::from_f64(0.5);
    let r2 = T::from_f64(INV_SQRT_2);
    let c = T::from_f64(INV_SQRT_2PI);
    (0..dy.len())
        .into_par_iter()
        .map(|i| {
            let d = dy[i];
            match op {
                Unary::Relu => {
                    if y[i] > T::ZERO {
                        d
                    } else {
                        T::ZERO
                    }
                }
                Unary::Sigmoid => d * y[i] * (T::ONE - y[i]),
                Unary::Tanh => d * (T::ONE - y[i] * y[i]),
                Unary::Gelu => {
                    let v = x[i];
                    let cdf = half * (T::ONE + (v * r2).erf());
                    let pdf = c * (-half * v * v).exp();
                    d * (cdf + v * pdf)
                }
                Unary::GeluTanh => d * gelu_tanh(x[i]).1,
            }
        })
        .collect()
}

/// Element i is dropped iff `hash_uniform(seed, i) < p`, decided on the integer draw: the uniform
/// is k·2⁻⁵³ with k = the top 53 bits of the hash, and k·2⁻⁵³ < p ⇔ k < ⌈p·2⁵³⌉ exactly (p·2⁵³ is
/// exact), so the mask is bit for bit `hash_uniform`'s without an int-to-float conversion, and the
/// chunked loop vectorises.
pub fn dropout_mask<T: Float>(len: usize, p: f64, seed: u64) -> Vec<T> {
    let keep = T::from_f64(1.0 / (1.0 - p));
    let threshold = (p * (1u64 << 53) as f64).ceil() as u64;
    debug_assert!((0..64).all(|i| (hash_uniform(seed, i) < p) == (hash_bits(seed, i) < threshold)));
    let mut out = vec![T::ZERO; len];
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, o)| {
        let base = (c * CHUNK) as u64;
        for (j, v) in o.iter_mut().enumerate() {
            *v = if hash_bits(seed, base + j as u64) < threshold { T::ZERO } else { keep };
        }
    });
    out
}

/// The top 53 bits of `rng::hash_uniform`'s hash (its uniform is this times 2⁻⁵³).
#[inline(always)]
fn hash_bits(seed: u64, index: u64) -> u64 {
    crate::rng::mix64(seed ^ crate::rng::mix64(index.wrapping_add(0x9e37_79b9_7f4a_7c15))) >> 11
}

/// Σ x² in f64: chunk sums in parallel, then added in chunk order, so the result does not depend
/// on how rayon split the work (a resumed run must reproduce the clip coefficient bit for bit).
pub fn sum_squares<T: Float>(x: &[T]) -> f64 {
    let parts: Vec<f64> = x.par_chunks(4096).map(|c| c.iter().map(|v| v.to_f64() * v.to_f64()).sum::<f64>()).collect();
    parts.iter().sum()
}

/// y = max(x, 0) and mask = (x > 0) as 0/1 bytes (NaN: y = 0, mask 0, as `x > 0` is false).
pub fn relu_forward<T: Float>(x: &[T]) -> (Vec<T>, Vec<u8>) {
    let y = x.par_iter().map(|&v| if v > T::ZERO { v } else { T::ZERO }).collect();
    let m = x.par_iter().map(|&v| (v > T::ZERO) as u8).collect();
    (y, m)
}

/// dy ← dy where the mask is set, else 0.
pub fn relu_backward_in_place<T: Float>(dy: &mut [T], mask: &[u8]) {
    dy.par_iter_mut().zip(mask.par_iter()).for_each(|(d, &m)| {
        if m == 0 {
            *d = T::ZERO;
        }
    });
}
