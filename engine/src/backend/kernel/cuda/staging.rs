//! Host↔device copies through pinned (page-locked) staging buffers on the device's stream.
//!
//! Uploads copy the caller's bytes into one of two write-combined pinned slots and queue an
//! asynchronous copy from it, so `htod` returns before the transfer ends and the caller's memory
//! is free at once. A slot is overwritten only after the event recorded behind its last copy has
//! completed; with two slots, filling one overlaps the transfer from the other. Downloads queue a
//! copy into a cached pinned buffer, synchronise the stream (which is where an earlier kernel's
//! fault is reported) and copy out. Transfers larger than a slot go in slot-sized chunks.
//!
//! Device-side blocks need no such care: the destination of an upload or the source of a
//! download is used only by work on the same stream, which runs after the copy (pool.rs).

use super::drv;
use crate::error::Result;
use cudarc::driver::{CudaContext, CudaEvent, CudaStream, PinnedHostSlice, result, sys};
use std::sync::{Arc, Mutex, MutexGuard};

/// Bytes per staging slot (three slots: 12 MiB of pinned host memory per device).
const CHUNK: usize = 4 << 20;
const UPLOAD_SLOTS: usize = 2;

struct Slot {
    mem: PinnedHostSlice<u8>,
    /// Recorded on the stream after the last copy out of `mem`.
    done: CudaEvent,
    /// Whether `done` has been recorded (and so may have to be waited for).
    pending: bool,
}

pub struct Staging {
    up: Mutex<([Slot; UPLOAD_SLOTS], usize)>,
    down: Mutex<PinnedHostSlice<u8>>,
}

/// `CHUNK` bytes of zeroed pinned host memory with `flags` (CU_MEMHOSTALLOC_*).
fn pinned(ctx: &Arc<CudaContext>, flags: u32) -> Result<PinnedHostSlice<u8>> {
    // SAFETY: the memory is zeroed below, before anything reads it.
    let mut mem = unsafe { ctx.alloc_pinned_with_flags::<u8>(CHUNK, flags) }
        .map_err(|e| drv("cuMemHostAlloc (pinned staging)", e))?;
    let p = mem.as_mut_ptr().map_err(|e| drv("pinned staging", e))?;
    // SAFETY: p points at the CHUNK bytes just allocated, not yet shared with any copy.
    unsafe { std::ptr::write_bytes(p, 0, CHUNK) };
    Ok(mem)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded state is valid after any panic (each update completes or is redone), so a
    // poisoned lock is taken as is.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Staging {
    pub fn new(ctx: &Arc<CudaContext>) -> Result<Self> {
        let slot = || -> Result<Slot> {
            Ok(Slot {
                // Write-combined: fast for the host's sequential writes and the device's reads.
                mem: pinned(ctx, sys::CU_MEMHOSTALLOC_WRITECOMBINED)?,
                done: ctx.new_event(None).map_err(|e| drv("cuEventCreate", e))?,
                pending: false,
            })
        };
        Ok(Staging {
            up: Mutex::new(([slot()?, slot()?], 0)),
            // Cached (not write-combined): the host reads it back.
            down: Mutex::new(pinned(ctx, 0)?),
        })
    }

    /// Queues the copy of `src` to device address `dst` on `stream`.
    pub fn htod(&self, stream: &CudaStream, dst: u64, src: &[u8]) -> Result<()> {
        let mut guard = lock(&self.up);
        let (slots, next) = &mut *guard;
        for (i, chunk) in src.chunks(CHUNK).enumerate() {
            let slot = &mut slots[*next];
            *next = (*next + 1) % UPLOAD_SLOTS;
            if slot.pending {
                // The copy queued from this slot last time must have read it before we overwrite it.
                slot.done.synchronize().map_err(|e| drv("waiting for an earlier upload (or an earlier kernel)", e))?;
                slot.pending = false;
            }
            let staged = &mut slot.mem.as_mut_slice().map_err(|e| drv("pinned staging", e))?[..chunk.len()];
            staged.copy_from_slice(chunk);
            // SAFETY: `staged` is pinned memory that stays allocated and unwritten until `done`
            // (recorded next, behind this copy) completes; dst + offset is a live device block of
            // at least chunk.len() bytes (the caller's contract), used only by later stream work.
            unsafe { result::memcpy_htod_async(dst + (i * CHUNK) as u64, staged, stream.cu_stream()) }
                .map_err(|e| drv("copy to device", e))?;
            slot.done.record(stream).map_err(|e| drv("cuEventRecord", e))?;
            slot.pending = true;
        }
        Ok(())
    }

    /// Copies device address `src` into `dst` after all work queued on `stream`.
    pub fn dtoh(&self, stream: &CudaStream, src: u64, dst: &mut [u8]) -> Result<()> {
        let mut mem = lock(&self.down);
        for (i, chunk) in dst.chunks_mut(CHUNK).enumerate() {
            let staged = &mut mem.as_mut_slice().map_err(|e| drv("pinned staging", e))?[..chunk.len()];
            // SAFETY: `staged` is pinned memory held under the lock and not touched until the
            // stream is synchronised below; src + offset is a live device block of at least
            // chunk.len() bytes, which the caller holds for the whole call.
            unsafe { result::memcpy_dtoh_async(staged, src + (i * CHUNK) as u64, stream.cu_stream()) }
                .map_err(|e| drv("copy to host", e))?;
            stream.synchronize().map_err(|e| {
                drv("copy to host (an earlier kernel may have failed: rerun with MOODGRAD_SYNC=1 to find it)", e)
            })?;
            chunk.copy_from_slice(staged);
        }
        Ok(())
    }
}
