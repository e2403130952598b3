//! Dense products (cuBLAS, or the host GEMM on sim) and row/column bookkeeping:
//! kernels/elementwise.cu, reduce.cu.

use super::{B1, BLOCK, DevBuf, KernelBackend, ew, i, p};
use crate::backend::geom::check_lens;
use crate::backend::{ConcatGeom, Dense, MatmulGeom, RowsGeom};
use crate::error::Result;

impl Dense for KernelBackend {
    fn matmul(&self, a: &DevBuf, b: &DevBuf, g: &MatmulGeom) -> Result<DevBuf> {
        g.check(a.len(), b.len())?;
        g.check_i32()?;
        if g.k == 0 {
            return self.zeroed(g.m * g.n);
        }
        let c = self.buf(g.m * g.n)?;
        if g.m * g.n > 0 {
            self.dev.gemm(a.ptr(), b.ptr(), c.ptr(), g.m, g.k, g.n, g.ta, g.tb)?;
        }
        Ok(c)
    }
    fn add_row_bias(&self, y: &mut DevBuf, bias: &DevBuf, g: &RowsGeom) -> Result<()> {
        g.check("add_row_bias", y.len(), Some(bias.len()), None)?;
        y.make_unique()?;
        self.launch("add_row_bias", ew(g.len()), B1, 0, &[p(y), p(bias), i(g.rows)?, i(g.cols)?])
    }
    fn sum_rows(&self, x: &DevBuf, g: &RowsGeom) -> Result<DevBuf> {
        g.check("sum_rows", x.len(), None, None)?;
        let out = self.buf(g.cols)?;
        let grid = [g.cols.div_ceil(BLOCK as usize).max(1) as u32, 1, 1];
        self.launch("sum_rows", grid, B1, 0, &[p(x), p(&out), i(g.rows)?, i(g.cols)?])?;
        Ok(out)
    }
    fn concat_cols(&self, a: &DevBuf, b: &DevBuf, g: &ConcatGeom) -> Result<DevBuf> {
        g.check("concat_cols", a.len(), b.len(), None)?;
        let total = g.rows * g.width();
        let y = self.buf(total)?;
        self.launch("concat_cols", ew(total), B1, 0, &[p(a), p(b), p(&y), i(g.rows)?, i(g.left)?, i(g.right)?])?;
        Ok(y)
    }
    fn split_cols(&self, x: &DevBuf, g: &ConcatGeom) -> Result<(DevBuf, DevBuf)> {
        let total = g.rows * g.width();
        check_lens("split_cols", &[("x", x.len(), total)])?;
        let (a, b) = (self.buf(g.rows * g.left)?, self.buf(g.rows * g.right)?);
        self.launch("split_cols", ew(total), B1, 0, &[p(x), p(&a), p(&b), i(g.rows)?, i(g.left)?, i(g.right)?])?;
        Ok((a, b))
    }
}
