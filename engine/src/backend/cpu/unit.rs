//! The fused VGG unit's BatchNorm → ReLU → max-pool passes on the CPU.
//!
//! Forward reads z once and writes only the (pooled) output; the ReLU mask and the pool's
//! arg-max are never stored: the backward recomputes them from z, writing the routed gradient
//! da straight into dz's buffer, then normalises dz in place (two passes over z, one buffer).

use super::HostBuf;
use super::norm::batch_stats;
use crate::backend::geom::running_stat_lens;
use crate::backend::{BnParams, ChannelGeom, UnitAffine, UnitGeom};
use crate::error::Result;
use crate::float::Float;
use rayon::prelude::*;

/// One channel's affine map and ReLU, in the same rounding as the unfused BatchNorm + ReLU:
/// scale = invstd·γ rounded first, then (z − mean)·scale + β.
#[derive(Clone, Copy)]
struct Act<T> {
    mean: T,
    scale: T,
    beta: T,
}

impl<T: Float> Act<T> {
    fn of(a: &UnitAffine<'_, super::Cpu<T>>, ch: usize) -> Self {
        Act { mean: a.mean[ch], scale: a.invstd[ch] * a.gamma[ch], beta: a.beta[ch] }
    }
    #[inline(always)]
    fn pre(&self, z: T) -> T {
        (z - self.mean) * self.scale + self.beta
    }
    /// ReLU as `ops::relu`: NaN maps to 0 (the comparison fails).
    #[inline(always)]
    fn relu(&self, z: T) -> T {
        let v = self.pre(z);
        if v > T::ZERO { v } else { T::ZERO }
    }
}

/// The window's maximum and its place (row-major) among `v`: strictly greater wins, so ties go
/// to the first, and a NaN wins, as the max-pool.
#[inline(always)]
fn window_max<T: Float>(v: [T; 4]) -> (T, usize) {
    let (mut best, mut at) = (v[0], 0);
    for (k, &x) in v.iter().enumerate().skip(1) {
        if x > best || x.is_nan() {
            best = x;
            at = k;
        }
    }
    (best, at)
}

/// The four z values of pooled output (oy, ox) in a plane of width w.
#[inline(always)]
fn window<T: Float>(plane: &[T], w: usize, oy: usize, ox: usize) -> [T; 4] {
    let (r0, r1) = (2 * oy * w + 2 * ox, (2 * oy + 1) * w + 2 * ox);
    [plane[r0], plane[r0 + 1], plane[r1], plane[r1 + 1]]
}

pub fn forward<T: Float>(z: &[T], a: &UnitAffine<'_, super::Cpu<T>>, g: &UnitGeom) -> Vec<T> {
    let (hw, ohw, ow) = (g.h * g.w, g.out_h() * g.out_w(), g.out_w());
    let mut y = vec![T::ZERO; g.output_len()];
    y.par_chunks_mut(ohw).zip(z.par_chunks(hw)).enumerate().for_each(|(p, (yp, zp))| {
        let act = Act::of(a, p % g.c);
        if !g.pool {
            for (o, &v) in yp.iter_mut().zip(zp) {
                *o = act.relu(v);
            }
            return;
        }
        // After ReLU nothing is NaN, so the window's maximum does not depend on which of tied
        // values wins: a branch-free max the compiler vectorises (the arg-max, which does
        // depend on it, is the backward's business).
        let max = |a: T, b: T| if a > b { a } else { b };
        for (oy, row) in yp.chunks_exact_mut(ow).enumerate() {
            let r0 = &zp[2 * oy * g.w..2 * oy * g.w + 2 * ow];
            let r1 = &zp[(2 * oy + 1) * g.w..(2 * oy + 1) * g.w + 2 * ow];
            for ((o, a), b) in row.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
                let top = max(act.relu(a[0]), act.relu(a[1]));
                *o = max(top, max(act.relu(b[0]), act.relu(b[1])));
            }
        }
    });
    y
}

/// da (the gradient at BatchNorm's output) into `dz`, plane by plane; returns each plane's
/// Σ da and Σ da·(z − mean) in f64.
fn route<T: Float>(
    dy: &[T],
    z: &[T],
    a: &UnitAffine<'_, super::Cpu<T>>,
    g: &UnitGeom,
    dz: &mut [T],
) -> Vec<(f64, f64)> {
    let (hw, ohw, ow) = (g.h * g.w, g.out_h() * g.out_w(), g.out_w());
    dz.par_chunks_mut(hw)
        .zip(z.par_chunks(hw).zip(dy.par_chunks(ohw)))
        .enumerate()
        .map(|(p, (dp, (zp, dyp)))| {
            let act = Act::of(a, p % g.c);
            let m = act.mean.to_f64();
            let (mut sd, mut sdx) = (0.0f64, 0.0f64);
            if !g.pool {
                for ((o, &zv), &d) in dp.iter_mut().zip(zp).zip(dyp) {
                    *o = if act.pre(zv) > T::ZERO { d } else { T::ZERO };
                    let dv = o.to_f64();
                    sd += dv;
                    sdx += dv * (zv.to_f64() - m);
                }
                return (sd, sdx);
            }
            // Every position of every window is written (dy at the arg-max, 0 elsewhere), so
            // only those outside every window (an odd last row or column) need zeroing.
            if g.h % 2 == 1 {
                dp[(g.h - 1) * g.w..].fill(T::ZERO);
            }
            for oy in 0..g.out_h() {
                if g.w % 2 == 1 {
                    dp[2 * oy * g.w + g.w - 1] = T::ZERO;
                    dp[(2 * oy + 1) * g.w + g.w - 1] = T::ZERO;
                }
                for ox in 0..ow {
                    let zw = window(zp, g.w, oy, ox);
                    let (best, at) = window_max(zw.map(|v| act.relu(v)));
                    // ReLU's mask at the arg-max: its output is > 0 exactly when the input is.
                    let d = if best > T::ZERO { dyp[oy * ow + ox] } else { T::ZERO };
                    let (r0, r1) = (2 * oy * g.w + 2 * ox, (2 * oy + 1) * g.w + 2 * ox);
                    for (k, at_k) in [r0, r0 + 1, r1, r1 + 1].into_iter().enumerate() {
                        dp[at_k] = if k == at { d } else { T::ZERO };
                    }
                    if best > T::ZERO {
                        let dv = d.to_f64();
                        sd += dv;
                        sdx += dv * (zw[at].to_f64() - m);
                    }
                }
            }
            (sd, sdx)
        })
        .collect()
}

