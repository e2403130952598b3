//! The native CPU backend: plain Rust over `Vec<T>`, parallel with rayon, in f32 or f64.

mod adam;
pub mod conv;
mod dense;
mod direct;
pub mod gemm;
mod im2col;
mod loss;
mod microkernel;
mod norm;
mod pointwise;
mod pool;
mod spectro;
mod winograd;
mod winograd_transform;

use super::{AdamStep, Backend, ConvGeom, PoolGeom, Unary};
use crate::error::Result;
use crate::float::Float;
use std::marker::PhantomData;

/// CPU backend computing in `T` (f32 for training, f64 for gradient checks).
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu<T: Float>(PhantomData<T>);

impl<T: Float> Cpu<T> {
    pub fn new() -> Self {
        Cpu(PhantomData)
    }
}

type R<T> = Result<Vec<T>>;

impl<T: Float> Backend for Cpu<T> {
    type Elem = T;
    type Buf = Vec<T>;
    type Index = Vec<u32>;

    fn name(&self) -> String {
        format!("cpu ({}, {} threads)", T::NAME, rayon::current_num_threads())
    }

    fn zeros(&self, len: usize) -> R<T> {
        Ok(vec![T::ZERO; len])
    }
    fn fill(&self, len: usize, value: f64) -> R<T> {
        Ok(vec![T::from_f64(value); len])
    }
    fn upload(&self, data: &[T]) -> R<T> {
        Ok(data.to_vec())
    }
    fn download(&self, buf: &Vec<T>) -> R<T> {
        Ok(buf.clone())
    }
    fn upload_index(&self, data: &[u32]) -> Result<Vec<u32>> {
        Ok(data.to_vec())
    }
    fn len(&self, buf: &Vec<T>) -> usize {
        buf.len()
    }
    fn copy(&self, buf: &Vec<T>) -> R<T> {
        Ok(buf.clone())
    }

    fn add(&self, a: &Vec<T>, b: &Vec<T>) -> R<T> {
        Ok(pointwise::zip_map(a, b, |x, y| x + y))
    }
    fn mul(&self, a: &Vec<T>, b: &Vec<T>) -> R<T> {
        Ok(pointwise::zip_map(a, b, |x, y| x * y))
    }
    fn add_assign(&self, dst: &mut Vec<T>, src: &Vec<T>) -> Result<()> {
        dst.iter_mut().zip(src).for_each(|(d, &s)| *d += s);
        Ok(())
    }
    fn scale_assign(&self, x: &mut Vec<T>, s: f64) -> Result<()> {
        let s = T::from_f64(s);
        x.iter_mut().for_each(|v| *v *= s);
        Ok(())
    }
    fn unary_forward(&self, op: Unary, x: &Vec<T>) -> R<T> {
        Ok(pointwise::unary_forward(op, x))
    }
    fn unary_backward(&self, op: Unary, x: &Vec<T>, y: &Vec<T>, dy: &Vec<T>) -> R<T> {
        Ok(pointwise::unary_backward(op, x, y, dy))
    }
    fn dropout_mask(&self, len: usize, p: f64, seed: u64) -> R<T> {
        Ok(pointwise::dropout_mask(len, p, seed))
    }

    fn sum_squares(&self, x: &Vec<T>) -> Result<f64> {
        Ok(pointwise::sum_squares(x))
    }
    fn all_finite(&self, x: &Vec<T>) -> Result<bool> {
        Ok(x.iter().all(|v| v.is_finite()))
    }

