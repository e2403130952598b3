//! exp and erf in f32 without a libm call, so the CPU backend's softmax and GELU loops vectorise
//! (a scalar `expf`/`erff` call per element cost as much as a MiniLM layer's matrix products).
//! Only the f32 paths use them; f64 (the gradient checks) keeps the library functions.
//!
//! - `exp_f32`: Cody–Waite reduction x = n·ln2 + r, |r| ≤ ln2/2, Cephes' degree-6 polynomial for
//!   e^r, 2^n built in the exponent bits. Relative error ≤ 2e-7 (≈ 2 ulp) on [−87, 88]; inputs below
//!   −87.3 give ~1e-38 instead of a denormal (softmax arguments are ≤ 0 and such terms are ~0
//!   against the maximum's 1), NaN stays NaN.
//! - `erf_f32`: the Maclaurin series below |x| = 0.5, Abramowitz & Stegun 7.1.26 above
//!   (erf x = 1 − t·P(t)·e^{−x²}, t = 1/(1 + p·x)), odd extension: absolute error ≤ 3e-7 (A&S's
//!   1.5e-7 plus f32 rounding; measured 2.7e-7), under 3 ulp of GELU's 1 + erf.
//!
//! The unit tests below measure both against f64 on dense grids.

const MAGIC: f32 = 12_582_912.0; // 1.5·2^23: adding it rounds to an integer held in the low bits.
const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    // Comparisons (not min/max) keep a NaN a NaN.
    let x = if x < -87.3 { -87.3 } else { x };
    let x = if x > 88.3 { 88.3 } else { x };
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    let ni = t.to_bits() as i32 - MAGIC.to_bits() as i32;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_2e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5; // the fit's 5.0000001e-1, which rounds to 0.5 in f32
    let y = p * r * r + r + 1.0;
    y * f32::from_bits((ni.wrapping_add(127) as u32) << 23)
}

#[inline(always)]
pub fn erf_f32(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152 + t * 1.061_405_4))));
    let tail = 1.0 - poly * exp_f32(-a * a);
    // Near 0, 1 − poly·e^{−x²} cancels: the Maclaurin series keeps erf's relative accuracy there.
    let z = a * a;
    let series = std::f32::consts::FRAC_2_SQRT_PI
        * a
        * (1.0
            + z * (-1.0 / 3.0 + z * (0.1 + z * (-1.0 / 42.0 + z * (1.0 / 216.0 + z * (-1.0 / 1320.0 + z / 9360.0))))));
    let y = if a < 0.5 { series } else { tail };
    if x < 0.0 { -y } else { y }
}

/// GELU (erf form) of one f32 and its derivative Φ(x) + x·φ(x).
#[inline(always)]
pub fn gelu_f32(x: f32) -> (f32, f32) {
    let cdf = 0.5 * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2));
    let pdf = 0.398_942_3 * exp_f32(-0.5 * x * x);
    (x * cdf, cdf + x * pdf)
}

/// Defines `pub fn $name(args)` whose body is compiled twice, for the baseline and for AVX2 + FMA
/// (8 lanes, fused multiply-adds), the latter chosen at run time when the CPU has both.
macro_rules! multiversion {
    ($(#[$m:meta])* pub fn $name:ident($($arg:ident: $t:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        pub fn $name($($arg: $t),*) {
            #[inline(always)]
            fn body($($arg: $t),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $t),*) {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has both features (checked just above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

multiversion! {
    /// y = GELU(x) (erf form), f32.
    pub fn gelu_forward(x: &[f32], y: &mut [f32]) {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = gelu_f32(v).0;
        }
    }
}

multiversion! {
    /// dx = dy·GELU'(x), f32.
    pub fn gelu_backward(x: &[f32], dy: &[f32], dx: &mut [f32]) {
        for ((o, &v), &d) in dx.iter_mut().zip(x).zip(dy) {
            *o = d * gelu_f32(v).1;
        }
    }
}

/// Max over 8 independent lanes (so the loop vectorises), NaN-ignoring like `v > m`.
#[inline(always)]
fn max_lanes(x: &[f32]) -> f32 {
    let mut m = [f32::NEG_INFINITY; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            m[l] = if c[l] > m[l] { c[l] } else { m[l] };
        }
    }
    for &v in rest {
        m[0] = if v > m[0] { v } else { m[0] };
    }
    m.iter().fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a })
}

/// Σ over 8 lanes added in lane order at the end (vectorises; fixed order, so deterministic).
#[inline(always)]
fn sum_lanes(x: &[f32]) -> f32 {
    let mut s = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            s[l] += c[l];
        }
    }
    for &v in rest {
        s[0] += v;
    }
    s.iter().sum()
}

multiversion! {
    /// One row of the scaled masked softmax in f32: v = scale·s at unmasked keys (−∞ elsewhere),
    /// e = exp(v − max v) (exactly 0 where v = −∞), p = e·(1/Σe). A row with no unmasked key is
    /// all 0. Each pass is a plain loop over the row, which the compiler vectorises.
    pub fn softmax_row(s: &[f32], mask: &[f32], scale: f32, out: &mut [f32]) {
        for ((o, &v), &m) in out.iter_mut().zip(s).zip(mask) {
            *o = if m != 0.0 { scale * v } else { f32::NEG_INFINITY };
        }
        let mx = max_lanes(out);
        if mx == f32::NEG_INFINITY {
            out.iter_mut().for_each(|o| *o = 0.0);
            return;
        }
        for o in out.iter_mut() {
            let v = *o;
            let e = exp_f32(v - mx);
            *o = if v == f32::NEG_INFINITY { 0.0 } else { e };
        }
        let inv = 1.0 / sum_lanes(out);
        for o in out.iter_mut() {
            *o *= inv;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp() {
        let mut worst = 0.0f64;
        let mut x = -87.0f64;
        while x < 88.0 {
            let got = exp_f32(x as f32) as f64;
            let want = (x as f32 as f64).exp();
            worst = worst.max(((got - want) / want).abs());
            x += 1e-3;
        }
        assert!(worst < 2.5e-7, "exp relative error {worst:.2e}");
        assert!(exp_f32(f32::NAN).is_nan());
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(-1e30) < 1e-37);
    }

    #[test]
    fn erf_absolute_error_is_within_three_ulp_of_one() {
        let mut worst = 0.0f64;
        let mut x = -9.0f64;
        while x < 9.0 {
            let xf = x as f32;
            let want = libm::erf(xf as f64);
            worst = worst.max((erf_f32(xf) as f64 - want).abs());
            x += 1e-4;
        }
        assert!(worst < 3e-7, "erf absolute error {worst:.2e}");
        // GELU: relative to the value where it is not tiny.
        for &x in &[-3.0f32, -1.0, -0.1, 0.3, 1.0, 2.5, 7.0] {
            let (y, d) = gelu_f32(x);
            let xd = x as f64;
            let cdf = 0.5 * (1.0 + libm::erf(xd / 2f64.sqrt()));
            let wy = xd * cdf;
            let wd = cdf + xd * (-0.5 * xd * xd).exp() / (2.0 * std::f64::consts::PI).sqrt();
            assert!((y as f64 - wy).abs() <= 3e-7 * xd.abs().max(1e-3), "gelu({x}) = {y} vs {wy}");
            assert!((d as f64 - wd).abs() <= 3e-7, "gelu'({x}) = {d} vs {wd}");
        }
    }
}
