//! Named parameters and buffers, in PyTorch `state_dict` order and naming.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParamId(pub(crate) usize);

/// What a state_dict entry is.
pub enum Slot<B: Backend> {
    /// A learnable tensor with its gradient (None until a backward pass touches it).
    Param { value: Tensor<B>, grad: Option<B::Buf>, trainable: bool },
    /// A non-learnable float tensor (BatchNorm running statistics).
    Buffer { value: Tensor<B> },
    /// An integer counter stored as int64 (BatchNorm's num_batches_tracked).
    Counter(i64),
}

pub struct Entry<B: Backend> {
    pub name: String,
    pub slot: Slot<B>,
}

pub struct ParamStore<B: Backend> {
    pub backend: B,
    entries: Vec<Entry<B>>,
}

impl<B: Backend> ParamStore<B> {
    pub fn new(backend: B) -> Self {
        ParamStore { backend, entries: Vec::new() }
    }

    fn push(&mut self, name: String, slot: Slot<B>) -> ParamId {
        debug_assert!(self.find(&name).is_none(), "duplicate state_dict name {name}");
        self.entries.push(Entry { name, slot });
        ParamId(self.entries.len() - 1)
    }

    pub fn add_param(&mut self, name: impl Into<String>, value: Tensor<B>) -> ParamId {
        self.push(name.into(), Slot::Param { value, grad: None, trainable: true })
    }
    pub fn add_buffer(&mut self, name: impl Into<String>, value: Tensor<B>) -> ParamId {
        self.push(name.into(), Slot::Buffer { value })
    }
    pub fn add_counter(&mut self, name: impl Into<String>) -> ParamId {
        self.push(name.into(), Slot::Counter(0))
    }

    pub fn entries(&self) -> &[Entry<B>] {
        &self.entries
    }
    pub fn entries_mut(&mut self) -> &mut [Entry<B>] {
        &mut self.entries
    }
    pub fn find(&self, name: &str) -> Option<ParamId> {
        self.entries.iter().position(|e| e.name == name).map(ParamId)
    }
    pub fn name(&self, id: ParamId) -> &str {
        &self.entries[id.0].name
    }

    /// The tensor of a parameter or buffer (panics on a counter: a programming error).
    pub fn value(&self, id: ParamId) -> &Tensor<B> {
        match &self.entries[id.0].slot {
            Slot::Param { value, .. } | Slot::Buffer { value } => value,
            Slot::Counter(_) => panic!("{} is a counter, not a tensor", self.entries[id.0].name),
        }
    }
    pub fn value_mut(&mut self, id: ParamId) -> &mut Tensor<B> {
        tensor_of(&mut self.entries[id.0])
    }
    /// Two buffers at once (BatchNorm's running mean and variance).
    pub fn two_mut(&mut self, a: ParamId, b: ParamId) -> (&mut Tensor<B>, &mut Tensor<B>) {
        assert_ne!(a, b);
        let (lo, hi, swap) = if a.0 < b.0 { (a.0, b.0, false) } else { (b.0, a.0, true) };
        let (left, right) = self.entries.split_at_mut(hi);
        let (x, y) = (tensor_of(&mut left[lo]), tensor_of(&mut right[0]));
        if swap { (y, x) } else { (x, y) }
    }
    pub fn counter(&self, id: ParamId) -> Option<i64> {
        match self.entries[id.0].slot {
            Slot::Counter(c) => Some(c),
            _ => None,
        }
    }
    pub fn bump_counter(&mut self, id: ParamId) {
        if let Slot::Counter(c) = &mut self.entries[id.0].slot {
            *c += 1;
        }
    }

    pub fn trainable(&self, id: ParamId) -> bool {
        matches!(self.entries[id.0].slot, Slot::Param { trainable: true, .. })
    }
    pub fn set_trainable(&mut self, id: ParamId, on: bool) {
        if let Slot::Param { trainable, .. } = &mut self.entries[id.0].slot {
            *trainable = on;
        }
    }

    /// Ids of the learnable tensors, in order.
    pub fn param_ids(&self) -> Vec<ParamId> {
        (0..self.entries.len())
            .filter(|&i| matches!(self.entries[i].slot, Slot::Param { trainable: true, .. }))
            .map(ParamId)
            .collect()
    }

    pub fn grad(&self, id: ParamId) -> Option<&B::Buf> {
        match &self.entries[id.0].slot {
            Slot::Param { grad, .. } => grad.as_ref(),
            _ => None,
        }
    }

    pub fn accumulate_grad(&mut self, id: ParamId, g: B::Buf) -> Result<()> {
        let b = self.backend.clone();
        let Some(entry) = self.entries.get_mut(id.0) else {
            return Err(Error::Invalid(format!("parameter #{} is not in this store (a tape mixed two models?)", id.0)));
        };
        match &mut entry.slot {
            Slot::Param { grad: Some(acc), .. } => b.add_assign(acc, &g),
            Slot::Param { grad, .. } => {
                *grad = Some(g);
                Ok(())
            }
            _ => Err(Error::Invalid(format!("{} takes no gradient", entry.name))),
        }
    }

    pub fn zero_grad(&mut self) {
        for e in &mut self.entries {
            if let Slot::Param { grad, .. } = &mut e.slot {
                *grad = None;
            }
        }
    }

    /// Number of learnable scalars.
    pub fn num_params(&self) -> usize {
        self.param_ids().iter().map(|&id| self.value(id).numel()).sum()
    }
}

fn tensor_of<B: Backend>(e: &mut Entry<B>) -> &mut Tensor<B> {
    match &mut e.slot {
        Slot::Param { value, .. } | Slot::Buffer { value } => value,
        Slot::Counter(_) => panic!("{} is a counter, not a tensor", e.name),
    }
}
