//! The squeeze-and-excitation MLP (the `Excite` family): hidden = relu(sq·W1ᵀ),
//! gate = sigmoid(hidden·W2ᵀ) and its backward, every dot product accumulated in f64 in index
//! order and rounded once, each batch sum in sample order (kernels/excite.cu computes the same
//! sums, with the forward's W1 dots in a warp's order).

use super::HostBuf;
use crate::backend::ExciteGeom;
use crate::error::Result;
use crate::float::Float;
use rayon::prelude::*;

/// Σ_k a(k)·b(k) over k < len in f64, rounded once.
fn dot<T: Float>(len: usize, a: impl Fn(usize) -> T, b: impl Fn(usize) -> T) -> T {
    T::from_f64((0..len).map(|k| a(k).to_f64() * b(k).to_f64()).sum())
}

/// Returns (hidden [n, hid], gate [n, c]).
pub fn excite_forward<T: Float>(sq: &[T], w1: &[T], w2: &[T], g: &ExciteGeom) -> (Vec<T>, Vec<T>) {
    let (c, hid) = (g.c, g.hid);
    let mut hidden = vec![T::ZERO; g.n * hid];
    let mut gate = vec![T::ZERO; g.n * c];
    hidden.par_chunks_mut(hid.max(1)).zip(gate.par_chunks_mut(c.max(1))).enumerate().for_each(|(s, (h, gt))| {
        let q = &sq[s * c..(s + 1) * c];
        for (j, hv) in h.iter_mut().enumerate() {
            let v = dot(c, |k| q[k], |k| w1[j * c + k]);
            *hv = if v > T::ZERO { v } else { T::ZERO };
        }
        for (i, gv) in gt.iter_mut().enumerate() {
            let z = dot(hid, |j| h[j], |j| w2[i * hid + j]);
            *gv = T::ONE / (T::ONE + (-z).exp());
        }
    });
    (hidden, gate)
}

/// The saved values the backward reads.
pub struct Saved<'a, T> {
    pub sq: &'a [T],
    pub hidden: &'a [T],
    pub gate: &'a [T],
    pub w1: &'a [T],
    pub w2: &'a [T],
}

/// Returns (dsq [n, c], dw1 [hid, c], dw2 [c, hid]).
pub fn excite_backward<T: Float>(dgate: &[T], sv: &Saved<'_, T>, g: &ExciteGeom) -> (Vec<T>, Vec<T>, Vec<T>) {
    let (n, c, hid) = (g.n, g.c, g.hid);
    // The sigmoid's backward from its output, the unary op's d·y·(1 − y).
    let dz: Vec<T> = dgate.iter().zip(sv.gate).map(|(&d, &y)| d * y * (T::ONE - y)).collect();
    let dpre: Vec<T> = (0..n * hid)
        .into_par_iter()
        .map(|e| {
            let (s, j) = (e / hid, e % hid);
            let v = dot(c, |i| dz[s * c + i], |i| sv.w2[i * hid + j]);
            if sv.hidden[e] > T::ZERO { v } else { T::ZERO }
        })
        .collect();
    let dw2: Vec<T> = (0..c * hid)
        .into_par_iter()
        .map(|e| {
            let (i, j) = (e / hid, e % hid);
            dot(n, |s| dz[s * c + i], |s| sv.hidden[s * hid + j])
        })
        .collect();
    let dw1: Vec<T> = (0..hid * c)
        .into_par_iter()
        .map(|e| {
            let (j, k) = (e / c, e % c);
            dot(n, |s| dpre[s * hid + j], |s| sv.sq[s * c + k])
        })
        .collect();
    let dsq: Vec<T> = (0..n * c)
        .into_par_iter()
        .map(|e| {
            let (s, k) = (e / c, e % c);
            dot(hid, |j| dpre[s * hid + j], |j| sv.w1[j * c + k])
        })
        .collect();
    (dsq, dw1, dw2)
}

impl<T: Float> crate::backend::Excite for super::Cpu<T> {
    fn excite_forward(
        &self,
        sq: &HostBuf<T>,
        w1: &HostBuf<T>,
        w2: &HostBuf<T>,
        g: &ExciteGeom,
    ) -> Result<(HostBuf<T>, HostBuf<T>)> {
        g.check_forward("excite_forward", sq.len(), w1.len(), w2.len())?;
        let (h, gate) = excite_forward(sq, w1, w2, g);
        Ok((self.wrap(h), self.wrap(gate)))
    }
    fn excite_backward(
        &self,
        dgate: &HostBuf<T>,
        sq: &HostBuf<T>,
        hidden: &HostBuf<T>,
        gate: &HostBuf<T>,
        w1: &HostBuf<T>,
        w2: &HostBuf<T>,
        g: &ExciteGeom,
    ) -> Result<(HostBuf<T>, HostBuf<T>, HostBuf<T>)> {
        g.check_forward("excite_backward", sq.len(), w1.len(), w2.len())?;
        g.check_backward("excite_backward", dgate.len(), hidden.len(), gate.len())?;
        let sv = Saved { sq, hidden, gate, w1, w2 };
        let (dsq, dw1, dw2) = excite_backward(dgate, &sv, g);
        Ok((self.wrap(dsq), self.wrap(dw1), self.wrap(dw2)))
    }
}
