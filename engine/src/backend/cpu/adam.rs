//! Adam/AdamW, written as `torch.optim.Adam`'s single-tensor path so results match it closely.

use super::HostBuf;
use crate::backend::AdamStep;
use crate::backend::DeviceBuffer;
use crate::backend::geom::check_lens;
use crate::error::Result;
use crate::float::Float;
use rayon::prelude::*;

pub fn update<T: Float>(w: &mut [T], g: &[T], m: &mut [T], v: &mut [T], hp: &AdamStep) {
    let t = hp.step as i32;
    let bc1 = 1.0 - hp.beta1.powi(t);
    let bc2_sqrt = (1.0 - hp.beta2.powi(t)).sqrt();
    let step_size = T::from_f64(hp.lr / bc1);
    let (b1c, b2, b2c) = (T::from_f64(1.0 - hp.beta1), T::from_f64(hp.beta2), T::from_f64(1.0 - hp.beta2));
    let (eps, wd, scale, bc2s) =
        (T::from_f64(hp.eps), T::from_f64(hp.weight_decay), T::from_f64(hp.grad_scale), T::from_f64(bc2_sqrt));
    let decay = T::from_f64(1.0 - hp.lr * hp.weight_decay);
    w.par_iter_mut().zip(g.par_iter()).zip(m.par_iter_mut().zip(v.par_iter_mut())).for_each(|((wi, &gi), (mi, vi))| {
        // The clip coefficient multiplies the stored gradient first, as clip_grad_norm_ does.
        let mut gi = gi * scale;
        if hp.decoupled {
            *wi *= decay;
        } else if hp.weight_decay != 0.0 {
            gi += wd * *wi;
        }
        // exp_avg.lerp_(grad, 1 - beta1)
        *mi += b1c * (gi - *mi);
        // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        *vi = *vi * b2 + b2c * gi * gi;
        let denom = vi.sqrt() / bc2s + eps;
        *wi -= step_size * (*mi / denom);
    });
}

impl<T: Float> crate::backend::Optim for super::Cpu<T> {
    fn adam_update(
        &self,
        w: &mut HostBuf<T>,
        g: &HostBuf<T>,
        m: &mut HostBuf<T>,
        v: &mut HostBuf<T>,
        hp: &AdamStep,
    ) -> Result<()> {
        let n = w.len();
        check_lens("adam_update", &[("grad", g.len(), n), ("exp_avg", m.len(), n), ("exp_avg_sq", v.len(), n)])?;
        update(w.make_mut(), g, m.make_mut(), v.make_mut(), hp);
        Ok(())
    }
}
