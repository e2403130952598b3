//! The autograd tape: ops append a backward closure; `backward` walks them in reverse.
//!
//! Values live in the tape, indexed by `Var`. A node's closure reads the values it needs through
//! `BackCtx` instead of holding copies, so recording costs nothing but the closure's own saved
//! extras (masks, arg-max indices, batch statistics).

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::params::{ParamId, ParamStore};
use crate::tensor::Tensor;

/// A handle to a value on the tape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Var(pub(crate) usize);

/// What a backward closure sees: its inputs' and output's values.
pub struct BackCtx<'a, B: Backend> {
    pub backend: &'a B,
    values: &'a [Tensor<B>],
    inputs: &'a [Var],
    output: Var,
}

impl<B: Backend> BackCtx<'_, B> {
    pub fn input(&self, i: usize) -> &Tensor<B> {
        &self.values[self.inputs[i].0]
    }
    pub fn output(&self) -> &Tensor<B> {
        &self.values[self.output.0]
    }
}

/// Given the context and d(loss)/d(output), returns d(loss)/d(input) for each input (None where
/// an input needs no gradient or the op has none for it).
pub type BackwardFn<B> =
    Box<dyn Fn(&BackCtx<B>, &<B as Backend>::Buf) -> Result<Vec<Option<<B as Backend>::Buf>>> + Send>;

struct Node<B: Backend> {
    inputs: Vec<Var>,
    output: Var,
    backward: BackwardFn<B>,
}

pub struct Tape<B: Backend> {
    pub backend: B,
    values: Vec<Tensor<B>>,
    needs_grad: Vec<bool>,
    param_of: Vec<Option<ParamId>>,
    nodes: Vec<Node<B>>,
    grad_enabled: bool,
}

/// Gradients of the non-parameter leaves that asked for one (inputs under a gradient check).
pub struct LeafGrads<B: Backend> {
    grads: Vec<Option<B::Buf>>,
}

impl<B: Backend> LeafGrads<B> {
    pub fn get(&self, v: Var) -> Option<&B::Buf> {
        self.grads.get(v.0).and_then(|g| g.as_ref())
    }
}

impl<B: Backend> Tape<B> {
    /// A tape that records (training or gradient checks).
    pub fn new(backend: B) -> Self {
        Tape {
            backend,
            values: Vec::new(),
            needs_grad: Vec::new(),
            param_of: Vec::new(),
            nodes: Vec::new(),
            grad_enabled: true,
        }
    }

    /// A tape that records nothing: inference, evaluation.
    pub fn no_grad(backend: B) -> Self {
        let mut t = Self::new(backend);
        t.grad_enabled = false;
        t
    }

    pub fn grad_enabled(&self) -> bool {
        self.grad_enabled
    }

    fn push(&mut self, t: Tensor<B>, needs_grad: bool, param: Option<ParamId>) -> Var {
        self.values.push(t);
        self.needs_grad.push(needs_grad && self.grad_enabled);
        self.param_of.push(param);
        Var(self.values.len() - 1)
    }

    /// A leaf: data, or an input whose gradient a check wants (`requires_grad`).
    pub fn input(&mut self, t: Tensor<B>, requires_grad: bool) -> Var {
        self.push(t, requires_grad, None)
    }

    /// A parameter as a leaf; its gradient is accumulated into the store by `backward`.
    pub fn param(&mut self, store: &ParamStore<B>, id: ParamId) -> Var {
        let t = store.value(id).clone();
        self.push(t, store.trainable(id), Some(id))
    }

    pub fn value(&self, v: Var) -> &Tensor<B> {
        &self.values[v.0]
    }

    pub fn shape(&self, v: Var) -> &[usize] {
        &self.values[v.0].shape
    }

    pub fn needs_grad(&self, v: Var) -> bool {
        self.needs_grad[v.0]
    }

    /// Appends an op's output; records its backward only if some input needs a gradient.
    pub fn record(&mut self, inputs: &[Var], out: Tensor<B>, backward: BackwardFn<B>) -> Var {
        let needs = inputs.iter().any(|v| self.needs_grad[v.0]);
        let out = self.push(out, needs, None);
        if needs && self.grad_enabled {
            self.nodes.push(Node { inputs: inputs.to_vec(), output: out, backward });
        }
        out
    }

    /// Appends an output that carries no gradient (e.g. computed under no-grad semantics).
    pub fn constant(&mut self, t: Tensor<B>) -> Var {
        self.push(t, false, None)
    }

    /// Back-propagates from a 1-element `loss`; parameter gradients are added to `store`
    /// (so two uses of one parameter, or two backward passes, both contribute).
    pub fn backward(&self, loss: Var, store: &mut ParamStore<B>) -> Result<LeafGrads<B>> {
        if self.values[loss.0].numel() != 1 {
            return Err(Error::Invalid(format!(
                "backward needs a 1-element loss, got shape {:?}",
                self.values[loss.0].shape
            )));
        }
        self.backward_from(loss, self.backend.fill(1, 1.0)?, store)
    }

    /// Back-propagates a given gradient `seed` of `out` (any shape): a vector-Jacobian product.
    pub fn backward_from(&self, out: Var, seed: B::Buf, store: &mut ParamStore<B>) -> Result<LeafGrads<B>> {
        let b = &self.backend;
        if b.len(&seed) != self.values[out.0].numel() {
            return Err(Error::Invalid(format!(
                "backward seed has {} elements for an output of shape {:?}",
                b.len(&seed),
                self.values[out.0].shape
            )));
        }
        let mut grads: Vec<Option<B::Buf>> = vec![None; self.values.len()];
        grads[out.0] = Some(seed);
        for node in self.nodes.iter().rev() {
            let Some(dy) = grads[node.output.0].take() else { continue };
            let ctx = BackCtx { backend: b, values: &self.values, inputs: &node.inputs, output: node.output };
            let gs = (node.backward)(&ctx, &dy)?;
            for (inp, g) in node.inputs.iter().zip(gs) {
                let Some(g) = g else { continue };
                if !self.needs_grad[inp.0] {
                    continue;
                }
                match &mut grads[inp.0] {
                    Some(acc) => b.add_assign(acc, &g)?,
                    slot => *slot = Some(g),
                }
            }
            // Intermediate outputs are done with once their node has run; leaves keep theirs.
        }
        for (i, g) in grads.iter_mut().enumerate() {
            if let (Some(pid), Some(gv)) = (self.param_of[i], g.as_ref()) {
                store.accumulate_grad(pid, gv)?;
                *g = None;
            }
        }
        Ok(LeafGrads { grads })
    }
}
