//! The device interface every op is written against.
//!
//! Ops (src/ops) never touch memory directly: they call these primitives, so a kernel-launching
//! backend (CUDA, or the host SIMT simulator) slots in beside `cpu` without any op changing.
//! Every primitive returns `Result` because a device launch can fail (out of memory, lost device).

pub mod cpu;
pub mod memory;
pub mod kernel;
pub mod sim;

use crate::error::Result;
use crate::float::Float;

/// Geometry of a 2-D convolution, NCHW input, OIHW weight (PyTorch layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    pub n: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
}

impl ConvGeom {
    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.pad - self.kh) / self.stride + 1
    }
    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.pad - self.kw) / self.stride + 1
    }
    pub fn input_len(&self) -> usize {
        self.n * self.c_in * self.h * self.w
    }
    pub fn weight_len(&self) -> usize {
        self.c_out * self.c_in * self.kh * self.kw
    }
    pub fn output_len(&self) -> usize {
        self.n * self.c_out * self.out_h() * self.out_w()
    }
    /// Multiply-adds of one forward pass, times two.
    pub fn forward_flops(&self) -> f64 {
        2.0 * (self.output_len() * self.c_in * self.kh * self.kw) as f64
    }
}

/// Geometry of a 2-D max-pool (floor mode, no padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub stride: usize,
}

impl PoolGeom {
    pub fn out_h(&self) -> usize {
        (self.h - self.k) / self.stride + 1
    }
    pub fn out_w(&self) -> usize {
        (self.w - self.k) / self.stride + 1
    }
}

/// Pointwise activations; each backward is written in terms of the saved input x or output y.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unary {
    Relu,
    Sigmoid,
    Tanh,
    /// GELU, exact erf form (PyTorch's default `approximate='none'`).
    Gelu,
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

