//! The host SIMT device: host memory, kernels/*.cu compiled as C++ and launched through
//! `backend::sim::ffi` with the same grids and arguments the CUDA device gets.
//!
//! Its memory can be capped like a GPU's (`SimDevice::with_capacity`, or `MOODGRAD_SIM_MEMORY=`
//! for `--device sim`), so the out-of-memory path of the caching allocator runs in the tests.

use super::device::{Arg, RawDevice, with_params};
use super::profile::DeviceProfile;
use crate::backend::cpu::gemm::{Mat, par_gemm};
use crate::error::{Error, Result};
use std::alloc::Layout;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// cudaMalloc's alignment guarantee, which vectorised kernels may rely on.
const ALIGN: usize = 256;

/// The environment variable that caps `--device sim`'s memory: bytes, or with a K, M or G
/// suffix (binary units), e.g. `MOODGRAD_SIM_MEMORY=512M`.
pub const SIM_MEMORY_VAR: &str = "MOODGRAD_SIM_MEMORY";

pub struct SimDevice {
    /// The most bytes the "driver" hands out at once; `None` = host memory is the limit.
    capacity: Option<usize>,
    allocated: AtomicUsize,
    allocations: AtomicU64,
    /// The card emulated: its compute capability gates mma.sync and cp.async, its opt-in limit
    /// the dynamic shared memory a launch may have.
    profile: DeviceProfile,
}

impl Default for SimDevice {
    fn default() -> Self {
        SimDevice::with_profile(DeviceProfile::emulated("sm_90").expect("sm_90 is a profile"))
    }
}

impl SimDevice {
    /// Uncapped: allocations fail only when the host runs out. Emulates sm_90.
    pub fn new() -> Self {
        SimDevice::default()
    }

    /// Emulating the card `profile` describes (see `profile::DeviceProfile::emulated`).
    pub fn with_profile(profile: DeviceProfile) -> Self {
        SimDevice { capacity: None, allocated: AtomicUsize::new(0), allocations: AtomicU64::new(0), profile }
    }

    /// At most `bytes` allocated at any time, as on a GPU with that much memory.
    pub fn with_capacity(bytes: usize) -> Self {
        SimDevice { capacity: Some(bytes), ..SimDevice::default() }
    }

    /// Capped by `MOODGRAD_SIM_MEMORY` when it is set, else uncapped; emulating the card
    /// `MOODGRAD_SIM_ARCH` names (sm_90 by default).
    pub fn from_env() -> Result<Self> {
        let profile = DeviceProfile::emulated_from_env()?;
        let capacity = match std::env::var(SIM_MEMORY_VAR) {
            Ok(v) if !v.trim().is_empty() => Some(parse_bytes(&v).ok_or_else(|| {
                Error::Invalid(format!("{SIM_MEMORY_VAR}={v}: expected bytes, e.g. 1048576, 64M or 2G"))
            })?),
            _ => None,
        };
        Ok(SimDevice { capacity, ..SimDevice::with_profile(profile) })
    }

    /// Bytes allocated from the "driver" now (the pool's reserved bytes).
    pub fn allocated_bytes(&self) -> usize {
        self.allocated.load(Ordering::Relaxed)
    }

    /// Driver allocations made so far (the pool's cache hits are not among them).
    pub fn driver_allocations(&self) -> u64 {
        self.allocations.load(Ordering::Relaxed)
    }

    /// Claims `bytes` of the capacity, or says how much is free.
    fn claim(&self, bytes: usize) -> Result<()> {
        let Some(cap) = self.capacity else {
            self.allocated.fetch_add(bytes, Ordering::Relaxed);
            return Ok(());
        };
        self.allocated
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |a| a.checked_add(bytes).filter(|&n| n <= cap))
            .map(|_| ())
            .map_err(|a| self.out_of_memory(bytes, cap.saturating_sub(a), cap))
    }

    fn out_of_memory(&self, requested: usize, free: usize, total: usize) -> Error {
        let device = match self.capacity {
            Some(cap) => format!("sim (memory capped at {cap} B; raise {SIM_MEMORY_VAR} for more)"),
            None => "sim (host memory)".into(),
        };
        Error::OutOfMemory { device, requested, free, total, live: 0 }
    }
}

/// "1048576", "64K", "512M", "2G" (binary units).
fn parse_bytes(s: &str) -> Option<usize> {
    let s = s.trim();
    let (digits, shift) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 10),
        (i, 'm' | 'M') => (&s[..i], 20),
        (i, 'g' | 'G') => (&s[..i], 30),
        _ => (s, 0),
    };
    digits.trim().parse::<usize>().ok()?.checked_mul(1usize << shift)
}

impl RawDevice for SimDevice {
    fn name(&self) -> String {
        let cap = self.capacity.map_or(String::new(), |c| format!(", memory capped at {c} B"));
        format!(
            "sim (CUDA kernels on the host SIMT layer as {}, {} threads{cap})",
            self.profile.name,
            rayon::current_num_threads()
        )
    }

    fn profile(&self) -> DeviceProfile {
        self.profile.clone()
    }

