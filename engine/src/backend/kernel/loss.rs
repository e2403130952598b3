//! Losses: kernels/loss.cu.

use super::{B1, DevBuf, KernelBackend, ew, i, p};
use crate::backend::geom::check_lens;
use crate::backend::{Loss, RowsGeom, same_len};
use crate::error::Result;

impl KernelBackend {
    fn scalar_out(&self, k: &'static str, a: &DevBuf, b: &DevBuf) -> Result<DevBuf> {
        same_len(k, a.len(), b.len())?;
        let out = self.buf(1)?;
        self.launch(k, [1, 1, 1], B1, 0, &[p(a), p(b), p(&out), i(a.len())?])?;
        Ok(out)
    }

    fn loss_backward(&self, k: &'static str, pr: &DevBuf, t: &DevBuf, dl: &DevBuf) -> Result<DevBuf> {
        same_len(k, pr.len(), t.len())?;
        check_lens(k, &[("dl", dl.len(), 1)])?;
        let n = pr.len();
        let dp = self.buf(n)?;
        self.launch(k, ew(n), B1, 0, &[p(pr), p(t), p(dl), p(&dp), i(n)?])?;
        Ok(dp)
    }
}

impl Loss for KernelBackend {
    fn mse_forward(&self, pred: &DevBuf, target: &DevBuf) -> Result<DevBuf> {
        self.scalar_out("mse_forward", pred, target)
    }
    fn mse_backward(&self, pred: &DevBuf, target: &DevBuf, dl: &DevBuf) -> Result<DevBuf> {
        self.loss_backward("mse_backward", pred, target, dl)
    }
    fn l1_forward(&self, pred: &DevBuf, target: &DevBuf) -> Result<DevBuf> {
        self.scalar_out("l1_forward", pred, target)
    }
    fn l1_backward(&self, pred: &DevBuf, target: &DevBuf, dl: &DevBuf) -> Result<DevBuf> {
        self.loss_backward("l1_backward", pred, target, dl)
    }
    fn cross_entropy_forward(&self, logits: &DevBuf, labels: &DevBuf, g: &RowsGeom) -> Result<DevBuf> {
        g.check("cross_entropy_forward", logits.len(), None, Some(labels.len()))?;
        let out = self.buf(1)?;
        let args = [p(logits), p(labels), p(&out), i(g.rows)?, i(g.cols)?];
        self.launch("cross_entropy_forward", [1, 1, 1], B1, 0, &args)?;
        Ok(out)
    }
    fn cross_entropy_backward(&self, logits: &DevBuf, labels: &DevBuf, g: &RowsGeom, dl: &DevBuf) -> Result<DevBuf> {
        g.check("cross_entropy_backward", logits.len(), None, Some(labels.len()))?;
        check_lens("cross_entropy_backward", &[("dl", dl.len(), 1)])?;
        let dx = self.buf(g.len())?;
        let args = [p(logits), p(labels), p(dl), p(&dx), i(g.rows)?, i(g.cols)?];
        self.launch("cross_entropy_backward", super::warp_rows(g.rows), B1, 0, &args)?;
        Ok(dx)
    }
}
