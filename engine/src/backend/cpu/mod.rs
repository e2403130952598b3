//! The native CPU backend: plain Rust over counted shared buffers, parallel with rayon, in f32
//! or f64.

mod adam;
mod attention;
pub mod buffer;
pub mod conv;
mod dense;
mod direct;
mod excite;
pub mod fastmath;
pub mod gemm;
mod im2col;
mod layernorm;
mod loss;
mod microkernel;
mod norm;
mod pointwise;
mod pool;
mod sequence;
mod spectro;
mod unit;
mod winograd;
mod winograd_transform;

pub use attention::bmm_into as bmm_host;
pub use buffer::HostBuf;

use super::geom::check_lens;
use super::memory::MemCounter;
use super::*;
use crate::error::Result;
use crate::float::Float;
use std::marker::PhantomData;
use std::sync::Arc;

/// CPU backend computing in `T` (f32 for training, f64 for gradient checks). Clones share one
/// memory ledger.
#[derive(Clone, Debug)]
pub struct Cpu<T: Float> {
    ledger: Arc<MemCounter>,
    _elem: PhantomData<fn() -> T>,
}

impl<T: Float> Default for Cpu<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> Cpu<T> {
    /// A backend with its own memory ledger.
    pub fn new() -> Self {
        Cpu { ledger: MemCounter::new(), _elem: PhantomData }
    }

    /// A counted buffer taking ownership of `v`.
    pub fn wrap<E: Copy + Send + Sync + 'static>(&self, v: Vec<E>) -> HostBuf<E> {
        HostBuf::new(v, &self.ledger)
    }

    /// The most workspace bytes one convolution primitive of geometry `g` registers (forward,
    /// input gradient or weight gradient), for memory bounds.
    pub fn conv_workspace_bytes(g: &ConvGeom) -> usize {
        [conv::Pass::Forward, conv::Pass::BackwardInput, conv::Pass::BackwardWeight]
            .into_iter()
            .map(|pass| conv::chosen_workspace_elems::<T>(pass, g) * std::mem::size_of::<T>())
            .max()
            .unwrap_or(0)
    }

    /// Registers a primitive's private workspace for the duration of the call.
    fn workspace(&self, elems: usize) -> memory::Scoped {
        self.ledger.scoped(elems * std::mem::size_of::<T>())
    }
}

type R<T> = Result<HostBuf<T>>;

impl<T: Float> Memory for Cpu<T> {
    type Elem = T;
    type Buf = HostBuf<T>;
    type Index = HostBuf<u32>;
    type Mask = HostBuf<u8>;

    fn name(&self) -> String {
        format!("cpu ({}, {} threads)", T::NAME, rayon::current_num_threads())
    }
    fn zeros(&self, len: usize) -> R<T> {
        Ok(self.wrap(vec![T::ZERO; len]))
    }
    fn fill(&self, len: usize, value: f64) -> R<T> {
        Ok(self.wrap(vec![T::from_f64(value); len]))
    }
    fn upload(&self, data: &[T]) -> R<T> {
        Ok(self.wrap(data.to_vec()))
    }
    fn download(&self, buf: &HostBuf<T>) -> Result<Vec<T>> {
        Ok(buf.to_vec())
    }
    fn upload_index(&self, data: &[u32]) -> Result<HostBuf<u32>> {
        Ok(self.wrap(data.to_vec()))
    }
    fn download_mask(&self, mask: &HostBuf<u8>) -> Result<Vec<u8>> {
        Ok(mask.to_vec())
    }
    fn copy(&self, buf: &HostBuf<T>) -> R<T> {
        Ok(self.wrap(buf.to_vec()))
    }
    fn memory(&self) -> MemStats {
        self.ledger.stats()
    }
    fn reset_peak(&self) {
        self.ledger.reset_peak()
    }
}

