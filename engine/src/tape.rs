//! The autograd tape: ops append a backward closure; `backward` consumes the tape in reverse.
//!
//! Memory model. A `Var` owns its value (a shared handle to a device buffer): when the caller
//! drops or reassigns it, the value is freed unless a backward closure saved it. The tape holds
//! no values of its own, only the nodes, and each node's closure keeps exactly what its backward
//! needs (shared handles, never copies: a parameter enters the tape without its weights being
//! copied). `backward` takes the tape by value, runs the nodes last to first and drops each one
//! after it ran, so every saved value is freed as soon as no later node needs it. A no-grad tape
//! records nothing: every intermediate value dies at its last use.

use crate::backend::{Backend, DeviceBuffer};
use crate::error::{Error, Result};
use crate::params::{ParamId, ParamStore};
use crate::tensor::Tensor;

/// A value on the tape: the tensor and, when it needs a gradient, its gradient slot.
pub struct Var<B: Backend> {
    value: Tensor<B>,
    slot: Option<usize>,
}

/// A clone is the same value (shared) with the same gradient slot: using both accumulates.
impl<B: Backend> Clone for Var<B> {
    fn clone(&self) -> Self {
        Var { value: self.value.clone(), slot: self.slot }
    }
}

impl<B: Backend> Var<B> {
    pub fn value(&self) -> &Tensor<B> {
        &self.value
    }
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }
    pub fn buf(&self) -> &B::Buf {
        self.value.buf()
    }
    /// Whether a gradient flows back through this value.
    pub fn tracked(&self) -> bool {
        self.slot.is_some()
    }
}

/// Given d(loss)/d(output) (owned: a backward may write its result over it), returns
/// d(loss)/d(input) for each input, in order (None where an input needs no gradient).
pub type BackwardFn<B> = Box<
    dyn FnOnce(&B, <B as crate::backend::Memory>::Buf) -> Result<Vec<Option<<B as crate::backend::Memory>::Buf>>>
        + Send,
>;

struct Node<B: Backend> {
    op: &'static str,
    /// Each input's gradient slot (None: the input needs no gradient) and element count.
    inputs: Vec<(Option<usize>, usize)>,
    output: usize,
    backward: BackwardFn<B>,
}

pub struct Tape<B: Backend> {
    pub backend: B,
    grad_enabled: bool,
    slots: usize,
    nodes: Vec<Node<B>>,
    /// Gradient slots of parameters, delivered to the store at the end of `backward`.
    params: Vec<(usize, ParamId)>,
}

/// Gradients of the non-parameter leaves that asked for one (inputs under a gradient check).
pub struct LeafGrads<B: Backend> {
    grads: Vec<Option<B::Buf>>,
}

impl<B: Backend> LeafGrads<B> {
    pub fn get(&self, v: &Var<B>) -> Option<&B::Buf> {
        v.slot.and_then(|s| self.grads.get(s)).and_then(|g| g.as_ref())
    }
}

impl<B: Backend> Tape<B> {
    /// A tape that records (training or gradient checks).
    pub fn new(backend: B) -> Self {
        Tape { backend, grad_enabled: true, slots: 0, nodes: Vec::new(), params: Vec::new() }
    }

    /// A tape that records nothing: inference, evaluation, frozen encoders.
    pub fn no_grad(backend: B) -> Self {
        let mut t = Self::new(backend);
        t.grad_enabled = false;
        t
    }

    fn leaf(&mut self, t: Tensor<B>, tracked: bool) -> Var<B> {
        let slot = (tracked && self.grad_enabled).then(|| {
            self.slots += 1;
            self.slots - 1
        });
        Var { value: t, slot }
    }

    /// A leaf: data, or an input whose gradient a check wants (`requires_grad`).
    pub fn input(&mut self, t: Tensor<B>, requires_grad: bool) -> Var<B> {
        self.leaf(t, requires_grad)
    }

    /// A value that carries no gradient.
    pub fn constant(&mut self, t: Tensor<B>) -> Var<B> {
        self.leaf(t, false)
    }

