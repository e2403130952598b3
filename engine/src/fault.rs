//! Deliberate faults, for testing the checkers themselves (a gradient check that cannot fail
//! proves nothing). `MOODGRAD_INJECT_FAULT=<name>` switches one on for the whole process; it is
//! read once. Never set it outside tests.
//!
//! Faults: `relu_backward` (ReLU's gradient scaled by 1 + 1e-3, a bug finite differences at
//! 1e-5 must catch); `nan_loss_epoch_2` (the first target of every batch of epoch 2 is NaN, so the
//! training step's loss is NaN: the loop's stop-and-keep-the-last-good-checkpoint path); `stall_in_epoch_N` (the loop
//! stops before epoch N's first step and waits to be killed, for the kill-and-resume tests).

use std::sync::OnceLock;

/// Whether fault `name` was injected.
pub fn injected(name: &str) -> bool {
    static FAULT: OnceLock<Option<String>> = OnceLock::new();
    FAULT.get_or_init(|| std::env::var("MOODGRAD_INJECT_FAULT").ok()).as_deref() == Some(name)
}

/// N of an injected `stall_in_epoch_N`.
pub fn stall_epoch() -> Option<usize> {
    static FAULT: OnceLock<Option<usize>> = OnceLock::new();
    *FAULT.get_or_init(|| std::env::var("MOODGRAD_INJECT_FAULT").ok()?.strip_prefix("stall_in_epoch_")?.parse().ok())
}
