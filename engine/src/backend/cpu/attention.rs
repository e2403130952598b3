//! The attention family on the CPU: batched GEMM (the `gemm` crate per batch entry), the scaled
//! masked softmax (sums in f64), and the head layout permutes.

use super::fastmath;
use super::gemm::{Mat, SyncPtr};
use super::pointwise::{as_f32, as_f32_mut};
use super::{Cpu, HostBuf};
use crate::backend::{Attention, BmmGeom, HeadsGeom, SoftmaxGeom};
use crate::error::Result;
use crate::float::Float;
use rayon::prelude::*;

/// C[b] = alpha·op(A[b])·op(B[b]). Many small products (attention: batch × heads of them) run one
/// per thread; a few large ones run one at a time on every thread.
pub fn bmm<T: Float>(a: &[T], b: &[T], g: &BmmGeom) -> Vec<T> {
    let mut c = vec![T::ZERO; g.c_len()];
    bmm_into(a, b, &mut c, g);
    c
}

/// As `bmm`, into `c` (fully overwritten). Lengths must match the geometry (checked here: a
/// mismatch is a bug in the caller, which checked them already).
pub fn bmm_into<T: Float>(a: &[T], b: &[T], c: &mut [T], g: &BmmGeom) {
    let BmmGeom { batch, m, k, n, ta, tb, alpha } = *g;
    assert!(a.len() >= g.a_len() && b.len() >= g.b_len() && c.len() == g.c_len(), "bmm_into: operand lengths");
    if m * n == 0 || batch == 0 {
        return;
    }
    if k == 0 {
        c.iter_mut().for_each(|v| *v = T::ZERO);
        return;
    }
    let alpha = T::from_f64(alpha);
    let threads = rayon::current_num_threads();
    let one = |i: usize, cptr: *mut T, threads: usize| {
        let ap = a[i * m * k..].as_ptr();
        let bp = b[i * k * n..].as_ptr();
        let am = if ta { Mat::transposed(ap, m) } else { Mat::row_major(ap, k) };
        let bm = if tb { Mat::transposed(bp, k) } else { Mat::row_major(bp, n) };
        // SAFETY: A[i], B[i] and C[i] lie inside buffers of batch·m·k, batch·k·n and batch·m·n
        // elements (checked by the backend); each C[i] is written by one call only.
        unsafe {
            T::gemm(m, k, n, alpha, am.ptr, am.rs, am.cs, bm.ptr, bm.rs, bm.cs, T::ZERO, cptr, n as isize, 1, threads)
        };
    };
    let base = SyncPtr(c.as_mut_ptr());
    if batch >= threads || m * n * k < (1 << 18) {
        (0..batch).into_par_iter().for_each(|i| {
            // SAFETY: entry i's output block, disjoint from every other entry's.
            one(i, unsafe { base.add(i * m * n) }, 1)
        });
    } else {
        for i in 0..batch {
            // SAFETY: as above, one entry at a time.
            one(i, unsafe { base.add(i * m * n) }, threads);
        }
    }
}

/// One row of the scaled masked softmax: p = exp(v − max) / Σ exp, v = scale·s over unmasked keys
/// (the f64 path; f32 runs `fastmath::softmax_row`, the same steps vectorised).
fn softmax_row<T: Float>(s: &[T], mask: &[T], scale: T, out: &mut [T]) {
    if !mask.iter().any(|&m| m != T::ZERO) {
        // Every key masked: no weights (see SoftmaxGeom), so the row's output and gradient are 0.
        out.iter_mut().for_each(|o| *o = T::ZERO);
        return;
    }
    let mut mx = T::from_f64(f64::NEG_INFINITY);
    for (&v, &m) in s.iter().zip(mask) {
        let v = scale * v;
        if m != T::ZERO && v > mx {
            mx = v;
        }
    }
    let mut sum = 0.0f64;
    for ((o, &v), &m) in out.iter_mut().zip(s).zip(mask) {
        let e = if m != T::ZERO { (scale * v - mx).exp() } else { T::ZERO };
        *o = e;
        sum += e.to_f64();
    }
    for o in out.iter_mut() {
        *o = T::from_f64(o.to_f64() / sum);
    }
}