impl<T: Float> Pointwise for Cpu<T> {
    fn add(&self, a: &HostBuf<T>, b: &HostBuf<T>) -> R<T> {
        same_len("add", a.len(), b.len())?;
        Ok(self.wrap(pointwise::zip_map(a, b, |x, y| x + y)))
    }
    fn mul(&self, a: &HostBuf<T>, b: &HostBuf<T>) -> R<T> {
        same_len("mul", a.len(), b.len())?;
        Ok(self.wrap(pointwise::zip_map(a, b, |x, y| x * y)))
    }
    fn add_assign(&self, dst: &mut HostBuf<T>, src: &HostBuf<T>) -> Result<()> {
        same_len("add_assign", dst.len(), src.len())?;
        dst.make_mut().iter_mut().zip(src.iter()).for_each(|(d, &s)| *d += s);
        Ok(())
    }
    fn scale_assign(&self, x: &mut HostBuf<T>, s: f64) -> Result<()> {
        let s = T::from_f64(s);
        x.make_mut().iter_mut().for_each(|v| *v *= s);
        Ok(())
    }
    fn unary_forward(&self, op: Unary, x: &HostBuf<T>) -> R<T> {
        Ok(self.wrap(pointwise::unary_forward(op, x)))
    }
    fn unary_backward(&self, op: Unary, x: &HostBuf<T>, y: &HostBuf<T>, dy: &HostBuf<T>) -> R<T> {
        check_lens("unary_backward", &[("x", x.len(), dy.len()), ("y", y.len(), dy.len())])?;
        Ok(self.wrap(pointwise::unary_backward(op, x, y, dy)))
    }
    fn relu_forward(&self, x: &HostBuf<T>) -> Result<(HostBuf<T>, HostBuf<u8>)> {
        let (y, m) = pointwise::relu_forward(x);
        Ok((self.wrap(y), self.wrap(m)))
    }
    fn relu_backward(&self, mut dy: HostBuf<T>, mask: &HostBuf<u8>) -> R<T> {
        same_len("relu_backward", dy.len(), mask.len())?;
        pointwise::relu_backward_in_place(dy.make_mut(), mask);
        Ok(dy)
    }
    fn dropout_mask(&self, len: usize, p: f64, seed: u64) -> R<T> {
        Ok(self.wrap(pointwise::dropout_mask(len, p, seed)))
    }
}

impl<T: Float> Reduce for Cpu<T> {
    fn sum_squares(&self, x: &HostBuf<T>) -> Result<f64> {
        Ok(pointwise::sum_squares(x))
    }
    fn all_finite(&self, x: &HostBuf<T>) -> Result<bool> {
        Ok(x.iter().all(|v| v.is_finite()))
    }
}

impl<T: Float> Dense for Cpu<T> {
    fn matmul(&self, a: &HostBuf<T>, b: &HostBuf<T>, g: &MatmulGeom) -> R<T> {
        g.check(a.len(), b.len())?;
        Ok(self.wrap(dense::matmul(a, b, g)))
    }
    fn add_row_bias(&self, y: &mut HostBuf<T>, bias: &HostBuf<T>, g: &RowsGeom) -> Result<()> {
        g.check("add_row_bias", y.len(), Some(bias.len()), None)?;
        dense::add_row_bias(y.make_mut(), bias);
        Ok(())
    }
    fn sum_rows(&self, x: &HostBuf<T>, g: &RowsGeom) -> R<T> {
        g.check("sum_rows", x.len(), None, None)?;
        Ok(self.wrap(dense::sum_rows(x, g.rows, g.cols)))
    }
    fn concat_cols(&self, a: &HostBuf<T>, b: &HostBuf<T>, g: &ConcatGeom) -> R<T> {
        g.check("concat_cols", a.len(), b.len(), None)?;
        Ok(self.wrap(dense::concat_cols(a, b, g)))
    }
    fn split_cols(&self, x: &HostBuf<T>, g: &ConcatGeom) -> Result<(HostBuf<T>, HostBuf<T>)> {
        check_lens("split_cols", &[("x", x.len(), g.rows * g.width())])?;
        let (a, b) = dense::split_cols(x, g);
        Ok((self.wrap(a), self.wrap(b)))
    }
}

impl<T: Float> Conv for Cpu<T> {
    fn conv2d_forward(&self, x: &HostBuf<T>, w: &HostBuf<T>, b: Option<&HostBuf<T>>, g: &ConvGeom) -> R<T> {
        g.check_forward(x.len(), w.len(), b.map(|b| b.len()))?;
        let _ws = self.workspace(conv::chosen_workspace_elems::<T>(conv::Pass::Forward, g));
        Ok(self.wrap(conv::forward(x, w, b.map(|b| &b[..]), g)))
    }
    fn conv2d_backward_input(&self, dy: &HostBuf<T>, w: &HostBuf<T>, g: &ConvGeom) -> R<T> {
        g.check_backward_input(dy.len(), w.len())?;
        let _ws = self.workspace(conv::chosen_workspace_elems::<T>(conv::Pass::BackwardInput, g));
        Ok(self.wrap(conv::backward_input(dy, w, g)))
    }
    fn conv2d_backward_weight(&self, dy: &HostBuf<T>, x: &HostBuf<T>, g: &ConvGeom) -> R<T> {
        g.check_backward_weight(dy.len(), x.len())?;
        let _ws = self.workspace(conv::chosen_workspace_elems::<T>(conv::Pass::BackwardWeight, g));
        Ok(self.wrap(conv::backward_weight(dy, x, g)))
    }
    fn channel_sums(&self, dy: &HostBuf<T>, g: &ChannelGeom) -> R<T> {
        g.check("channel_sums", &[("dy", dy.len())], &[], &[])?;
        Ok(self.wrap(conv::channel_sums(dy, g.n, g.c, g.hw)))
    }
}
