//! Optimisation as `torch.optim`: Adam/AdamW over named parameter groups, learning-rate
//! schedules over those groups, and global gradient-norm clipping as
//! `torch.nn.utils.clip_grad_norm_(max_norm, norm_type=2)`.

mod adam;
mod clip;
mod schedule;

pub use adam::{Adam, AdamConfig, ParamGroup};
pub use clip::{clip_coefficient, grad_norm};
pub use schedule::{Interval, LrScheduler, Schedule, SchedulerState};
