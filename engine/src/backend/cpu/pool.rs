//! Max-pool with arg-max, global average pool, and per-channel scaling (the SE gate).

use super::HostBuf;
use crate::backend::{ChannelGeom, PoolGeom};
use crate::error::Result;
use crate::float::Float;
use rayon::prelude::*;

/// Returns y and, per output, the position of the window's maximum inside the window
/// (ki·k + kj, one byte).
pub fn maxpool_forward<T: Float>(x: &[T], g: &PoolGeom) -> (Vec<T>, Vec<u8>) {
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut y = vec![T::ZERO; g.output_len()];
    let mut idx = vec![0u8; y.len()];
    y.par_chunks_mut(oh * ow).zip(idx.par_chunks_mut(oh * ow)).enumerate().for_each(|(p, (yp, ip))| {
        let plane = &x[p * g.h * g.w..(p + 1) * g.h * g.w];
        for oy in 0..oh {
            for ox in 0..ow {
                let corner = oy * g.stride * g.w + ox * g.stride;
                let (mut best, mut bv) = (0, plane[corner]);
                for ki in 0..g.k {
                    for kj in 0..g.k {
                        let v = plane[corner + ki * g.w + kj];
                        // Strictly greater: ties go to the first maximum, as PyTorch; NaN wins.
                        if v > bv || v.is_nan() {
                            bv = v;
                            best = ki * g.k + kj;
                        }
                    }
                }
                yp[oy * ow + ox] = bv;
                ip[oy * ow + ox] = best as u8;
            }
        }
    });
    (y, idx)
}

/// Gathers, per input element, dy of every window whose maximum it is (windows overlap when
/// stride < k), in window order: deterministic, no scatter.
pub fn maxpool_backward<T: Float>(dy: &[T], idx: &[u8], g: &PoolGeom) -> Vec<T> {
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut dx = vec![T::ZERO; g.input_len()];
    dx.par_chunks_mut(g.h * g.w).enumerate().for_each(|(p, dxp)| {
        let (dyp, ip) = (&dy[p * oh * ow..(p + 1) * oh * ow], &idx[p * oh * ow..(p + 1) * oh * ow]);
        for oy in 0..oh {
            for ox in 0..ow {
                let o = oy * ow + ox;
                let (ki, kj) = (ip[o] as usize / g.k, ip[o] as usize % g.k);
                dxp[(oy * g.stride + ki) * g.w + ox * g.stride + kj] += dyp[o];
            }
        }
    });
    dx
}

pub fn avgpool_forward<T: Float>(x: &[T], hw: usize) -> Vec<T> {
    x.par_chunks(hw).map(|p| T::from_f64(p.iter().map(|v| v.to_f64()).sum::<f64>() / hw as f64)).collect()
}

pub fn avgpool_backward<T: Float>(dy: &[T], hw: usize) -> Vec<T> {
    let inv = T::from_f64(1.0 / hw as f64);
    let mut dx = vec![T::ZERO; dy.len() * hw];
    dx.par_chunks_mut(hw).zip(dy.par_iter()).for_each(|(p, &d)| p.fill(d * inv));
    dx
}

pub fn channel_scale_forward<T: Float>(x: &[T], s: &[T], hw: usize) -> Vec<T> {
    let mut y = vec![T::ZERO; x.len()];
    y.par_chunks_mut(hw).zip(x.par_chunks(hw)).zip(s.par_iter()).for_each(|((yp, xp), &sv)| {
        for (o, &v) in yp.iter_mut().zip(xp) {
            *o = v * sv;
        }
    });
    y
}

pub fn channel_dot<T: Float>(a: &[T], b: &[T], hw: usize) -> Vec<T> {
    a.par_chunks(hw)
        .zip(b.par_chunks(hw))
        .map(|(x, y)| T::from_f64(x.iter().zip(y).map(|(p, q)| p.to_f64() * q.to_f64()).sum()))
        .collect()
}

