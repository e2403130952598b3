//! Max-pool, global average pool, per-channel scaling and SE passes: kernels/pool.cu, se.cu.

use super::{B1, DevBuf, DevMask, KernelBackend, at, at_mask, ew, i};
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
    /// The batch parts of a max-pool: each part's geometry and its first input and output
    /// elements.
    fn pool_parts(&self, op: &'static str, g: &PoolGeom) -> Result<Vec<(PoolGeom, usize, usize)>> {
        self.batch_parts(op, g.n, g.sample_lens(), |n| PoolGeom { n, ..*g }, |part| part.check_i32(op))
    }
    /// The batch parts of a [n, c, hw] pass: each part's geometry and its first element and
    /// first plane.
    pub(super) fn plane_parts(&self, op: &'static str, g: &ChannelGeom) -> Result<Vec<(ChannelGeom, usize, usize)>> {
        let lens = (g.per_sample_extent(), g.c);
        self.batch_parts(op, g.n, lens, |n| ChannelGeom { n, ..*g }, |part| part.check_i32(op))
    }
}

impl Pool for KernelBackend {
    fn maxpool2d_forward(&self, x: &DevBuf, g: &PoolGeom) -> Result<(DevBuf, DevMask)> {
        g.check_forward(x.len())?;
        let total = g.output_len();
        let (y, idx) = (self.buf(total)?, self.mask(total)?);
        for (part, x_at, y_at) in self.pool_parts("maxpool2d_forward", g)? {
            let mut args = vec![at(x, x_at), at(&y, y_at), at_mask(&idx, y_at)];
            args.extend(Self::pool_args(&part)?);
            self.launch("maxpool2d_forward", ew(part.output_len()), B1, 0, &args)?;
        }
        Ok((y, idx))
    }
    fn maxpool2d_backward(&self, dy: &DevBuf, argmax: &DevMask, g: &PoolGeom) -> Result<DevBuf> {
        g.check_backward(dy.len(), argmax.len())?;
        let dx = self.buf(g.input_len())?;
        for (part, x_at, y_at) in self.pool_parts("maxpool2d_backward", g)? {
            let mut args = vec![at(dy, y_at), at_mask(argmax, y_at), at(&dx, x_at)];
            args.extend(Self::pool_args(&part)?);
            self.launch("maxpool2d_backward", ew(part.input_len()), B1, 0, &args)?;
        }
        Ok(dx)
    }
    fn global_avgpool_forward(&self, x: &DevBuf, g: &ChannelGeom) -> Result<DevBuf> {
        g.check("global_avgpool_forward", &[("x", x.len())], &[], &[])?;
        self.plane_reduce("global_avgpool_forward", super::plane_split::PlaneSum::Mean(x), g)
    }
    fn global_avgpool_backward(&self, dy: &DevBuf, g: &ChannelGeom) -> Result<DevBuf> {
        g.check("global_avgpool_backward", &[], &[("dy", dy.len())], &[])?;
        let dx = self.buf(g.len())?;
        for (part, x_at, plane_at) in self.plane_parts("global_avgpool_backward", g)? {
            let args = [at(dy, plane_at), at(&dx, x_at), i(part.planes())?, i(g.hw)?];
            self.launch("global_avgpool_backward", ew(part.len()), B1, 0, &args)?;
        }
        Ok(dx)
    }
    fn channel_scale_forward(&self, x: &DevBuf, s: &DevBuf, g: &ChannelGeom) -> Result<DevBuf> {
        g.check("channel_scale_forward", &[("x", x.len())], &[("s", s.len())], &[])?;
        let y = self.buf(g.len())?;
        for (part, x_at, plane_at) in self.plane_parts("channel_scale_forward", g)? {
            let args = [at(x, x_at), at(s, plane_at), at(&y, x_at), i(part.planes())?, i(g.hw)?];
            self.launch("channel_scale_forward", ew(part.len()), B1, 0, &args)?;
        }
        Ok(y)
    }
    fn channel_scale_backward(&self, dy: &DevBuf, x: &DevBuf, s: &DevBuf, g: &ChannelGeom) -> Result<(DevBuf, DevBuf)> {
        g.check("channel_scale_backward", &[("dy", dy.len()), ("x", x.len())], &[("s", s.len())], &[])?;
        let (dx, ds) = (self.buf(g.len())?, self.buf(g.planes())?);
        for (part, x_at, plane_at) in self.plane_parts("channel_scale_backward", g)? {
            let args = [
                at(dy, x_at),
                at(x, x_at),
                at(s, plane_at),
                at(&dx, x_at),
                at(&ds, plane_at),
                i(part.planes())?,
                i(g.hw)?,
            ];
            self.launch("channel_scale_backward", Self::plane_grid(&part), B1, 0, &args)?;
        }
        Ok((dx, ds))
    }
    fn channel_dot(&self, a: &DevBuf, b: &DevBuf, g: &ChannelGeom) -> Result<DevBuf> {
        g.check("channel_dot", &[("a", a.len()), ("b", b.len())], &[], &[])?;
        self.plane_reduce("channel_dot", super::plane_split::PlaneSum::Dot(a, b), g)
    }
    fn se_backward_input(&self, dy: &DevBuf, gate: &DevBuf, dsqueeze: &DevBuf, g: &ChannelGeom) -> Result<DevBuf> {
        let planes = [("gate", gate.len()), ("dsqueeze", dsqueeze.len())];
        g.check("se_backward_input", &[("dy", dy.len())], &planes, &[])?;
        let dx = self.buf(g.len())?;
        for (part, x_at, plane_at) in self.plane_parts("se_backward_input", g)? {
            let args =
                [at(dy, x_at), at(gate, plane_at), at(dsqueeze, plane_at), at(&dx, x_at), i(part.planes())?, i(g.hw)?];
            self.launch("se_backward_input", ew(part.len()), B1, 0, &args)?;
        }
        Ok(dx)
    }
}
