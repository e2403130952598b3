//! Elementwise arithmetic, activations and reductions: kernels/elementwise.cu, reduce.cu.

use super::{Arg, B1, BLOCK, DevBuf, DevMask, KernelBackend, ew, f, i, p, pm};
use crate::backend::geom::check_i32;
use crate::backend::{DeviceBuffer, Pointwise, Reduce, Unary, same_len};
use crate::error::Result;

fn unary_code(op: Unary) -> Arg {
    Arg::I32(match op {
        Unary::Relu => 0,
        Unary::Sigmoid => 1,
        Unary::Tanh => 2,
        Unary::Gelu => 3,
        Unary::GeluTanh => 4,
    })
}

impl KernelBackend {
    fn binary(&self, k: &'static str, a: &DevBuf, b: &DevBuf) -> Result<DevBuf> {
        same_len(k, a.len(), b.len())?;
        let n = a.len();
        check_i32(k, "the operand", n, 0)?;
        let y = self.buf(n)?;
        self.launch(k, ew(n), B1, 0, &[p(a), p(b), p(&y), i(n)?])?;
        Ok(y)
    }
}

impl Pointwise for KernelBackend {
    fn add(&self, a: &DevBuf, b: &DevBuf) -> Result<DevBuf> {
        self.binary("add_f32", a, b)
    }
    fn mul(&self, a: &DevBuf, b: &DevBuf) -> Result<DevBuf> {
        self.binary("mul_f32", a, b)
    }
    fn add_assign(&self, dst: &mut DevBuf, src: &DevBuf) -> Result<()> {
        same_len("add_assign_f32", dst.len(), src.len())?;
        dst.make_unique()?;
        let n = dst.len();
        self.launch("add_assign_f32", ew(n), B1, 0, &[p(dst), p(src), i(n)?])
    }
    fn scale_assign(&self, x: &mut DevBuf, s: f64) -> Result<()> {
        x.make_unique()?;
        let n = x.len();
        self.launch("scale_assign_f32", ew(n), B1, 0, &[p(x), i(n)?, f(s)])
    }
    fn unary_forward(&self, op: Unary, x: &DevBuf) -> Result<DevBuf> {
        let n = x.len();
        let y = self.buf(n)?;
        self.launch("unary_forward", ew(n), B1, 0, &[unary_code(op), p(x), p(&y), i(n)?])?;
        Ok(y)
    }
    fn unary_backward(&self, op: Unary, x: &DevBuf, y: &DevBuf, dy: &DevBuf) -> Result<DevBuf> {
        let n = dy.len();
        same_len("unary_backward", n, x.len())?;
        same_len("unary_backward", n, y.len())?;
        let dx = self.buf(n)?;
        self.launch("unary_backward", ew(n), B1, 0, &[unary_code(op), p(x), p(y), p(dy), p(&dx), i(n)?])?;
        Ok(dx)
    }
    fn relu_forward(&self, x: &DevBuf) -> Result<(DevBuf, DevMask)> {
        let n = x.len();
        let (y, m) = (self.buf(n)?, self.mask(n)?);
        self.launch("relu_forward_mask", ew(n), B1, 0, &[p(x), p(&y), pm(&m), i(n)?])?;
        Ok((y, m))
    }
    fn relu_backward(&self, mut dy: DevBuf, mask: &DevMask) -> Result<DevBuf> {
        same_len("relu_backward", dy.len(), mask.len())?;
        dy.make_unique()?;
        let n = dy.len();
        self.launch("relu_backward_mask", ew(n), B1, 0, &[p(&dy), pm(mask), p(&dy), i(n)?])?;
        Ok(dy)
    }
    fn dropout_mask(&self, len: usize, prob: f64, seed: u64) -> Result<DevBuf> {
        let m = self.buf(len)?;
        self.launch("dropout_mask", ew(len), B1, 0, &[p(&m), i(len)?, f(prob), Arg::U64(seed)])?;
        Ok(m)
    }
}

impl Reduce for KernelBackend {
    fn sum_squares(&self, x: &DevBuf) -> Result<f64> {
        self.sum_squares_many(&[x])
    }
    fn sum_squares_many(&self, bufs: &[&DevBuf]) -> Result<f64> {
        let bufs: Vec<&&DevBuf> = bufs.iter().filter(|b| !b.is_empty()).collect();
        if bufs.is_empty() {
            return Ok(0.0);
        }
        let ptrs: Vec<u8> = bufs.iter().flat_map(|b| b.ptr().to_le_bytes()).collect();
        let lens =
            bufs.iter().map(|b| i(b.len()).map(|a| (a.slot() as u32).to_le_bytes())).collect::<Result<Vec<_>>>()?;
        let lens: Vec<u8> = lens.concat();
        let (dp, dl) = (self.upload_bytes(&ptrs)?, self.upload_bytes(&lens)?);
        let maxlen = bufs.iter().map(|b| b.len()).max().unwrap_or(0);
        let grid = [maxlen.div_ceil(BLOCK as usize).clamp(1, 1024) as u32, bufs.len() as u32, 1];
        // One double partial per block, then one block adds them in index order: no atomics,
        // the same bits on every run (the norm scales every parameter's step through clipping).
        let nparts = grid[0] as usize * grid[1] as usize;
        let (parts, out) = (self.doubles(nparts)?, self.doubles(1)?);
        self.launch("sum_squares_multi", grid, B1, 0, &[p(&dp), p(&dl), i(bufs.len())?, p(&parts)])?;
        self.launch("sum_f64", [1, 1, 1], B1, 0, &[p(&parts), p(&out), i(nparts)?])?;
        let bytes = self.download_bytes(out.ptr(), 8)?;
        Ok(f64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }
    fn all_finite(&self, x: &DevBuf) -> Result<bool> {
        let n = x.len();
        if n == 0 {
            return Ok(true);
        }
        let count = self.zeroed(1)?;
        self.launch("count_nonfinite", ew(n), B1, 0, &[p(x), i(n)?, p(&count)])?;
        let bytes = self.download_bytes(count.ptr(), 4)?;
        Ok(u32::from_le_bytes(bytes.try_into().expect("4 bytes")) == 0)
    }
}
