//! The kernel-launching backend: every backend primitive as launches of kernels/*.cu, with the
//! grids and argument lists of docs/kernel-abi.md. Runs on CUDA and on the host simulator. One
//! launcher file per op family, named after the kernels/*.cu file whose kernels it launches.

mod allocator;
mod attention;
mod conv;
mod conv_cin1;
mod conv_tc;
pub mod cuda;
mod dense;
mod device;
mod excite;
mod layernorm;
mod loss;
mod norm;
mod optim;
mod plane_split;
mod pointwise;
mod pool;
pub mod profile;
mod sequence;
pub mod sim;
mod spectro;
mod unit;

pub use allocator::{Pool, PoolCounts, block_size};
pub use device::{Arg, DevBuf, RawDevice};

use super::batch_split::{BatchPart, LaunchCaps};
use super::{DeviceBuffer, MemStats, Memory, Precision};
use crate::error::{Error, Result};
use std::sync::Arc;

/// Threads per block of every elementwise and per-plane kernel.
const BLOCK: u32 = 256;
/// Elementwise grids are capped; kernels grid-stride over the rest.
const MAX_EW_BLOCKS: usize = 4096;

#[derive(Clone)]
pub struct KernelBackend {
    dev: Arc<dyn RawDevice>,
    /// The caching allocator every buffer and scratch table comes from (allocator.rs); it keeps
    /// the memory ledger.
    pool: Arc<Pool>,
    /// Which convolution kernels run: kernels/conv.cu (FP32) or kernels/conv_tc.cu (TF32 tensor
    /// cores). FP32 unless set (`Device::open` sets TF32 on CUDA, as PyTorch's default).
    conv_precision: Precision,
    /// What the card allows (read once from the device).
    profile: Arc<profile::DeviceProfile>,
    /// What one launch may cover: larger batches and tensors are launched in parts
    /// (batch_split.rs).
    caps: LaunchCaps,
}

/// A byte buffer (masks, window positions): `len` bytes in a 4-byte-element allocation.
#[derive(Clone)]
pub struct DevMask {
    buf: DevBuf,
    len: usize,
}

impl DevMask {
    pub fn ptr(&self) -> u64 {
        self.buf.ptr()
    }
}

impl DeviceBuffer for DevBuf {
    fn len(&self) -> usize {
        DevBuf::len(self)
    }
}

impl DeviceBuffer for DevMask {
    fn len(&self) -> usize {
        self.len
    }
}

fn ew(n: usize) -> [u32; 3] {
    [n.div_ceil(BLOCK as usize).clamp(1, MAX_EW_BLOCKS) as u32, 1, 1]
}
const B1: [u32; 3] = [BLOCK, 1, 1];

/// Warp-per-row launch (softmax, LayerNorm, cross-entropy backward): block 256 = 8 rows, grid
/// min(ceil(rows/8), 4096); kernels grid-stride over the rest by warps.
fn warp_rows(rows: usize) -> [u32; 3] {
    let per_block = BLOCK as usize / 32;
    [rows.div_ceil(per_block).clamp(1, MAX_EW_BLOCKS) as u32, 1, 1]
}

/// A size as a kernel's `int`, or an error (callers check whole geometries first).
fn i(x: usize) -> Result<Arg> {
    i32::try_from(x).map(Arg::I32).map_err(|_| Error::Device(format!("size {x} exceeds the kernels' 31-bit indices")))
}
fn p(b: &DevBuf) -> Arg {
    Arg::Ptr(b.ptr())
}
/// The address of element `offset` of `b` (a batch part's or range's first element).
fn at(b: &DevBuf, offset: usize) -> Arg {
    debug_assert!(offset <= b.len());
    Arg::Ptr(b.ptr() + 4 * offset as u64)
}
/// The address of byte `offset` of `m`.
fn at_mask(m: &DevMask, offset: usize) -> Arg {
    debug_assert!(offset <= m.len);
    Arg::Ptr(m.ptr() + offset as u64)
}
fn f(x: f64) -> Arg {
    Arg::F32(x as f32)
}

impl KernelBackend {
    pub fn new(dev: Arc<dyn RawDevice>) -> Self {
        let profile = Arc::new(dev.profile());
        KernelBackend {
            pool: Pool::new(dev.clone()),
            dev,
            conv_precision: Precision::Fp32,
            profile,
            caps: LaunchCaps::default(),
        }
    }

    /// The same backend with other launch caps: tests lower them to run the batch-splitting
    /// launchers on small tensors (the default caps are the kernels' 32-bit index range).
    pub fn with_launch_caps(mut self, caps: LaunchCaps) -> Self {
        self.caps = caps;
        self
    }

    /// The launches of an op over `n` samples whose input and output hold `sample_lens` elements
    /// per sample: each part's geometry (`of_size(part size)`, its extents checked by `check`)
    /// and the first input and output element of the part. One part unless a tensor passes the
    /// caps.
    fn batch_parts<G>(
        &self,
        op: &'static str,
        n: usize,
        (in_len, out_len): (usize, usize),
        of_size: impl Fn(usize) -> G,
        check: impl Fn(&G) -> Result<()>,
    ) -> Result<Vec<(G, usize, usize)>> {
        let parts: Vec<BatchPart> = self.caps.batch_parts(op, n, in_len.max(out_len))?;
        parts
            .into_iter()
            .map(|part| {
                let geom = of_size(part.n);
                check(&geom)?;
                Ok((geom, part.start * in_len, part.start * out_len))
            })
            .collect()
    }

