//! The C ABI of the host SIMT library that build.rs compiles from `kernels/*.cu` and
//! `kernels/sim/`: a registry of launchers (`moodgrad_sim_kernels`) and the last error message.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::fmt;
use std::sync::OnceLock;

type LaunchFn = unsafe extern "C" fn(grid: *const u32, block: *const u32, shared: u32, args: *mut *mut c_void) -> c_int;
type InfoFn = unsafe extern "C" fn(codes: *mut *const u8) -> u32;

/// `struct MoodgradSimKernel` of the generated registry (build.rs).
#[repr(C)]
struct RawKernel {
    name: *const c_char,
    launch: Option<LaunchFn>,
    info: Option<InfoFn>,
}

unsafe extern "C" {
    static moodgrad_sim_kernels: [RawKernel; 0];
    static moodgrad_sim_kernel_count: u32;
    fn moodgrad_sim_last_error() -> *const c_char;
    fn moodgrad_sim_set_schedule(mode: c_int, seed: u64);
    fn moodgrad_sim_schedule(seed: *mut u64) -> c_int;
    fn moodgrad_sim_set_max_dynamic_shared(name: *const c_char, bytes: u32) -> c_int;
    fn moodgrad_sim_set_arch(arch: u32, optin_bytes: u32);
}

/// The card this thread's next launches and shared-memory opt-ins emulate: compute capability
/// (major·10 + minor; mma.sync and cp.async fail below 80) and the per-block opt-in limit.
pub fn set_arch(arch: u32, optin_bytes: u32) {
    // SAFETY: sets two thread-local variables of the runtime; no pointers are passed.
    unsafe { moodgrad_sim_set_arch(arch, optin_bytes) }
}

/// What `cuFuncSetAttribute(kernel, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes)` does
/// on a GPU: later launches of `kernel` may ask for up to `bytes` of dynamic shared memory (48 KiB
/// without it; at most sm_90's 227 KiB per block). Process-wide, like the CUfunction attribute.
pub fn set_max_dynamic_shared(kernel: &str, bytes: u32) -> Result<()> {
    registry().get(kernel).ok_or_else(|| unknown(kernel))?;
    let name =
        std::ffi::CString::new(kernel).map_err(|_| Error::Device(format!("kernel name {kernel:?} has a NUL")))?;
    // SAFETY: a NUL-terminated string valid for the call; the runtime copies it.
    if unsafe { moodgrad_sim_set_max_dynamic_shared(name.as_ptr(), bytes) } == 0 {
        return Ok(());
    }
    // SAFETY: as in `launch`: a NUL-terminated thread-local string, copied at once.
    Err(Error::Device(unsafe { CStr::from_ptr(moodgrad_sim_last_error()) }.to_string_lossy().into_owned()))
}

/// Sets the fiber and block schedule of this thread's next launches: `Some(seed)` resumes each
/// block's ready fibers, and claims the grid's blocks, in an order drawn from `seed`
/// (deterministic given the seed); `None` runs thread order and blocks in index order. Without a
/// call the process default applies: `MOODGRAD_SIM_SHUFFLE=<u64>` (decimal or 0x-hex), `=off`
/// for thread order, unset for a built-in seed (shuffled). Launches from other threads are not
/// affected.
pub fn set_schedule_seed(seed: Option<u64>) {
    // SAFETY: sets two thread-local variables of the runtime; no pointers are passed.
    unsafe { moodgrad_sim_set_schedule(if seed.is_some() { 2 } else { 1 }, seed.unwrap_or(0)) }
}

/// Returns this thread's launches to the process default schedule (see [`set_schedule_seed`]).
pub fn reset_schedule() {
    // SAFETY: as in set_schedule_seed.
    unsafe { moodgrad_sim_set_schedule(0, 0) }
}

/// The schedule this thread's next launch uses: `Some(seed)` when shuffled, `None` in thread order.
pub fn schedule_seed() -> Option<u64> {
    let mut seed = 0u64;
    // SAFETY: the runtime writes one u64 through the pointer, which is valid for the call.
    let shuffled = unsafe { moodgrad_sim_schedule(&mut seed) };
    (shuffled != 0).then_some(seed)
}

/// A kernel parameter's scalar type (the pointee for pointers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scalar {
    Other,
    Void,
    Bool,
    Char,
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    /// C `long` (64-bit on Linux).
    Long,
    ULong,
    I64,
    U64,
    F32,
    F64,
}

/// One kernel parameter, as the C++ compiler saw its type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param {
    pub scalar: Scalar,
    /// 0 for a value, 1 for `T*`, 2 for `T**` (whose scalar is reported as `Other`).
    pub pointer_depth: u8,
    /// `const T*`.
    pub const_pointee: bool,
}

