//! The attention ops: batched products, the scaled key-masked softmax, the head layout, and the
//! fused attention core that keeps only the probabilities for its backward.

use crate::backend::{Backend, BmmGeom, HeadsGeom, SoftmaxGeom};
use crate::error::{Error, Result};
use crate::tape::{Tape, Var};
use crate::tensor::{Tensor, numel};

/// Splits a shape into (leading batch dims, rows, cols).
fn batched(op: &'static str, s: &[usize]) -> Result<(Vec<usize>, usize, usize)> {
    if s.len() < 3 {
        return Err(Error::shape(op, format!("expected a batch of matrices ([..., rows, cols]), got shape {s:?}")));
    }
    let n = s.len();
    Ok((s[..n - 2].to_vec(), s[n - 2], s[n - 1]))
}

/// The geometry of C = alpha·op(A)·op(B) over matching leading dims; returns it and C's shape.
fn bmm_geom(a: &[usize], b: &[usize], ta: bool, tb: bool, alpha: f64) -> Result<(BmmGeom, Vec<usize>)> {
    let (la, ar, ac) = batched("bmm", a)?;
    let (lb, br, bc) = batched("bmm", b)?;
    if la != lb {
        return Err(Error::shape("bmm", format!("batch dims differ: {a:?} vs {b:?}")));
    }
    let (m, k) = if ta { (ac, ar) } else { (ar, ac) };
    let (k2, n) = if tb { (bc, br) } else { (br, bc) };
    if k != k2 {
        return Err(Error::shape("bmm", format!("inner sizes differ: {a:?} (ta {ta}) × {b:?} (tb {tb})")));
    }
    let mut shape = la.clone();
    shape.extend([m, n]);
    Ok((BmmGeom { batch: numel(&la), m, k, n, ta, tb, alpha }, shape))
}

fn bmm_raw<B: Backend>(
    be: &B,
    a: &B::Buf,
    b: &B::Buf,
    batch: usize,
    dims: (usize, usize, usize),
    t: (bool, bool),
    alpha: f64,
) -> Result<B::Buf> {
    let (m, k, n) = dims;
    be.bmm(a, b, &BmmGeom { batch, m, k, n, ta: t.0, tb: t.1, alpha })
}

/// C[..] = alpha·op(A[..])·op(B[..]) over the leading (batch) dims, which must match.
pub fn bmm<B: Backend>(tape: &mut Tape<B>, a: &Var<B>, b: &Var<B>, ta: bool, tb: bool, alpha: f64) -> Result<Var<B>> {
    let (g, shape) = bmm_geom(a.shape(), b.shape(), ta, tb, alpha)?;
    let y = Tensor::new(shape, tape.backend.bmm(a.buf(), b.buf(), &g)?)?;
    let saved_b = a.tracked().then(|| b.buf().clone());
    let saved_a = b.tracked().then(|| a.buf().clone());
    Ok(tape.record("bmm", &[a, b], y, move |be, dc| {
        let BmmGeom { batch, m, k, n, ta, tb, alpha } = g;
        // dA = α·dC·op(B)ᵀ (stored transposed when ta); dB = α·op(A)ᵀ·dC (likewise for tb).
        let da = saved_b
            .map(|b| match (ta, tb) {
                (false, false) => bmm_raw(be, &dc, &b, batch, (m, n, k), (false, true), alpha),
                (false, true) => bmm_raw(be, &dc, &b, batch, (m, n, k), (false, false), alpha),
                (true, false) => bmm_raw(be, &b, &dc, batch, (k, n, m), (false, true), alpha),
                (true, true) => bmm_raw(be, &b, &dc, batch, (k, n, m), (true, true), alpha),
            })
            .transpose()?;
        let db = saved_a
            .map(|a| match (ta, tb) {
                (false, false) => bmm_raw(be, &a, &dc, batch, (k, m, n), (true, false), alpha),
                (true, false) => bmm_raw(be, &a, &dc, batch, (k, m, n), (false, false), alpha),
                (false, true) => bmm_raw(be, &dc, &a, batch, (n, m, k), (true, false), alpha),
                (true, true) => bmm_raw(be, &dc, &a, batch, (n, m, k), (true, true), alpha),
            })
            .transpose()?;
        Ok(vec![da, db])
    }))
}

