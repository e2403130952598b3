//! The SE excitation MLP: kernels/excite.cu, one launch each way.

use super::{B1, DevBuf, KernelBackend, i, p};
use crate::backend::{Excite, ExciteGeom};
use crate::error::Result;

/// se_excite_backward runs as one block (the batch sums need every sample); 1024 threads
/// (44 registers on sm_90, within the 64 a 1024-thread block allows).
const BACKWARD_BLOCK: [u32; 3] = [1024, 1, 1];
/// Forward blocks: one per sample, grid-stride beyond.
const MAX_SAMPLE_BLOCKS: usize = 4096;

impl KernelBackend {
    fn excite_sizes(g: &ExciteGeom) -> Result<[super::Arg; 3]> {
        Ok([i(g.n)?, i(g.c)?, i(g.hid)?])
    }
}

impl Excite for KernelBackend {
    fn excite_forward(&self, sq: &DevBuf, w1: &DevBuf, w2: &DevBuf, g: &ExciteGeom) -> Result<(DevBuf, DevBuf)> {
        g.check_forward("excite_forward", sq.len(), w1.len(), w2.len())?;
        g.check_i32("excite_forward")?;
        let (hidden, gate) = (self.buf(g.n * g.hid)?, self.buf(g.n * g.c)?);
        if g.n > 0 {
            let mut args = vec![p(sq), p(w1), p(w2), p(&hidden), p(&gate)];
            args.extend(Self::excite_sizes(g)?);
            let grid = [g.n.min(MAX_SAMPLE_BLOCKS) as u32, 1, 1];
            self.launch("se_excite_forward", grid, B1, 0, &args)?;
        }
        Ok((hidden, gate))
    }
    fn excite_backward(
        &self,
        dgate: &DevBuf,
        sq: &DevBuf,
        hidden: &DevBuf,
        gate: &DevBuf,
        w1: &DevBuf,
        w2: &DevBuf,
        g: &ExciteGeom,
    ) -> Result<(DevBuf, DevBuf, DevBuf)> {
        g.check_forward("excite_backward", sq.len(), w1.len(), w2.len())?;
        g.check_backward("excite_backward", dgate.len(), hidden.len(), gate.len())?;
        g.check_i32("excite_backward")?;
        let (dsq, dw1, dw2) = (self.buf(g.n * g.c)?, self.buf(g.hid * g.c)?, self.buf(g.c * g.hid)?);
        if g.n == 0 {
            // Nothing to sum over: the weight gradients are zero.
            return Ok((dsq, self.zeroed(g.hid * g.c)?, self.zeroed(g.c * g.hid)?));
        }
        let dpre = self.buf(g.n * g.hid)?;
        let mut args = vec![p(dgate), p(sq), p(hidden), p(gate), p(w1), p(w2), p(&dpre), p(&dsq), p(&dw1), p(&dw2)];
        args.extend(Self::excite_sizes(g)?);
        self.launch("se_excite_backward", [1, 1, 1], BACKWARD_BLOCK, 0, &args)?;
        Ok((dsq, dw1, dw2))
    }
}