    fn matmul(&self, a: &Vec<T>, b: &Vec<T>, m: usize, k: usize, n: usize, ta: bool, tb: bool) -> R<T> {
        assert!(a.len() >= m * k && b.len() >= k * n, "matmul operands smaller than m·k, k·n");
        Ok(dense::matmul(a, b, m, k, n, ta, tb))
    }
    fn add_row_bias(&self, y: &mut Vec<T>, bias: &Vec<T>, _rows: usize) -> Result<()> {
        dense::add_row_bias(y, bias);
        Ok(())
    }
    fn sum_rows(&self, x: &Vec<T>, rows: usize, cols: usize) -> R<T> {
        Ok(dense::sum_rows(x, rows, cols))
    }
    fn concat_cols(&self, a: &Vec<T>, b: &Vec<T>, rows: usize, ca: usize, cb: usize) -> R<T> {
        Ok(dense::concat_cols(a, b, rows, ca, cb))
    }
    fn split_cols(&self, x: &Vec<T>, rows: usize, ca: usize, cb: usize) -> Result<(Vec<T>, Vec<T>)> {
        Ok(dense::split_cols(x, rows, ca, cb))
    }

    fn conv2d_forward(&self, x: &Vec<T>, w: &Vec<T>, b: Option<&Vec<T>>, g: &ConvGeom) -> R<T> {
        Ok(conv::forward(x, w, b.map(|b| b.as_slice()), g))
    }
    fn conv2d_backward_input(&self, dy: &Vec<T>, w: &Vec<T>, g: &ConvGeom) -> R<T> {
        Ok(conv::backward_input(dy, w, g))
    }
    fn conv2d_backward_weight(&self, dy: &Vec<T>, x: &Vec<T>, g: &ConvGeom) -> R<T> {
        Ok(conv::backward_weight(dy, x, g))
    }
    fn channel_sums(&self, dy: &Vec<T>, n: usize, c: usize, hw: usize) -> R<T> {
        Ok(conv::channel_sums(dy, n, c, hw))
    }

    fn batchnorm_forward_train(
        &self,
        x: &Vec<T>,
        gamma: &Vec<T>,
        beta: &Vec<T>,
        running_mean: &mut Vec<T>,
        running_var: &mut Vec<T>,
        n: usize,
        c: usize,
        hw: usize,
        momentum: f64,
        eps: f64,
    ) -> Result<(Vec<T>, Vec<T>, Vec<T>)> {
        Ok(norm::forward_train(x, gamma, beta, running_mean, running_var, n, c, hw, momentum, eps))
    }
    fn batchnorm_forward_eval(
        &self,
        x: &Vec<T>,
        gamma: &Vec<T>,
        beta: &Vec<T>,
        running_mean: &Vec<T>,
        running_var: &Vec<T>,
        _n: usize,
        c: usize,
        hw: usize,
        eps: f64,
    ) -> R<T> {
        Ok(norm::forward_eval(x, gamma, beta, running_mean, running_var, c, hw, eps))
    }
    fn batchnorm_backward(
        &self,
        dy: &Vec<T>,
        x: &Vec<T>,
        gamma: &Vec<T>,
        mean: &Vec<T>,
        invstd: &Vec<T>,
        n: usize,
        c: usize,
        hw: usize,
    ) -> Result<(Vec<T>, Vec<T>, Vec<T>)> {
        Ok(norm::backward(dy, x, gamma, mean, invstd, n, c, hw))
    }

    fn maxpool2d_forward(&self, x: &Vec<T>, g: &PoolGeom) -> Result<(Vec<T>, Vec<u32>)> {
        Ok(pool::maxpool_forward(x, g))
    }
    fn maxpool2d_backward(&self, dy: &Vec<T>, argmax: &Vec<u32>, g: &PoolGeom) -> R<T> {
        Ok(pool::maxpool_backward(dy, argmax, g))
    }
    fn global_avgpool_forward(&self, x: &Vec<T>, _n: usize, _c: usize, hw: usize) -> R<T> {
        Ok(pool::avgpool_forward(x, hw))
    }
    fn global_avgpool_backward(&self, dy: &Vec<T>, _n: usize, _c: usize, hw: usize) -> R<T> {
        Ok(pool::avgpool_backward(dy, hw))
    }
    fn channel_scale_forward(&self, x: &Vec<T>, s: &Vec<T>, _n: usize, _c: usize, hw: usize) -> R<T> {
        Ok(pool::channel_scale_forward(x, s, hw))
    }
    fn channel_scale_backward(
        &self,
        dy: &Vec<T>,
        x: &Vec<T>,
        s: &Vec<T>,
        _n: usize,
        _c: usize,
        hw: usize,
    ) -> Result<(Vec<T>, Vec<T>)> {
        Ok(pool::channel_scale_backward(dy, x, s, hw))
    }

