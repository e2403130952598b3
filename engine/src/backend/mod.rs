//! The device interface every op is written against, as small op-family traits.
//!
//! Ops (engine/src/ops) never touch memory directly: they call these primitives, so a kernel-launching
//! backend (CUDA, or the host SIMT simulator) slots in beside `cpu` without any op changing.
//! Every primitive takes its sizes as a named geometry (`geom`), checks each buffer's length
//! against it before touching anything, and returns `Result` because a device launch can fail
//! (out of memory, lost device). Buffers are shared handles: cloning one is a reference-count
//! bump, and primitives that write in place copy a shared buffer first (copy on write).

pub mod batch_split;
pub mod cpu;
pub mod geom;
pub mod geom_seq;
pub mod kernel;
pub mod memory;
pub mod precision;
pub mod sim;

pub use geom::{
    BnParams, ChannelGeom, ConcatGeom, ConvGeom, CropGeom, DbGeom, ExciteGeom, MatmulGeom, MelGeom, PoolGeom, RowsGeom,
    UnitGeom,
};
pub use geom_seq::{BmmGeom, EmbedGeom, HeadsGeom, LayerNormGeom, NarrowGeom, SoftmaxGeom};
pub use memory::MemStats;
pub use precision::Precision;

use crate::error::Result;
use crate::float::Float;

/// Pointwise activations; each backward is written in terms of the saved input x or output y.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unary {
    Relu,
    Sigmoid,
    Tanh,
    /// GELU, exact erf form (PyTorch's default `approximate='none'`).
    Gelu,
    /// GELU, tanh form: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (PyTorch's
    /// `approximate='tanh'`, transformers' `gelu_new`); its backward reads x.
    GeluTanh,
}

/// Hyper-parameters of one Adam/AdamW update of one tensor.
#[derive(Clone, Copy, Debug)]
pub struct AdamStep {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// AdamW: decay the weight directly instead of adding wd·w to the gradient.
    pub decoupled: bool,
    /// 1-based step count, for the bias corrections.
    pub step: u64,
    /// Multiplies the gradient first: the clip coefficient, fused into the same pass.
    pub grad_scale: f64,
}

/// A device buffer handle: a length, shared storage.
pub trait DeviceBuffer: Clone + Send + Sync + 'static {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Buffers, copies and the memory ledger.
pub trait Memory: Clone + Send + Sync + 'static {
    type Elem: Float;
    /// A buffer of elements.
    type Buf: DeviceBuffer;
    /// A buffer of u32 (class labels).
    type Index: DeviceBuffer;
    /// A buffer of u8 (ReLU masks, positions of the maximum inside a pooling window).
    type Mask: DeviceBuffer;

    fn name(&self) -> String;
    fn zeros(&self, len: usize) -> Result<Self::Buf>;
    fn fill(&self, len: usize, value: f64) -> Result<Self::Buf>;
    fn upload(&self, data: &[Self::Elem]) -> Result<Self::Buf>;
    fn download(&self, buf: &Self::Buf) -> Result<Vec<Self::Elem>>;
    fn upload_index(&self, data: &[u32]) -> Result<Self::Index>;
    fn download_mask(&self, mask: &Self::Mask) -> Result<Vec<u8>>;
    /// A private copy of a buffer (not a shared handle): what a device-to-device copy costs.
    fn copy(&self, buf: &Self::Buf) -> Result<Self::Buf>;
    /// Waits for queued work (kernel launches are asynchronous on a GPU); timing needs it.
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
    /// Live and peak bytes of every buffer and workspace this backend (and its clones) holds.
    fn memory(&self) -> MemStats;
    /// Starts a new peak measurement from what is live now.
    fn reset_peak(&self);
    fn upload_f64(&self, data: &[f64]) -> Result<Self::Buf> {
        let v: Vec<Self::Elem> = data.iter().map(|&x| Self::Elem::from_f64(x)).collect();
        self.upload(&v)
    }
    /// f32 host data (spectrograms, targets) in the backend's precision.
    fn upload_f32(&self, data: &[f32]) -> Result<Self::Buf> {
        let v: Vec<Self::Elem> = data.iter().map(|&x| Self::Elem::from_f64(x as f64)).collect();
        self.upload(&v)
    }
    fn download_f64(&self, buf: &Self::Buf) -> Result<Vec<f64>> {
        Ok(self.download(buf)?.into_iter().map(|x| x.to_f64()).collect())
    }
}

