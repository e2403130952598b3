//! The attention family: cuBLAS strided-batched products (the host GEMM on sim) and
//! kernels/attention.cu.

use super::{B1, DevBuf, KernelBackend, ew, f, i, p, warp_rows};
use crate::backend::{Attention, BmmGeom, HeadsGeom, SoftmaxGeom};
use crate::error::Result;

impl KernelBackend {
    fn permute_heads(&self, k: &'static str, x: &DevBuf, g: &HeadsGeom) -> Result<DevBuf> {
        g.check(k, x.len())?;
        g.check_i32(k)?;
        let y = self.buf(g.len())?;
        if !g.is_empty() {
            let args = [p(x), p(&y), i(g.batch)?, i(g.seq)?, i(g.heads)?, i(g.head_dim)?];
            self.launch(k, ew(g.len()), B1, 0, &args)?;
        }
        Ok(y)
    }
}

impl Attention for KernelBackend {
    fn bmm(&self, a: &DevBuf, b: &DevBuf, g: &BmmGeom) -> Result<DevBuf> {
        g.check(a.len(), b.len())?;
        g.check_i32()?;
        if g.k == 0 {
            return self.zeroed(g.c_len());
        }
        let c = self.buf(g.c_len())?;
        if g.c_len() > 0 {
            self.dev.gemm_batched(a.ptr(), b.ptr(), c.ptr(), g)?;
        }
        Ok(c)
    }
    fn masked_softmax_forward(&self, scores: &DevBuf, key_mask: &DevBuf, g: &SoftmaxGeom) -> Result<DevBuf> {
        let op = "masked_softmax_forward";
        g.check(op, &[("scores", scores.len())], Some(key_mask.len()))?;
        g.check_i32(op)?;
        let probs = self.buf(g.len())?;
        if !g.is_empty() {
            let args = [p(scores), p(key_mask), p(&probs), i(g.rows())?, i(g.k)?, i(g.heads * g.q)?, f(g.scale)];
            self.launch(op, warp_rows(g.rows()), B1, 0, &args)?;
        }
        Ok(probs)
    }
    fn masked_softmax_backward(&self, probs: &DevBuf, dprobs: &DevBuf, g: &SoftmaxGeom) -> Result<DevBuf> {
        let op = "masked_softmax_backward";
        g.check(op, &[("probs", probs.len()), ("dprobs", dprobs.len())], None)?;
        g.check_i32(op)?;
        let ds = self.buf(g.len())?;
        if !g.is_empty() {
            let args = [p(probs), p(dprobs), p(&ds), i(g.rows())?, i(g.k)?, f(g.scale)];
            self.launch(op, warp_rows(g.rows()), B1, 0, &args)?;
        }
        Ok(ds)
    }
    fn split_heads(&self, x: &DevBuf, g: &HeadsGeom) -> Result<DevBuf> {
        self.permute_heads("split_heads", x, g)
    }
    fn merge_heads(&self, x: &DevBuf, g: &HeadsGeom) -> Result<DevBuf> {
        self.permute_heads("merge_heads", x, g)
    }
}