    /// A parameter as a leaf, sharing the store's buffer; its gradient is accumulated into the
    /// store by `backward` (a frozen parameter gets none).
    pub fn param(&mut self, store: &ParamStore<B>, id: ParamId) -> Var<B> {
        let v = self.leaf(store.value(id).clone(), store.trainable(id));
        if let Some(s) = v.slot {
            self.params.push((s, id));
        }
        v
    }

    /// Whether any of `inputs` needs a gradient (so an op must save what its backward reads).
    pub fn needs_grad(&self, inputs: &[&Var<B>]) -> bool {
        self.grad_enabled && inputs.iter().any(|v| v.tracked())
    }

    /// Appends an op's output; records its backward only if some input needs a gradient, else
    /// drops the closure at once (and with it whatever it saved).
    pub fn record(
        &mut self,
        op: &'static str,
        inputs: &[&Var<B>],
        out: Tensor<B>,
        backward: impl FnOnce(&B, B::Buf) -> Result<Vec<Option<B::Buf>>> + Send + 'static,
    ) -> Var<B> {
        if !self.needs_grad(inputs) {
            return Var { value: out, slot: None };
        }
        let output = self.slots;
        self.slots += 1;
        let inputs = inputs.iter().map(|v| (v.slot, v.value.numel())).collect();
        self.nodes.push(Node { op, inputs, output, backward: Box::new(backward) });
        Var { value: out, slot: Some(output) }
    }

    /// Back-propagates from a 1-element `loss`, consuming the tape; parameter gradients are
    /// added to `store` (so two uses of one parameter, or two backward passes, both contribute).
    pub fn backward(self, loss: &Var<B>, store: &mut ParamStore<B>) -> Result<LeafGrads<B>> {
        if loss.value.numel() != 1 {
            return Err(Error::Invalid(format!("backward needs a 1-element loss, got shape {:?}", loss.value.shape())));
        }
        let seed = self.backend.fill(1, 1.0)?;
        self.backward_from(loss, seed, store)
    }

    /// Back-propagates a given gradient `seed` of `out` (any shape): a vector-Jacobian product.
    pub fn backward_from(mut self, out: &Var<B>, seed: B::Buf, store: &mut ParamStore<B>) -> Result<LeafGrads<B>> {
        if seed.len() != out.value.numel() {
            return Err(Error::Invalid(format!(
                "backward seed has {} elements for an output of shape {:?}",
                seed.len(),
                out.value.shape()
            )));
        }
        let mut grads: Vec<Option<B::Buf>> = vec![None; self.slots];
        let Some(root) = out.slot else { return Ok(LeafGrads { grads }) };
        grads[root] = Some(seed);
        let b = self.backend.clone();
        while let Some(node) = self.nodes.pop() {
            let Some(dy) = grads[node.output].take() else { continue };
            let n_in = node.inputs.len();
            let gs = (node.backward)(&b, dy)?;
            if gs.len() != n_in {
                return Err(Error::Invalid(format!(
                    "the backward of {} returned {} gradients for its {n_in} inputs (a bug in that op)",
                    node.op,
                    gs.len()
                )));
            }
            for (&(slot, numel), g) in node.inputs.iter().zip(gs) {
                let (Some(slot), Some(g)) = (slot, g) else { continue };
                if g.len() != numel {
                    return Err(Error::Invalid(format!(
                        "the backward of {} returned a gradient of {} elements for an input of {numel} (a bug in that op)",
                        node.op,
                        g.len()
                    )));
                }
                match &mut grads[slot] {
                    Some(acc) => b.add_assign(acc, &g)?,
                    empty => *empty = Some(g),
                }
            }
            // The node, its closure and every value it saved are dropped here.
        }
        for &(slot, pid) in &self.params {
            if let Some(g) = grads[slot].take() {
                store.accumulate_grad(pid, g)?;
            }
        }
        Ok(LeafGrads { grads })
    }
}