impl Param {
    /// Decodes the byte `sim::detail::type_code` (kernels/sim/simt.h) writes.
    fn from_code(code: u8) -> Param {
        const SCALARS: [Scalar; 16] = [
            Scalar::Other,
            Scalar::Void,
            Scalar::Bool,
            Scalar::Char,
            Scalar::I8,
            Scalar::U8,
            Scalar::I16,
            Scalar::U16,
            Scalar::I32,
            Scalar::U32,
            Scalar::Long,
            Scalar::ULong,
            Scalar::I64,
            Scalar::U64,
            Scalar::F32,
            Scalar::F64,
        ];
        let pointer_depth = if code & 0x40 != 0 { 2 } else { u8::from(code & 0x10 != 0) };
        Param { scalar: SCALARS[usize::from(code & 0x0f)], pointer_depth, const_pointee: code & 0x20 != 0 }
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.scalar {
            Scalar::Other => "<struct>",
            Scalar::Void => "void",
            Scalar::Bool => "bool",
            Scalar::Char => "char",
            Scalar::I8 => "signed char",
            Scalar::U8 => "unsigned char",
            Scalar::I16 => "short",
            Scalar::U16 => "unsigned short",
            Scalar::I32 => "int",
            Scalar::U32 => "unsigned int",
            Scalar::Long => "long",
            Scalar::ULong => "unsigned long",
            Scalar::I64 => "long long",
            Scalar::U64 => "unsigned long long",
            Scalar::F32 => "float",
            Scalar::F64 => "double",
        };
        match self.pointer_depth {
            0 => write!(f, "{name}"),
            1 if self.const_pointee => write!(f, "const {name}*"),
            1 => write!(f, "{name}*"),
            _ => write!(f, "void**"),
        }
    }
}

struct Kernel {
    launch: LaunchFn,
    params: Vec<Param>,
}

fn registry() -> &'static HashMap<&'static str, Kernel> {
    static REGISTRY: OnceLock<HashMap<&'static str, Kernel>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        // SAFETY: build.rs generates `moodgrad_sim_kernels` with `moodgrad_sim_kernel_count`
        // valid entries of `struct MoodgradSimKernel`, whose layout RawKernel mirrors; the names
        // are static NUL-terminated literals and the type-code tables static arrays of `arity`
        // bytes, all alive for the whole program.
        unsafe {
            let count = moodgrad_sim_kernel_count as usize;
            let raw = std::slice::from_raw_parts(std::ptr::addr_of!(moodgrad_sim_kernels).cast::<RawKernel>(), count);
            raw.iter()
                .filter_map(|k| {
                    let name = CStr::from_ptr(k.name).to_str().ok()?;
                    let (launch, info) = (k.launch?, k.info?);
                    let mut codes: *const u8 = std::ptr::null();
                    let arity = info(&mut codes) as usize;
                    let params =
                        std::slice::from_raw_parts(codes, arity).iter().map(|&c| Param::from_code(c)).collect();
                    Some((name, Kernel { launch, params }))
                })
                .collect()
        }
    })
}

/// Every kernel this build compiled for the host, sorted.
pub fn kernel_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = registry().keys().copied().collect();
    names.sort_unstable();
    names
}

/// A kernel's parameters, as declared in its .cu file; `None` for an unknown name.
pub fn params(kernel: &str) -> Option<Vec<Param>> {
    registry().get(kernel).map(|k| k.params.clone())
}

/// A kernel's C signature, e.g. `add_f32(const float*, const float*, float*, int)`.
pub fn signature(kernel: &str) -> Option<String> {
    let k = registry().get(kernel)?;
    let params: Vec<String> = k.params.iter().map(Param::to_string).collect();
    Some(format!("{kernel}({})", params.join(", ")))
}

fn unknown(kernel: &str) -> Error {
    let only = option_env!("MOODGRAD_SIM_BUILT_ONLY").unwrap_or("");
    let filter = if only.is_empty() {
        String::new()
    } else {
        format!("; this build compiled only kernels/{{{only}}}.cu (MOODGRAD_SIM_ONLY)")
    };
    Error::Device(format!(
        "sim: no kernel named `{kernel}` in kernels/*.cu (known: {}){filter}",
        kernel_names().join(", ")
    ))
}

/// Runs `kernel` over `grid` × `block` threads on the host, synchronously (cuLaunchKernel-style:
/// `args[i]` points at the i-th argument's value, `shared_bytes` of dynamic shared memory).
///
/// The caller must uphold what cuLaunchKernel's caller does: each `args[i]` points at a value of
/// the kernel's i-th parameter type (an 8-byte slot holding a 4-byte value in its low half is
/// fine), and every pointer argument points at host memory the kernel may access as it does.
/// The argument count is checked against the kernel's declaration; the types cannot be.
/// Errors (unknown kernel, bad launch shape, a barrier not reached by every thread, a deadlock
/// in a warp collective, …) are `Error::Device` naming the kernel.
/// # Safety
/// As above: the argument values and pointers must match the kernel's parameters.
pub unsafe fn launch(
    kernel: &str,
    grid: [u32; 3],
    block: [u32; 3],
    shared_bytes: u32,
    args: &mut [*mut c_void],
) -> Result<()> {
    let k = registry().get(kernel).ok_or_else(|| unknown(kernel))?;
    if args.len() != k.params.len() {
        let sig = signature(kernel).unwrap_or_default();
        return Err(Error::Device(format!(
            "kernel {kernel}: {} argument(s) passed, but it takes {}: {sig}",
            args.len(),
            k.params.len()
        )));
    }
    // SAFETY: grid and block are 3 u32s each; args has exactly the kernel's arity (checked above)
    // and points at argument values per this function's contract.
    let rc = unsafe { (k.launch)(grid.as_ptr(), block.as_ptr(), shared_bytes, args.as_mut_ptr()) };
    if rc == 0 {
        return Ok(());
    }
    // SAFETY: the runtime returns a NUL-terminated thread-local string that stays valid until the
    // next launch on this thread; it is copied at once.
    let message = unsafe { CStr::from_ptr(moodgrad_sim_last_error()) }.to_string_lossy().into_owned();
    Err(Error::Device(if message.is_empty() { format!("kernel {kernel}: launch failed (code {rc})") } else { message }))
}
