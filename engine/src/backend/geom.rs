//! Named geometries of the backend primitives, with the length checks every backend runs
//! before touching a buffer and the 32-bit index guard of the CUDA kernels.
//!
//! A backend primitive (the op-family traits of `backend`) never takes positional sizes: it takes
//! one of these structs, and its first line checks each buffer against it (`Error::Shape` naming
//! the op and the buffer), so a shape can never be paired with a buffer of another length,
//! whatever the caller did. Below the traits, the raw device's `gemm` keeps cuBLAS's
//! (m, k, n) arguments; only the dense family, after its own check, calls it.

use crate::error::{Error, Result};

/// Fails naming the op and the buffer when a buffer's length is not what the geometry needs.
pub fn check_lens(op: &'static str, lens: &[(&str, usize, usize)]) -> Result<()> {
    for &(what, got, want) in lens {
        if got != want {
            return Err(Error::shape(op, format!("`{what}` holds {got} elements but the geometry needs {want}")));
        }
    }
    Ok(())
}

/// The CUDA kernels index with 32-bit `int`s. Every extent a kernel indexes (a buffer's length,
/// the longest product it forms) must stay below 2^31, checked at launch from the geometry alone.
pub const MAX_KERNEL_INDEX: usize = i32::MAX as usize;

/// Fails, naming the op, the extent and a batch size that would fit, when `extent` exceeds the
/// kernels' 32-bit indices. `per_sample` is the extent of one sample (0 when it does not scale
/// with the batch).
pub fn check_i32(op: &'static str, what: &str, extent: usize, per_sample: usize) -> Result<()> {
    if extent <= MAX_KERNEL_INDEX {
        return Ok(());
    }
    let hint = if per_sample > 0 && per_sample <= MAX_KERNEL_INDEX {
        format!("; a batch of at most {} fits", MAX_KERNEL_INDEX / per_sample)
    } else {
        String::new()
    };
    Err(Error::Invalid(format!(
        "{op}: {what} has {extent} elements, beyond the CUDA kernels' 32-bit indices ({MAX_KERNEL_INDEX}){hint}: \
         lower --batch"
    )))
}

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
    /// One sample's input and output lengths (the offsets of a batch part; the larger of the two
    /// is the extent a batch part scales, the implicit GEMM's OH·OW columns per sample being fewer).
    pub fn sample_lens(&self) -> (usize, usize) {
        (self.c_in * self.h * self.w, self.c_out * self.out_h() * self.out_w())
    }
    /// Multiply-adds of one forward pass, times two.
    pub fn forward_flops(&self) -> f64 {
        2.0 * (self.output_len() * self.c_in * self.kh * self.kw) as f64
    }
    /// The output plane, as a channel geometry (the bias gradient's reduction).
    pub fn output_channels(&self) -> ChannelGeom {
        ChannelGeom { n: self.n, c: self.c_out, hw: self.out_h() * self.out_w() }
    }
    fn valid(&self, op: &'static str) -> Result<()> {
        if self.stride == 0 || self.h + 2 * self.pad < self.kh || self.w + 2 * self.pad < self.kw {
            return Err(Error::shape(op, format!("{self:?}: the kernel does not fit the padded input")));
        }
        Ok(())
    }
    pub fn check_forward(&self, x: usize, w: usize, bias: Option<usize>) -> Result<()> {
        self.valid("conv2d_forward")?;
        check_lens("conv2d_forward", &[("x", x, self.input_len()), ("weight", w, self.weight_len())])?;
        check_lens("conv2d_forward", &[("bias", bias.unwrap_or(self.c_out), self.c_out)])
    }
    pub fn check_backward_input(&self, dy: usize, w: usize) -> Result<()> {
        self.valid("conv2d_backward_input")?;
        check_lens("conv2d_backward_input", &[("dy", dy, self.output_len()), ("weight", w, self.weight_len())])
    }
    pub fn check_backward_weight(&self, dy: usize, x: usize) -> Result<()> {
        self.valid("conv2d_backward_weight")?;
        check_lens("conv2d_backward_weight", &[("dy", dy, self.output_len()), ("x", x, self.input_len())])
    }
    /// The 32-bit guard: input, output and weight lengths, and the implicit GEMM's extents.
    pub fn check_i32(&self, op: &'static str) -> Result<()> {
        let (ohw, hw) = (self.out_h() * self.out_w(), self.h * self.w);
        check_i32(op, "the input", self.input_len(), self.c_in * hw)?;
        check_i32(op, "the output", self.output_len(), self.c_out * ohw)?;
        check_i32(op, "the weight", self.weight_len(), 0)?;
        check_i32(op, "the GEMM's column count (batch × output positions)", self.n * ohw, ohw)
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
    pub fn input_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }
    pub fn output_len(&self) -> usize {
        self.n * self.c * self.out_h() * self.out_w()
    }
    fn valid(&self, op: &'static str) -> Result<()> {
        // The arg-max is saved as a u8 position inside the window.
        if self.k == 0 || self.stride == 0 || self.h < self.k || self.w < self.k || self.k * self.k > 256 {
            return Err(Error::shape(op, format!("{self:?}: the window does not fit (or exceeds 16×16)")));
        }
        Ok(())
    }
    pub fn check_forward(&self, x: usize) -> Result<()> {
        self.valid("maxpool2d_forward")?;
        check_lens("maxpool2d_forward", &[("x", x, self.input_len())])
    }
    pub fn check_backward(&self, dy: usize, argmax: usize) -> Result<()> {
        self.valid("maxpool2d_backward")?;
        check_lens("maxpool2d_backward", &[("dy", dy, self.output_len()), ("argmax", argmax, self.output_len())])
    }
    pub fn check_i32(&self, op: &'static str) -> Result<()> {
        check_i32(op, "the input", self.input_len(), self.c * self.h * self.w)
    }
    /// One sample's input and output lengths (the input is the larger extent).
    pub fn sample_lens(&self) -> (usize, usize) {
        (self.c * self.h * self.w, self.c * self.out_h() * self.out_w())
    }
}