/// Elementwise arithmetic and activations (all operands of one length).
pub trait Pointwise: Memory {
    fn add(&self, a: &Self::Buf, b: &Self::Buf) -> Result<Self::Buf>;
    fn mul(&self, a: &Self::Buf, b: &Self::Buf) -> Result<Self::Buf>;
    /// dst += src (gradient accumulation).
    fn add_assign(&self, dst: &mut Self::Buf, src: &Self::Buf) -> Result<()>;
    /// x *= s.
    fn scale_assign(&self, x: &mut Self::Buf, s: f64) -> Result<()>;
    fn unary_forward(&self, op: Unary, x: &Self::Buf) -> Result<Self::Buf>;
    /// dx given the saved input x, output y and incoming dy.
    fn unary_backward(&self, op: Unary, x: &Self::Buf, y: &Self::Buf, dy: &Self::Buf) -> Result<Self::Buf>;
    /// y = max(x, 0) and the mask (x > 0) as one byte per element: all ReLU's backward needs.
    fn relu_forward(&self, x: &Self::Buf) -> Result<(Self::Buf, Self::Mask)>;
    /// dx = dy where the mask is set, else 0; written over `dy` when nothing else shares it.
    fn relu_backward(&self, dy: Self::Buf, mask: &Self::Mask) -> Result<Self::Buf>;
    /// Inverted dropout mask: 0 with probability p, else 1/(1-p); element i is decided by
    /// `rng::hash_uniform(seed, i)` so every backend draws the same mask.
    fn dropout_mask(&self, len: usize, p: f64, seed: u64) -> Result<Self::Buf>;
}

/// Whole-buffer reductions.
pub trait Reduce: Memory {
    /// Σ x² accumulated in f64.
    fn sum_squares(&self, x: &Self::Buf) -> Result<f64>;
    /// Σ x² over several buffers at once (the global gradient norm): one multi-tensor reduction
    /// on devices that launch kernels.
    fn sum_squares_many(&self, bufs: &[&Self::Buf]) -> Result<f64> {
        bufs.iter().map(|b| self.sum_squares(b)).sum()
    }
    /// Whether every element is finite.
    fn all_finite(&self, x: &Self::Buf) -> Result<bool>;
}

/// Dense matrix products and the row/column bookkeeping around linear layers.
pub trait Dense: Memory {
    fn matmul(&self, a: &Self::Buf, b: &Self::Buf, g: &MatmulGeom) -> Result<Self::Buf>;
    /// y[r, c] += bias[c].
    fn add_row_bias(&self, y: &mut Self::Buf, bias: &Self::Buf, g: &RowsGeom) -> Result<()>;
    /// Column sums: [rows, cols] → [cols].
    fn sum_rows(&self, x: &Self::Buf, g: &RowsGeom) -> Result<Self::Buf>;
    fn concat_cols(&self, a: &Self::Buf, b: &Self::Buf, g: &ConcatGeom) -> Result<Self::Buf>;
    /// The inverse of `concat_cols`.
    fn split_cols(&self, x: &Self::Buf, g: &ConcatGeom) -> Result<(Self::Buf, Self::Buf)>;
}

