//! LayerNorm over the last axis on the CPU: per-row statistics in f64 (two passes, no
//! cancellation), the affine map in T; γ/β gradients summed per fixed chunk of rows, then over the
//! chunks in order, exactly as the kernels do.

use super::{Cpu, HostBuf};
use crate::backend::geom_seq::LN_PARAM_CHUNK;
use crate::backend::{LayerNorm, LayerNormGeom};
use crate::error::Result;
use crate::float::Float;
use rayon::prelude::*;

/// (mean, 1/sqrt(var + eps)) of one row, var biased (PyTorch's).
fn row_stats<T: Float>(x: &[T], eps: f64) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().map(|v| v.to_f64()).sum::<f64>() / n;
    let var = x.iter().map(|v| (v.to_f64() - mean).powi(2)).sum::<f64>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

pub fn forward<T: Float>(x: &[T], gamma: &[T], beta: &[T], g: &LayerNormGeom) -> (Vec<T>, Vec<T>, Vec<T>) {
    let c = g.cols;
    let mut y = vec![T::ZERO; g.len()];
    let mut mean = vec![T::ZERO; g.rows];
    let mut invstd = vec![T::ZERO; g.rows];
    y.par_chunks_mut(c).zip(x.par_chunks(c)).zip(mean.par_iter_mut().zip(invstd.par_iter_mut())).for_each(
        |((yr, xr), (m, is))| {
            let (mu, inv) = row_stats(xr, g.eps);
            let (mt, it) = (T::from_f64(mu), T::from_f64(inv));
            *m = mt;
            *is = it;
            // y = (x − mean)·invstd·γ + β in T, the kernel's order.
            for ((o, &v), (&ga, &be)) in yr.iter_mut().zip(xr).zip(gamma.iter().zip(beta)) {
                *o = (v - mt) * it * ga + be;
            }
        },
    );
    (y, mean, invstd)
}

/// dx = invstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) with ĝ = dy·γ, per row in f64; dγ = Σ dy·x̂, dβ = Σ dy.
pub fn backward<T: Float>(
    dy: &[T],
    x: &[T],
    gamma: &[T],
    mean: &[T],
    invstd: &[T],
    g: &LayerNormGeom,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let c = g.cols;
    let n = c as f64;
    let mut dx = vec![T::ZERO; g.len()];
    dx.par_chunks_mut(c).zip(dy.par_chunks(c).zip(x.par_chunks(c))).enumerate().for_each(|(r, (o, (d, xr)))| {
        let (m, is) = (mean[r].to_f64(), invstd[r].to_f64());
        let mut s1 = 0.0;
        let mut s2 = 0.0;
        for ((&dv, &xv), &ga) in d.iter().zip(xr).zip(gamma) {
            let gh = dv.to_f64() * ga.to_f64();
            s1 += gh;
            s2 += gh * (xv.to_f64() - m) * is;
        }
        let (a, b) = (s1 / n, s2 / n);
        for ((o, (&dv, &xv)), &ga) in o.iter_mut().zip(d.iter().zip(xr)).zip(gamma) {
            let xhat = (xv.to_f64() - m) * is;
            *o = T::from_f64(is * (dv.to_f64() * ga.to_f64() - a - xhat * b));
        }
    });
    // Partials per chunk of LN_PARAM_CHUNK rows (f64 inside a chunk, rounded to T), then the
    // chunks summed in order in f64.
    let chunks = g.rows.div_ceil(LN_PARAM_CHUNK);
    let partials: Vec<(Vec<T>, Vec<T>)> = (0..chunks)
        .into_par_iter()
        .map(|k| {
            let mut sg = vec![0.0f64; c];
            let mut sb = vec![0.0f64; c];
            for r in k * LN_PARAM_CHUNK..((k + 1) * LN_PARAM_CHUNK).min(g.rows) {
                let (m, is) = (mean[r].to_f64(), invstd[r].to_f64());
                for j in 0..c {
                    let dv = dy[r * c + j].to_f64();
                    sg[j] += dv * (x[r * c + j].to_f64() - m) * is;
                    sb[j] += dv;
                }
            }
            (sg.into_iter().map(T::from_f64).collect(), sb.into_iter().map(T::from_f64).collect())
        })
        .collect();
    let mut dgamma = vec![0.0f64; c];
    let mut dbeta = vec![0.0f64; c];
    for (pg, pb) in &partials {
        for j in 0..c {
            dgamma[j] += pg[j].to_f64();
            dbeta[j] += pb[j].to_f64();
        }
    }
    (dx, dgamma.into_iter().map(T::from_f64).collect(), dbeta.into_iter().map(T::from_f64).collect())
}

impl<T: Float> LayerNorm for Cpu<T> {
    fn layernorm_forward(
        &self,
        x: &HostBuf<T>,
        gamma: &HostBuf<T>,
        beta: &HostBuf<T>,
        g: &LayerNormGeom,
    ) -> Result<(HostBuf<T>, HostBuf<T>, HostBuf<T>)> {
        g.check("layernorm_forward", &[("x", x.len())], &[], &[("gamma", gamma.len()), ("beta", beta.len())])?;
        let (y, m, is) = forward(x, gamma, beta, g);
        Ok((self.wrap(y), self.wrap(m), self.wrap(is)))
    }
    fn layernorm_backward(
        &self,
        dy: &HostBuf<T>,
        x: &HostBuf<T>,
        gamma: &HostBuf<T>,
        mean: &HostBuf<T>,
        invstd: &HostBuf<T>,
        g: &LayerNormGeom,
    ) -> Result<(HostBuf<T>, HostBuf<T>, HostBuf<T>)> {
        g.check(
            "layernorm_backward",
            &[("dy", dy.len()), ("x", x.len())],
            &[("mean", mean.len()), ("invstd", invstd.len())],
            &[("gamma", gamma.len())],
        )?;
        let (dx, dg, db) = backward(dy, x, gamma, mean, invstd, g);
        Ok((self.wrap(dx), self.wrap(dg), self.wrap(db)))
    }
}
