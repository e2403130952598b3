//! A tensor: a shape and a device buffer, contiguous, row-major (NCHW for images).

use crate::backend::Backend;
use crate::error::Result;

pub struct Tensor<B: Backend> {
    pub shape: Vec<usize>,
    pub buf: B::Buf,
}

impl<B: Backend> Clone for Tensor<B> {
    fn clone(&self) -> Self {
        Tensor { shape: self.shape.clone(), buf: self.buf.clone() }
    }
}

impl<B: Backend> Tensor<B> {
    pub fn new(shape: Vec<usize>, buf: B::Buf) -> Self {
        Tensor { shape, buf }
    }
    pub fn zeros(b: &B, shape: &[usize]) -> Result<Self> {
        Ok(Tensor { shape: shape.to_vec(), buf: b.zeros(numel(shape))? })
    }
    pub fn from_f64(b: &B, shape: &[usize], data: &[f64]) -> Result<Self> {
        assert_eq!(numel(shape), data.len(), "data length does not match shape {shape:?}");
        Ok(Tensor { shape: shape.to_vec(), buf: b.upload_f64(data)? })
    }
    pub fn to_f64(&self, b: &B) -> Result<Vec<f64>> {
        b.download_f64(&self.buf)
    }
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }
}

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// "3x1x40x72" style, for messages and CLI flags.
pub fn shape_str(shape: &[usize]) -> String {
    if shape.is_empty() {
        return "scalar".into();
    }
    shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x")
}