/// 2-D convolution, NCHW × OIHW.
pub trait Conv: Memory {
    fn conv2d_forward(&self, x: &Self::Buf, w: &Self::Buf, b: Option<&Self::Buf>, g: &ConvGeom) -> Result<Self::Buf>;
    fn conv2d_backward_input(&self, dy: &Self::Buf, w: &Self::Buf, g: &ConvGeom) -> Result<Self::Buf>;
    fn conv2d_backward_weight(&self, dy: &Self::Buf, x: &Self::Buf, g: &ConvGeom) -> Result<Self::Buf>;
    /// Per-channel sums of an NC(HW) tensor: the conv bias gradient.
    fn channel_sums(&self, dy: &Self::Buf, g: &ChannelGeom) -> Result<Self::Buf>;
}

/// BatchNorm over NC(HW).
pub trait Norm: Memory {
    /// Training forward: returns (y, batch mean, inverse std) and updates the running stats
    /// (momentum-weighted, the variance unbiased).
    #[allow(clippy::too_many_arguments)]
    fn batchnorm_forward_train(
        &self,
        x: &Self::Buf,
        gamma: &Self::Buf,
        beta: &Self::Buf,
        running_mean: &mut Self::Buf,
        running_var: &mut Self::Buf,
        g: &ChannelGeom,
        p: &BnParams,
    ) -> Result<(Self::Buf, Self::Buf, Self::Buf)>;
    #[allow(clippy::too_many_arguments)]
    fn batchnorm_forward_eval(
        &self,
        x: &Self::Buf,
        gamma: &Self::Buf,
        beta: &Self::Buf,
        running_mean: &Self::Buf,
        running_var: &Self::Buf,
        g: &ChannelGeom,
        eps: f64,
    ) -> Result<Self::Buf>;
    /// Returns (dx, dgamma, dbeta).
    #[allow(clippy::too_many_arguments)]
    fn batchnorm_backward(
        &self,
        dy: &Self::Buf,
        x: &Self::Buf,
        gamma: &Self::Buf,
        mean: &Self::Buf,
        invstd: &Self::Buf,
        g: &ChannelGeom,
    ) -> Result<(Self::Buf, Self::Buf, Self::Buf)>;
}

/// The per-channel normalisation a fused VGG unit applies to its conv output z:
/// a = (z − mean)·(invstd·γ) + β.
pub struct UnitAffine<'a, B: Memory> {
    pub mean: &'a B::Buf,
    pub invstd: &'a B::Buf,
    pub gamma: &'a B::Buf,
    pub beta: &'a B::Buf,
}

impl<B: Memory> UnitAffine<'_, B> {
    /// (name, length) of each per-channel tensor, for geometry checks.
    pub fn lens(&self) -> [(&'static str, usize); 4] {
        [
            ("mean", self.mean.len()),
            ("invstd", self.invstd.len()),
            ("gamma", self.gamma.len()),
            ("beta", self.beta.len()),
        ]
    }
}