/// A batch of planes: n samples × c channels × hw positions (BatchNorm, pooling, SE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelGeom {
    pub n: usize,
    pub c: usize,
    pub hw: usize,
}

impl ChannelGeom {
    pub fn len(&self) -> usize {
        self.n * self.c * self.hw
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// n·c: one value per plane.
    pub fn planes(&self) -> usize {
        self.n * self.c
    }
    /// Checks `(name, length)` pairs of full-size tensors, per-plane [n, c] and per-channel [c]
    /// tensors.
    pub fn check(
        &self,
        op: &'static str,
        full: &[(&str, usize)],
        planes: &[(&str, usize)],
        channels: &[(&str, usize)],
    ) -> Result<()> {
        let full: Vec<_> = full.iter().map(|&(w, l)| (w, l, self.len())).collect();
        let planes: Vec<_> = planes.iter().map(|&(w, l)| (w, l, self.planes())).collect();
        let channels: Vec<_> = channels.iter().map(|&(w, l)| (w, l, self.c)).collect();
        check_lens(op, &full)?;
        check_lens(op, &planes)?;
        check_lens(op, &channels)
    }
    pub fn check_i32(&self, op: &'static str) -> Result<()> {
        check_i32(op, "the tensor", self.len(), self.c * self.hw)
    }
    /// One sample's length.
    pub fn per_sample_extent(&self) -> usize {
        self.c * self.hw
    }
}

/// The fused VGG unit's BatchNorm → ReLU → optional 2×2/2 max-pool over a conv output z of
/// [n, c, h, w] (floor mode: an odd last row or column is dropped by the pool).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnitGeom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub pool: bool,
}

impl UnitGeom {
    pub fn out_h(&self) -> usize {
        if self.pool { self.h / 2 } else { self.h }
    }
    pub fn out_w(&self) -> usize {
        if self.pool { self.w / 2 } else { self.w }
    }
    /// Elements of z (and of its gradient).
    pub fn input_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }
    pub fn output_len(&self) -> usize {
        self.n * self.c * self.out_h() * self.out_w()
    }
    /// The BatchNorm view of z.
    pub fn channels(&self) -> ChannelGeom {
        ChannelGeom { n: self.n, c: self.c, hw: self.h * self.w }
    }
    /// Checks z, the output gradient (backward only) and the per-channel tensors.
    pub fn check(&self, op: &'static str, z: usize, dy: Option<usize>, channels: &[(&str, usize)]) -> Result<()> {
        if self.pool && (self.h < 2 || self.w < 2) {
            return Err(Error::shape(
                op,
                format!("{self:?}: a {}x{} map is too small for the 2x2 pool", self.h, self.w),
            ));
        }
        check_lens(op, &[("z", z, self.input_len())])?;
        if let Some(dy) = dy {
            check_lens(op, &[("dy", dy, self.output_len())])?;
        }
        self.channels().check(op, &[], &[], channels)
    }
    pub fn check_i32(&self, op: &'static str) -> Result<()> {
        self.channels().check_i32(op)
    }
    /// One sample's input and output lengths (the input is the larger extent).
    pub fn sample_lens(&self) -> (usize, usize) {
        (self.c * self.h * self.w, self.c * self.out_h() * self.out_w())
    }
}

