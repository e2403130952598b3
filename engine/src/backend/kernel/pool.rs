//! Max-pool, global average pool, per-channel scaling and SE passes: kernels/pool.cu, se.cu.

use super::{B1, DevBuf, DevMask, KernelBackend, ew, i, p, pm};
use crate::backend::{ChannelGeom, DeviceBuffer, Pool, PoolGeom};
use crate::error::Result;

impl KernelBackend {
    fn pool_args(g: &PoolGeom) -> Result<Vec<super::Arg>> {
        [g.n, g.c, g.h, g.w, g.k, g.stride, g.out_h(), g.out_w()].into_iter().map(i).collect()
    }
    /// One block per plane over [planes, hw] tensors (the plane reductions of pool.cu and se.cu).
    fn plane_grid(g: &ChannelGeom) -> [u32; 3] {
        [g.planes().max(1) as u32, 1, 1]
    }
}

impl Pool for KernelBackend {
    fn maxpool2d_forward(&self, x: &DevBuf, g: &PoolGeom) -> Result<(DevBuf, DevMask)> {
        g.check_forward(x.len())?;
        g.check_i32("maxpool2d_forward")?;
        let total = g.output_len();
        let (y, idx) = (self.buf(total)?, self.mask(total)?);
        let mut args = vec![p(x), p(&y), pm(&idx)];
        args.extend(Self::pool_args(g)?);
        self.launch("maxpool2d_forward", ew(total), B1, 0, &args)?;
        Ok((y, idx))
    }
    fn maxpool2d_backward(&self, dy: &DevBuf, argmax: &DevMask, g: &PoolGeom) -> Result<DevBuf> {
        g.check_backward(dy.len(), argmax.len())?;
        g.check_i32("maxpool2d_backward")?;
        let dx = self.buf(g.input_len())?;
        let mut args = vec![p(dy), pm(argmax), p(&dx)];
        args.extend(Self::pool_args(g)?);
        self.launch("maxpool2d_backward", ew(g.input_len()), B1, 0, &args)?;
        Ok(dx)
    }
    fn global_avgpool_forward(&self, x: &DevBuf, g: &ChannelGeom) -> Result<DevBuf> {
        g.check("global_avgpool_forward", &[("x", x.len())], &[], &[])?;
        g.check_i32("global_avgpool_forward")?;
        self.plane_reduce(super::plane_split::PlaneSum::Mean(x), g)
    }
    fn global_avgpool_backward(&self, dy: &DevBuf, g: &ChannelGeom) -> Result<DevBuf> {
        g.check("global_avgpool_backward", &[], &[("dy", dy.len())], &[])?;
        g.check_i32("global_avgpool_backward")?;
        let dx = self.buf(g.len())?;
        self.launch("global_avgpool_backward", ew(g.len()), B1, 0, &[p(dy), p(&dx), i(g.planes())?, i(g.hw)?])?;
        Ok(dx)
    }
    fn channel_scale_forward(&self, x: &DevBuf, s: &DevBuf, g: &ChannelGeom) -> Result<DevBuf> {
        g.check("channel_scale_forward", &[("x", x.len())], &[("s", s.len())], &[])?;
        g.check_i32("channel_scale_forward")?;
        let y = self.buf(g.len())?;
        self.launch("channel_scale_forward", ew(g.len()), B1, 0, &[p(x), p(s), p(&y), i(g.planes())?, i(g.hw)?])?;
        Ok(y)
    }
    fn channel_scale_backward(&self, dy: &DevBuf, x: &DevBuf, s: &DevBuf, g: &ChannelGeom) -> Result<(DevBuf, DevBuf)> {
        g.check("channel_scale_backward", &[("dy", dy.len()), ("x", x.len())], &[("s", s.len())], &[])?;
        g.check_i32("channel_scale_backward")?;
        let (dx, ds) = (self.buf(g.len())?, self.buf(g.planes())?);
        let args = [p(dy), p(x), p(s), p(&dx), p(&ds), i(g.planes())?, i(g.hw)?];
        self.launch("channel_scale_backward", Self::plane_grid(g), B1, 0, &args)?;
        Ok((dx, ds))
    }
    fn channel_dot(&self, a: &DevBuf, b: &DevBuf, g: &ChannelGeom) -> Result<DevBuf> {
        g.check("channel_dot", &[("a", a.len()), ("b", b.len())], &[], &[])?;
        g.check_i32("channel_dot")?;
        self.plane_reduce(super::plane_split::PlaneSum::Dot(a, b), g)
    }
    fn se_backward_input(&self, dy: &DevBuf, gate: &DevBuf, dsqueeze: &DevBuf, g: &ChannelGeom) -> Result<DevBuf> {
        let planes = [("gate", gate.len()), ("dsqueeze", dsqueeze.len())];
        g.check("se_backward_input", &[("dy", dy.len())], &planes, &[])?;
        g.check_i32("se_backward_input")?;
        let dx = self.buf(g.len())?;
        let args = [p(dy), p(gate), p(dsqueeze), p(&dx), i(g.planes())?, i(g.hw)?];
        self.launch("se_backward_input", ew(g.len()), B1, 0, &args)?;
        Ok(dx)
    }
}
