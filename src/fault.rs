//! Deliberate faults, for testing the checkers themselves (a gradient check that cannot fail
//! proves nothing). `MOODGRAD_INJECT_FAULT=<name>` switches one on for the whole process; it is
//! read once. Never set it outside tests.
//!
//! Faults: `relu_backward` (ReLU's gradient scaled by 1 + 1e-3, a bug finite differences at
//! 1e-5 must catch).

use std::sync::OnceLock;

/// Whether fault `name` was injected.
pub fn injected(name: &str) -> bool {
    static FAULT: OnceLock<Option<String>> = OnceLock::new();
    FAULT.get_or_init(|| std::env::var("MOODGRAD_INJECT_FAULT").ok()).as_deref() == Some(name)
}
