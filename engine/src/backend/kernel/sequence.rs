//! Embedding lookups and slices: kernels/sequence.cu.

use super::{B1, DevBuf, KernelBackend, ew, i, p};
use crate::backend::{EmbedGeom, NarrowGeom, Sequence};
use crate::error::Result;

impl Sequence for KernelBackend {
    fn embedding_forward(&self, table: &DevBuf, ids: &DevBuf, g: &EmbedGeom) -> Result<DevBuf> {
        let op = "embedding_forward";
        g.check_forward(table.len(), ids.len())?;
        g.check_i32(op)?;
        let y = self.buf(g.output_len())?;
        if g.output_len() > 0 {
            let args = [p(table), p(ids), p(&y), i(g.tokens)?, i(g.vocab)?, i(g.dim)?];
            self.launch(op, ew(g.output_len()), B1, 0, &args)?;
        }
        Ok(y)
    }
    fn embedding_backward(&self, dy: &DevBuf, order: &DevBuf, offsets: &DevBuf, g: &EmbedGeom) -> Result<DevBuf> {
        let op = "embedding_backward";
        // The grouping itself (rising offsets, positions < tokens) is the op's contract: it is
        // built on the host next to the ids (ops::embedding), and the CPU backend checks it.
        g.check_backward(dy.len(), order.len(), offsets.len())?;
        g.check_i32(op)?;
        let dt = self.buf(g.table_len())?;
        if g.table_len() > 0 {
            let args = [p(dy), p(order), p(offsets), p(&dt), i(g.vocab)?, i(g.dim)?];
            self.launch(op, ew(g.table_len()), B1, 0, &args)?;
        }
        Ok(dt)
    }
    fn narrow_forward(&self, x: &DevBuf, g: &NarrowGeom) -> Result<DevBuf> {
        let op = "narrow_forward";
        g.check_forward(x.len())?;
        g.check_i32(op)?;
        let y = self.buf(g.output_len())?;
        if g.output_len() > 0 {
            let args = [p(x), p(&y), i(g.outer)?, i(g.dim)?, i(g.inner)?, i(g.start)?, i(g.len)?];
            self.launch(op, ew(g.output_len()), B1, 0, &args)?;
        }
        Ok(y)
    }
    fn narrow_backward(&self, dy: &DevBuf, g: &NarrowGeom) -> Result<DevBuf> {
        let op = "narrow_backward";
        g.check_backward(dy.len())?;
        g.check_i32(op)?;
        let dx = self.buf(g.input_len())?;
        if g.input_len() > 0 {
            let args = [p(dy), p(&dx), i(g.outer)?, i(g.dim)?, i(g.inner)?, i(g.start)?, i(g.len)?];
            self.launch(op, ew(g.input_len()), B1, 0, &args)?;
        }
        Ok(dx)
    }
}
