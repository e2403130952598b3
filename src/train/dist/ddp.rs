//! What data-parallel training exchanges through a `Collective`: the step's gradients (summed in
//! rank order, which is micro-batch order), the BatchNorm buffers rank 0 holds, and digests that
//! prove every rank holds the same data and the same weights.

use super::comm::{Collective, all_reduce_sum, bytes_f64, f64_bytes};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::io::HostData;
use crate::params::{ParamStore, Slot};
use crate::tensor::Tensor;
use sha2::{Digest, Sha256};

/// After this rank's backward(s): leaves in `store` the sum of every rank's micro-batch
/// gradients, in rank order, and returns every micro-batch's loss in that order. `losses` are
/// this rank's (empty when its share of the batch was empty: it then adds nothing).
pub fn exchange_gradients<B: Backend>(
    c: &dyn Collective,
    store: &mut ParamStore<B>,
    losses: &[f64],
) -> Result<Vec<f64>> {
    let all: Vec<f64> = c.all_gather(&f64_bytes(losses))?.iter().flat_map(|b| bytes_f64(b)).collect();
    let contributes = !losses.is_empty();
    let ids = store.param_ids();
    // Which parameters got a gradient: the same on every rank that computed (one network, one
    // code path); a rank with nothing to add takes the contributors' pattern.
    let mine: Vec<u8> = ids.iter().map(|&id| u8::from(store.grad(id).is_some())).collect();
    let masks = c.all_gather(if contributes { &mine } else { &[] })?;
    let mut pattern: Option<&Vec<u8>> = None;
    for (r, m) in masks.iter().enumerate().filter(|(_, m)| !m.is_empty()) {
        match pattern {
            None => pattern = Some(m),
            Some(p) if p != m => {
                return Err(Error::Invalid(format!(
                    "rank {r}'s gradients cover other parameters than the first computing rank's: the ranks run \
                     different models or configs"
                )));
            }
            _ => {}
        }
    }
    let Some(pattern) = pattern.cloned() else {
        return Err(Error::Invalid("a training step in which no rank had a song".into()));
    };
    let be = store.backend.clone();
    let mut flat: Vec<B::Elem> = Vec::new();
    for (&id, &on) in ids.iter().zip(&pattern) {
        if on == 0 {
            continue;
        }
        match store.grad(id) {
            Some(g) => flat.extend(be.download(g)?),
            None => flat.resize(flat.len() + store.value(id).numel(), B::Elem::ZERO),
        }
    }
    all_reduce_sum(c, &mut flat, contributes)?;
    store.zero_grad();
    let mut at = 0;
    for (&id, &on) in ids.iter().zip(&pattern) {
        if on == 0 {
            continue;
        }
        let n = store.value(id).numel();
        store.accumulate_grad(id, be.upload(&flat[at..at + n])?)?;
        at += n;
    }
    Ok(all)
}

/// Gives every rank rank 0's BatchNorm running statistics and batch counters, as
/// DistributedDataParallel's `broadcast_buffers` does: the weights then evaluate the same
/// everywhere.
pub fn broadcast_buffers<B: Backend>(c: &dyn Collective, store: &mut ParamStore<B>) -> Result<()> {
    if c.size() == 1 {
        return Ok(());
    }
    let be = store.backend.clone();
    let mut bytes = Vec::new();
    if c.rank() == 0 {
        for e in store.entries() {
            match &e.slot {
                Slot::Buffer { value } => {
                    be.download(value.buf())?.into_iter().for_each(|x| x.extend_le_bytes(&mut bytes))
                }
                Slot::Counter(n) => bytes.extend(n.to_le_bytes()),
                Slot::Param { .. } => {}
            }
        }
    }
    c.broadcast(0, &mut bytes)?;
    if c.rank() == 0 {
        return Ok(());
    }
    let width = std::mem::size_of::<B::Elem>();
    let mut at = 0;
    let short = || Error::Invalid("rank 0 sent fewer BatchNorm buffers than this rank's model holds".into());
    for e in store.entries_mut() {
        match &mut e.slot {
            Slot::Buffer { value } => {
                let n = value.numel() * width;
                let src = bytes.get(at..at + n).ok_or_else(short)?;
                let vals: Vec<B::Elem> = src.chunks_exact(width).map(B::Elem::from_le_bytes).collect();
                *value = Tensor::new(value.shape().to_vec(), be.upload(&vals)?)?;
                at += n;
            }
            Slot::Counter(n) => {
                let src = bytes.get(at..at + 8).ok_or_else(short)?;
                *n = i64::from_le_bytes(src.try_into().expect("8 bytes"));
                at += 8;
            }
            Slot::Param { .. } => {}
        }
    }
    Ok(())
}

/// A digest of every parameter, buffer and counter, by name and bits.
pub fn state_digest<B: Backend>(store: &ParamStore<B>) -> Result<Vec<u8>> {
    let mut h = Sha256::new();
    for (name, t) in crate::io::state_dict(store)? {
        h.update(name.as_bytes());
        h.update(format!("{:?}", t.shape).as_bytes());
        match &t.data {
            HostData::F32(v) => v.iter().for_each(|x| h.update(x.to_le_bytes())),
            HostData::F64(v) => v.iter().for_each(|x| h.update(x.to_le_bytes())),
            HostData::I64(v) => v.iter().for_each(|x| h.update(x.to_le_bytes())),
        }
    }
    Ok(h.finalize().to_vec())
}

/// Refuses unless every rank's `digest` equals rank 0's, naming the ranks that differ and what
/// each one says of itself (`detail`: its data folder, say).
pub fn check_same(c: &dyn Collective, what: &str, digest: &[u8], detail: &str, fix: &str) -> Result<()> {
    if c.size() == 1 {
        return Ok(());
    }
    let mut msg = digest.to_vec();
    msg.extend(detail.as_bytes());
    let all = c.all_gather(&msg)?;
    let n = digest.len();
    let differ: Vec<String> = all
        .iter()
        .enumerate()
        .filter(|(_, m)| m.get(..n) != Some(&all[0][..n]))
        .map(|(r, m)| format!("rank {r} ({})", String::from_utf8_lossy(m.get(n..).unwrap_or_default())))
        .collect();
    if differ.is_empty() {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "{what} differs between ranks: {} against rank 0 ({}); {fix}",
        differ.join(", "),
        String::from_utf8_lossy(&all[0][n..])
    )))
}
