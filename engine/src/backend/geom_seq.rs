//! Geometries of the sequence-model primitives (the text encoder's families: `Attention`,
//! `Sequence`, `LayerNorm`), with their length checks and 32-bit guards.
//!
//! As in `geom`: a primitive takes one of these, checks every buffer against it first
//! (`Error::Shape` naming the op and the buffer), and the kernel backend calls `check_i32` before
//! launching.

use super::geom::{check_i32, check_lens};
use crate::error::{Error, Result};

/// C[b] = alpha·op(A[b])·op(B[b]) for b < batch, every operand contiguous per batch entry:
/// A[b] is [m, k] (stored [k, m] if `ta`), B[b] is [k, n] (stored [n, k] if `tb`), C[b] is [m, n].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BmmGeom {
    pub batch: usize,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub ta: bool,
    pub tb: bool,
    pub alpha: f64,
}

impl BmmGeom {
    pub fn a_len(&self) -> usize {
        self.batch * self.m * self.k
    }
    pub fn b_len(&self) -> usize {
        self.batch * self.k * self.n
    }
    pub fn c_len(&self) -> usize {
        self.batch * self.m * self.n
    }
    pub fn check(&self, a: usize, b: usize) -> Result<()> {
        check_lens("bmm", &[("A", a, self.a_len()), ("B", b, self.b_len())])
    }
    pub fn check_i32(&self) -> Result<()> {
        check_i32("bmm", "A", self.a_len(), self.m * self.k)?;
        check_i32("bmm", "B", self.b_len(), self.k * self.n)?;
        check_i32("bmm", "C", self.c_len(), self.m * self.n)?;
        check_i32("bmm", "the batch count", self.batch, 0)
    }
    /// Multiply-adds times two.
    pub fn flops(&self) -> f64 {
        2.0 * (self.batch * self.m * self.k * self.n) as f64
    }
}

/// softmax over the last axis of scale·scores, scores [batch, heads, q, k], with key j of sample
/// b left out where key_mask[b, j] == 0. A row with every key masked has no weights (all 0: zero
/// context, zero gradient). transformers' additive finfo.min mask would make it uniform instead; the
/// encoder never creates such a row, as [CLS] / <s> is never masked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SoftmaxGeom {
    pub batch: usize,
    pub heads: usize,
    pub q: usize,
    pub k: usize,
    pub scale: f64,
}

impl SoftmaxGeom {
    pub fn rows(&self) -> usize {
        self.batch * self.heads * self.q
    }
    pub fn len(&self) -> usize {
        self.rows() * self.k
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn mask_len(&self) -> usize {
        self.batch * self.k
    }
    pub fn check(&self, op: &'static str, full: &[(&str, usize)], mask: Option<usize>) -> Result<()> {
        let v: Vec<_> = full.iter().map(|&(w, l)| (w, l, self.len())).collect();
        check_lens(op, &v)?;
        if let Some(m) = mask {
            check_lens(op, &[("key_mask", m, self.mask_len())])?;
        }
        Ok(())
    }
    pub fn check_i32(&self, op: &'static str) -> Result<()> {
        check_i32(op, "the scores", self.len(), self.heads * self.q * self.k)
    }
}

/// [batch, seq, heads, head_dim] ↔ [batch, heads, seq, head_dim] (the attention heads' split and
/// merge).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadsGeom {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
}

impl HeadsGeom {
    pub fn len(&self) -> usize {
        self.batch * self.seq * self.heads * self.head_dim
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn check(&self, op: &'static str, x: usize) -> Result<()> {
        check_lens(op, &[("x", x, self.len())])
    }
    pub fn check_i32(&self, op: &'static str) -> Result<()> {
        check_i32(op, "the tensor", self.len(), self.seq * self.heads * self.head_dim)
    }
}

/// x viewed as [outer, dim, inner]; the slice [start, start + len) of the middle axis, giving
/// [outer, len, inner].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NarrowGeom {
    pub outer: usize,
    pub dim: usize,
    pub inner: usize,
    pub start: usize,
    pub len: usize,
}

