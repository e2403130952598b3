//! BatchNorm: kernels/norm.cu.

use super::{Arg, B1, DevBuf, KernelBackend, at, ew, f, i, p};
use crate::backend::{BnParams, ChannelGeom, Norm};
use crate::error::Result;

/// The per-channel reductions (bn_stats, bn_backward_reduce, channel_sums) split each channel's
/// n·hw elements into chunks, one block each, until the grid has about this many blocks: ~4 per
/// SM on a 132-SM H100, so the 64 channels of the first VGG block still fill the GPU.
const CHANNEL_TARGET_BLOCKS: usize = 512;
/// …but never into chunks shorter than this (4 rounds of a 256-thread block's 8-element
/// gathers), where the fixed cost of a block and of its partial would dominate.
const CHANNEL_MIN_CHUNK: usize = 8192;

/// Chunks per channel (the grid's y): ≥ 1, ≤ 512, and n·hw/chunks ≥ CHANNEL_MIN_CHUNK unless 1.
pub(super) fn channel_chunks(g: &ChannelGeom) -> usize {
    let per_channel = (g.n * g.hw).div_ceil(CHANNEL_MIN_CHUNK).max(1);
    CHANNEL_TARGET_BLOCKS.div_ceil(g.c.max(1)).clamp(1, per_channel)
}

/// The grid of a chunked per-channel reduction: (channels, chunks).
pub(super) fn channel_grid(g: &ChannelGeom, chunks: usize) -> [u32; 3] {
    [g.c.max(1) as u32, chunks as u32, 1]
}

/// One launch of a per-channel reduction over a batch part: its geometry, its first element, its
/// chunks per channel and the first of them in the channel's partial slots.
pub(super) struct ChannelPart {
    pub geom: ChannelGeom,
    pub offset: usize,
    pub chunks: usize,
    pub slot0: usize,
}

/// A per-channel reduction's launches and its partial slots per channel (all parts' chunks, in
/// batch order: the combine kernels merge them in that fixed order).
pub(super) struct ChannelParts {
    pub parts: Vec<ChannelPart>,
    pub slots: usize,
}

impl KernelBackend {
    /// A workspace of `len` doubles (two f32 slots each).
    pub(super) fn doubles(&self, len: usize) -> Result<DevBuf> {
        self.buf(2 * len)
    }

    /// The launches of a per-channel reduction over `g` (one unless the batch passes the caps).
    pub(super) fn channel_parts(&self, op: &'static str, g: &ChannelGeom) -> Result<ChannelParts> {
        let mut parts = Vec::new();
        let mut slots = 0;
        let lens = (g.per_sample_extent(), 0);
        for (geom, offset, _) in self.batch_parts(op, g.n, lens, |n| ChannelGeom { n, ..*g }, |p| p.check_i32(op))? {
            let chunks = channel_chunks(&geom);
            parts.push(ChannelPart { geom, offset, chunks, slot0: slots });
            slots += chunks;
        }
        Ok(ChannelParts { parts, slots })
    }

    /// Batch mean and invstd of x per channel, and the running statistics' momentum update:
    /// bn_stats' chunk partials (per batch part), then bn_stats_combine's fixed-order merge.
    /// `bias_shift`: see kernels/norm.cu. The caller has checked the lengths and made the running
    /// buffers unique.
    pub(super) fn batch_stats(
        &self,
        x: &DevBuf,
        bias_shift: Option<&DevBuf>,
        running_mean: &DevBuf,
        running_var: &DevBuf,
        g: &ChannelGeom,
        bp: &BnParams,
    ) -> Result<(DevBuf, DevBuf)> {
        let batch = self.channel_parts("bn_stats", g)?;
        let parts = self.doubles(3 * g.c * batch.slots)?;
        for cp in &batch.parts {
            let args = [at(x, cp.offset), p(&parts), i(cp.geom.n)?, i(g.c)?, i(g.hw)?, i(cp.slot0)?, i(batch.slots)?];
            self.launch("bn_stats", channel_grid(&cp.geom, cp.chunks), B1, 0, &args)?;
        }
        let (mean, invstd) = (self.buf(g.c)?, self.buf(g.c)?);
        let args = [
            p(&parts),
            i(batch.slots)?,
            p(&mean),
            p(&invstd),
            p(running_mean),
            p(running_var),
            bias_shift.map_or(Arg::Ptr(0), p),
            i(g.n)?,
            i(g.c)?,
            i(g.hw)?,
            f(bp.momentum),
            f(bp.eps),
        ];
        self.launch("bn_stats_combine", ew(g.c), B1, 0, &args)?;
        Ok((mean, invstd))
    }

    /// (dγ, dβ) = (Σ dy·x̂, Σ dy) per channel: bn_backward_reduce's chunk partials (per batch
    /// part), then bn_backward_combine's fixed-order sum. The caller has checked the lengths.
    pub(super) fn bn_reduce(
        &self,
        dy: &DevBuf,
        x: &DevBuf,
        mean: &DevBuf,
        invstd: &DevBuf,
        g: &ChannelGeom,
    ) -> Result<(DevBuf, DevBuf)> {
        let batch = self.channel_parts("bn_backward_reduce", g)?;
        let parts = self.doubles(2 * g.c * batch.slots)?;
        for cp in &batch.parts {
            let (n, c, hw) = (i(cp.geom.n)?, i(g.c)?, i(g.hw)?);
            let args =
                [at(dy, cp.offset), at(x, cp.offset), p(mean), p(&parts), n, c, hw, i(cp.slot0)?, i(batch.slots)?];
            self.launch("bn_backward_reduce", channel_grid(&cp.geom, cp.chunks), B1, 0, &args)?;
        }
        let (dgamma, dbeta) = (self.buf(g.c)?, self.buf(g.c)?);
        let args = [p(&parts), i(batch.slots)?, p(invstd), p(&dgamma), p(&dbeta), i(g.c)?];
        self.launch("bn_backward_combine", ew(g.c), B1, 0, &args)?;
        Ok((dgamma, dbeta))
    }