    /// What the card allows: kernels and tiles are chosen by it.
    pub fn profile(&self) -> &profile::DeviceProfile {
        &self.profile
    }

    /// The backend with its convolutions in `p`, or by default in what PyTorch would use on this
    /// card (`default`: TF32 where it has TF32 tensor cores, as `cudnn.allow_tf32`; FP32 before
    /// Ampere, which has none). TF32 asked of a card without it is refused, naming both.
    pub fn with_precision_for_card(self, p: Option<Precision>, default: Precision) -> Result<Self> {
        let card = &self.profile;
        match p {
            Some(Precision::Tf32) if !card.has_tf32() => Err(Error::Invalid(format!(
                "--precision tf32: {} is {}, and TF32 tensor cores start with sm_80 (Ampere); use --precision fp32 \
                 (the default on this card)",
                card.name,
                card.arch_name()
            ))),
            Some(p) => Ok(self.with_conv_precision(p)),
            None if default == Precision::Tf32 && !card.has_tf32() => Ok(self.with_conv_precision(Precision::Fp32)),
            None => Ok(self.with_conv_precision(default)),
        }
    }

    /// The same backend with its convolutions in `p` (shares the device and the memory pool).
    pub fn with_conv_precision(mut self, p: Precision) -> Self {
        self.conv_precision = p;
        self
    }

    pub fn conv_precision(&self) -> Precision {
        self.conv_precision
    }

    fn buf(&self, len: usize) -> Result<DevBuf> {
        DevBuf::new(&self.pool, len)
    }

    fn mask(&self, len: usize) -> Result<DevMask> {
        Ok(DevMask { buf: self.buf(len.div_ceil(4))?, len })
    }

    fn launch(&self, k: &'static str, grid: [u32; 3], block: [u32; 3], shared: u32, args: &[Arg]) -> Result<()> {
        // SAFETY: every call site in this module builds `args` from docs/kernel-abi.md with buffers
        // whose lengths it checked against the primitive's geometry (tests/backend_kernels.rs
        // checks each primitive against the CPU backend; the simulator's guard pages catch
        // overruns).
        unsafe { self.dev.launch(k, grid, block, shared, args) }
    }

    fn zeroed(&self, len: usize) -> Result<DevBuf> {
        self.fill(len, 0.0)
    }

    fn upload_bytes(&self, bytes: &[u8]) -> Result<DevBuf> {
        let b = self.buf(bytes.len().div_ceil(4))?;
        if !bytes.is_empty() {
            self.dev.htod(b.ptr(), bytes)?;
        }
        Ok(b)
    }

    fn download_bytes(&self, ptr: u64, len: usize) -> Result<Vec<u8>> {
        let mut bytes = vec![0u8; len];
        if len > 0 {
            self.dev.dtoh(ptr, &mut bytes)?;
        }
        Ok(bytes)
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl Memory for KernelBackend {
    type Elem = f32;
    type Buf = DevBuf;
    type Index = DevBuf;
    type Mask = DevMask;

    fn name(&self) -> String {
        if self.caps == LaunchCaps::default() {
            return self.dev.name();
        }
        let LaunchCaps { index, samples, flat } = self.caps;
        format!("{} (launches capped at {index} elements, {samples} samples, {flat} elementwise)", self.dev.name())
    }
    fn zeros(&self, len: usize) -> Result<DevBuf> {
        self.zeroed(len)
    }
    fn fill(&self, len: usize, value: f64) -> Result<DevBuf> {
        let b = self.buf(len)?;
        self.elementwise("fill_f32", len, |r| Ok(vec![at(&b, r.start), i(r.len())?, f(value)]))?;
        Ok(b)
    }
    fn upload(&self, data: &[f32]) -> Result<DevBuf> {
        self.upload_bytes(&f32_bytes(data))
    }
    fn download(&self, buf: &DevBuf) -> Result<Vec<f32>> {
        let bytes = self.download_bytes(buf.ptr(), buf.len() * 4)?;
        Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
    }
    fn upload_index(&self, data: &[u32]) -> Result<DevBuf> {
        self.upload_bytes(&data.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
    }
    fn download_mask(&self, mask: &DevMask) -> Result<Vec<u8>> {
        self.download_bytes(mask.ptr(), mask.len)
    }
    fn synchronize(&self) -> Result<()> {
        self.dev.synchronize()
    }
    fn copy(&self, buf: &DevBuf) -> Result<DevBuf> {
        let c = self.buf(buf.len())?;
        if !buf.is_empty() {
            self.dev.dtod(c.ptr(), buf.ptr(), buf.len() * 4)?;
        }
        Ok(c)
    }
    fn memory(&self) -> MemStats {
        self.pool.stats()
    }
    fn reset_peak(&self) {
        self.pool.reset_peak()
    }
}