    fn alloc(&self, bytes: usize) -> Result<u64> {
        let layout = Layout::from_size_align(bytes, ALIGN).map_err(|e| Error::Device(format!("sim alloc: {e}")))?;
        self.claim(bytes)?;
        // SAFETY: the layout has a non-zero size (DevBuf never allocates 0 bytes).
        let p = unsafe { std::alloc::alloc(layout) };
        if p.is_null() {
            self.allocated.fetch_sub(bytes, Ordering::Relaxed);
            return Err(self.out_of_memory(bytes, 0, self.capacity.unwrap_or(0)));
        }
        self.allocations.fetch_add(1, Ordering::Relaxed);
        // Fresh device memory is garbage on a GPU: fill with 0xFF (NaN as f32) so a kernel that
        // reads memory it never wrote shows up in the tests instead of reading zeros.
        // SAFETY: p points at `bytes` writable bytes.
        unsafe { std::ptr::write_bytes(p, 0xFF, bytes) };
        Ok(p as u64)
    }

    fn free(&self, ptr: u64, bytes: usize) {
        if let Ok(layout) = Layout::from_size_align(bytes, ALIGN) {
            // SAFETY: ptr came from `alloc` with this layout and is freed once (by the pool).
            unsafe { std::alloc::dealloc(ptr as *mut u8, layout) };
            self.allocated.fetch_sub(bytes, Ordering::Relaxed);
        }
    }

    fn recycled(&self, ptr: u64, bytes: usize) {
        // As for a fresh block: NaN everywhere, so stale data from the last user cannot pass for
        // a result the kernel forgot to write.
        // SAFETY: ptr is a cached block of `bytes` bytes that the pool is handing out, unused.
        unsafe { std::ptr::write_bytes(ptr as *mut u8, 0xFF, bytes) };
    }

    fn htod(&self, dst: u64, src: &[u8]) -> Result<()> {
        // SAFETY: dst is a live allocation of at least src.len() bytes (checked by callers).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut u8, src.len()) };
        Ok(())
    }

    fn dtoh(&self, src: u64, dst: &mut [u8]) -> Result<()> {
        // SAFETY: src is a live allocation of at least dst.len() bytes.
        unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    fn dtod(&self, dst: u64, src: u64, bytes: usize) -> Result<()> {
        // SAFETY: distinct live allocations of at least `bytes` bytes.
        unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dst as *mut u8, bytes) };
        Ok(())
    }

    unsafe fn launch(
        &self,
        kernel: &'static str,
        grid: [u32; 3],
        block: [u32; 3],
        shared: u32,
        args: &[Arg],
    ) -> Result<()> {
        crate::backend::sim::ffi::set_arch(self.profile.arch, self.profile.shared_per_block_optin);
        // SAFETY: forwarded from RawDevice::launch, whose caller guarantees the argument list.
        with_params(args, |params| unsafe { crate::backend::sim::ffi::launch(kernel, grid, block, shared, params) })
    }

    fn set_max_dynamic_shared(&self, kernel: &'static str, bytes: u32) -> Result<()> {
        crate::backend::sim::ffi::set_arch(self.profile.arch, self.profile.shared_per_block_optin);
        crate::backend::sim::ffi::set_max_dynamic_shared(kernel, bytes)
    }

    fn gemm(&self, a: u64, b: u64, c: u64, m: usize, k: usize, n: usize, ta: bool, tb: bool) -> Result<()> {
        let (a, b) = (a as *const f32, b as *const f32);
        let am = if ta { Mat::transposed(a, m) } else { Mat::row_major(a, k) };
        let bm = if tb { Mat::transposed(b, k) } else { Mat::row_major(b, n) };
        // SAFETY: KernelBackend::matmul checked the operand lengths; c holds m·n elements.
        unsafe { par_gemm(m, k, n, 1.0f32, am, bm, 0.0, c as *mut f32, n) };
        Ok(())
    }

    fn gemm_batched(&self, a: u64, b: u64, c: u64, g: &crate::backend::BmmGeom) -> Result<()> {
        // The host GEMM per batch entry, as the CPU backend runs it (the same results bit for bit).
        let (a, b) = (a as *const f32, b as *const f32);
        // SAFETY: KernelBackend::bmm checked the operand lengths against the geometry; C holds
        // batch·m·n elements and is a separate allocation.
        let (av, bv, cv) = unsafe {
            (
                std::slice::from_raw_parts(a, g.a_len()),
                std::slice::from_raw_parts(b, g.b_len()),
                std::slice::from_raw_parts_mut(c as *mut f32, g.c_len()),
            )
        };
        crate::backend::cpu::bmm_host(av, bv, cv, g);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn memory_caps_parse_in_binary_units() {
        assert_eq!(parse_bytes("1048576"), Some(1 << 20));
        assert_eq!(parse_bytes(" 64K"), Some(64 << 10));
        assert_eq!(parse_bytes("512m"), Some(512 << 20));
        assert_eq!(parse_bytes("2G"), Some(2 << 30));
        for bad in ["", "M", "1.5G", "-3", "12T"] {
            assert_eq!(parse_bytes(bad), None, "{bad:?}");
        }
    }
}
