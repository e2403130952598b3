//! Learning-rate schedules, stepped once per epoch like the seed's `StepLR`.
//!
//! `lr_factor(train, e)` multiplies every group's base learning rate during epoch `e` (0-based):
//! - `step`: `gamma^floor(e / step_size)` (PyTorch `StepLR`).
//! - `cosine`: `(1 + cos(π·e / epochs)) / 2` (PyTorch `CosineAnnealingLR`, `T_max = epochs`,
//!   `eta_min = 0`).
//! - `warmup-linear`: with w = `warmup_epochs` and T = `epochs`, `(e + 1) / (w + 1)` while
//!   `e < w`, then `(T − e) / (T − w)`: up to 1 at epoch w, then down by equal steps to 1/(T − w)
//!   in the last epoch. (Per-epoch stepping, unlike HF's per-batch `get_linear_schedule_with_warmup`;
//!   it never yields a zero learning rate, so no epoch is wasted.)

use super::config::{Scheduler, TrainSection};

pub fn lr_factor(train: &TrainSection, epoch: usize) -> f64 {
    match train.scheduler {
        Scheduler::Step => train.gamma.powi((epoch / train.step_size.max(1)) as i32),
        Scheduler::Cosine => (1.0 + (std::f64::consts::PI * epoch as f64 / train.epochs.max(1) as f64).cos()) / 2.0,
        Scheduler::WarmupLinear => {
            let (e, w, t) = (epoch as f64, train.warmup_epochs as f64, train.epochs as f64);
            if epoch < train.warmup_epochs { (e + 1.0) / (w + 1.0) } else { ((t - e) / (t - w)).max(0.0) }
        }
    }
}
