//! Raw launches of kernels by name on the host SIMT layer, for the layer's own tests
//! (tests/simt.rs, tests/simt_strict.rs, tests/simt_tensorcore.rs).
#![allow(dead_code)]

use moodgrad::backend::sim::ffi;
use moodgrad::error::Result;
use std::ffi::c_void;

/// Kernel arguments as cuLaunchKernel takes them: one 8-byte slot per argument, 4-byte values in
/// the low half.
#[derive(Default)]
pub struct Args(Vec<u64>);

impl Args {
    pub fn new() -> Self {
        Args::default()
    }
    pub fn ptr<T>(mut self, p: *const T) -> Self {
        self.0.push(p as u64);
        self
    }
    pub fn i32(mut self, v: i32) -> Self {
        self.0.push(v as u32 as u64);
        self
    }
    pub fn f32(mut self, v: f32) -> Self {
        self.0.push(v.to_bits() as u64);
        self
    }
}

/// Launches `kernel` over `grid` × `block` threads with `shared` bytes of dynamic shared memory.
pub fn launch(kernel: &str, grid: [u32; 3], block: [u32; 3], shared: u32, args: Args) -> Result<()> {
    let mut slots = args.0;
    let mut ptrs: Vec<*mut c_void> = slots.iter_mut().map(|s| s as *mut u64 as *mut c_void).collect();
    // SAFETY: each test passes the self-test kernel's parameter list over live host buffers of
    // the sizes the kernel indexes.
    unsafe { ffi::launch(kernel, grid, block, shared, &mut ptrs) }
}

/// The same over a one-dimensional grid and block.
pub fn launch_1d(kernel: &str, grid: u32, block: u32, shared: u32, args: Args) -> Result<()> {
    launch(kernel, [grid, 1, 1], [block, 1, 1], shared, args)
}
