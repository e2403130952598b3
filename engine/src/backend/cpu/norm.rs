//! Batch normalisation over NC(HW), statistics accumulated in f64 per channel.

use super::HostBuf;
use crate::backend::{BnParams, ChannelGeom};
use crate::error::Result;
use crate::float::Float;
use rayon::prelude::*;

/// y = (x - mean[c]) · scale[c] + shift[c] elementwise, parallel over planes.
pub(super) fn affine<T: Float>(x: &[T], c: usize, hw: usize, mean: &[T], scale: &[T], shift: &[T]) -> Vec<T> {
    let mut y = vec![T::ZERO; x.len()];
    y.par_chunks_mut(hw).zip(x.par_chunks(hw)).enumerate().for_each(|(p, (yp, xp))| {
        let ch = p % c;
        let (m, s, b) = (mean[ch], scale[ch], shift[ch]);
        for (yv, &xv) in yp.iter_mut().zip(xp) {
            *yv = (xv - m) * s + b;
        }
    });
    y
}

/// Σ(v − s) and Σ(v − s)² over a plane in f64, in eight independent lanes so the loop
/// vectorises (a single accumulator is a serial dependency chain).
fn shifted_sums<T: Float>(plane: &[T], s: f64) -> (f64, f64) {
    let (mut a1, mut a2) = ([0.0f64; 8], [0.0f64; 8]);
    let mut chunks = plane.chunks_exact(8);
    for ch in &mut chunks {
        for l in 0..8 {
            let d = ch[l].to_f64() - s;
            a1[l] += d;
            a2[l] += d * d;
        }
    }
    let (mut s1, mut s2): (f64, f64) = (a1.iter().sum(), a2.iter().sum());
    for v in chunks.remainder() {
        let d = v.to_f64() - s;
        s1 += d;
        s2 += d * d;
    }
    (s1, s2)
}

/// Batch mean and invstd per channel, and the momentum update of the running statistics
/// (running_var with the unbiased variance, as PyTorch). `bias_shift` is a per-channel constant
/// the caller removed from x (the fused unit's conv bias): the running mean tracks x + shift.
///
/// One pass in f64, shifted by the channel's first element: the variance Σ(x−s)²/M − (Σ(x−s)/M)²
/// cancels only by (mean − s)²/var in units of 2^-53, negligible for f32 data (24-bit).
pub fn batch_stats<T: Float>(
    x: &[T],
    bias_shift: Option<&[T]>,
    running_mean: &mut [T],
    running_var: &mut [T],
    g: &ChannelGeom,
    p: &BnParams,
) -> (Vec<T>, Vec<T>) {
    let (n, c, hw, momentum) = (g.n, g.c, g.hw, p.momentum);
    let count = (n * hw) as f64;
    let moments: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let s = x[ch * hw].to_f64();
            let (s1, s2) = (0..n).fold((0.0, 0.0), |(a, b), i| {
                let (p1, p2) = shifted_sums(&x[(i * c + ch) * hw..(i * c + ch + 1) * hw], s);
                (a + p1, b + p2)
            });
            let d = s1 / count;
            (s + d, (s2 / count - d * d).max(0.0))
        })
        .collect();
    let mean = moments.iter().map(|m| T::from_f64(m.0)).collect();
    let invstd = moments.iter().map(|m| T::from_f64(1.0 / (m.1 + p.eps).sqrt())).collect();
    for (ch, &(m, var_biased)) in moments.iter().enumerate() {
        let unbiased = if count > 1.0 { var_biased * count / (count - 1.0) } else { var_biased };
        let shift = bias_shift.map_or(0.0, |b| b[ch].to_f64());
        let (rm, rv) = (running_mean[ch].to_f64(), running_var[ch].to_f64());
        running_mean[ch] = T::from_f64((1.0 - momentum) * rm + momentum * (m + shift));
        running_var[ch] = T::from_f64((1.0 - momentum) * rv + momentum * unbiased);
    }
    (mean, invstd)
}

#[allow(clippy::too_many_arguments)]
pub fn forward_train<T: Float>(
    x: &[T],
    gamma: &[T],
    beta: &[T],
    running_mean: &mut [T],
    running_var: &mut [T],
    n: usize,
    c: usize,
    hw: usize,
    momentum: f64,
    eps: f64,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let (g, p) = (ChannelGeom { n, c, hw }, BnParams { momentum, eps });
    let (mean, invstd) = batch_stats(x, None, running_mean, running_var, &g, &p);
    let scale: Vec<T> = (0..c).map(|ch| invstd[ch] * gamma[ch]).collect();
    let y = affine(x, c, hw, &mean, &scale, beta);
    (y, mean, invstd)
}

#[allow(clippy::too_many_arguments)]
pub fn forward_eval<T: Float>(
    x: &[T],
    gamma: &[T],
    beta: &[T],
    running_mean: &[T],
    running_var: &[T],
    c: usize,
    hw: usize,
    eps: f64,
) -> Vec<T> {
    let scale: Vec<T> =
        (0..c).map(|ch| T::from_f64(gamma[ch].to_f64() / (running_var[ch].to_f64() + eps).sqrt())).collect();
    affine(x, c, hw, running_mean, &scale, beta)
}

