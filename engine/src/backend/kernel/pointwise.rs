//! Elementwise arithmetic, activations and reductions: kernels/elementwise.cu, reduce.cu.

use super::{Arg, B1, BLOCK, DevBuf, DevMask, KernelBackend, at, at_mask, ew, f, i, p};
use crate::backend::{DeviceBuffer, Pointwise, Reduce, Unary, same_len};
use crate::error::Result;
use std::ops::Range;

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
    /// An elementwise kernel over `len` elements in launches that fit the caps: `args(range)` is
    /// one launch's argument list, its pointers at range.start.
    pub(super) fn elementwise(
        &self,
        k: &'static str,
        len: usize,
        args: impl Fn(Range<usize>) -> Result<Vec<Arg>>,
    ) -> Result<()> {
        for range in self.caps.flat_parts(len) {
            self.launch(k, ew(range.len()), B1, 0, &args(range)?)?;
        }
        Ok(())
    }

    fn binary(&self, k: &'static str, a: &DevBuf, b: &DevBuf) -> Result<DevBuf> {
        same_len(k, a.len(), b.len())?;
        let y = self.buf(a.len())?;
        self.elementwise(k, a.len(), |r| Ok(vec![at(a, r.start), at(b, r.start), at(&y, r.start), i(r.len())?]))?;
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
        let dst = &*dst;
        self.elementwise("add_assign_f32", dst.len(), |r| Ok(vec![at(dst, r.start), at(src, r.start), i(r.len())?]))
    }
    fn scale_assign(&self, x: &mut DevBuf, s: f64) -> Result<()> {
        x.make_unique()?;
        let x = &*x;
        self.elementwise("scale_assign_f32", x.len(), |r| Ok(vec![at(x, r.start), i(r.len())?, f(s)]))
    }
    fn unary_forward(&self, op: Unary, x: &DevBuf) -> Result<DevBuf> {
        let y = self.buf(x.len())?;
        self.elementwise("unary_forward", x.len(), |r| {
            Ok(vec![unary_code(op), at(x, r.start), at(&y, r.start), i(r.len())?])
        })?;
        Ok(y)
    }
    fn unary_backward(&self, op: Unary, x: &DevBuf, y: &DevBuf, dy: &DevBuf) -> Result<DevBuf> {
        let n = dy.len();
        same_len("unary_backward", n, x.len())?;
        same_len("unary_backward", n, y.len())?;
        let dx = self.buf(n)?;
        self.elementwise("unary_backward", n, |r| {
            Ok(vec![unary_code(op), at(x, r.start), at(y, r.start), at(dy, r.start), at(&dx, r.start), i(r.len())?])
        })?;
        Ok(dx)
    }
    fn relu_forward(&self, x: &DevBuf) -> Result<(DevBuf, DevMask)> {
        let n = x.len();
        let (y, m) = (self.buf(n)?, self.mask(n)?);
        self.elementwise("relu_forward_mask", n, |r| {
            Ok(vec![at(x, r.start), at(&y, r.start), at_mask(&m, r.start), i(r.len())?])
        })?;
        Ok((y, m))
    }
    fn relu_backward(&self, mut dy: DevBuf, mask: &DevMask) -> Result<DevBuf> {
        same_len("relu_backward", dy.len(), mask.len())?;
        dy.make_unique()?;
        let d = &dy;
        self.elementwise("relu_backward_mask", d.len(), |r| {
            Ok(vec![at(d, r.start), at_mask(mask, r.start), at(d, r.start), i(r.len())?])
        })?;
        Ok(dy)
    }
    fn dropout_mask(&self, len: usize, prob: f64, seed: u64) -> Result<DevBuf> {
        // One launch: each element's draw hashes its index, which a split would renumber (the
        // masks cover dense features, far below 2³¹; `i` refuses beyond).
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
        // A count per launch: one u32 counter could wrap to 0 over more than 2³² elements.
        for range in self.caps.flat_parts(n) {
            let count = self.zeroed(1)?;
            self.launch("count_nonfinite", ew(range.len()), B1, 0, &[at(x, range.start), i(range.len())?, p(&count)])?;
            let bytes = self.download_bytes(count.ptr(), 4)?;
            if u32::from_le_bytes(bytes.try_into().expect("4 bytes")) != 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