    /// y = (x − mean)·(invstd·γ) + β per batch part (bn_apply).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn bn_apply(
        &self,
        x: &DevBuf,
        gamma: &DevBuf,
        beta: &DevBuf,
        mean: &DevBuf,
        invstd: &DevBuf,
        y: &DevBuf,
        g: &ChannelGeom,
    ) -> Result<()> {
        for cp in self.channel_parts("bn_apply", g)?.parts {
            let (n, c, hw) = (i(cp.geom.n)?, i(g.c)?, i(g.hw)?);
            let args = [at(x, cp.offset), p(gamma), p(beta), p(mean), p(invstd), at(y, cp.offset), n, c, hw];
            self.launch("bn_apply", ew(cp.geom.len()), B1, 0, &args)?;
        }
        Ok(())
    }

    /// dx of training-mode BatchNorm per batch part (bn_backward_apply, M over the whole batch).
    pub(super) fn bn_backward_apply(
        &self,
        dy: &DevBuf,
        x: &DevBuf,
        stats: [&DevBuf; 5],
        dx: &DevBuf,
        g: &ChannelGeom,
    ) -> Result<()> {
        let [gamma, mean, invstd, dgamma, dbeta] = stats.map(p);
        for cp in self.channel_parts("bn_backward_apply", g)?.parts {
            let (n, c, hw, batch) = (i(cp.geom.n)?, i(g.c)?, i(g.hw)?, i(g.n)?);
            let args = [at(dy, cp.offset), at(x, cp.offset), gamma, mean, invstd, dgamma, dbeta, at(dx, cp.offset)];
            self.launch("bn_backward_apply", ew(cp.geom.len()), B1, 0, &[&args[..], &[n, c, hw, batch]].concat())?;
        }
        Ok(())
    }
}

impl Norm for KernelBackend {
    fn batchnorm_forward_train(
        &self,
        x: &DevBuf,
        gamma: &DevBuf,
        beta: &DevBuf,
        running_mean: &mut DevBuf,
        running_var: &mut DevBuf,
        g: &ChannelGeom,
        bp: &BnParams,
    ) -> Result<(DevBuf, DevBuf, DevBuf)> {
        check_bn("batchnorm_forward_train", g, x, gamma, beta, running_mean, running_var)?;
        running_mean.make_unique()?;
        running_var.make_unique()?;
        let (mean, invstd) = self.batch_stats(x, None, running_mean, running_var, g, bp)?;
        let y = self.buf(g.len())?;
        self.bn_apply(x, gamma, beta, &mean, &invstd, &y, g)?;
        Ok((y, mean, invstd))
    }
    fn batchnorm_forward_eval(
        &self,
        x: &DevBuf,
        gamma: &DevBuf,
        beta: &DevBuf,
        running_mean: &DevBuf,
        running_var: &DevBuf,
        g: &ChannelGeom,
        eps: f64,
    ) -> Result<DevBuf> {
        check_bn("batchnorm_forward_eval", g, x, gamma, beta, running_mean, running_var)?;
        let (invstd, y) = (self.buf(g.c)?, self.buf(g.len())?);
        self.launch("bn_eval_invstd", ew(g.c), B1, 0, &[p(running_var), p(&invstd), i(g.c)?, f(eps)])?;
        self.bn_apply(x, gamma, beta, running_mean, &invstd, &y, g)?;
        Ok(y)
    }
    fn batchnorm_backward(
        &self,
        dy: &DevBuf,
        x: &DevBuf,
        gamma: &DevBuf,
        mean: &DevBuf,
        invstd: &DevBuf,
        g: &ChannelGeom,
    ) -> Result<(DevBuf, DevBuf, DevBuf)> {
        let op = "batchnorm_backward";
        let per_channel = [("gamma", gamma.len()), ("mean", mean.len()), ("invstd", invstd.len())];
        g.check(op, &[("dy", dy.len()), ("x", x.len())], &[], &per_channel)?;
        let (dgamma, dbeta) = self.bn_reduce(dy, x, mean, invstd, g)?;
        let dx = self.buf(g.len())?;
        self.bn_backward_apply(dy, x, [gamma, mean, invstd, &dgamma, &dbeta], &dx, g)?;
        Ok((dx, dgamma, dbeta))
    }
}

/// The BatchNorm forward passes' buffers against `g`.
fn check_bn(
    op: &'static str,
    g: &ChannelGeom,
    x: &DevBuf,
    gamma: &DevBuf,
    beta: &DevBuf,
    running_mean: &DevBuf,
    running_var: &DevBuf,
) -> Result<()> {
    let per_channel = [
        ("gamma", gamma.len()),
        ("beta", beta.len()),
        ("running_mean", running_mean.len()),
        ("running_var", running_var.len()),
    ];
    g.check(op, &[("x", x.len())], &[], &per_channel)
}
