//! The kernel backend's caching allocator on the simulator (the CUDA device runs the same pool):
//! reuse without a new driver allocation, the live/peak/reserved ledger, the out-of-memory error
//! under a memory cap, and the retry after emptying the cache. Block sizes: requests round up to
//! 512 B below 1 MiB and to 2 MiB multiples above (pool.rs).

use moodgrad::backend::kernel::KernelBackend;
use moodgrad::backend::kernel::sim::SimDevice;
use moodgrad::backend::memory::MemStats;
use moodgrad::backend::prelude::*;
use moodgrad::error::Error;
use std::sync::Arc;

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

fn backend(sim: SimDevice) -> (Arc<SimDevice>, KernelBackend) {
    let sim = Arc::new(sim);
    (sim.clone(), KernelBackend::new(sim))
}

fn stats(live: usize, peak: usize, reserved: usize) -> MemStats {
    MemStats { live_bytes: live, peak_bytes: peak, reserved_bytes: reserved }
}

#[test]
fn a_freed_block_is_reused_without_a_driver_allocation_and_comes_back_poisoned() {
    let (sim, kb) = backend(SimDevice::new());
    let a = kb.upload(&[1.5; 1000]).unwrap(); // 4000 B -> a 4096 B block
    let ptr = a.ptr();
    assert_eq!(sim.driver_allocations(), 1);
    drop(a);
    assert_eq!(kb.memory(), stats(0, 4096, 4096), "the block is cached, not freed");
    let b = kb.alloc_buf(1024).unwrap(); // 4096 B: the same block class
    assert_eq!(b.ptr(), ptr, "the cached block is handed out again");
    assert_eq!(sim.driver_allocations(), 1, "no new driver allocation");
    assert_eq!(kb.pool_counts().reuses, 1);
    // The old contents (1.5) must not leak into a buffer a kernel has not written yet.
    assert!(kb.download(&b).unwrap().iter().all(|v| v.is_nan()), "a reused block is poisoned with NaN");
    // A different class does not take it.
    let c = kb.alloc_buf(2000).unwrap();
    assert_ne!(c.ptr(), ptr);
    assert_eq!(sim.driver_allocations(), 2);
}

#[test]
fn the_ledger_counts_live_peak_and_reserved_blocks() {
    let (sim, kb) = backend(SimDevice::new());
    let small = kb.alloc_buf(1000).unwrap(); // 4000 B -> 4096
    let large = kb.alloc_buf(MIB / 4 + 1).unwrap(); // 1 MiB + 4 B -> 2 MiB
    assert_eq!(kb.memory(), stats(4096 + 2 * MIB, 4096 + 2 * MIB, 4096 + 2 * MIB));
    let mut shared = large.clone();
    assert_eq!(kb.memory().live_bytes, 4096 + 2 * MIB, "a clone shares its block");
    shared.make_unique().unwrap();
    assert_eq!(kb.memory().live_bytes, 4096 + 4 * MIB, "copy on write takes a second block");
    drop((shared, large));
    assert_eq!(kb.memory(), stats(4096, 4096 + 4 * MIB, 4096 + 4 * MIB));
    kb.reset_peak();
    assert_eq!(kb.memory().peak_bytes, 4096);
    kb.empty_cache().unwrap();
    assert_eq!(kb.memory(), stats(4096, 4096, 4096), "emptying the cache leaves only live blocks");
    assert_eq!(sim.allocated_bytes(), 4096, "and the driver has them back");
    assert_eq!(kb.pool_counts().driver_frees, 2);
    drop(small);
    drop(kb);
    assert_eq!(sim.allocated_bytes(), 0, "dropping the backend returns the cache to the driver");
}

#[test]
fn a_primitive_scratch_tables_count_in_the_peak() {
    let (_sim, kb) = backend(SimDevice::new());
    let (x, y) = (kb.upload(&[3.0; 10]).unwrap(), kb.upload(&[4.0; 20]).unwrap());
    kb.reset_peak();
    let base = kb.memory().live_bytes;
    let ss = kb.sum_squares_many(&[&x, &y]).unwrap();
    assert_eq!(ss, 10.0 * 9.0 + 20.0 * 16.0);
    // The pointer table (16 B), the length table (8 B), the per-block f64 partials (grid 1 × 2:
    // 16 B) and the f64 result (8 B): one 512 B block each.
    assert_eq!(kb.memory().peak_bytes - base, 4 * 512);
    assert_eq!(kb.memory().live_bytes, base, "scratch is released when the primitive returns");
}

#[test]
fn a_cap_hit_first_empties_the_cache_and_retries() {
    let (sim, kb) = backend(SimDevice::with_capacity(64 * KIB));
    drop(kb.alloc_buf(40 * KIB / 4).unwrap()); // 40 KiB cached
    assert_eq!(sim.allocated_bytes(), 40 * KIB);
    // 48 KiB more would exceed the cap while the 40 KiB block is cached: the pool gives it back
    // and asks again.
    let b = kb.alloc_buf(48 * KIB / 4).unwrap();
    assert_eq!(kb.pool_counts().driver_frees, 1, "the cached block went back to the driver");
    assert_eq!(kb.memory(), stats(48 * KIB, 48 * KIB, 48 * KIB));
    assert_eq!(sim.allocated_bytes(), 48 * KIB);
    drop(b);
}

#[test]
fn an_allocation_beyond_the_cap_is_out_of_memory_with_the_numbers() {
    let (sim, kb) = backend(SimDevice::with_capacity(64 * KIB));
    let held = kb.alloc_buf(48 * KIB / 4).unwrap();
    let err = kb.alloc_buf(32 * KIB / 4).err().expect("32 KiB more than a 64 KiB cap with 48 KiB live");
    match &err {
        Error::OutOfMemory { requested, free, total, live, .. } => {
            assert_eq!((*requested, *free, *total, *live), (32 * KIB, 16 * KIB, 64 * KIB, 48 * KIB));
        }
        e => panic!("expected Error::OutOfMemory, got {e}"),
    }
    let msg = err.to_string();
    for part in ["32768 B", "16384 B", "65536 B", "49152 B", "lower --batch", "MOODGRAD_SIM_MEMORY"] {
        assert!(msg.contains(part), "{part:?} missing from: {msg}");
    }
    assert_eq!(sim.allocated_bytes(), 48 * KIB, "a failed allocation claims nothing");
    // The backend still works after the failure.
    drop(held);
    assert!(kb.alloc_buf(32 * KIB / 4).is_ok());
}