/// Returns (dz, dγ, dβ); see `Unit::unit_backward`.
pub fn backward<T: Float>(
    dy: &[T],
    z: &[T],
    a: &UnitAffine<'_, super::Cpu<T>>,
    g: &UnitGeom,
    batch_stats: bool,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let (c, hw) = (g.c, g.h * g.w);
    let mut dz = vec![T::ZERO; g.input_len()];
    let planes = route(dy, z, a, g, &mut dz);
    // Per channel, the planes' partial sums in plane order: deterministic.
    let sums: Vec<(f64, f64)> =
        (0..c).map(|ch| (0..g.n).map(|i| planes[i * c + ch]).fold((0.0, 0.0), |s, p| (s.0 + p.0, s.1 + p.1))).collect();
    let dgamma: Vec<T> = sums.iter().enumerate().map(|(ch, s)| T::from_f64(s.1 * a.invstd[ch].to_f64())).collect();
    let dbeta: Vec<T> = sums.iter().map(|s| T::from_f64(s.0)).collect();
    let count = (g.n * hw) as f64;
    dz.par_chunks_mut(hw).zip(z.par_chunks(hw)).enumerate().for_each(|(p, (dp, zp))| {
        let ch = p % c;
        let (m, is, gm) = (a.mean[ch].to_f64(), a.invstd[ch].to_f64(), a.gamma[ch].to_f64());
        if !batch_stats {
            let scale = a.invstd[ch] * a.gamma[ch];
            dp.iter_mut().for_each(|d| *d *= scale);
            return;
        }
        // dz = γ·invstd/M · (M·da − Σda − x̂·Σ(da·x̂)), in f64 as the unfused BatchNorm backward
        // (M·da and Σda nearly cancel when da is nearly constant over the channel), expanded to
        // dz = c1·da + c0 + cz·z so the loop is two multiply-adds per element.
        let (sd, sdx) = (sums[ch].0, dgamma[ch].to_f64());
        let k = gm * is / count;
        let (c1, cz) = (k * count, -k * sdx * is);
        let c0 = -k * sd - cz * m;
        for (d, &zv) in dp.iter_mut().zip(zp) {
            *d = T::from_f64(c1 * d.to_f64() + c0 + cz * zv.to_f64());
        }
    });
    (dz, dgamma, dbeta)
}

impl<T: Float> crate::backend::Unit for super::Cpu<T> {
    fn unit_batch_stats(
        &self,
        z: &HostBuf<T>,
        bias: Option<&HostBuf<T>>,
        running_mean: &mut HostBuf<T>,
        running_var: &mut HostBuf<T>,
        g: &ChannelGeom,
        p: &BnParams,
    ) -> Result<(HostBuf<T>, HostBuf<T>)> {
        let op = "unit_batch_stats";
        let channels = running_stat_lens(running_mean.len(), running_var.len(), bias.map(|b| b.len()));
        g.check(op, &[("z", z.len())], &[], &channels)?;
        let (rm, rv) = (running_mean.make_mut(), running_var.make_mut());
        let (mean, invstd) = batch_stats(z, bias.map(|b| &b[..]), rm, rv, g, p);
        Ok((self.wrap(mean), self.wrap(invstd)))
    }
    fn unit_running_stats(
        &self,
        bias: Option<&HostBuf<T>>,
        running_mean: &HostBuf<T>,
        running_var: &HostBuf<T>,
        c: usize,
        eps: f64,
    ) -> Result<(HostBuf<T>, HostBuf<T>)> {
        let g = ChannelGeom { n: 1, c, hw: 1 };
        let channels = running_stat_lens(running_mean.len(), running_var.len(), bias.map(|b| b.len()));
        g.check("unit_running_stats", &[], &[], &channels)?;
        let mean = (0..c).map(|ch| running_mean[ch] - bias.map_or(T::ZERO, |b| b[ch])).collect();
        let invstd = running_var.iter().map(|&v| T::from_f64(1.0 / (v.to_f64() + eps).sqrt())).collect();
        Ok((self.wrap(mean), self.wrap(invstd)))
    }
    fn unit_forward(&self, z: &HostBuf<T>, a: &UnitAffine<'_, Self>, g: &UnitGeom) -> Result<HostBuf<T>> {
        g.check("unit_forward", z.len(), None, &a.lens())?;
        Ok(self.wrap(forward(z, a, g)))
    }
    fn unit_backward(
        &self,
        dy: &HostBuf<T>,
        z: &HostBuf<T>,
        a: &UnitAffine<'_, Self>,
        g: &UnitGeom,
        batch_stats: bool,
    ) -> Result<(HostBuf<T>, HostBuf<T>, HostBuf<T>)> {
        g.check("unit_backward", z.len(), Some(dy.len()), &a.lens())?;
        let (dz, dg, db) = backward(dy, z, a, g, batch_stats);
        Ok((self.wrap(dz), self.wrap(dg), self.wrap(db)))
    }
}
