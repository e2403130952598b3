//! BatchNorm: kernels/norm.cu.

use super::{Arg, B1, DevBuf, KernelBackend, ew, f, i, p};
use crate::backend::{BnParams, ChannelGeom, Norm};
use crate::error::Result;

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
        let op = "batchnorm_forward_train";
        let per_channel = [
            ("gamma", gamma.len()),
            ("beta", beta.len()),
            ("running_mean", running_mean.len()),
            ("running_var", running_var.len()),
        ];
        g.check(op, &[("x", x.len())], &[], &per_channel)?;
        g.check_i32(op)?;
        running_mean.make_unique()?;
        running_var.make_unique()?;
        let (n, c, hw) = (i(g.n)?, i(g.c)?, i(g.hw)?);
        let (mean, invstd, y) = (self.buf(g.c)?, self.buf(g.c)?, self.buf(g.len())?);
        let args = [
            p(x),
            p(&mean),
            p(&invstd),
            p(running_mean),
            p(running_var),
            Arg::Ptr(0),
            n,
            c,
            hw,
            f(bp.momentum),
            f(bp.eps),
        ];
        self.launch("bn_stats", [g.c as u32, 1, 1], B1, 0, &args)?;
        let args = [p(x), p(gamma), p(beta), p(&mean), p(&invstd), p(&y), n, c, hw];
        self.launch("bn_apply", ew(g.len()), B1, 0, &args)?;
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
        let op = "batchnorm_forward_eval";
        let per_channel = [
            ("gamma", gamma.len()),
            ("beta", beta.len()),
            ("running_mean", running_mean.len()),
            ("running_var", running_var.len()),
        ];
        g.check(op, &[("x", x.len())], &[], &per_channel)?;
        g.check_i32(op)?;
        let (invstd, y) = (self.buf(g.c)?, self.buf(g.len())?);
        self.launch("bn_eval_invstd", ew(g.c), B1, 0, &[p(running_var), p(&invstd), i(g.c)?, f(eps)])?;
        let args = [p(x), p(gamma), p(beta), p(running_mean), p(&invstd), p(&y), i(g.n)?, i(g.c)?, i(g.hw)?];
        self.launch("bn_apply", ew(g.len()), B1, 0, &args)?;
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
        g.check_i32(op)?;
        let (n, c, hw) = (i(g.n)?, i(g.c)?, i(g.hw)?);
        let (dgamma, dbeta, dx) = (self.buf(g.c)?, self.buf(g.c)?, self.buf(g.len())?);
        let args = [p(dy), p(x), p(mean), p(invstd), p(&dgamma), p(&dbeta), n, c, hw];
        self.launch("bn_backward_reduce", [g.c as u32, 1, 1], B1, 0, &args)?;
        let args = [p(dy), p(x), p(gamma), p(mean), p(invstd), p(&dgamma), p(&dbeta), p(&dx), n, c, hw];
        self.launch("bn_backward_apply", ew(g.len()), B1, 0, &args)?;
        Ok((dx, dgamma, dbeta))
    }
}