impl NarrowGeom {
    pub fn input_len(&self) -> usize {
        self.outer * self.dim * self.inner
    }
    pub fn output_len(&self) -> usize {
        self.outer * self.len * self.inner
    }
    fn valid(&self, op: &'static str) -> Result<()> {
        if self.start + self.len > self.dim {
            return Err(Error::shape(
                op,
                format!("slice [{}, {}) of an axis of {}", self.start, self.start + self.len, self.dim),
            ));
        }
        Ok(())
    }
    pub fn check_forward(&self, x: usize) -> Result<()> {
        self.valid("narrow_forward")?;
        check_lens("narrow_forward", &[("x", x, self.input_len())])
    }
    pub fn check_backward(&self, dy: usize) -> Result<()> {
        self.valid("narrow_backward")?;
        check_lens("narrow_backward", &[("dy", dy, self.output_len())])
    }
    pub fn check_i32(&self, op: &'static str) -> Result<()> {
        check_i32(op, "the input", self.input_len(), self.dim * self.inner)
    }
}

/// `tokens` rows gathered from a [vocab, dim] table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmbedGeom {
    pub tokens: usize,
    pub vocab: usize,
    pub dim: usize,
}

impl EmbedGeom {
    pub fn table_len(&self) -> usize {
        self.vocab * self.dim
    }
    pub fn output_len(&self) -> usize {
        self.tokens * self.dim
    }
    pub fn check_forward(&self, table: usize, ids: usize) -> Result<()> {
        check_lens("embedding_forward", &[("table", table, self.table_len()), ("ids", ids, self.tokens)])
    }
    /// `order` lists token positions grouped by row, `offsets` (vocab + 1 entries) where each
    /// row's group starts; tokens left out of `order` (a padding index) get no gradient.
    pub fn check_backward(&self, dy: usize, order: usize, offsets: usize) -> Result<()> {
        check_lens("embedding_backward", &[("dy", dy, self.output_len()), ("offsets", offsets, self.vocab + 1)])?;
        if order > self.tokens {
            return Err(Error::shape(
                "embedding_backward",
                format!("`order` lists {order} positions of {} tokens", self.tokens),
            ));
        }
        Ok(())
    }
    pub fn check_i32(&self, op: &'static str) -> Result<()> {
        check_i32(op, "the table", self.table_len(), 0)?;
        check_i32(op, "the output", self.output_len(), self.dim)
    }
}

/// LayerNorm over the last axis of a [rows, cols] matrix.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerNormGeom {
    pub rows: usize,
    pub cols: usize,
    pub eps: f64,
}

impl LayerNormGeom {
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Full [rows, cols] buffers, per-row [rows] (mean, invstd) and per-column [cols] (γ, β).
    pub fn check(
        &self,
        op: &'static str,
        full: &[(&str, usize)],
        per_row: &[(&str, usize)],
        per_col: &[(&str, usize)],
    ) -> Result<()> {
        if self.cols == 0 {
            return Err(Error::shape(op, "LayerNorm over 0 features"));
        }
        let f: Vec<_> = full.iter().map(|&(w, l)| (w, l, self.len())).collect();
        let r: Vec<_> = per_row.iter().map(|&(w, l)| (w, l, self.rows)).collect();
        let c: Vec<_> = per_col.iter().map(|&(w, l)| (w, l, self.cols)).collect();
        check_lens(op, &f)?;
        check_lens(op, &r)?;
        check_lens(op, &c)
    }
    pub fn check_i32(&self, op: &'static str) -> Result<()> {
        check_i32(op, "the tensor", self.len(), 0)
    }
}

/// Rows per partial sum in LayerNorm's γ/β gradient: fixed (not the thread or block count), so
/// every backend adds the same partials in the same order and the result is deterministic.
pub const LN_PARAM_CHUNK: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_guards_name_the_op() {
        let g = BmmGeom { batch: 3, m: 2, k: 5, n: 7, ta: false, tb: true, alpha: 1.0 };
        assert!(g.check(30, 105).is_ok());
        let e = g.check(30, 104).unwrap_err().to_string();
        assert!(e.contains("bmm") && e.contains("`B` holds 104"), "{e}");
        let big = SoftmaxGeom { batch: 1024, heads: 16, q: 512, k: 512, scale: 1.0 };
        let e = big.check_i32("masked_softmax_forward").unwrap_err().to_string();
        // 16 × 512 × 512 = 2^22 scores a sample: 512 samples are 2^31, one past i32::MAX, so 511 fit.
        assert!(e.contains("at most 511"), "{e}");
        let n = NarrowGeom { outer: 2, dim: 5, inner: 3, start: 4, len: 2 };
        assert!(n.check_forward(30).is_err());
        let e = EmbedGeom { tokens: 4, vocab: 10, dim: 3 }.check_backward(12, 5, 11).unwrap_err().to_string();
        assert!(e.contains("5 positions of 4"), "{e}");
    }
}
