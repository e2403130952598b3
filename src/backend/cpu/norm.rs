//! Batch normalisation over NC(HW), statistics accumulated in f64 per channel.

use super::HostBuf;
use crate::backend::{BnParams, ChannelGeom};
use crate::error::Result;
use crate::float::Float;
use rayon::prelude::*;

/// Per-channel Σ f(channel, plane) over the n planes of each channel.
fn per_channel<T: Float>(x: &[T], n: usize, c: usize, hw: usize, f: impl Fn(usize, &[T]) -> f64 + Sync) -> Vec<f64> {
    (0..c).into_par_iter().map(|ch| (0..n).map(|i| f(ch, &x[(i * c + ch) * hw..(i * c + ch + 1) * hw])).sum()).collect()
}

/// y = (x - mean[c]) · scale[c] + shift[c] elementwise, parallel over planes.
fn affine<T: Float>(x: &[T], c: usize, hw: usize, mean: &[T], scale: &[T], shift: &[T]) -> Vec<T> {
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
    let count = (n * hw) as f64;
    let sums = per_channel(x, n, c, hw, |_, p| p.iter().map(|v| v.to_f64()).sum());
    let mean64: Vec<f64> = sums.iter().map(|s| s / count).collect();
    // Two passes (mean, then squared deviations) so the variance has no cancellation.
    let sq = per_channel(x, n, c, hw, |ch, p| {
        let m = mean64[ch];
        p.iter().map(|v| (v.to_f64() - m).powi(2)).sum()
    });
    let var_biased: Vec<f64> = sq.iter().map(|s| s / count).collect();
    let mean: Vec<T> = mean64.iter().map(|&m| T::from_f64(m)).collect();
    let invstd: Vec<T> = var_biased.iter().map(|&v| T::from_f64(1.0 / (v + eps).sqrt())).collect();
    for ch in 0..c {
        // PyTorch updates running_var with the unbiased variance.
        let unbiased = if count > 1.0 { var_biased[ch] * count / (count - 1.0) } else { var_biased[ch] };
        let rm = running_mean[ch].to_f64();
        let rv = running_var[ch].to_f64();
        running_mean[ch] = T::from_f64((1.0 - momentum) * rm + momentum * mean64[ch]);
        running_var[ch] = T::from_f64((1.0 - momentum) * rv + momentum * unbiased);
    }
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