pub fn softmax_forward<T: Float>(scores: &[T], mask: &[T], g: &SoftmaxGeom) -> Vec<T> {
    let mut p = vec![T::ZERO; g.len()];
    if g.k == 0 {
        return p;
    }
    let per_sample = g.heads * g.q;
    let scale = T::from_f64(g.scale);
    if let (Some(sf), Some(mf)) = (as_f32(scores), as_f32(mask)) {
        let pf = as_f32_mut(&mut p).expect("T is f32");
        let scale = g.scale as f32;
        pf.par_chunks_mut(g.k).zip(sf.par_chunks(g.k)).enumerate().for_each(|(r, (o, s))| {
            let b = r / per_sample;
            fastmath::softmax_row(s, &mf[b * g.k..(b + 1) * g.k], scale, o);
        });
        return p;
    }
    p.par_chunks_mut(g.k).zip(scores.par_chunks(g.k)).enumerate().for_each(|(r, (o, s))| {
        let b = r / per_sample;
        softmax_row(s, &mask[b * g.k..(b + 1) * g.k], scale, o);
    });
    p
}

/// ds = scale·p ⊙ (dp − Σ p·dp), the row dot in f64.
pub fn softmax_backward<T: Float>(p: &[T], dp: &[T], g: &SoftmaxGeom) -> Vec<T> {
    let mut ds = vec![T::ZERO; g.len()];
    if g.k == 0 {
        return ds;
    }
    // The scale as the forward used it (rounded to T), so f32 backends agree.
    let scale = T::from_f64(g.scale).to_f64();
    ds.par_chunks_mut(g.k).zip(p.par_chunks(g.k).zip(dp.par_chunks(g.k))).for_each(|(o, (p, dp))| {
        let dot: f64 = p.iter().zip(dp).map(|(a, b)| a.to_f64() * b.to_f64()).sum();
        for ((o, &pv), &d) in o.iter_mut().zip(p).zip(dp) {
            *o = T::from_f64(scale * pv.to_f64() * (d.to_f64() - dot));
        }
    });
    ds
}

/// [b, s, h, d] → [b, h, s, d] when `split`, else the inverse; parallel over (b, h) blocks.
pub fn permute_heads<T: Float>(x: &[T], g: &HeadsGeom, split: bool) -> Vec<T> {
    let HeadsGeom { batch: _, seq, heads, head_dim: d } = *g;
    let mut y = vec![T::ZERO; g.len()];
    if y.is_empty() {
        return y;
    }
    if split {
        // Output block (b, h) is [seq, d], gathered from stride heads·d.
        y.par_chunks_mut(seq * d).enumerate().for_each(|(bh, out)| {
            let (b, h) = (bh / heads, bh % heads);
            for s in 0..seq {
                let src = ((b * seq + s) * heads + h) * d;
                out[s * d..(s + 1) * d].copy_from_slice(&x[src..src + d]);
            }
        });
    } else {
        // Output row (b, s) is [heads, d], gathered from the heads' blocks.
        y.par_chunks_mut(heads * d).enumerate().for_each(|(bs, out)| {
            let (b, s) = (bs / seq, bs % seq);
            for h in 0..heads {
                let src = ((b * heads + h) * seq + s) * d;
                out[h * d..(h + 1) * d].copy_from_slice(&x[src..src + d]);
            }
        });
    }
    y
}

impl<T: Float> Attention for Cpu<T> {
    fn bmm(&self, a: &HostBuf<T>, b: &HostBuf<T>, g: &BmmGeom) -> Result<HostBuf<T>> {
        g.check(a.len(), b.len())?;
        Ok(self.wrap(bmm(a, b, g)))
    }
    fn masked_softmax_forward(
        &self,
        scores: &HostBuf<T>,
        key_mask: &HostBuf<T>,
        g: &SoftmaxGeom,
    ) -> Result<HostBuf<T>> {
        g.check("masked_softmax_forward", &[("scores", scores.len())], Some(key_mask.len()))?;
        Ok(self.wrap(softmax_forward(scores, key_mask, g)))
    }
    fn masked_softmax_backward(&self, probs: &HostBuf<T>, dprobs: &HostBuf<T>, g: &SoftmaxGeom) -> Result<HostBuf<T>> {
        g.check("masked_softmax_backward", &[("probs", probs.len()), ("dprobs", dprobs.len())], None)?;
        Ok(self.wrap(softmax_backward(probs, dprobs, g)))
    }
    fn split_heads(&self, x: &HostBuf<T>, g: &HeadsGeom) -> Result<HostBuf<T>> {
        g.check("split_heads", x.len())?;
        Ok(self.wrap(permute_heads(x, g, true)))
    }
    fn merge_heads(&self, x: &HostBuf<T>, g: &HeadsGeom) -> Result<HostBuf<T>> {
        g.check("merge_heads", x.len())?;
        Ok(self.wrap(permute_heads(x, g, false)))
    }
}
