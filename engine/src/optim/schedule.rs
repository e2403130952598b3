//! Learning-rate schedules over an optimiser's groups, as `torch.optim.lr_scheduler`: each
//! `step()` advances the count and sets every group's learning rate from its initial one, with
//! PyTorch's own (recursive where PyTorch's is) formulas so the rates agree to the last bit.

use super::Adam;
use crate::backend::Backend;
use crate::error::{Error, Result};
use serde_json::json;

/// Which schedule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// The learning rates stay as they are.
    Constant,
    /// StepLR: multiply by `gamma` every `step_size` steps (the seed's 15, 0.5 per epoch).
    Step { step_size: usize, gamma: f64 },
    /// CosineAnnealingLR(T_max, eta_min).
    Cosine { t_max: usize, eta_min: f64 },
    /// transformers' get_linear_schedule_with_warmup: 0 → base over `warmup` steps, then linearly
    /// down to 0 at `total` (the usual BERT fine-tuning schedule).
    WarmupLinear { warmup: usize, total: usize },
}

/// When the scheduler steps: once per epoch (the seed's StepLR) or once per optimiser step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interval {
    Epoch,
    Step,
}

/// What a checkpoint keeps of a scheduler: its count and every group's current rate (the
/// recursive formulas need the latter).
#[derive(Clone, Debug, PartialEq)]
pub struct SchedulerState {
    pub last_epoch: usize,
    pub lrs: Vec<f64>,
}

pub struct LrScheduler {
    pub schedule: Schedule,
    pub interval: Interval,
    /// PyTorch's `last_epoch`: how many times `step` ran.
    last_epoch: usize,
    base_lrs: Vec<f64>,
}

impl LrScheduler {
    /// Attaches to `opt`, taking each group's initial learning rate as its base, and sets the
    /// rates for count 0 (LambdaLR-style schedules start below the base, as PyTorch's).
    pub fn new<B: Backend>(schedule: Schedule, interval: Interval, opt: &mut Adam<B>) -> Result<Self> {
        match schedule {
            Schedule::Step { step_size: 0, .. } => return Err(Error::Invalid("StepLR needs step_size ≥ 1".into())),
            Schedule::Cosine { t_max: 0, .. } => return Err(Error::Invalid("cosine schedule needs T_max ≥ 1".into())),
            Schedule::WarmupLinear { warmup, total } if total == 0 || warmup > total => {
                return Err(Error::Invalid(format!("warm-up of {warmup} steps does not fit a total of {total}")));
            }
            _ => {}
        }
        let base_lrs = (0..opt.num_groups()).map(|i| opt.group(i).lr).collect();
        let s = LrScheduler { schedule, interval, last_epoch: 0, base_lrs };
        if let Schedule::WarmupLinear { .. } = schedule {
            s.apply_lambda(opt);
        }
        Ok(s)
    }

    pub fn last_epoch(&self) -> usize {
        self.last_epoch
    }

    /// One scheduler step (`scheduler.step()`).
    pub fn step<B: Backend>(&mut self, opt: &mut Adam<B>) {
        self.last_epoch += 1;
        let t = self.last_epoch;
        match self.schedule {
            Schedule::Constant => {}
            Schedule::Step { step_size, gamma } => {
                if t.is_multiple_of(step_size) {
                    for i in 0..opt.num_groups() {
                        opt.set_lr(i, opt.lr(i) * gamma);
                    }
                }
            }
            Schedule::Cosine { t_max, eta_min } => {
                let pi = std::f64::consts::PI;
                let tm = t_max as f64;
                for i in 0..opt.num_groups() {
                    let (lr, base) = (opt.lr(i), self.base_lrs[i]);
                    let next = if (t as i64 - 1 - t_max as i64).rem_euclid(2 * t_max as i64) == 0 {
                        lr + (base - eta_min) * (1.0 - (pi / tm).cos()) / 2.0
                    } else {
                        (1.0 + (pi * t as f64 / tm).cos()) / (1.0 + (pi * (t - 1) as f64 / tm).cos()) * (lr - eta_min)
                            + eta_min
                    };
                    opt.set_lr(i, next);
                }
            }
            Schedule::WarmupLinear { .. } => self.apply_lambda(opt),
        }
    }

    /// LambdaLR: lr = base · λ(last_epoch).
    fn apply_lambda<B: Backend>(&self, opt: &mut Adam<B>) {
        let Schedule::WarmupLinear { warmup, total } = self.schedule else { return };
        let t = self.last_epoch;
        let factor = if t < warmup {
            t as f64 / warmup.max(1) as f64
        } else {
            (total.saturating_sub(t) as f64 / total.saturating_sub(warmup).max(1) as f64).max(0.0)
        };
        for i in 0..opt.num_groups() {
            opt.set_lr(i, self.base_lrs[i] * factor);
        }
    }

    pub fn state<B: Backend>(&self, opt: &Adam<B>) -> SchedulerState {
        SchedulerState { last_epoch: self.last_epoch, lrs: (0..opt.num_groups()).map(|i| opt.lr(i)).collect() }
    }

    /// Restores a saved count and rates (the optimiser must have the same groups).
    pub fn restore<B: Backend>(&mut self, state: &SchedulerState, opt: &mut Adam<B>) -> Result<()> {
        if state.lrs.len() != opt.num_groups() {
            return Err(Error::Invalid(format!(
                "the saved scheduler has {} parameter groups, this run has {}",
                state.lrs.len(),
                opt.num_groups()
            )));
        }
        self.last_epoch = state.last_epoch;
        for (i, &lr) in state.lrs.iter().enumerate() {
            opt.set_lr(i, lr);
        }
        Ok(())
    }

    /// The scheduler as JSON (for checkpoints).
    pub fn to_json<B: Backend>(&self, opt: &Adam<B>) -> serde_json::Value {
        let s = self.state(opt);
        let kind = match self.schedule {
            Schedule::Constant => json!({"kind": "constant"}),
            Schedule::Step { step_size, gamma } => json!({"kind": "step", "step_size": step_size, "gamma": gamma}),
            Schedule::Cosine { t_max, eta_min } => json!({"kind": "cosine", "t_max": t_max, "eta_min": eta_min}),
            Schedule::WarmupLinear { warmup, total } => {
                json!({"kind": "warmup-linear", "warmup": warmup, "total": total})
            }
        };
        json!({"schedule": kind, "interval": if self.interval == Interval::Epoch { "epoch" } else { "step" },
               "last_epoch": s.last_epoch, "lrs": s.lrs, "base_lrs": self.base_lrs})
    }

    /// Reads the count and rates back from `to_json`'s output.
    pub fn state_from_json(v: &serde_json::Value) -> Result<SchedulerState> {
        let bad = || Error::Invalid(format!("not a saved scheduler: {v}"));
        let last_epoch = v["last_epoch"].as_u64().ok_or_else(bad)? as usize;
        let lrs =
            v["lrs"].as_array().ok_or_else(bad)?.iter().map(|x| x.as_f64().ok_or_else(bad)).collect::<Result<_>>()?;
        Ok(SchedulerState { last_epoch, lrs })
    }
}
