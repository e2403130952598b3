//! The kernel backend's caching allocator: device blocks are kept in free lists keyed by their
//! rounded size and handed out again, so a training step allocates from the driver only until
//! its working set is cached (no cuMemAlloc/cuMemFree per tensor).
//!
//! Sizes are rounded up to 512 B below 1 MiB and to whole 2 MiB above (PyTorch's classes); a
//! request takes a cached block of exactly its rounded size. When the driver reports out of
//! memory, every cached block is returned to the driver and the allocation is tried once more
//! before `Error::OutOfMemory` is reported.
//!
//! Reuse without synchronisation is safe because everything runs on one stream: a block freed
//! here was last used by work already queued on that stream, and the next user's work is queued
//! after it, so the device runs them in order. Host-side copies do not break this: uploads copy
//! from a pinned staging buffer that the device owns (the source block on the host side is never
//! a pool block), and downloads synchronise before returning while the caller still holds the
//! buffer. Only handing a block back to the driver needs the stream idle, so `empty_cache` and the
//! retry after an out-of-memory synchronise first.
//!
//! The ledger (`MemCounter`) counts whole blocks: live = blocks handed out (buffers and any
//! scratch a primitive allocates through `KernelBackend`), reserved = live + cached.

use super::{DevBuf, KernelBackend, RawDevice};
use crate::backend::memory::{MemCounter, MemStats};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Requests up to this size are rounded to `SMALL_STEP`, larger ones to `LARGE_STEP`.
const SMALL_LIMIT: usize = 1 << 20;
const SMALL_STEP: usize = 512;
const LARGE_STEP: usize = 2 << 20;

/// The size of the block that serves a request of `bytes` (> 0).
pub fn block_size(bytes: usize) -> Result<usize> {
    let step = if bytes <= SMALL_LIMIT { SMALL_STEP } else { LARGE_STEP };
    bytes
        .checked_next_multiple_of(step)
        .ok_or_else(|| Error::Device(format!("an allocation of {bytes} bytes is larger than any device")))
}

/// Counters of the pool's traffic with the driver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolCounts {
    /// Allocations the driver was asked for.
    pub driver_allocs: u64,
    /// Blocks given back to the driver.
    pub driver_frees: u64,
    /// Requests served from a cached block.
    pub reuses: u64,
    /// Bytes in cached (free) blocks now.
    pub cached_bytes: usize,
}

#[derive(Default)]
struct Cache {
    free: HashMap<usize, Vec<u64>>,
    reserved: usize,
    counts: PoolCounts,
}

pub struct Pool {
    dev: Arc<dyn RawDevice>,
    ledger: Arc<MemCounter>,
    cache: Mutex<Cache>,
}

impl Pool {
    pub fn new(dev: Arc<dyn RawDevice>) -> Arc<Pool> {
        Arc::new(Pool { dev, ledger: MemCounter::new(), cache: Mutex::new(Cache::default()) })
    }

    pub fn device(&self) -> &Arc<dyn RawDevice> {
        &self.dev
    }

    /// The ledger, for a primitive that registers a workspace it did not get from the pool.
    pub fn ledger(&self) -> &Arc<MemCounter> {
        &self.ledger
    }

    /// The ledger and cache state stay consistent even if a thread panicked holding the lock
    /// (every update is a few plain assignments), so a poisoned lock is simply taken.
    fn lock(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A block of at least `bytes` (> 0) bytes: (address, block size).
    pub fn alloc(&self, bytes: usize) -> Result<(u64, usize)> {
        let size = block_size(bytes)?;
        let mut c = self.lock();
        if let Some(ptr) = c.free.get_mut(&size).and_then(Vec::pop) {
            c.counts.cached_bytes -= size;
            c.counts.reuses += 1;
            self.dev.recycled(ptr, size);
            self.ledger.alloc(size);
            return Ok((ptr, size));
        }
        let ptr = match self.dev.alloc(size) {
            Err(Error::OutOfMemory { .. }) if c.counts.cached_bytes > 0 => {
                self.release_cached(&mut c)?;
                self.dev.alloc(size)
            }
            r => r,
        }
        .map_err(|e| match e {
            Error::OutOfMemory { device, requested, free, total, .. } => {
                Error::OutOfMemory { device, requested, free, total, live: self.ledger.stats().live_bytes }
            }
            e => e,
        })?;
        c.reserved += size;
        c.counts.driver_allocs += 1;
        self.ledger.alloc(size);
        Ok((ptr, size))
    }

    /// Takes back a block from `alloc` (called when its last `DevBuf` drops).
    pub fn release(&self, ptr: u64, size: usize) {
        let mut c = self.lock();
        c.free.entry(size).or_default().push(ptr);
        c.counts.cached_bytes += size;
        self.ledger.free(size);
    }

    /// Returns every cached block to the driver, after the queued work that may still use them.
    pub fn empty_cache(&self) -> Result<()> {
        let mut c = self.lock();
        self.release_cached(&mut c)
    }

    fn release_cached(&self, c: &mut Cache) -> Result<()> {
        if c.counts.cached_bytes == 0 {
            return Ok(());
        }
        self.dev.synchronize()?;
        for (size, ptrs) in c.free.drain() {
            for ptr in ptrs {
                self.dev.free(ptr, size);
                c.reserved -= size;
                c.counts.driver_frees += 1;
            }
        }
        c.counts.cached_bytes = 0;
        Ok(())
    }

    pub fn stats(&self) -> MemStats {
        let reserved = self.lock().reserved;
        MemStats { reserved_bytes: reserved, ..self.ledger.stats() }
    }

    pub fn counts(&self) -> PoolCounts {
        self.lock().counts
    }

    pub fn reset_peak(&self) {
        self.ledger.reset_peak();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Every DevBuf holds the pool, so only cached blocks are left. A failed synchronise means
        // the context is broken; the driver then reclaims the memory with the context.
        let _ = self.empty_cache();
    }
}

/// The backend's memory: the ledger and its cache.
impl KernelBackend {
    /// Gives every cached free block back to the driver (after the queued work finishes).
    pub fn empty_cache(&self) -> Result<()> {
        self.pool.empty_cache()
    }

    /// The allocator's traffic with the driver (for tests and the bench's report).
    pub fn pool_counts(&self) -> PoolCounts {
        self.pool.counts()
    }

    /// A buffer of `len` 4-byte elements from the pool (uninitialised).
    pub fn alloc_buf(&self, len: usize) -> Result<DevBuf> {
        DevBuf::new(&self.pool, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_to_their_class() {
        assert_eq!(block_size(1).unwrap(), 512);
        assert_eq!(block_size(512).unwrap(), 512);
        assert_eq!(block_size(513).unwrap(), 1024);
        assert_eq!(block_size(1 << 20).unwrap(), 1 << 20);
        assert_eq!(block_size((1 << 20) + 1).unwrap(), 2 << 20);
        assert_eq!(block_size((5 << 20) + 7).unwrap(), 6 << 20);
        assert!(block_size(usize::MAX).is_err());
    }
}