/// dx = γ·invstd/M · (M·dy − Σdy − x̂·Σ(dy·x̂)), dγ = Σ dy·x̂, dβ = Σ dy.
#[allow(clippy::too_many_arguments)]
pub fn backward<T: Float>(
    dy: &[T],
    x: &[T],
    gamma: &[T],
    mean: &[T],
    invstd: &[T],
    n: usize,
    c: usize,
    hw: usize,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let count = (n * hw) as f64;
    // Σdy and Σ dy·x̂ per channel, walking dy and x together.
    let stats: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (m, is) = (mean[ch].to_f64(), invstd[ch].to_f64());
            let mut sd = 0.0;
            let mut sdx = 0.0;
            for i in 0..n {
                let r = (i * c + ch) * hw..(i * c + ch + 1) * hw;
                for (&d, &xv) in dy[r.clone()].iter().zip(&x[r]) {
                    let d = d.to_f64();
                    sd += d;
                    sdx += d * (xv.to_f64() - m) * is;
                }
            }
            (sd, sdx)
        })
        .collect();
    let mut dx = vec![T::ZERO; x.len()];
    dx.par_chunks_mut(hw).zip(dy.par_chunks(hw).zip(x.par_chunks(hw))).enumerate().for_each(|(p, (dxp, (dyp, xp)))| {
        let ch = p % c;
        let (m, is, g) = (mean[ch].to_f64(), invstd[ch].to_f64(), gamma[ch].to_f64());
        let (sd, sdx) = stats[ch];
        let k = g * is / count;
        for ((o, &d), &xv) in dxp.iter_mut().zip(dyp).zip(xp) {
            let xhat = (xv.to_f64() - m) * is;
            *o = T::from_f64(k * (count * d.to_f64() - sd - xhat * sdx));
        }
    });
    let dgamma = stats.iter().map(|s| T::from_f64(s.1)).collect();
    let dbeta = stats.iter().map(|s| T::from_f64(s.0)).collect();
    (dx, dgamma, dbeta)
}

impl<T: Float> crate::backend::Norm for super::Cpu<T> {
    fn batchnorm_forward_train(
        &self,
        x: &HostBuf<T>,
        gamma: &HostBuf<T>,
        beta: &HostBuf<T>,
        running_mean: &mut HostBuf<T>,
        running_var: &mut HostBuf<T>,
        g: &ChannelGeom,
        p: &BnParams,
    ) -> Result<(HostBuf<T>, HostBuf<T>, HostBuf<T>)> {
        let per_channel = [("gamma", gamma.len()), ("beta", beta.len())];
        g.check("batchnorm_forward_train", &[("x", x.len())], &[], &per_channel)?;
        g.check("batchnorm_forward_train", &[], &[], &[("running_mean", running_mean.len())])?;
        g.check("batchnorm_forward_train", &[], &[], &[("running_var", running_var.len())])?;
        let (rm, rv) = (running_mean.make_mut(), running_var.make_mut());
        let (y, mean, invstd) = forward_train(x, gamma, beta, rm, rv, g.n, g.c, g.hw, p.momentum, p.eps);
        Ok((self.wrap(y), self.wrap(mean), self.wrap(invstd)))
    }
    fn batchnorm_forward_eval(
        &self,
        x: &HostBuf<T>,
        gamma: &HostBuf<T>,
        beta: &HostBuf<T>,
        running_mean: &HostBuf<T>,
        running_var: &HostBuf<T>,
        g: &ChannelGeom,
        eps: f64,
    ) -> Result<HostBuf<T>> {
        let per_channel = [
            ("gamma", gamma.len()),
            ("beta", beta.len()),
            ("running_mean", running_mean.len()),
            ("running_var", running_var.len()),
        ];
        g.check("batchnorm_forward_eval", &[("x", x.len())], &[], &per_channel)?;
        Ok(self.wrap(forward_eval(x, gamma, beta, running_mean, running_var, g.c, g.hw, eps)))
    }
    fn batchnorm_backward(
        &self,
        dy: &HostBuf<T>,
        x: &HostBuf<T>,
        gamma: &HostBuf<T>,
        mean: &HostBuf<T>,
        invstd: &HostBuf<T>,
        g: &ChannelGeom,
    ) -> Result<(HostBuf<T>, HostBuf<T>, HostBuf<T>)> {
        let per_channel = [("gamma", gamma.len()), ("mean", mean.len()), ("invstd", invstd.len())];
        g.check("batchnorm_backward", &[("dy", dy.len()), ("x", x.len())], &[], &per_channel)?;
        let (dx, dg, db) = backward(dy, x, gamma, mean, invstd, g.n, g.c, g.hw);
        Ok((self.wrap(dx), self.wrap(dg), self.wrap(db)))
    }
}