/// The fused VGG unit's passes around a bias-free 3×3 convolution: BatchNorm →
/// ReLU → optional 2×2 max-pool in one pass forward, one routing pass and one normalisation pass
/// backward. Nothing but z is saved: the ReLU mask and the pool's arg-max are recomputed from z.
pub trait Unit: Memory {
    /// Batch mean and 1/sqrt(biased variance + eps) of z per channel, and the momentum update of
    /// the running statistics as for z + bias (the conv bias the unit folds away: the running
    /// mean PyTorch keeps includes it; the variance does not see it).
    #[allow(clippy::too_many_arguments)]
    fn unit_batch_stats(
        &self,
        z: &Self::Buf,
        bias: Option<&Self::Buf>,
        running_mean: &mut Self::Buf,
        running_var: &mut Self::Buf,
        g: &ChannelGeom,
        p: &BnParams,
    ) -> Result<(Self::Buf, Self::Buf)>;
    /// Evaluation: mean = running_mean − bias, invstd = 1/sqrt(running_var + eps).
    fn unit_running_stats(
        &self,
        bias: Option<&Self::Buf>,
        running_mean: &Self::Buf,
        running_var: &Self::Buf,
        c: usize,
        eps: f64,
    ) -> Result<(Self::Buf, Self::Buf)>;
    /// y = maxpool2x2(relu(a)) (or relu(a) without the pool). Ties go to the window's first
    /// maximum, as PyTorch's max-pool.
    fn unit_forward(&self, z: &Self::Buf, a: &UnitAffine<'_, Self>, g: &UnitGeom) -> Result<Self::Buf>;
    /// Returns (dz, dγ, dβ) for the output gradient dy. `batch_stats`: mean and invstd are the
    /// batch's (training), so dz carries BatchNorm's mean and variance terms; otherwise they are
    /// constants (evaluation) and dz = da·γ·invstd.
    fn unit_backward(
        &self,
        dy: &Self::Buf,
        z: &Self::Buf,
        a: &UnitAffine<'_, Self>,
        g: &UnitGeom,
        batch_stats: bool,
    ) -> Result<(Self::Buf, Self::Buf, Self::Buf)>;
}

/// Max-pool, global average pool, per-channel scaling and the SE block's fused passes.
pub trait Pool: Memory {
    /// Returns (y, the position of each window's maximum inside the window, row-major, as a
    /// byte). Ties go to the first maximum; a NaN wins, as PyTorch.
    fn maxpool2d_forward(&self, x: &Self::Buf, g: &PoolGeom) -> Result<(Self::Buf, Self::Mask)>;
    fn maxpool2d_backward(&self, dy: &Self::Buf, argmax: &Self::Mask, g: &PoolGeom) -> Result<Self::Buf>;
    /// Mean over hw: [n, c, hw] -> [n, c].
    fn global_avgpool_forward(&self, x: &Self::Buf, g: &ChannelGeom) -> Result<Self::Buf>;
    fn global_avgpool_backward(&self, dy: &Self::Buf, g: &ChannelGeom) -> Result<Self::Buf>;
    /// y[n, c, :] = x[n, c, :] · s[n, c].
    fn channel_scale_forward(&self, x: &Self::Buf, s: &Self::Buf, g: &ChannelGeom) -> Result<Self::Buf>;
    /// Returns (dx, ds).
    fn channel_scale_backward(
        &self,
        dy: &Self::Buf,
        x: &Self::Buf,
        s: &Self::Buf,
        g: &ChannelGeom,
    ) -> Result<(Self::Buf, Self::Buf)>;
    /// d[n, c] = Σ over hw of a·b (the SE gate's gradient: one pass over dy and x).
    fn channel_dot(&self, a: &Self::Buf, b: &Self::Buf, g: &ChannelGeom) -> Result<Self::Buf>;
    /// The SE block's input gradient in one pass: dx = dy·gate[n, c] + dsqueeze[n, c]/hw (the
    /// scale's and the squeeze's contributions together).
    fn se_backward_input(
        &self,
        dy: &Self::Buf,
        gate: &Self::Buf,
        dsqueeze: &Self::Buf,
        g: &ChannelGeom,
    ) -> Result<Self::Buf>;
}

/// The squeeze-and-excitation block's excitation MLP (engine/src/backend/geom.rs `ExciteGeom`): the
/// small [n, c] work between the squeeze and the scale, one primitive (one kernel) each way.
pub trait Excite: Memory {
    /// Returns (hidden, gate): hidden = relu(sq·W1ᵀ), gate = sigmoid(hidden·W2ᵀ).
    fn excite_forward(
        &self,
        sq: &Self::Buf,
        w1: &Self::Buf,
        w2: &Self::Buf,
        g: &ExciteGeom,
    ) -> Result<(Self::Buf, Self::Buf)>;
    /// Returns (dsq, dw1, dw2) from the gate's gradient and the forward's saved values; the
    /// weight gradients are summed over the batch in sample order (bit-reproducible).
    #[allow(clippy::too_many_arguments)]
    fn excite_backward(
        &self,
        dgate: &Self::Buf,
        sq: &Self::Buf,
        hidden: &Self::Buf,
        gate: &Self::Buf,
        w1: &Self::Buf,
        w2: &Self::Buf,
        g: &ExciteGeom,
    ) -> Result<(Self::Buf, Self::Buf, Self::Buf)>;
}

/// The spectrogram front end, batched over clips.
pub trait Spectro: Memory {
    /// mel[c, m, t] = Σ_k fb[m, k]·power[c, k, t].
    fn mel_project(&self, power: &Self::Buf, fb: &Self::Buf, g: &MelGeom) -> Result<Self::Buf>;
    /// The projection's input gradient (the filterbank is a constant).
    fn mel_project_backward(&self, dmel: &Self::Buf, fb: &Self::Buf, g: &MelGeom) -> Result<Self::Buf>;
    /// librosa.power_to_db on each clip (ref = clip max or 1.0; top_db floor).
    fn power_to_db(&self, x: &Self::Buf, g: &DbGeom) -> Result<Self::Buf>;
    /// The exact gradient: 10/(ln10·x) where the dB value follows x (above amin, not floored),
    /// plus, at each clip's largest power, the share of everything that follows it (the floored
    /// values, and with `ref_max` the reference subtracted from every value).
    fn power_to_db_backward(&self, x: &Self::Buf, y: &Self::Buf, dy: &Self::Buf, g: &DbGeom) -> Result<Self::Buf>;
    /// [clips, rows, in_stride] with in_frames[c] valid frames → [clips, rows, frames]: centre crop
    /// (or the first frames) when longer, `pad` at the end when shorter.
    fn crop_pad(&self, x: &Self::Buf, in_frames: &[usize], g: &CropGeom) -> Result<Self::Buf>;
}

/// Losses with mean reduction; each forward returns a 1-element buffer.
pub trait Loss: Memory {
    fn mse_forward(&self, pred: &Self::Buf, target: &Self::Buf) -> Result<Self::Buf>;
    /// d loss / d pred, scaled by the 1-element upstream gradient `dl`.
    fn mse_backward(&self, pred: &Self::Buf, target: &Self::Buf, dl: &Self::Buf) -> Result<Self::Buf>;
    fn l1_forward(&self, pred: &Self::Buf, target: &Self::Buf) -> Result<Self::Buf>;
    fn l1_backward(&self, pred: &Self::Buf, target: &Self::Buf, dl: &Self::Buf) -> Result<Self::Buf>;
    /// Softmax cross-entropy of [rows, classes] logits (`g.cols` classes) against class labels.
    fn cross_entropy_forward(&self, logits: &Self::Buf, labels: &Self::Index, g: &RowsGeom) -> Result<Self::Buf>;
    fn cross_entropy_backward(
        &self,
        logits: &Self::Buf,
        labels: &Self::Index,
        g: &RowsGeom,
        dl: &Self::Buf,
    ) -> Result<Self::Buf>;
}

/// The optimiser's fused update.
pub trait Optim: Memory {
    /// One Adam/AdamW update of w in place, with m and v its moment buffers.
    fn adam_update(
        &self,
        w: &mut Self::Buf,
        g: &Self::Buf,
        m: &mut Self::Buf,
        v: &mut Self::Buf,
        hp: &AdamStep,
    ) -> Result<()>;
}

/// The attention core of a transformer: batched products, the masked softmax, the head layout.
pub trait Attention: Memory {
    /// C[b] = alpha·op(A[b])·op(B[b]) over `g.batch` contiguous matrices (cuBLAS strided-batched).
    fn bmm(&self, a: &Self::Buf, b: &Self::Buf, g: &BmmGeom) -> Result<Self::Buf>;
    /// probs = softmax(scale·scores) over the last axis, keys with key_mask 0 left out (see
    /// `SoftmaxGeom`); key_mask is [batch, k] of 0/1 values.
    fn masked_softmax_forward(&self, scores: &Self::Buf, key_mask: &Self::Buf, g: &SoftmaxGeom) -> Result<Self::Buf>;
    /// d scores = scale·p ⊙ (dp − Σ_row p·dp), from the saved probabilities (masked keys have
    /// p = 0 and so get 0).
    fn masked_softmax_backward(&self, probs: &Self::Buf, dprobs: &Self::Buf, g: &SoftmaxGeom) -> Result<Self::Buf>;
    /// [batch, seq, heads, head_dim] → [batch, heads, seq, head_dim].
    fn split_heads(&self, x: &Self::Buf, g: &HeadsGeom) -> Result<Self::Buf>;
    /// [batch, heads, seq, head_dim] → [batch, seq, heads, head_dim] (the inverse).
    fn merge_heads(&self, x: &Self::Buf, g: &HeadsGeom) -> Result<Self::Buf>;
}

/// Token-level bookkeeping: embedding lookups and slices along an axis.
pub trait Sequence: Memory {
    /// y[t, :] = table[ids[t], :]. Ids are checked on the host by the op; a kernel writes NaN for
    /// an id outside the table rather than reading past it.
    fn embedding_forward(&self, table: &Self::Buf, ids: &Self::Index, g: &EmbedGeom) -> Result<Self::Buf>;
    /// The table's gradient, deterministically (no float atomics): row v sums dy[p, :] over the
    /// positions p = order[offsets[v]..offsets[v+1]] in that order; rows no token uses are 0.
    fn embedding_backward(
        &self,
        dy: &Self::Buf,
        order: &Self::Index,
        offsets: &Self::Index,
        g: &EmbedGeom,
    ) -> Result<Self::Buf>;
    /// [outer, dim, inner] → [outer, len, inner], the slice starting at `start`.
    fn narrow_forward(&self, x: &Self::Buf, g: &NarrowGeom) -> Result<Self::Buf>;
    /// The slice's gradient put back in place, zeros elsewhere.
    fn narrow_backward(&self, dy: &Self::Buf, g: &NarrowGeom) -> Result<Self::Buf>;
}

/// LayerNorm over the last axis (statistics in double, as BatchNorm's).
pub trait LayerNorm: Memory {
    /// Returns (y, mean, invstd), the last two per row (what the backward reads).
    fn layernorm_forward(
        &self,
        x: &Self::Buf,
        gamma: &Self::Buf,
        beta: &Self::Buf,
        g: &LayerNormGeom,
    ) -> Result<(Self::Buf, Self::Buf, Self::Buf)>;
    /// Returns (dx, dgamma, dbeta); dgamma and dbeta are summed over fixed chunks of
    /// `geom_seq::LN_PARAM_CHUNK` rows, then over the chunks in order (deterministic).
    #[allow(clippy::too_many_arguments)]
    fn layernorm_backward(
        &self,
        dy: &Self::Buf,
        x: &Self::Buf,
        gamma: &Self::Buf,
        mean: &Self::Buf,
        invstd: &Self::Buf,
        g: &LayerNormGeom,
    ) -> Result<(Self::Buf, Self::Buf, Self::Buf)>;
}

/// A compute device: every op family.
pub trait Backend:
    Memory
    + Pointwise
    + Reduce
    + Dense
    + Conv
    + Norm
    + Unit
    + Pool
    + Excite
    + Spectro
    + Loss
    + Optim
    + Attention
    + Sequence
    + LayerNorm
{
}

impl<T> Backend for T where
    T: Memory
        + Pointwise
        + Reduce
        + Dense
        + Conv
        + Norm
        + Unit
        + Pool
        + Excite
        + Spectro
        + Loss
        + Optim
        + Attention
        + Sequence
        + LayerNorm
{
}

/// Fails naming the op when two elementwise operands differ in length.
pub(crate) fn same_len(op: &'static str, a: usize, b: usize) -> Result<()> {
    geom::check_lens(op, &[("second operand", b, a)])
}

/// Every op-family trait, for code that calls primitives on a concrete backend.
pub mod prelude {
    pub use super::{
        Attention, Backend, Conv, Dense, DeviceBuffer, Excite, LayerNorm, Loss, Memory, Norm, Optim, Pointwise, Pool,
        Reduce, Sequence, Spectro, Unit,
    };
}
