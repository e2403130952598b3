//! LayerNorm: kernels/layernorm.cu, with `sum_rows` (reduce.cu) adding the γ/β partials.

use super::{B1, BLOCK, DevBuf, KernelBackend, f, i, p, warp_rows};
use crate::backend::geom::check_i32;
use crate::backend::geom_seq::LN_PARAM_CHUNK;
use crate::backend::{ConcatGeom, Dense, LayerNorm, LayerNormGeom, RowsGeom};
use crate::error::Result;

/// CUDA's limit on gridDim.y; the partials kernel grid-strides over chunks beyond it.
const MAX_GRID_Y: usize = 65535;

impl LayerNorm for KernelBackend {
    fn layernorm_forward(
        &self,
        x: &DevBuf,
        gamma: &DevBuf,
        beta: &DevBuf,
        g: &LayerNormGeom,
    ) -> Result<(DevBuf, DevBuf, DevBuf)> {
        let op = "layernorm_forward";
        g.check(op, &[("x", x.len())], &[], &[("gamma", gamma.len()), ("beta", beta.len())])?;
        g.check_i32(op)?;
        let (y, mean, invstd) = (self.buf(g.len())?, self.buf(g.rows)?, self.buf(g.rows)?);
        if g.rows > 0 {
            let args = [p(x), p(gamma), p(beta), p(&y), p(&mean), p(&invstd), i(g.rows)?, i(g.cols)?, f(g.eps)];
            self.launch(op, warp_rows(g.rows), B1, 0, &args)?;
        }
        Ok((y, mean, invstd))
    }
    fn layernorm_backward(
        &self,
        dy: &DevBuf,
        x: &DevBuf,
        gamma: &DevBuf,
        mean: &DevBuf,
        invstd: &DevBuf,
        g: &LayerNormGeom,
    ) -> Result<(DevBuf, DevBuf, DevBuf)> {
        let op = "layernorm_backward";
        g.check(
            op,
            &[("dy", dy.len()), ("x", x.len())],
            &[("mean", mean.len()), ("invstd", invstd.len())],
            &[("gamma", gamma.len())],
        )?;
        g.check_i32(op)?;
        let chunks = g.rows.div_ceil(LN_PARAM_CHUNK);
        check_i32(op, "the γ/β partials", chunks * 2 * g.cols, 0)?;
        let dx = self.buf(g.len())?;
        if g.rows == 0 {
            return Ok((dx, self.zeroed(g.cols)?, self.zeroed(g.cols)?));
        }
        let (rows, cols) = (i(g.rows)?, i(g.cols)?);
        let args = [p(dy), p(x), p(gamma), p(mean), p(invstd), p(&dx), rows, cols];
        self.launch("layernorm_backward_input", warp_rows(g.rows), B1, 0, &args)?;
        let partial = self.buf(chunks * 2 * g.cols)?;
        let grid = [g.cols.div_ceil(BLOCK as usize).max(1) as u32, chunks.min(MAX_GRID_Y) as u32, 1];
        let args = [p(dy), p(x), p(mean), p(invstd), p(&partial), rows, cols, i(LN_PARAM_CHUNK)?];
        self.launch("layernorm_backward_params", grid, B1, 0, &args)?;
        let sums = self.sum_rows(&partial, &RowsGeom { rows: chunks, cols: 2 * g.cols })?;
        let (dgamma, dbeta) = self.split_cols(&sums, &ConcatGeom { rows: 1, left: g.cols, right: g.cols })?;
        Ok((dx, dgamma, dbeta))
    }
}
