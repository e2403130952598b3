//! The config's `[train] scheduler` as an `optim::LrScheduler` (PyTorch's formulas, tested
//! against `torch.optim.lr_scheduler` in tests/optim_golden.rs):
//! - `step`: StepLR(step_size, gamma), stepped once per epoch (the seed's 15, 0.5).
//! - `cosine`: CosineAnnealingLR(T_max = epochs, eta_min = 0), stepped once per epoch.
//! - `warmup-linear`: transformers' `get_linear_schedule_with_warmup`, stepped once per optimiser
//!   step as BERT fine-tuning uses it: warm-up over `warmup_epochs` epochs' steps, then linearly to
//!   0 at the last step.

use super::config::{Scheduler, TrainSection};
use crate::optim::{Interval, Schedule};

pub fn schedule_for(train: &TrainSection, steps_per_epoch: usize) -> (Schedule, Interval) {
    match train.scheduler {
        Scheduler::Step => (Schedule::Step { step_size: train.step_size, gamma: train.gamma }, Interval::Epoch),
        Scheduler::Cosine => (Schedule::Cosine { t_max: train.epochs, eta_min: 0.0 }, Interval::Epoch),
        Scheduler::WarmupLinear => (
            Schedule::WarmupLinear {
                warmup: train.warmup_epochs * steps_per_epoch,
                total: train.epochs * steps_per_epoch,
            },
            Interval::Step,
        ),
    }
}
