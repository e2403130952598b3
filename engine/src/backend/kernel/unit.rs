//! The fused VGG unit: kernels/unit.cu, with norm.cu's statistics and backward reductions.

use super::{Arg, B1, DevBuf, KernelBackend, at, ew, f, i, p};
use crate::backend::geom::running_stat_lens;
use crate::backend::{BnParams, ChannelGeom, Unit, UnitAffine, UnitGeom};
use crate::error::Result;

fn opt(b: Option<&DevBuf>) -> Arg {
    b.map_or(Arg::Ptr(0), p)
}

impl Unit for KernelBackend {
    fn unit_batch_stats(
        &self,
        z: &DevBuf,
        bias: Option<&DevBuf>,
        running_mean: &mut DevBuf,
        running_var: &mut DevBuf,
        g: &ChannelGeom,
        bp: &BnParams,
    ) -> Result<(DevBuf, DevBuf)> {
        let op = "unit_batch_stats";
        let channels = running_stat_lens(running_mean.len(), running_var.len(), bias.map(|b| b.len()));
        g.check(op, &[("z", z.len())], &[], &channels)?;
        running_mean.make_unique()?;
        running_var.make_unique()?;
        self.batch_stats(z, bias, running_mean, running_var, g, bp)
    }
    fn unit_running_stats(
        &self,
        bias: Option<&DevBuf>,
        running_mean: &DevBuf,
        running_var: &DevBuf,
        c: usize,
        eps: f64,
    ) -> Result<(DevBuf, DevBuf)> {
        let g = ChannelGeom { n: 1, c, hw: 1 };
        let channels = running_stat_lens(running_mean.len(), running_var.len(), bias.map(|b| b.len()));
        g.check("unit_running_stats", &[], &[], &channels)?;
        let (mean, invstd) = (self.buf(c)?, self.buf(c)?);
        let args = [opt(bias), p(running_mean), p(running_var), p(&mean), p(&invstd), i(c)?, f(eps)];
        self.launch("unit_running_stats", ew(c), B1, 0, &args)?;
        Ok((mean, invstd))
    }
    fn unit_forward(&self, z: &DevBuf, a: &UnitAffine<'_, Self>, g: &UnitGeom) -> Result<DevBuf> {
        g.check("unit_forward", z.len(), None, &a.lens())?;
        let y = self.buf(g.output_len())?;
        for (part, z_at, y_at) in self.unit_parts("unit_forward", g)? {
            let args = [at(z, z_at), p(a.mean), p(a.invstd), p(a.gamma), p(a.beta), at(&y, y_at)];
            self.launch("unit_forward", ew(part.output_len()), B1, 0, &[&args[..], &dims(&part)?].concat())?;
        }
        Ok(y)
    }
    fn unit_backward(
        &self,
        dy: &DevBuf,
        z: &DevBuf,
        a: &UnitAffine<'_, Self>,
        g: &UnitGeom,
        batch_stats: bool,
    ) -> Result<(DevBuf, DevBuf, DevBuf)> {
        g.check("unit_backward", z.len(), Some(dy.len()), &a.lens())?;
        let da = self.buf(g.input_len())?;
        for (part, z_at, dy_at) in self.unit_parts("unit_backward", g)? {
            let args = [at(dy, dy_at), at(z, z_at), p(a.mean), p(a.invstd), p(a.gamma), p(a.beta), at(&da, z_at)];
            let cells =
                if part.pool { part.n * part.c * part.h.div_ceil(2) * part.w.div_ceil(2) } else { part.input_len() };
            self.launch("unit_route", ew(cells), B1, 0, &[&args[..], &dims(&part)?].concat())?;
        }
        let cg = g.channels();
        let (dgamma, dbeta) = self.bn_reduce(&da, z, a.mean, a.invstd, &cg)?;
        let dz = self.buf(g.input_len())?;
        if batch_stats {
            self.bn_backward_apply(&da, z, [a.gamma, a.mean, a.invstd, &dgamma, &dbeta], &dz, &cg)?;
        } else {
            // Constant statistics: dz = da·(invstd·γ), bn_apply with a zero mean and shift.
            let zero = self.zeroed(g.c)?;
            self.bn_apply(&da, a.gamma, &zero, &zero, a.invstd, &dz, &cg)?;
        }
        Ok((dz, dgamma, dbeta))
    }
}

impl KernelBackend {
    /// The batch parts of a fused unit: each part's geometry and its first input and output
    /// elements.
    fn unit_parts(&self, op: &'static str, g: &UnitGeom) -> Result<Vec<(UnitGeom, usize, usize)>> {
        self.batch_parts(op, g.n, g.sample_lens(), |n| UnitGeom { n, ..*g }, |part| part.check_i32(op))
    }
}

/// The trailing `int n, int c, int h, int w, int pool` of unit_forward and unit_route.
fn dims(g: &UnitGeom) -> Result<[Arg; 5]> {
    Ok([i(g.n)?, i(g.c)?, i(g.h)?, i(g.w)?, i(g.pool as usize)?])
}