/// The softmax geometry of scores [batch, heads, q, k] and a [batch, k] key mask.
fn softmax_geom(op: &'static str, scores: &[usize], mask: &[usize], scale: f64) -> Result<SoftmaxGeom> {
    let [batch, heads, q, k] = scores else {
        return Err(Error::shape(op, format!("scores must be [batch, heads, queries, keys], got {scores:?}")));
    };
    if mask != [*batch, *k] {
        return Err(Error::shape(op, format!("key mask {mask:?} for scores {scores:?}: expected [{batch}, {k}]")));
    }
    Ok(SoftmaxGeom { batch: *batch, heads: *heads, q: *q, k: *k, scale })
}

/// softmax(scale·scores) over the last axis with key j of sample b left out where
/// key_mask[b, j] == 0 (see `SoftmaxGeom`). Saves its output for the backward.
pub fn masked_softmax<B: Backend>(
    tape: &mut Tape<B>,
    scores: &Var<B>,
    key_mask: &Tensor<B>,
    scale: f64,
) -> Result<Var<B>> {
    let g = softmax_geom("masked_softmax", scores.shape(), key_mask.shape(), scale)?;
    let p = tape.backend.masked_softmax_forward(scores.buf(), key_mask.buf(), &g)?;
    let saved = p.clone();
    let y = Tensor::new(scores.shape(), p)?;
    Ok(tape.record("masked_softmax", &[scores], y, move |be, dp| {
        Ok(vec![Some(be.masked_softmax_backward(&saved, &dp, &g)?)])
    }))
}

/// Dropout on the attention probabilities inside `attention`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttnDropout {
    pub p: f64,
    pub seed: u64,
}