/// A compute device holding buffers of `Elem`.
pub trait Backend: Clone + Send + Sync + 'static {
    type Elem: Float;
    /// A device buffer of elements.
    type Buf: Clone + Send + Sync;
    /// A device buffer of u32 (arg-max indices, class labels).
    type Index: Clone + Send + Sync;

    fn name(&self) -> String;

    // ---- memory ----
    fn zeros(&self, len: usize) -> Result<Self::Buf>;
    fn fill(&self, len: usize, value: f64) -> Result<Self::Buf>;
    fn upload(&self, data: &[Self::Elem]) -> Result<Self::Buf>;
    fn download(&self, buf: &Self::Buf) -> Result<Vec<Self::Elem>>;
    fn upload_index(&self, data: &[u32]) -> Result<Self::Index>;
    fn len(&self, buf: &Self::Buf) -> usize;
    /// Waits for queued work (kernel launches are asynchronous on a GPU); timing needs it.
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
    /// A private copy of a buffer (not a shared handle): what a device-to-device copy costs.
    fn copy(&self, buf: &Self::Buf) -> Result<Self::Buf>;
    fn upload_f64(&self, data: &[f64]) -> Result<Self::Buf> {
        let v: Vec<Self::Elem> = data.iter().map(|&x| Self::Elem::from_f64(x)).collect();
        self.upload(&v)
    }
    fn download_f64(&self, buf: &Self::Buf) -> Result<Vec<f64>> {
        Ok(self.download(buf)?.into_iter().map(|x| x.to_f64()).collect())
    }

    // ---- elementwise ----
    fn add(&self, a: &Self::Buf, b: &Self::Buf) -> Result<Self::Buf>;
    fn mul(&self, a: &Self::Buf, b: &Self::Buf) -> Result<Self::Buf>;
    /// dst += src (gradient accumulation).
    fn add_assign(&self, dst: &mut Self::Buf, src: &Self::Buf) -> Result<()>;
    /// x *= s.
    fn scale_assign(&self, x: &mut Self::Buf, s: f64) -> Result<()>;
    fn unary_forward(&self, op: Unary, x: &Self::Buf) -> Result<Self::Buf>;
    /// dx given the saved input x, output y and incoming dy.
    fn unary_backward(&self, op: Unary, x: &Self::Buf, y: &Self::Buf, dy: &Self::Buf) -> Result<Self::Buf>;
    /// Inverted dropout mask: 0 with probability p, else 1/(1-p); element i is decided by
    /// `rng::hash_uniform(seed, i)` so every backend draws the same mask.
    fn dropout_mask(&self, len: usize, p: f64, seed: u64) -> Result<Self::Buf>;

    // ---- reductions ----
    /// Σ x² accumulated in f64.
    fn sum_squares(&self, x: &Self::Buf) -> Result<f64>;
    /// Σ x² over several buffers at once (the global gradient norm): one multi-tensor reduction
    /// on devices that launch kernels.
    fn sum_squares_many(&self, bufs: &[&Self::Buf]) -> Result<f64> {
        bufs.iter().map(|b| self.sum_squares(b)).sum()
    }
    /// Whether every element is finite.
    fn all_finite(&self, x: &Self::Buf) -> Result<bool>;

    // ---- dense ----
    /// C[m,n] = op(A)·op(B); A is [m,k] (or [k,m] if `ta`), B is [k,n] (or [n,k] if `tb`).
    #[allow(clippy::too_many_arguments)]
    fn matmul(
        &self,
        a: &Self::Buf,
        b: &Self::Buf,
        m: usize,
        k: usize,
        n: usize,
        ta: bool,
        tb: bool,
    ) -> Result<Self::Buf>;
    /// y[r, c] += bias[c] for a [rows, cols] matrix.
    fn add_row_bias(&self, y: &mut Self::Buf, bias: &Self::Buf, rows: usize) -> Result<()>;
    /// Column sums of a [rows, cols] matrix.
    fn sum_rows(&self, x: &Self::Buf, rows: usize, cols: usize) -> Result<Self::Buf>;
    /// [r, ca] ++ [r, cb] -> [r, ca + cb].
    fn concat_cols(&self, a: &Self::Buf, b: &Self::Buf, rows: usize, ca: usize, cb: usize) -> Result<Self::Buf>;
    /// The inverse of `concat_cols`.
    fn split_cols(&self, x: &Self::Buf, rows: usize, ca: usize, cb: usize) -> Result<(Self::Buf, Self::Buf)>;

    // ---- convolution ----
    fn conv2d_forward(&self, x: &Self::Buf, w: &Self::Buf, b: Option<&Self::Buf>, g: &ConvGeom) -> Result<Self::Buf>;
    fn conv2d_backward_input(&self, dy: &Self::Buf, w: &Self::Buf, g: &ConvGeom) -> Result<Self::Buf>;
    fn conv2d_backward_weight(&self, dy: &Self::Buf, x: &Self::Buf, g: &ConvGeom) -> Result<Self::Buf>;
    /// Per-channel sums of an NC(HW) tensor: the conv bias gradient.
    fn channel_sums(&self, dy: &Self::Buf, n: usize, c: usize, hw: usize) -> Result<Self::Buf>;

    // ---- batch norm (NC(HW)) ----
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
        n: usize,
        c: usize,
        hw: usize,
        momentum: f64,
        eps: f64,
    ) -> Result<(Self::Buf, Self::Buf, Self::Buf)>;
    #[allow(clippy::too_many_arguments)]
    fn batchnorm_forward_eval(
        &self,
        x: &Self::Buf,
        gamma: &Self::Buf,
        beta: &Self::Buf,
        running_mean: &Self::Buf,
        running_var: &Self::Buf,
        n: usize,
        c: usize,
        hw: usize,
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
        n: usize,
        c: usize,
        hw: usize,
    ) -> Result<(Self::Buf, Self::Buf, Self::Buf)>;

    // ---- pooling and channel scaling ----
    /// Returns (y, flat arg-max index into x per output element). Ties go to the first maximum.
    fn maxpool2d_forward(&self, x: &Self::Buf, g: &PoolGeom) -> Result<(Self::Buf, Self::Index)>;
    fn maxpool2d_backward(&self, dy: &Self::Buf, argmax: &Self::Index, g: &PoolGeom) -> Result<Self::Buf>;
    /// Mean over hw: [n, c, hw] -> [n, c].
    fn global_avgpool_forward(&self, x: &Self::Buf, n: usize, c: usize, hw: usize) -> Result<Self::Buf>;
    fn global_avgpool_backward(&self, dy: &Self::Buf, n: usize, c: usize, hw: usize) -> Result<Self::Buf>;
    /// y[n, c, :] = x[n, c, :] · s[n, c].
    fn channel_scale_forward(&self, x: &Self::Buf, s: &Self::Buf, n: usize, c: usize, hw: usize) -> Result<Self::Buf>;
    /// Returns (dx, ds).
    fn channel_scale_backward(
        &self,
        dy: &Self::Buf,
        x: &Self::Buf,
        s: &Self::Buf,
        n: usize,
        c: usize,
        hw: usize,
    ) -> Result<(Self::Buf, Self::Buf)>;

    /// d[n, c] = Σ over hw of a·b (the SE gate's gradient: one pass over dy and x).
    fn channel_dot(&self, a: &Self::Buf, b: &Self::Buf, n: usize, c: usize, hw: usize) -> Result<Self::Buf>;
    /// The SE block's input gradient in one pass: dx = dy·gate[n, c] + dsqueeze[n, c]/hw (the
    /// scale's and the squeeze's contributions together).
    fn se_backward_input(
        &self,
        dy: &Self::Buf,
        gate: &Self::Buf,
        dsqueeze: &Self::Buf,
        n: usize,
        c: usize,
        hw: usize,
    ) -> Result<Self::Buf>;

    // ---- spectrograms, batched over clips ----
    /// mel[c, m, t] = Σ_k fb[m, k]·power[c, k, t]; power [clips, bins, frames], fb [n_mels, bins].
    #[allow(clippy::too_many_arguments)]
    fn mel_project(
        &self,
        power: &Self::Buf,
        fb: &Self::Buf,
        clips: usize,
        bins: usize,
        frames: usize,
        n_mels: usize,
    ) -> Result<Self::Buf>;
    /// The projection's input gradient (the filterbank is a constant).
    #[allow(clippy::too_many_arguments)]
    fn mel_project_backward(
        &self,
        dmel: &Self::Buf,
        fb: &Self::Buf,
        clips: usize,
        bins: usize,
        frames: usize,
        n_mels: usize,
    ) -> Result<Self::Buf>;
    /// librosa.power_to_db on each clip of `len` values (ref = clip max or 1.0; top_db floor).
    fn power_to_db(
        &self,
        x: &Self::Buf,
        clips: usize,
        len: usize,
        ref_max: bool,
        amin: f64,
        top_db: Option<f64>,
    ) -> Result<Self::Buf>;
    /// The exact gradient: 10/(ln10·x) where the dB value follows x (above amin, not floored),
    /// plus, at each clip's largest power, the share of everything that follows it (the floored
    /// values, and with `ref_max` the reference subtracted from every value).
    #[allow(clippy::too_many_arguments)]
    fn power_to_db_backward(
        &self,
        x: &Self::Buf,
        y: &Self::Buf,
        dy: &Self::Buf,
        clips: usize,
        len: usize,
        ref_max: bool,
        amin: f64,
        top_db: Option<f64>,
    ) -> Result<Self::Buf>;
    /// [clips, rows, in_stride] with in_frames[c] valid frames → [clips, rows, frames]: centre crop
    /// (or the first frames) when longer, `pad` at the end when shorter.
    #[allow(clippy::too_many_arguments)]
    fn crop_pad(
        &self,
        x: &Self::Buf,
        in_frames: &[usize],
        rows: usize,
        in_stride: usize,
        frames: usize,
        centre: bool,
        pad: f64,
    ) -> Result<Self::Buf>;

    // ---- losses (mean reduction); each forward returns a 1-element buffer ----
    fn mse_forward(&self, pred: &Self::Buf, target: &Self::Buf) -> Result<Self::Buf>;
    /// d loss / d pred, scaled by the 1-element upstream gradient `dl`.
    fn mse_backward(&self, pred: &Self::Buf, target: &Self::Buf, dl: &Self::Buf) -> Result<Self::Buf>;
    fn l1_forward(&self, pred: &Self::Buf, target: &Self::Buf) -> Result<Self::Buf>;
    fn l1_backward(&self, pred: &Self::Buf, target: &Self::Buf, dl: &Self::Buf) -> Result<Self::Buf>;
    /// Softmax cross-entropy of [rows, classes] logits against class labels.
    fn cross_entropy_forward(
        &self,
        logits: &Self::Buf,
        labels: &Self::Index,
        rows: usize,
        classes: usize,
    ) -> Result<Self::Buf>;
    fn cross_entropy_backward(
        &self,
        logits: &Self::Buf,
        labels: &Self::Index,
        rows: usize,
        classes: usize,
        dl: &Self::Buf,
    ) -> Result<Self::Buf>;

    // ---- optimiser ----
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
