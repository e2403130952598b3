//! SyncBatchNorm's training pass: BatchNorm2d whose batch statistics are those of a batch spread
//! over several replicas (processes), each holding a part. The engine knows nothing of how the
//! replicas talk: the caller passes a `Replicas` that sums per-channel partials across them.
//!
//! Forward, per channel: Σx and the count are summed over the replicas, giving the mean μ; then
//! Σ(x − μ)² (two passes, as a single process's BatchNorm, not E[x²] − μ², which cancels), giving
//! the biased variance. Backward: Σdy and Σdy·x̂ are summed over the replicas, and
//! dx = γ·invstd·(dy − Σdy/M − x̂·Σdy·x̂/M) with M the count over all replicas; dγ and dβ stay this
//! replica's own sums (the caller sums gradients across replicas, as for every other parameter).
//! Everything per element runs on the backend's existing per-channel primitives; only [C]-long
//! vectors cross to the host.

use super::nchw;
use super::norm::BatchNormState;
use crate::backend::{Backend, ChannelGeom, RowsGeom};
use crate::error::{Error, Result};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;
use std::sync::Arc;

/// The replicas of one data-parallel model, seen by SyncBatchNorm.
pub trait Replicas: Send + Sync {
    /// Sums `partials` element-wise over every replica, leaving the sum in place on each, in an
    /// order that does not depend on timing (so a job is reproducible). Every replica calls it the
    /// same number of times, in the same order, with the same length.
    fn sum(&self, partials: &mut [f64]) -> Result<()>;
}

/// BatchNorm2d in training over the whole batch of all `replicas`: normalises with the global
/// batch mean and biased variance and updates the running statistics with them (unbiased
/// variance over the global count, as PyTorch's SyncBatchNorm). Every replica must call it at the
/// same point of its forward.
pub fn sync_batchnorm2d<B: Backend>(
    tape: &mut Tape<B>,
    x: &Var<B>,
    gamma: &Var<B>,
    beta: &Var<B>,
    state: BatchNormState<'_, B>,
    replicas: &Arc<dyn Replicas>,
) -> Result<Var<B>> {
    let shape = x.shape().to_vec();
    let (n, c, h, w) = nchw("sync_batchnorm2d", &shape)?;
    for (what, v) in [("weight", gamma), ("bias", beta)] {
        if v.shape() != [c] {
            return Err(Error::shape("sync_batchnorm2d", format!("{what} shape {:?}, expected [{c}]", v.shape())));
        }
    }
    let g = ChannelGeom { n, c, hw: h * w };
    let be = tape.backend.clone();
    let (ones, zeros) = (be.fill(c, 1.0)?, be.zeros(c)?);

    let mut sums = be.download_f64(&be.channel_sums(x.buf(), &g)?)?;
    sums.push((n * g.hw) as f64);
    replicas.sum(&mut sums)?;
    let count = sums.pop().unwrap_or(0.0);
    if count < 2.0 {
        return Err(Error::Invalid(format!(
            "sync_batchnorm2d in training needs more than one value per channel over all replicas, got {count} \
             (this replica's input {shape:?})"
        )));
    }
    let mean: Vec<f64> = sums.iter().map(|s| s / count).collect();
    let mean_b = be.upload_f64(&mean)?;
    // (x − μ)·1/sqrt(1 + 0)·1 + 0: the eval affine map with unit scale is exactly x − μ.
    let centred = be.batchnorm_forward_eval(x.buf(), &ones, &zeros, &mean_b, &ones, &g, 0.0)?;
    let mut sq = per_channel_dot(&be, &centred, &centred, &g)?;
    drop(centred);
    replicas.sum(&mut sq)?;
    let var: Vec<f64> = sq.iter().map(|q| q / count).collect();

    let y =
        be.batchnorm_forward_eval(x.buf(), gamma.buf(), beta.buf(), &mean_b, &be.upload_f64(&var)?, &g, state.eps)?;
    update_running(&be, state.running_mean, &mean, state.momentum, |m| m)?;
    update_running(&be, state.running_var, &var, state.momentum, |v| v * count / (count - 1.0))?;

    let invstd: Vec<f64> = var.iter().map(|v| 1.0 / (v + state.eps).sqrt()).collect();
    let (xs, gs, rep) = (x.buf().clone(), gamma.buf().clone(), replicas.clone());
    Ok(tape.record("sync_batchnorm2d", &[x, gamma, beta], Tensor::new(shape, y)?, move |be, dy| {
        let (ones, zeros) = (be.fill(c, 1.0)?, be.zeros(c)?);
        // x̂ = (x − μ)·invstd, the same affine map with invstd as the scale.
        let xhat = be.batchnorm_forward_eval(&xs, &be.upload_f64(&invstd)?, &zeros, &mean_b, &ones, &g, 0.0)?;
        let db = be.channel_sums(&dy, &g)?;
        let dg = sum_over_batch(be, &be.channel_dot(&dy, &xhat, &g)?, &g)?;
        let mut global = be.download_f64(&db)?;
        global.extend(be.download_f64(&dg)?);
        rep.sum(&mut global)?;
        let (sdy, sdyx) = global.split_at(c);
        let gam = be.download_f64(&gs)?;
        // dx = k·dy + m + l·x̂ per channel, with k = γ·invstd, m = −k·Σdy/M, l = −k·Σdy·x̂/M.
        let k: Vec<f64> = (0..c).map(|i| gam[i] * invstd[i]).collect();
        let m: Vec<f64> = (0..c).map(|i| -k[i] * sdy[i] / count).collect();
        let l: Vec<f64> = (0..c).map(|i| -k[i] * sdyx[i] / count).collect();
        let part = be.batchnorm_forward_eval(&dy, &be.upload_f64(&k)?, &be.upload_f64(&m)?, &zeros, &ones, &g, 0.0)?;
        let corr = be.batchnorm_forward_eval(&xhat, &be.upload_f64(&l)?, &zeros, &zeros, &ones, &g, 0.0)?;
        let dx = be.add(&part, &corr)?;
        Ok(vec![Some(dx), Some(dg), Some(db)])
    }))
}

/// Σ over the batch and the plane of a·b per channel, on the host as f64.
fn per_channel_dot<B: Backend>(be: &B, a: &B::Buf, b: &B::Buf, g: &ChannelGeom) -> Result<Vec<f64>> {
    be.download_f64(&sum_over_batch(be, &be.channel_dot(a, b, g)?, g)?)
}

/// [n, c] → [c].
fn sum_over_batch<B: Backend>(be: &B, nc: &B::Buf, g: &ChannelGeom) -> Result<B::Buf> {
    be.sum_rows(nc, &RowsGeom { rows: g.n, cols: g.c })
}

/// running = (1 − momentum)·running + momentum·f(batch), in f64.
fn update_running<B: Backend>(
    be: &B,
    running: &mut Tensor<B>,
    batch: &[f64],
    momentum: f64,
    f: impl Fn(f64) -> f64,
) -> Result<()> {
    let old = be.download_f64(running.buf())?;
    let new: Vec<f64> = old.iter().zip(batch).map(|(&r, &b)| (1.0 - momentum) * r + momentum * f(b)).collect();
    *running.buf_mut() = be.upload_f64(&new)?;
    Ok(())
}