    fn channel_dot(&self, a: &Vec<T>, b: &Vec<T>, _n: usize, _c: usize, hw: usize) -> R<T> {
        Ok(pool::channel_dot(a, b, hw))
    }
    fn se_backward_input(&self, dy: &Vec<T>, gate: &Vec<T>, dsq: &Vec<T>, _n: usize, _c: usize, hw: usize) -> R<T> {
        Ok(pool::se_backward_input(dy, gate, dsq, hw))
    }

    fn mel_project(&self, p: &Vec<T>, fb: &Vec<T>, _c: usize, bins: usize, frames: usize, n_mels: usize) -> R<T> {
        Ok(spectro::mel_project(p, fb, bins, frames, n_mels))
    }
    fn mel_project_backward(
        &self,
        d: &Vec<T>,
        fb: &Vec<T>,
        _c: usize,
        bins: usize,
        frames: usize,
        n_mels: usize,
    ) -> R<T> {
        Ok(spectro::mel_project_backward(d, fb, bins, frames, n_mels))
    }
    fn power_to_db(&self, x: &Vec<T>, _c: usize, len: usize, ref_max: bool, amin: f64, top_db: Option<f64>) -> R<T> {
        Ok(spectro::power_to_db(x, len, ref_max, amin, top_db))
    }
    fn power_to_db_backward(
        &self,
        x: &Vec<T>,
        y: &Vec<T>,
        dy: &Vec<T>,
        _c: usize,
        len: usize,
        ref_max: bool,
        amin: f64,
        top_db: Option<f64>,
    ) -> R<T> {
        Ok(spectro::power_to_db_backward(x, y, dy, len, ref_max, amin, top_db))
    }
    fn crop_pad(
        &self,
        x: &Vec<T>,
        in_frames: &[usize],
        rows: usize,
        in_stride: usize,
        frames: usize,
        centre: bool,
        pad: f64,
    ) -> R<T> {
        Ok(spectro::crop_pad(x, in_frames, rows, in_stride, frames, centre, pad))
    }

    fn mse_forward(&self, pred: &Vec<T>, target: &Vec<T>) -> R<T> {
        Ok(vec![T::from_f64(loss::mse_forward(pred, target))])
    }
    fn mse_backward(&self, pred: &Vec<T>, target: &Vec<T>, dl: &Vec<T>) -> R<T> {
        Ok(loss::mse_backward(pred, target, dl[0].to_f64()))
    }
    fn l1_forward(&self, pred: &Vec<T>, target: &Vec<T>) -> R<T> {
        Ok(vec![T::from_f64(loss::l1_forward(pred, target))])
    }
    fn l1_backward(&self, pred: &Vec<T>, target: &Vec<T>, dl: &Vec<T>) -> R<T> {
        Ok(loss::l1_backward(pred, target, dl[0].to_f64()))
    }
    fn cross_entropy_forward(&self, logits: &Vec<T>, labels: &Vec<u32>, _rows: usize, classes: usize) -> R<T> {
        Ok(vec![T::from_f64(loss::cross_entropy_forward(logits, labels, classes))])
    }
    fn cross_entropy_backward(
        &self,
        logits: &Vec<T>,
        labels: &Vec<u32>,
        _rows: usize,
        classes: usize,
        dl: &Vec<T>,
    ) -> R<T> {
        Ok(loss::cross_entropy_backward(logits, labels, classes, dl[0].to_f64()))
    }

    fn adam_update(&self, w: &mut Vec<T>, g: &Vec<T>, m: &mut Vec<T>, v: &mut Vec<T>, hp: &AdamStep) -> Result<()> {
        adam::update(w, g, m, v, hp);
        Ok(())
    }
}
