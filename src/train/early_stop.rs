//! Early stopping on the mean validation loss, as the seed does it (strictly lower is better;
//! stop once `patience` epochs in a row were not), plus which epoch's weights the run ends with.
//!
//! Epochs are numbered from 1, as the seed printed them and as `log.jsonl` records them.
//! With `Restore::Best` the trainer keeps a deep copy of the weights whenever `observe` says
//! `improved`, and restores it at the end. With `Restore::Last` (the seed's bug: its
//! `state_dict().copy()` was shallow, so the "best" snapshot followed the live weights) the run
//! ends with the last epoch's weights, and `restored_epoch` says so; `best` still reports the
//! epoch that truly had the lowest validation loss.
//!
//! The whole state is (de)serialisable, so a checkpoint can carry it and a resumed run stops
//! exactly where an uninterrupted one would.

use super::config::Restore;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    pub patience: usize,
    pub restore: Restore,
    /// Lowest validation loss so far and its epoch (None before the first finite loss).
    best: Option<(usize, f64)>,
    /// Epochs since the last improvement.
    bad_epochs: usize,
    last_epoch: Option<usize>,
}

/// What one epoch's validation loss means for the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Lower than every earlier epoch's: keep a snapshot of these weights.
    pub improved: bool,
    /// Patience ran out: stop after this epoch.
    pub stop: bool,
}

impl EarlyStopping {
    pub fn new(patience: usize, restore: Restore) -> Self {
        EarlyStopping { patience, restore, best: None, bad_epochs: 0, last_epoch: None }
    }

    /// Records epoch `epoch`'s mean validation loss. A NaN or infinite loss never improves (the
    /// seed's `loss < best` is false for NaN too).
    pub fn observe(&mut self, epoch: usize, val_loss: f64) -> Verdict {
        self.last_epoch = Some(epoch);
        let improved = val_loss.is_finite() && self.best.is_none_or(|(_, b)| val_loss < b);
        if improved {
            self.best = Some((epoch, val_loss));
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
        }
        Verdict { improved, stop: self.bad_epochs >= self.patience }
    }

    /// The epoch with the lowest validation loss, and that loss.
    pub fn best(&self) -> Option<(usize, f64)> {
        self.best
    }

    /// The epoch whose weights the run ends with: the best one, or (legacy) the last one.
    pub fn restored_epoch(&self) -> Option<usize> {
        match self.restore {
            Restore::Best => self.best.map(|b| b.0).or(self.last_epoch),
            Restore::Last => self.last_epoch,
        }
    }

    /// Whether the trainer must keep snapshots at all (not in legacy mode).
    pub fn keeps_snapshots(&self) -> bool {
        self.restore == Restore::Best
    }

    pub fn last_epoch(&self) -> Option<usize> {
        self.last_epoch
    }

    pub fn bad_epochs(&self) -> usize {
        self.bad_epochs
    }
}
