//! Embedding lookups and slices along an axis.

use crate::backend::{Backend, EmbedGeom, NarrowGeom};
use crate::error::{Error, Result};
use crate::tape::{Tape, Var};
use crate::tensor::{Tensor, numel};

/// Token positions grouped by id (stable: each group in position order), and where each id's
/// group starts (vocab + 1 offsets); positions holding `skip` are left out.
pub fn group_by_id(ids: &[u32], vocab: usize, skip: Option<u32>) -> (Vec<u32>, Vec<u32>) {
    let mut offsets = vec![0u32; vocab + 1];
    for &id in ids {
        if Some(id) != skip {
            offsets[id as usize + 1] += 1;
        }
    }
    for v in 0..vocab {
        offsets[v + 1] += offsets[v];
    }
    let mut next = offsets.clone();
    let mut order = vec![0u32; offsets[vocab] as usize];
    for (p, &id) in ids.iter().enumerate() {
        if Some(id) != skip {
            order[next[id as usize] as usize] = p as u32;
            next[id as usize] += 1;
        }
    }
    (order, offsets)
}

/// Rows `ids` of `table` [vocab, dim] → [ids.len(), dim] (`torch.nn.Embedding`). Tokens equal to
/// `padding_idx` contribute no gradient to the table, as with PyTorch's `padding_idx`.
pub fn embedding<B: Backend>(
    tape: &mut Tape<B>,
    table: &Var<B>,
    ids: &[u32],
    padding_idx: Option<u32>,
) -> Result<Var<B>> {
    let &[vocab, dim] = table.shape() else {
        return Err(Error::shape("embedding", format!("the table must be [rows, dim], got {:?}", table.shape())));
    };
    if let Some((t, id)) = ids.iter().enumerate().find(|&(_, &id)| id as usize >= vocab) {
        return Err(Error::Invalid(format!(
            "embedding: token id {id} at position {t} is outside the table of {vocab} rows \
             (does the tokenizer belong to this model?)"
        )));
    }
    let g = EmbedGeom { tokens: ids.len(), vocab, dim };
    if ids.len() > u32::MAX as usize {
        return Err(Error::Invalid(format!("embedding: {} tokens is more than 2^32", ids.len())));
    }
    let be = tape.backend.clone();
    let idx = be.upload_index(ids)?;
    let y = Tensor::new(vec![ids.len(), dim], be.embedding_forward(table.buf(), &idx, &g)?)?;
    drop(idx);
    let host_ids = table.tracked().then(|| ids.to_vec());
    Ok(tape.record("embedding", &[table], y, move |be, dy| {
        let Some(ids) = host_ids else { return Ok(vec![None]) };
        let (order, offsets) = group_by_id(&ids, vocab, padding_idx);
        let (order, offsets) = (be.upload_index(&order)?, be.upload_index(&offsets)?);
        Ok(vec![Some(be.embedding_backward(&dy, &order, &offsets, &g)?)])
    }))
}

/// The slice [start, start + len) of axis `axis` (`torch.narrow`).
pub fn narrow<B: Backend>(tape: &mut Tape<B>, x: &Var<B>, axis: usize, start: usize, len: usize) -> Result<Var<B>> {
    let s = x.shape().to_vec();
    if axis >= s.len() || start + len > s[axis] {
        return Err(Error::shape("narrow", format!("slice [{start}, {}) of axis {axis} of shape {s:?}", start + len)));
    }
    let g = NarrowGeom { outer: numel(&s[..axis]), dim: s[axis], inner: numel(&s[axis + 1..]), start, len };
    let mut shape = s.clone();
    shape[axis] = len;
    let y = Tensor::new(shape, tape.backend.narrow_forward(x.buf(), &g)?)?;
    Ok(tape.record("narrow", &[x], y, move |be, dy| Ok(vec![Some(be.narrow_backward(&dy, &g)?)])))
}