/// The attention core: softmax(scale·q·kᵀ, masked)·v with q [b, h, lq, d], k [b, h, lk, d],
/// v [b, h, lk, dv], key_mask [b, lk]; dropout (when given, p > 0) on the probabilities.
///
/// One tape node: its backward keeps the probabilities (only when q, k or v needs a gradient) and
/// redraws the dropout mask from its seed, so neither the scores nor a dropped copy of the
/// probabilities outlive the forward.
pub fn attention<B: Backend>(
    tape: &mut Tape<B>,
    q: &Var<B>,
    k: &Var<B>,
    v: &Var<B>,
    key_mask: &Tensor<B>,
    scale: f64,
    dropout: Option<AttnDropout>,
) -> Result<Var<B>> {
    let op = "attention";
    let (qs, ks, vs) = (q.shape(), k.shape(), v.shape());
    let (&[b, h, lq, d], &[b2, h2, lk, d2], &[b3, h3, lk3, dv]) = (qs, ks, vs) else {
        return Err(Error::shape(op, format!("q, k, v must be [batch, heads, seq, dim]: {qs:?}, {ks:?}, {vs:?}")));
    };
    if (b, h, d) != (b2, h2, d2) || (b, h, lk) != (b3, h3, lk3) {
        return Err(Error::shape(op, format!("q {qs:?}, k {ks:?} and v {vs:?} do not fit together")));
    }
    if let Some(dr) = dropout
        && !(0.0..1.0).contains(&dr.p)
    {
        return Err(Error::Invalid(format!("attention dropout must be in [0, 1), got {}", dr.p)));
    }
    let dropout = dropout.filter(|dr| dr.p > 0.0);
    let g = softmax_geom(op, &[b, h, lq, lk], key_mask.shape(), scale)?;
    let be = tape.backend.clone();
    let bh = b * h;
    let scores = bmm_raw(&be, q.buf(), k.buf(), bh, (lq, d, lk), (false, true), 1.0)?;
    let probs = be.masked_softmax_forward(&scores, key_mask.buf(), &g)?;
    drop(scores);
    let dropped = match dropout {
        Some(dr) => be.mul(&probs, &be.dropout_mask(g.len(), dr.p, dr.seed)?)?,
        None => probs.clone(),
    };
    let ctx = bmm_raw(&be, &dropped, v.buf(), bh, (lq, lk, dv), (false, false), 1.0)?;
    drop(dropped);
    let y = Tensor::new(vec![b, h, lq, dv], ctx)?;
    let (need_q, need_k, need_v) = (q.tracked(), k.tracked(), v.tracked());
    if !tape.needs_grad(&[q, k, v]) {
        return Ok(tape.record(op, &[q, k, v], y, |_, _| Ok(vec![None, None, None])));
    }
    let saved_q = need_k.then(|| q.buf().clone());
    let saved_k = need_q.then(|| k.buf().clone());
    let saved_v = (need_q || need_k).then(|| v.buf().clone());
    Ok(tape.record(op, &[q, k, v], y, move |be, dctx| {
        let mask = dropout.map(|dr| be.dropout_mask(g.len(), dr.p, dr.seed)).transpose()?;
        let dv_grad = if need_v {
            let pd = match &mask {
                Some(m) => be.mul(&probs, m)?,
                None => probs.clone(),
            };
            Some(bmm_raw(be, &pd, &dctx, bh, (lk, lq, dv), (true, false), 1.0)?)
        } else {
            None
        };
        let (mut dq, mut dk) = (None, None);
        if let Some(vb) = saved_v {
            let mut dp = bmm_raw(be, &dctx, &vb, bh, (lq, dv, lk), (false, true), 1.0)?;
            if let Some(m) = &mask {
                dp = be.mul(&dp, m)?;
            }
            let ds = be.masked_softmax_backward(&probs, &dp, &g)?;
            drop(dp);
            if let Some(kb) = saved_k {
                dq = Some(bmm_raw(be, &ds, &kb, bh, (lq, lk, d), (false, false), 1.0)?);
            }
            if let Some(qb) = saved_q {
                dk = Some(bmm_raw(be, &ds, &qb, bh, (lk, lq, d), (true, false), 1.0)?);
            }
        }
        Ok(vec![dq, dk, dv_grad])
    }))
}

fn heads_geom(op: &'static str, s: &[usize], heads: usize, split: bool) -> Result<HeadsGeom> {
    match (s, split) {
        (&[batch, seq, width], true) if heads > 0 && width % heads == 0 => {
            Ok(HeadsGeom { batch, seq, heads, head_dim: width / heads })
        }
        (&[batch, h, seq, head_dim], false) => Ok(HeadsGeom { batch, seq, heads: h, head_dim }),
        _ => Err(Error::shape(
            op,
            if split {
                format!("expected [batch, seq, heads·dim] with a width divisible by {heads} heads, got {s:?}")
            } else {
                format!("expected [batch, heads, seq, dim], got {s:?}")
            },
        )),
    }
}

/// [batch, seq, heads·dim] → [batch, heads, seq, dim].
pub fn split_heads<B: Backend>(tape: &mut Tape<B>, x: &Var<B>, heads: usize) -> Result<Var<B>> {
    let g = heads_geom("split_heads", x.shape(), heads, true)?;
    let y = Tensor::new(vec![g.batch, g.heads, g.seq, g.head_dim], tape.backend.split_heads(x.buf(), &g)?)?;
    Ok(tape.record("split_heads", &[x], y, move |be, dy| Ok(vec![Some(be.merge_heads(&dy, &g)?)])))
}

/// [batch, heads, seq, dim] → [batch, seq, heads·dim].
pub fn merge_heads<B: Backend>(tape: &mut Tape<B>, x: &Var<B>) -> Result<Var<B>> {
    let g = heads_geom("merge_heads", x.shape(), 0, false)?;
    let y = Tensor::new(vec![g.batch, g.seq, g.heads * g.head_dim], tape.backend.merge_heads(x.buf(), &g)?)?;
    Ok(tape.record("merge_heads", &[x], y, move |be, dy| Ok(vec![Some(be.split_heads(&dy, &g)?)])))
}
