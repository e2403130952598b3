//! The CPU backend's buffer: a shared, counted, copy-on-write vector.
//!
//! Cloning a `HostBuf` shares its storage (a reference-count bump, like a device pointer held
//! twice), so a tape can save an activation or a parameter without copying it. Every allocation
//! is registered in the backend's `MemCounter` and released when the last handle drops.

use crate::backend::DeviceBuffer;
use crate::backend::memory::MemCounter;
use std::ops::Deref;
use std::sync::Arc;

struct Block<T> {
    data: Vec<T>,
    ledger: Arc<MemCounter>,
}

impl<T> Block<T> {
    fn bytes(&self) -> usize {
        self.data.capacity() * std::mem::size_of::<T>()
    }
}

impl<T> Drop for Block<T> {
    fn drop(&mut self) {
        self.ledger.free(self.bytes());
    }
}

/// A counted host buffer; `Deref`s to `[T]`.
pub struct HostBuf<T> {
    block: Arc<Block<T>>,
}

impl<T> Clone for HostBuf<T> {
    fn clone(&self) -> Self {
        HostBuf { block: self.block.clone() }
    }
}

impl<T: Copy + Send + Sync + 'static> HostBuf<T> {
    /// Takes ownership of `data`, registering its bytes in `ledger`.
    pub fn new(mut data: Vec<T>, ledger: &Arc<MemCounter>) -> Self {
        // Small collects round their capacity up (to 4 elements); trimming keeps every buffer at
        // exactly its length, so the ledger's figures are the tensors' sizes.
        data.shrink_to_fit();
        let block = Block { data, ledger: ledger.clone() };
        ledger.alloc(block.bytes());
        HostBuf { block: Arc::new(block) }
    }

    /// Mutable access; copies the storage first when another handle shares it (copy on write).
    pub fn make_mut(&mut self) -> &mut [T] {
        if Arc::get_mut(&mut self.block).is_none() {
            *self = HostBuf::new(self.block.data.clone(), &self.block.ledger);
        }
        &mut Arc::get_mut(&mut self.block).expect("a fresh block is unique").data
    }

    /// Whether no other handle shares this storage (an in-place write costs no copy).
    pub fn is_unique(&self) -> bool {
        Arc::strong_count(&self.block) == 1
    }

    pub fn to_vec(&self) -> Vec<T> {
        self.block.data.clone()
    }
}

impl<T> Deref for HostBuf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.block.data
    }
}

impl<T: Copy + Send + Sync + 'static> DeviceBuffer for HostBuf<T> {
    fn len(&self) -> usize {
        self.block.data.len()
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for HostBuf<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.block.data.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_and_writes_copy_only_when_shared() {
        let ledger = MemCounter::new();
        let mut a = HostBuf::new(vec![1f32; 4], &ledger);
        assert_eq!(ledger.stats().live_bytes, 16);
        let b = a.clone();
        assert_eq!(ledger.stats().live_bytes, 16, "a clone is a shared handle");
        a.make_mut()[0] = 5.0;
        assert_eq!((a[0], b[0]), (5.0, 1.0));
        assert_eq!(ledger.stats().live_bytes, 32, "the write copied the shared block");
        drop(b);
        assert!(a.is_unique());
        a.make_mut()[1] = 7.0;
        assert_eq!(ledger.stats().live_bytes, 16, "a unique block is written in place");
        drop(a);
        assert_eq!(ledger.stats().live_bytes, 0);
    }
}
