//! Embedding lookups (the backward grouped by row: deterministic, no atomics) and slices along an
//! axis, on the CPU.

use super::{Cpu, HostBuf};
use crate::backend::{EmbedGeom, NarrowGeom, Sequence};
use crate::error::Result;
use crate::float::Float;
use rayon::prelude::*;

pub fn embedding_forward<T: Float>(table: &[T], ids: &[u32], g: &EmbedGeom) -> Vec<T> {
    let d = g.dim;
    let mut y = vec![T::ZERO; g.output_len()];
    if d == 0 {
        return y;
    }
    y.par_chunks_mut(d).zip(ids.par_iter()).for_each(|(row, &id)| {
        let id = id as usize;
        if id < g.vocab {
            row.copy_from_slice(&table[id * d..(id + 1) * d]);
        } else {
            row.iter_mut().for_each(|v| *v = T::from_f64(f64::NAN));
        }
    });
    y
}

/// Row v = Σ dy[p] over its positions, in `order`'s order, accumulated in f64 (the kernel's order
/// and precision, so both backends agree to the last bit).
pub fn embedding_backward<T: Float>(dy: &[T], order: &[u32], offsets: &[u32], g: &EmbedGeom) -> Vec<T> {
    let d = g.dim;
    let mut out = vec![T::ZERO; g.table_len()];
    if d == 0 {
        return out;
    }
    out.par_chunks_mut(d).enumerate().for_each(|(v, row)| {
        let (lo, hi) = (offsets[v] as usize, offsets[v + 1] as usize);
        if lo >= hi {
            return;
        }
        let mut acc = vec![0.0f64; d];
        for &p in &order[lo..hi] {
            let src = &dy[p as usize * d..(p as usize + 1) * d];
            for (a, &s) in acc.iter_mut().zip(src) {
                *a += s.to_f64();
            }
        }
        for (o, a) in row.iter_mut().zip(acc) {
            *o = T::from_f64(a);
        }
    });
    out
}

pub fn narrow_forward<T: Float>(x: &[T], g: &NarrowGeom) -> Vec<T> {
    let mut y = Vec::with_capacity(g.output_len());
    for o in 0..g.outer {
        let base = (o * g.dim + g.start) * g.inner;
        y.extend_from_slice(&x[base..base + g.len * g.inner]);
    }
    y
}

pub fn narrow_backward<T: Float>(dy: &[T], g: &NarrowGeom) -> Vec<T> {
    let mut dx = vec![T::ZERO; g.input_len()];
    for o in 0..g.outer {
        let base = (o * g.dim + g.start) * g.inner;
        let n = g.len * g.inner;
        dx[base..base + n].copy_from_slice(&dy[o * n..(o + 1) * n]);
    }
    dx
}

impl<T: Float> Sequence for Cpu<T> {
    fn embedding_forward(&self, table: &HostBuf<T>, ids: &HostBuf<u32>, g: &EmbedGeom) -> Result<HostBuf<T>> {
        g.check_forward(table.len(), ids.len())?;
        Ok(self.wrap(embedding_forward(table, ids, g)))
    }
    fn embedding_backward(
        &self,
        dy: &HostBuf<T>,
        order: &HostBuf<u32>,
        offsets: &HostBuf<u32>,
        g: &EmbedGeom,
    ) -> Result<HostBuf<T>> {
        g.check_backward(dy.len(), order.len(), offsets.len())?;
        check_groups(order, offsets, g)?;
        Ok(self.wrap(embedding_backward(dy, order, offsets, g)))
    }
    fn narrow_forward(&self, x: &HostBuf<T>, g: &NarrowGeom) -> Result<HostBuf<T>> {
        g.check_forward(x.len())?;
        Ok(self.wrap(narrow_forward(x, g)))
    }
    fn narrow_backward(&self, dy: &HostBuf<T>, g: &NarrowGeom) -> Result<HostBuf<T>> {
        g.check_backward(dy.len())?;
        Ok(self.wrap(narrow_backward(dy, g)))
    }
}

/// Offsets must rise from 0 to at most `order.len()`, and positions must be tokens: otherwise the
/// grouping would index past dy.
fn check_groups(order: &[u32], offsets: &[u32], g: &EmbedGeom) -> Result<()> {
    let bad = |m: String| crate::error::Error::shape("embedding_backward", m);
    if offsets.first().is_some_and(|&o| o != 0) || offsets.windows(2).any(|w| w[0] > w[1]) {
        return Err(bad("offsets must rise from 0".into()));
    }
    if offsets.last().is_some_and(|&o| o as usize > order.len()) {
        return Err(bad(format!("offsets end past the {} listed positions", order.len())));
    }
    if let Some(p) = order.iter().find(|&&p| p as usize >= g.tokens) {
        return Err(bad(format!("position {p} of {} tokens", g.tokens)));
    }
    Ok(())
}