/// (name, length) of BatchNorm's running statistics and of the conv bias a fused unit folds
/// into them, for a per-channel check.
pub fn running_stat_lens(running_mean: usize, running_var: usize, bias: Option<usize>) -> Vec<(&'static str, usize)> {
    let mut lens = vec![("running_mean", running_mean), ("running_var", running_var)];
    lens.extend(bias.map(|b| ("bias", b)));
    lens
}

/// BatchNorm's two constants (PyTorch's defaults are 0.1 and 1e-5).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BnParams {
    pub momentum: f64,
    pub eps: f64,
}

/// C[m, n] = op(A)·op(B): A is [m, k] (or [k, m] stored, if `ta`), B is [k, n] (or [n, k]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulGeom {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub ta: bool,
    pub tb: bool,
}

impl MatmulGeom {
    /// Plain row-major A[m, k]·B[k, n].
    pub fn nn(m: usize, k: usize, n: usize) -> Self {
        MatmulGeom { m, k, n, ta: false, tb: false }
    }
    pub fn check(&self, a: usize, b: usize) -> Result<()> {
        check_lens("matmul", &[("A", a, self.m * self.k), ("B", b, self.k * self.n)])
    }
    pub fn check_i32(&self) -> Result<()> {
        for (what, len) in [("A", self.m * self.k), ("B", self.k * self.n), ("C", self.m * self.n)] {
            check_i32("matmul", what, len, 0)?;
        }
        Ok(())
    }
}

/// A [rows, cols] matrix (bias rows, column sums, logits over classes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowsGeom {
    pub rows: usize,
    pub cols: usize,
}

impl RowsGeom {
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn check(&self, op: &'static str, matrix: usize, per_col: Option<usize>, per_row: Option<usize>) -> Result<()> {
        check_lens(op, &[("matrix", matrix, self.len())])?;
        if let Some(l) = per_col {
            check_lens(op, &[("per-column vector", l, self.cols)])?;
        }
        if let Some(l) = per_row {
            check_lens(op, &[("per-row vector", l, self.rows)])?;
        }
        Ok(())
    }
}

/// [rows, left] ++ [rows, right] → [rows, left + right].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConcatGeom {
    pub rows: usize,
    pub left: usize,
    pub right: usize,
}

impl ConcatGeom {
    pub fn width(&self) -> usize {
        self.left + self.right
    }
    pub fn check(&self, op: &'static str, a: usize, b: usize, joined: Option<usize>) -> Result<()> {
        check_lens(op, &[("left", a, self.rows * self.left), ("right", b, self.rows * self.right)])?;
        check_lens(op, &[("joined", joined.unwrap_or(self.rows * self.width()), self.rows * self.width())])
    }
}

/// The mel projection, batched over clips: power [clips, bins, frames] × filterbank [n_mels, bins].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MelGeom {
    pub clips: usize,
    pub bins: usize,
    pub frames: usize,
    pub n_mels: usize,
}

impl MelGeom {
    pub fn power_len(&self) -> usize {
        self.clips * self.bins * self.frames
    }
    pub fn mel_len(&self) -> usize {
        self.clips * self.n_mels * self.frames
    }
    pub fn check(&self, op: &'static str, power: usize, fb: usize, mel: Option<usize>) -> Result<()> {
        check_lens(op, &[("power", power, self.power_len()), ("filterbank", fb, self.n_mels * self.bins)])?;
        check_lens(op, &[("mel", mel.unwrap_or(self.mel_len()), self.mel_len())])
    }
    pub fn check_i32(&self, op: &'static str) -> Result<()> {
        check_i32(op, "the power", self.power_len(), self.bins * self.frames)?;
        check_i32(op, "the mel output", self.mel_len(), self.n_mels * self.frames)
    }
}

