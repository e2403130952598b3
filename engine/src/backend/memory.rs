//! Live and peak bytes of a backend's buffers and workspaces: the counting allocator's ledger.
//!
//! Every backend owns one `MemCounter` (shared by its clones). Each buffer registers its bytes
//! when it is allocated and releases them when its last handle drops; a workspace that lives only
//! inside one primitive registers itself for the duration of the call (`MemCounter::scoped`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A snapshot of a backend's memory ledger.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemStats {
    /// Bytes held by live buffers and workspaces now.
    pub live_bytes: usize,
    /// The most `live_bytes` has been since the backend was made or `reset_peak` was called.
    pub peak_bytes: usize,
    /// Bytes the device holds from its driver (live plus a caching pool's free blocks); equal to
    /// `live_bytes` where there is no pool.
    pub reserved_bytes: usize,
}

/// The ledger itself: atomic, so buffers dropped on any thread update it.
#[derive(Debug, Default)]
pub struct MemCounter {
    live: AtomicUsize,
    peak: AtomicUsize,
}

impl MemCounter {
    pub fn new() -> Arc<Self> {
        Arc::new(MemCounter::default())
    }

    pub fn alloc(&self, bytes: usize) {
        let now = self.live.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    pub fn free(&self, bytes: usize) {
        self.live.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Registers `bytes` until the returned guard drops (a primitive's private workspace).
    pub fn scoped(self: &Arc<Self>, bytes: usize) -> Scoped {
        self.alloc(bytes);
        Scoped { counter: self.clone(), bytes }
    }

    pub fn stats(&self) -> MemStats {
        let live = self.live.load(Ordering::Relaxed);
        MemStats { live_bytes: live, peak_bytes: self.peak.load(Ordering::Relaxed), reserved_bytes: live }
    }

    /// Starts a new peak measurement from what is live now.
    pub fn reset_peak(&self) {
        self.peak.store(self.live.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// A workspace's registration; releases its bytes when dropped.
#[must_use = "the workspace is counted only while the guard lives"]
pub struct Scoped {
    counter: Arc<MemCounter>,
    bytes: usize,
}

impl Drop for Scoped {
    fn drop(&mut self) {
        self.counter.free(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_follows_live_and_scoped_releases() {
        let m = MemCounter::new();
        m.alloc(100);
        {
            let _w = m.scoped(50);
            assert_eq!(m.stats().live_bytes, 150);
        }
        m.free(100);
        let s = m.stats();
        assert_eq!((s.live_bytes, s.peak_bytes), (0, 150));
        m.reset_peak();
        assert_eq!(m.stats().peak_bytes, 0);
    }
}
