//! Max-pool with arg-max, global average pool, and per-channel scaling (the SE gate).

use crate::backend::PoolGeom;
use crate::float::Float;
use rayon::prelude::*;

pub fn maxpool_forward<T: Float>(x: &[T], g: &PoolGeom) -> (Vec<T>, Vec<u32>) {
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut y = vec![T::ZERO; g.n * g.c * oh * ow];
    let mut idx = vec![0u32; y.len()];
    y.par_chunks_mut(oh * ow).zip(idx.par_chunks_mut(oh * ow)).enumerate().for_each(|(p, (yp, ip))| {
        let base = p * g.h * g.w;
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best = base + oy * g.stride * g.w + ox * g.stride;
                let mut bv = x[best];
                for ki in 0..g.k {
                    for kj in 0..g.k {
                        let i = base + (oy * g.stride + ki) * g.w + ox * g.stride + kj;
                        // Strictly greater: ties go to the first maximum, as PyTorch; NaN wins.
                        if x[i] > bv || x[i].is_nan() {
                            bv = x[i];
                            best = i;
                        }
                    }
                }
                yp[oy * ow + ox] = bv;
                ip[oy * ow + ox] = best as u32;
            }
        }
    });
    (y, idx)
}

pub fn maxpool_backward<T: Float>(dy: &[T], idx: &[u32], g: &PoolGeom) -> Vec<T> {
    let (plane_in, plane_out) = (g.h * g.w, g.out_h() * g.out_w());
    let mut dx = vec![T::ZERO; g.n * g.c * plane_in];
    dx.par_chunks_mut(plane_in).enumerate().for_each(|(p, dxp)| {
        let base = p * plane_in;
        let r = p * plane_out..(p + 1) * plane_out;
        for (&d, &i) in dy[r.clone()].iter().zip(&idx[r]) {
            dxp[i as usize - base] += d;
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