pub fn se_backward_input<T: Float>(dy: &[T], gate: &[T], dsq: &[T], hw: usize) -> Vec<T> {
    let inv = T::from_f64(1.0 / hw as f64);
    let mut dx = vec![T::ZERO; dy.len()];
    dx.par_chunks_mut(hw).zip(dy.par_chunks(hw)).enumerate().for_each(|(p, (o, d))| {
        let (g, s) = (gate[p], dsq[p] * inv);
        for (ov, &dv) in o.iter_mut().zip(d) {
            *ov = dv * g + s;
        }
    });
    dx
}

pub fn channel_scale_backward<T: Float>(dy: &[T], x: &[T], s: &[T], hw: usize) -> (Vec<T>, Vec<T>) {
    let dx = channel_scale_forward(dy, s, hw);
    let ds = dy
        .par_chunks(hw)
        .zip(x.par_chunks(hw))
        .map(|(d, xv)| T::from_f64(d.iter().zip(xv).map(|(a, b)| a.to_f64() * b.to_f64()).sum()))
        .collect();
    (dx, ds)
}

impl<T: Float> crate::backend::Pool for super::Cpu<T> {
    fn maxpool2d_forward(&self, x: &HostBuf<T>, g: &PoolGeom) -> Result<(HostBuf<T>, HostBuf<u8>)> {
        g.check_forward(x.len())?;
        let (y, idx) = maxpool_forward(x, g);
        Ok((self.wrap(y), self.wrap(idx)))
    }
    fn maxpool2d_backward(&self, dy: &HostBuf<T>, argmax: &HostBuf<u8>, g: &PoolGeom) -> Result<HostBuf<T>> {
        g.check_backward(dy.len(), argmax.len())?;
        if let Some(bad) = argmax.iter().find(|&&i| i as usize >= g.k * g.k) {
            return Err(crate::error::Error::Invalid(format!(
                "maxpool2d_backward: window position {bad} outside a {k}x{k} window",
                k = g.k
            )));
        }
        Ok(self.wrap(maxpool_backward(dy, argmax, g)))
    }
    fn global_avgpool_forward(&self, x: &HostBuf<T>, g: &ChannelGeom) -> Result<HostBuf<T>> {
        g.check("global_avgpool_forward", &[("x", x.len())], &[], &[])?;
        Ok(self.wrap(avgpool_forward(x, g.hw)))
    }
    fn global_avgpool_backward(&self, dy: &HostBuf<T>, g: &ChannelGeom) -> Result<HostBuf<T>> {
        g.check("global_avgpool_backward", &[], &[("dy", dy.len())], &[])?;
        Ok(self.wrap(avgpool_backward(dy, g.hw)))
    }
    fn channel_scale_forward(&self, x: &HostBuf<T>, s: &HostBuf<T>, g: &ChannelGeom) -> Result<HostBuf<T>> {
        g.check("channel_scale_forward", &[("x", x.len())], &[("s", s.len())], &[])?;
        Ok(self.wrap(channel_scale_forward(x, s, g.hw)))
    }
    fn channel_scale_backward(
        &self,
        dy: &HostBuf<T>,
        x: &HostBuf<T>,
        s: &HostBuf<T>,
        g: &ChannelGeom,
    ) -> Result<(HostBuf<T>, HostBuf<T>)> {
        g.check("channel_scale_backward", &[("dy", dy.len()), ("x", x.len())], &[("s", s.len())], &[])?;
        let (dx, ds) = channel_scale_backward(dy, x, s, g.hw);
        Ok((self.wrap(dx), self.wrap(ds)))
    }
    fn channel_dot(&self, a: &HostBuf<T>, b: &HostBuf<T>, g: &ChannelGeom) -> Result<HostBuf<T>> {
        g.check("channel_dot", &[("a", a.len()), ("b", b.len())], &[], &[])?;
        Ok(self.wrap(channel_dot(a, b, g.hw)))
    }
    fn se_backward_input(
        &self,
        dy: &HostBuf<T>,
        gate: &HostBuf<T>,
        dsqueeze: &HostBuf<T>,
        g: &ChannelGeom,
    ) -> Result<HostBuf<T>> {
        let planes = [("gate", gate.len()), ("dsqueeze", dsqueeze.len())];
        g.check("se_backward_input", &[("dy", dy.len())], &planes, &[])?;
        Ok(self.wrap(se_backward_input(dy, gate, dsqueeze, g.hw)))
    }
}
