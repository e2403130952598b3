//! Transparent huge pages for large buffers.
//!
//! A training step allocates and frees activations of tens to hundreds of MB; glibc serves each
//! from a fresh mmap, so every step first-touches them page by page: on this project's VMs
//! `perf` showed ~7-10 % of a MODEL_3 step in page faults and page clearing (4 KiB pages,
//! memcg charging, the fault path's locks serialising the two threads). Asking for 2 MiB pages
//! (`madvise(MADV_HUGEPAGE)`; THP in `madvise` mode is the common distribution default) cuts
//! the fault count 512×. `HugePageAlloc` applies the hint to every allocation of 4 MiB or more;
//! the binary and the benches install it as the global allocator. A hint only: contents, sizes
//! and alignment are the system allocator's.

use std::alloc::{GlobalAlloc, Layout, System};

const HUGE: usize = 2 << 20;
/// Smaller buffers are left alone: at most one whole 2 MiB page would fit inside them.
const MIN_BYTES: usize = 2 * HUGE;

/// Advises the whole 2 MiB pages inside `[p, p + bytes)` to be huge pages.
pub fn advise(p: *mut u8, bytes: usize) {
    #[cfg(target_os = "linux")]
    {
        let (lo, hi) = ((p as usize).next_multiple_of(HUGE), (p as usize + bytes) & !(HUGE - 1));
        if !p.is_null() && bytes >= MIN_BYTES && hi > lo {
            // SAFETY: [lo, hi) is page-aligned and inside the caller's allocation; MADV_HUGEPAGE
            // changes no contents. A failure (THP off) leaves ordinary pages.
            unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (p, bytes);
}

/// The system allocator, with `advise` on every large allocation.
pub struct HugePageAlloc;

// SAFETY: every method forwards to `System` unchanged; `advise` only hints the kernel about
// memory the allocation owns.
unsafe impl GlobalAlloc for HugePageAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        advise(p, layout.size());
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above. calloc does not touch a fresh mmap's pages, so the hint still comes
        // before their first fault.
        let p = unsafe { System.alloc_zeroed(layout) };
        advise(p, layout.size());
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        // SAFETY: p came from this allocator (i.e. System) with this layout.
        unsafe { System.dealloc(p, layout) }
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let q = unsafe { System.realloc(p, layout, new_size) };
        advise(q, new_size);
        q
    }
}