/// librosa.power_to_db over `clips` clips of `len` values each.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DbGeom {
    pub clips: usize,
    pub len: usize,
    /// ref = each clip's maximum (legacy) instead of 1.0.
    pub ref_max: bool,
    pub amin: f64,
    pub top_db: Option<f64>,
}

impl DbGeom {
    pub fn total(&self) -> usize {
        self.clips * self.len
    }
    pub fn check(&self, op: &'static str, bufs: &[(&str, usize)]) -> Result<()> {
        let v: Vec<_> = bufs.iter().map(|&(w, l)| (w, l, self.total())).collect();
        check_lens(op, &v)
    }
}

/// Crop or pad each clip of [clips, rows, in_stride] (with its own count of valid frames) to
/// [clips, rows, frames].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CropGeom {
    pub rows: usize,
    pub in_stride: usize,
    pub frames: usize,
    /// Centre crop (fixed) instead of the first frames (legacy).
    pub centre: bool,
    pub pad: f64,
}

impl CropGeom {
    pub fn check(&self, x: usize, clips: usize) -> Result<()> {
        check_lens("crop_pad", &[("x", x, clips * self.rows * self.in_stride)])
    }
}

/// The squeeze-and-excitation MLP over n samples of c squeezed channels with `hid` hidden units:
/// hidden = relu(sq·W1ᵀ) [n, hid], gate = sigmoid(hidden·W2ᵀ) [n, c]; W1 [hid, c], W2 [c, hid].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExciteGeom {
    pub n: usize,
    pub c: usize,
    pub hid: usize,
}

impl ExciteGeom {
    /// Checks the squeezed input and both weights.
    pub fn check_forward(&self, op: &'static str, sq: usize, w1: usize, w2: usize) -> Result<()> {
        if self.c == 0 || self.hid == 0 {
            return Err(Error::shape(
                op,
                format!("{} channels and {} hidden units: both must be at least 1", self.c, self.hid),
            ));
        }
        check_lens(
            op,
            &[("squeezed", sq, self.n * self.c), ("w1", w1, self.hid * self.c), ("w2", w2, self.c * self.hid)],
        )
    }
    /// Also the gate's gradient and the saved hidden and gate values.
    pub fn check_backward(&self, op: &'static str, dgate: usize, hidden: usize, gate: usize) -> Result<()> {
        let nc = self.n * self.c;
        check_lens(op, &[("dgate", dgate, nc), ("hidden", hidden, self.n * self.hid), ("gate", gate, nc)])
    }
    pub fn check_i32(&self, op: &'static str) -> Result<()> {
        check_i32(op, "the squeezed tensor", self.n * self.c, self.c)?;
        check_i32(op, "the hidden tensor", self.n * self.hid, self.hid)?;
        check_i32(op, "a weight", self.c * self.hid, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_launch_past_32_bit_indices_is_refused_naming_a_batch_that_fits() {
        // MODEL_3 block 1 at the seed's input size: 256 × 64 × 128 × 1292 = 2.7e9 outputs, more
        // than one launch may index (the launchers split such a batch: batch_split.rs).
        let g = ConvGeom { n: 256, c_in: 1, h: 128, w: 1292, c_out: 64, kh: 3, kw: 3, stride: 1, pad: 1 };
        let e = g.check_i32("conv2d_forward").unwrap_err().to_string();
        assert!(e.contains("conv2d_forward") && e.contains("the output") && e.contains("at most 202"), "{e}");
        let ok = ConvGeom { n: 202, ..g };
        ok.check_i32("conv2d_forward").unwrap();
        let ch = ChannelGeom { n: 256, c: 64, hw: 128 * 1292 };
        assert!(ch.check_i32("bn_stats").is_err());
        assert!(ChannelGeom { n: 202, ..ch }.check_i32("bn_stats").is_ok());
    }

    #[test]
    fn lengths_are_checked_by_name() {
        let g = ChannelGeom { n: 2, c: 3, hw: 5 };
        let e = g.check("bn", &[("x", 30)], &[("gate", 5)], &[]).unwrap_err().to_string();
        assert!(e.contains("bn") && e.contains("`gate` holds 5") && e.contains("needs 6"), "{e}");
        let m = MatmulGeom::nn(2, 3, 4);
        assert!(m.check(6, 12).is_ok() && m.check(6, 11).is_err());
    }
}
