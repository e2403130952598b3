//! The fused Adam/AdamW update: kernels/adam.cu.

use super::{Arg, B1, DevBuf, KernelBackend, ew, f, i, p};
use crate::backend::geom::check_lens;
use crate::backend::{AdamStep, Optim};
use crate::error::Result;

impl Optim for KernelBackend {
    fn adam_update(&self, w: &mut DevBuf, g: &DevBuf, m: &mut DevBuf, v: &mut DevBuf, hp: &AdamStep) -> Result<()> {
        let n = w.len();
        check_lens("adam_update", &[("grad", g.len(), n), ("exp_avg", m.len(), n), ("exp_avg_sq", v.len(), n)])?;
        w.make_unique()?;
        m.make_unique()?;
        v.make_unique()?;
        let t = hp.step as i32;
        let step_size = hp.lr / (1.0 - hp.beta1.powi(t));
        let bc2_sqrt = (1.0 - hp.beta2.powi(t)).sqrt();
        let args = [
            p(w),
            p(g),
            p(m),
            p(v),
            i(n)?,
            f(step_size),
            f(1.0 - hp.beta1),
            f(hp.beta2),
            f(1.0 - hp.beta2),
            f(hp.eps),
            f(hp.weight_decay),
            Arg::I32(hp.decoupled as i32),
            f(bc2_sqrt),
            f(hp.grad_scale),
            f(1.0 - hp.lr * hp.weight_decay),
        ];
        self.launch("adam_update", ew(n), B1, 0, &args)
    }
}
