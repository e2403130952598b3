//! A tensor: a shape and a device buffer of exactly that many elements, contiguous, row-major
//! (NCHW for images). The fields are private so the pairing cannot break: every constructor
//! checks the buffer's length against the shape.

use crate::backend::{DeviceBuffer, Memory};
use crate::error::{Error, Result};

pub struct Tensor<B: Memory> {
    shape: Vec<usize>,
    buf: B::Buf,
}

/// Cloning shares the buffer (a reference-count bump), as PyTorch tensors share storage.
impl<B: Memory> Clone for Tensor<B> {
    fn clone(&self) -> Self {
        Tensor { shape: self.shape.clone(), buf: self.buf.clone() }
    }
}

impl<B: Memory> Tensor<B> {
    /// Pairs a shape with a buffer, refusing a buffer of another length.
    pub fn new(shape: impl Into<Vec<usize>>, buf: B::Buf) -> Result<Self> {
        let shape = shape.into();
        if buf.len() != numel(&shape) {
            return Err(Error::Invalid(format!(
                "a buffer of {} elements cannot hold a tensor of shape {shape:?} ({} elements)",
                buf.len(),
                numel(&shape)
            )));
        }
        Ok(Tensor { shape, buf })
    }
    pub fn zeros(b: &B, shape: &[usize]) -> Result<Self> {
        Ok(Tensor { shape: shape.to_vec(), buf: b.zeros(numel(shape))? })
    }
    pub fn from_f64(b: &B, shape: &[usize], data: &[f64]) -> Result<Self> {
        if numel(shape) != data.len() {
            return Err(Error::Invalid(format!("{} values do not fill shape {shape:?}", data.len())));
        }
        Ok(Tensor { shape: shape.to_vec(), buf: b.upload_f64(data)? })
    }
    pub fn to_f64(&self, b: &B) -> Result<Vec<f64>> {
        b.download_f64(&self.buf)
    }
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn buf(&self) -> &B::Buf {
        &self.buf
    }
    pub fn into_buf(self) -> B::Buf {
        self.buf
    }
    /// Mutable access for in-place primitives, which never change a buffer's length.
    pub fn buf_mut(&mut self) -> &mut B::Buf {
        &mut self.buf
    }
    /// Replaces the data, keeping the shape; refuses a buffer of another length.
    pub fn set_buf(&mut self, buf: B::Buf) -> Result<()> {
        if buf.len() != self.buf.len() {
            return Err(Error::Invalid(format!(
                "cannot put {} elements into a tensor of shape {:?}",
                buf.len(),
                self.shape
            )));
        }
        self.buf = buf;
        Ok(())
    }
    /// The same data under another shape of the same size.
    pub fn reshape(self, shape: impl Into<Vec<usize>>) -> Result<Self> {
        Tensor::new(shape, self.buf)
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
