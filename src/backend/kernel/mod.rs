//! The kernel-launching backend: every `Backend` primitive as launches of kernels/*.cu, with
//! the grids and argument lists of docs/kernel-abi.md. Runs on CUDA and on the host simulator.

pub mod cuda;
mod device;
mod pool;
pub mod sim;

pub use device::{Arg, DevBuf, RawDevice};
pub use pool::{Pool, PoolCounts, block_size};

use super::{AdamStep, Backend, ConvGeom, PoolGeom, Unary};
use crate::error::{Error, Result};
use std::sync::Arc;

/// Threads per block of every elementwise and per-plane kernel.
const BLOCK: u32 = 256;
/// Elementwise grids are capped; kernels grid-stride over the rest.
const MAX_EW_BLOCKS: usize = 4096;
/// Output tile of the implicit-GEMM convolution kernels (rows × columns per block).
const CONV_TILE: usize = 64;
/// conv2d_backward_weight splits its N·OH·OW reduction (split-K) until the grid has about this
/// many blocks: ~4 per SM on a 132-SM H100, so every SM has work even for 64-channel layers.
const CONV_WGRAD_TARGET_BLOCKS: usize = 512;
/// …but never into chunks shorter than this, where the atomicAdd of each partial would dominate.
const CONV_WGRAD_MIN_CHUNK: usize = 256;

#[derive(Clone)]
pub struct KernelBackend {
    dev: Arc<dyn RawDevice>,
    /// The caching allocator every buffer and scratch table comes from (pool.rs).
    pool: Arc<Pool>,
}

fn ew(n: usize) -> [u32; 3] {
    [n.div_ceil(BLOCK as usize).clamp(1, MAX_EW_BLOCKS) as u32, 1, 1]
}
const B1: [u32; 3] = [BLOCK, 1, 1];

fn i(x: usize) -> Result<Arg> {
    i32::try_from(x).map(Arg::I32).map_err(|_| Error::Device(format!("size {x} exceeds the kernels' 31-bit indices")))
}
fn p(b: &DevBuf) -> Arg {
    Arg::Ptr(b.ptr())
}
fn f(x: f64) -> Arg {
    Arg::F32(x as f32)
}

impl KernelBackend {
    pub fn new(dev: Arc<dyn RawDevice>) -> Self {
        KernelBackend { pool: Pool::new(dev.clone()), dev }
    }

    fn buf(&self, len: usize) -> Result<DevBuf> {
        DevBuf::new(&self.pool, len)
    }

    fn launch(&self, k: &'static str, grid: [u32; 3], block: [u32; 3], shared: u32, args: &[Arg]) -> Result<()> {
        // SAFETY: every call site in this file builds `args` from docs/kernel-abi.md with buffers
        // it allocated at the sizes the kernel indexes (tests/backend_kernels.rs checks each
        // primitive against the CPU backend; the simulator's guard pages catch overruns).
        unsafe { self.dev.launch(k, grid, block, shared, args) }
    }

    fn zeroed(&self, len: usize) -> Result<DevBuf> {
        self.fill(len, 0.0)
    }

    fn check_len(&self, what: &str, b: &DevBuf, want: usize) -> Result<()> {
        if b.len() < want {
            return Err(Error::Device(format!("{what}: buffer of {} elements, kernel needs {want}", b.len())));
        }
        Ok(())
    }

    fn binary(&self, k: &'static str, a: &DevBuf, b: &DevBuf) -> Result<DevBuf> {
        let n = a.len();
        self.check_len(k, b, n)?;
        let y = self.buf(n)?;
        self.launch(k, ew(n), B1, 0, &[p(a), p(b), p(&y), i(n)?])?;
        Ok(y)
    }

    fn scalar_out(&self, k: &'static str, a: &DevBuf, b: &DevBuf) -> Result<DevBuf> {
        let out = self.buf(1)?;
        self.launch(k, [1, 1, 1], B1, 0, &[p(a), p(b), p(&out), i(a.len())?])?;
        Ok(out)
    }

    fn loss_backward(&self, k: &'static str, pr: &DevBuf, t: &DevBuf, dl: &DevBuf) -> Result<DevBuf> {
        let n = pr.len();
        let dp = self.buf(n)?;
        self.launch(k, ew(n), B1, 0, &[p(pr), p(t), p(dl), p(&dp), i(n)?])?;
        Ok(dp)
    }

    fn conv_args(g: &ConvGeom) -> Result<Vec<Arg>> {
        [g.n, g.c_in, g.h, g.w, g.c_out, g.kh, g.kw, g.stride, g.pad, g.out_h(), g.out_w()].into_iter().map(i).collect()
    }

    /// Per-clip maximum of [clips, len] (spectro.cu's clip_max).
    fn clip_max(&self, x: &DevBuf, clips: usize, len: usize) -> Result<DevBuf> {
        let out = self.buf(clips)?;
        self.launch("clip_max", [clips as u32, 1, 1], B1, 0, &[p(x), p(&out), i(clips)?, i(len)?])?;
        Ok(out)
    }

    fn upload_bytes(&self, bytes: &[u8]) -> Result<DevBuf> {
        let b = self.buf(bytes.len().div_ceil(4))?;
        if !bytes.is_empty() {
            self.dev.htod(b.ptr(), bytes)?;
        }
        Ok(b)
    }
}

fn unary_code(op: Unary) -> Arg {
    Arg::I32(match op {
        Unary::Relu => 0,
        Unary::Sigmoid => 1,
        Unary::Tanh => 2,
        Unary::Gelu => 3,
    })
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl Backend for KernelBackend {
    type Elem = f32;
    type Buf = DevBuf;
    type Index = DevBuf;

    fn name(&self) -> String {
        self.dev.name()
    }

    fn zeros(&self, len: usize) -> Result<DevBuf> {
        self.zeroed(len)
    }
    fn fill(&self, len: usize, value: f64) -> Result<DevBuf> {
        let b = self.buf(len)?;
        if len > 0 {
            self.launch("fill_f32", ew(len), B1, 0, &[p(&b), i(len)?, f(value)])?;
        }
        Ok(b)
    }
    fn upload(&self, data: &[f32]) -> Result<DevBuf> {
        self.upload_bytes(&f32_bytes(data))
    }
    fn download(&self, buf: &DevBuf) -> Result<Vec<f32>> {
        let mut bytes = vec![0u8; buf.len() * 4];
        if !bytes.is_empty() {
            self.dev.dtoh(buf.ptr(), &mut bytes)?;
        }
        Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
    }
    fn upload_index(&self, data: &[u32]) -> Result<DevBuf> {
        self.upload_bytes(&data.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
    }
    fn len(&self, buf: &DevBuf) -> usize {
        buf.len()
    }
    fn synchronize(&self) -> Result<()> {
        self.dev.synchronize()
    }
    fn copy(&self, buf: &DevBuf) -> Result<DevBuf> {
        let mut c = buf.clone();
        c.make_unique()?;
        Ok(c)
    }

    fn add(&self, a: &DevBuf, b: &DevBuf) -> Result<DevBuf> {
        self.binary("add_f32", a, b)
    }
    fn mul(&self, a: &DevBuf, b: &DevBuf) -> Result<DevBuf> {
        self.binary("mul_f32", a, b)
    }
    fn add_assign(&self, dst: &mut DevBuf, src: &DevBuf) -> Result<()> {
        dst.make_unique()?;
        let n = dst.len();
        self.check_len("add_assign_f32", src, n)?;
        self.launch("add_assign_f32", ew(n), B1, 0, &[p(dst), p(src), i(n)?])
    }
    fn scale_assign(&self, x: &mut DevBuf, s: f64) -> Result<()> {
        x.make_unique()?;
        let n = x.len();
        self.launch("scale_assign_f32", ew(n), B1, 0, &[p(x), i(n)?, f(s)])
    }
    fn unary_forward(&self, op: Unary, x: &DevBuf) -> Result<DevBuf> {
        let n = x.len();
        let y = self.buf(n)?;
        self.launch("unary_forward", ew(n), B1, 0, &[unary_code(op), p(x), p(&y), i(n)?])?;
        Ok(y)
    }
    fn unary_backward(&self, op: Unary, x: &DevBuf, y: &DevBuf, dy: &DevBuf) -> Result<DevBuf> {
        let n = dy.len();
        let dx = self.buf(n)?;
        self.launch("unary_backward", ew(n), B1, 0, &[unary_code(op), p(x), p(y), p(dy), p(&dx), i(n)?])?;
        Ok(dx)
    }
    fn dropout_mask(&self, len: usize, prob: f64, seed: u64) -> Result<DevBuf> {
        let m = self.buf(len)?;
        self.launch("dropout_mask", ew(len), B1, 0, &[p(&m), i(len)?, f(prob), Arg::U64(seed)])?;
        Ok(m)
    }

    fn sum_squares(&self, x: &DevBuf) -> Result<f64> {
        self.sum_squares_many(&[x])
    }
    fn sum_squares_many(&self, bufs: &[&DevBuf]) -> Result<f64> {
        let bufs: Vec<&&DevBuf> = bufs.iter().filter(|b| !b.is_empty()).collect();
        if bufs.is_empty() {
            return Ok(0.0);
        }
        let ptrs: Vec<u8> = bufs.iter().flat_map(|b| b.ptr().to_le_bytes()).collect();
        let lens =
            bufs.iter().map(|b| i(b.len()).map(|a| (a.slot() as u32).to_le_bytes())).collect::<Result<Vec<_>>>()?;
        let lens: Vec<u8> = lens.concat();
        let (dp, dl) = (self.upload_bytes(&ptrs)?, self.upload_bytes(&lens)?);
        let out = self.zeroed(2)?; // one double
        let maxlen = bufs.iter().map(|b| b.len()).max().unwrap_or(0);
        let grid = [maxlen.div_ceil(BLOCK as usize).clamp(1, 1024) as u32, bufs.len() as u32, 1];
        self.launch("sum_squares_multi", grid, B1, 0, &[p(&dp), p(&dl), i(bufs.len())?, p(&out)])?;
        let mut bytes = [0u8; 8];
        self.dev.dtoh(out.ptr(), &mut bytes)?;
        Ok(f64::from_le_bytes(bytes))
    }
    fn all_finite(&self, x: &DevBuf) -> Result<bool> {
        let n = x.len();
        if n == 0 {
            return Ok(true);
        }
        let count = self.zeroed(1)?;
        self.launch("count_nonfinite", ew(n), B1, 0, &[p(x), i(n)?, p(&count)])?;
        let mut bytes = [0u8; 4];
        self.dev.dtoh(count.ptr(), &mut bytes)?;
        Ok(u32::from_le_bytes(bytes) == 0)
    }

    fn matmul(&self, a: &DevBuf, b: &DevBuf, m: usize, k: usize, n: usize, ta: bool, tb: bool) -> Result<DevBuf> {
        self.check_len("matmul A", a, m * k)?;
        self.check_len("matmul B", b, k * n)?;
        if k == 0 {
            return self.zeroed(m * n);
        }
        let c = self.buf(m * n)?;
        if m * n > 0 {
            self.dev.gemm(a.ptr(), b.ptr(), c.ptr(), m, k, n, ta, tb)?;
        }
        Ok(c)
    }
    fn add_row_bias(&self, y: &mut DevBuf, bias: &DevBuf, rows: usize) -> Result<()> {
        y.make_unique()?;
        let cols = bias.len();
        self.launch("add_row_bias", ew(rows * cols), B1, 0, &[p(y), p(bias), i(rows)?, i(cols)?])
    }
    fn sum_rows(&self, x: &DevBuf, rows: usize, cols: usize) -> Result<DevBuf> {
        let out = self.buf(cols)?;
        let grid = [cols.div_ceil(BLOCK as usize).max(1) as u32, 1, 1];
        self.launch("sum_rows", grid, B1, 0, &[p(x), p(&out), i(rows)?, i(cols)?])?;
        Ok(out)
    }
    fn concat_cols(&self, a: &DevBuf, b: &DevBuf, rows: usize, ca: usize, cb: usize) -> Result<DevBuf> {
        let y = self.buf(rows * (ca + cb))?;
        self.launch("concat_cols", ew(rows * (ca + cb)), B1, 0, &[p(a), p(b), p(&y), i(rows)?, i(ca)?, i(cb)?])?;
        Ok(y)
    }
    fn split_cols(&self, x: &DevBuf, rows: usize, ca: usize, cb: usize) -> Result<(DevBuf, DevBuf)> {
        let (a, b) = (self.buf(rows * ca)?, self.buf(rows * cb)?);
        self.launch("split_cols", ew(rows * (ca + cb)), B1, 0, &[p(x), p(&a), p(&b), i(rows)?, i(ca)?, i(cb)?])?;
        Ok((a, b))
    }

    fn conv2d_forward(&self, x: &DevBuf, w: &DevBuf, b: Option<&DevBuf>, g: &ConvGeom) -> Result<DevBuf> {
        let y = self.buf(g.output_len())?;
        let cols = g.n * g.out_h() * g.out_w();
        let grid = [cols.div_ceil(CONV_TILE) as u32, g.c_out.div_ceil(CONV_TILE) as u32, 1];
        let mut args = vec![p(x), p(w), Arg::Ptr(b.map_or(0, |b| b.ptr())), p(&y)];
        args.extend(Self::conv_args(g)?);
        self.launch("conv2d_forward", grid, B1, 0, &args)?;
        Ok(y)
    }
    fn conv2d_backward_input(&self, dy: &DevBuf, w: &DevBuf, g: &ConvGeom) -> Result<DevBuf> {
        let dx = self.buf(g.input_len())?;
        let cols = g.n * g.h * g.w;
        let grid = [cols.div_ceil(CONV_TILE) as u32, g.c_in.div_ceil(CONV_TILE) as u32, 1];
        let mut args = vec![p(dy), p(w), p(&dx)];
        args.extend(Self::conv_args(g)?);
        self.launch("conv2d_backward_input", grid, B1, 0, &args)?;
        Ok(dx)
    }
    fn conv2d_backward_weight(&self, dy: &DevBuf, x: &DevBuf, g: &ConvGeom) -> Result<DevBuf> {
        let dw = self.zeroed(g.weight_len())?;
        let positions = g.n * g.out_h() * g.out_w();
        let crs = g.c_in * g.kh * g.kw;
        let tiles = crs.div_ceil(CONV_TILE) * g.c_out.div_ceil(CONV_TILE);
        let splits = CONV_WGRAD_TARGET_BLOCKS.div_ceil(tiles).clamp(1, positions.div_ceil(CONV_WGRAD_MIN_CHUNK).max(1));
        let chunk = positions.div_ceil(splits).max(1);
        let grid =
            [crs.div_ceil(CONV_TILE) as u32, g.c_out.div_ceil(CONV_TILE) as u32, positions.div_ceil(chunk) as u32];
        let mut args = vec![p(dy), p(x), p(&dw)];
        args.extend(Self::conv_args(g)?);
        args.push(i(chunk)?);
        self.launch("conv2d_backward_weight", grid, B1, 0, &args)?;
        Ok(dw)
    }
    fn channel_sums(&self, dy: &DevBuf, n: usize, c: usize, hw: usize) -> Result<DevBuf> {
        let out = self.buf(c)?;
        self.launch("channel_sums", [c as u32, 1, 1], B1, 0, &[p(dy), p(&out), i(n)?, i(c)?, i(hw)?])?;
        Ok(out)
    }

    fn batchnorm_forward_train(
        &self,
        x: &DevBuf,
        gamma: &DevBuf,
        beta: &DevBuf,
        running_mean: &mut DevBuf,
        running_var: &mut DevBuf,
        n: usize,
        c: usize,
        hw: usize,
        momentum: f64,
        eps: f64,
    ) -> Result<(DevBuf, DevBuf, DevBuf)> {
        running_mean.make_unique()?;
        running_var.make_unique()?;
        let (mean, invstd, y) = (self.buf(c)?, self.buf(c)?, self.buf(n * c * hw)?);
        let args =
            [p(x), p(&mean), p(&invstd), p(running_mean), p(running_var), i(n)?, i(c)?, i(hw)?, f(momentum), f(eps)];
        self.launch("bn_stats", [c as u32, 1, 1], B1, 0, &args)?;
        let args = [p(x), p(gamma), p(beta), p(&mean), p(&invstd), p(&y), i(n)?, i(c)?, i(hw)?];
        self.launch("bn_apply", ew(n * c * hw), B1, 0, &args)?;
        Ok((y, mean, invstd))
    }
    fn batchnorm_forward_eval(
        &self,
        x: &DevBuf,
        gamma: &DevBuf,
        beta: &DevBuf,
        running_mean: &DevBuf,
        running_var: &DevBuf,
        n: usize,
        c: usize,
        hw: usize,
        eps: f64,
    ) -> Result<DevBuf> {
        let (invstd, y) = (self.buf(c)?, self.buf(n * c * hw)?);
        self.launch("bn_eval_invstd", ew(c), B1, 0, &[p(running_var), p(&invstd), i(c)?, f(eps)])?;
        let args = [p(x), p(gamma), p(beta), p(running_mean), p(&invstd), p(&y), i(n)?, i(c)?, i(hw)?];
        self.launch("bn_apply", ew(n * c * hw), B1, 0, &args)?;
        Ok(y)
    }
    fn batchnorm_backward(
        &self,
        dy: &DevBuf,
        x: &DevBuf,
        gamma: &DevBuf,
        mean: &DevBuf,
        invstd: &DevBuf,
        n: usize,
        c: usize,
        hw: usize,
    ) -> Result<(DevBuf, DevBuf, DevBuf)> {
        let (dgamma, dbeta, dx) = (self.buf(c)?, self.buf(c)?, self.buf(n * c * hw)?);
        let args = [p(dy), p(x), p(mean), p(invstd), p(&dgamma), p(&dbeta), i(n)?, i(c)?, i(hw)?];
        self.launch("bn_backward_reduce", [c as u32, 1, 1], B1, 0, &args)?;
        let args = [p(dy), p(x), p(gamma), p(mean), p(invstd), p(&dgamma), p(&dbeta), p(&dx), i(n)?, i(c)?, i(hw)?];
        self.launch("bn_backward_apply", ew(n * c * hw), B1, 0, &args)?;
        Ok((dx, dgamma, dbeta))
    }

    fn maxpool2d_forward(&self, x: &DevBuf, g: &PoolGeom) -> Result<(DevBuf, DevBuf)> {
        let total = g.n * g.c * g.out_h() * g.out_w();
        let (y, idx) = (self.buf(total)?, self.buf(total)?);
        let args = [
            p(x),
            p(&y),
            p(&idx),
            i(g.n)?,
            i(g.c)?,
            i(g.h)?,
            i(g.w)?,
            i(g.k)?,
            i(g.stride)?,
            i(g.out_h())?,
            i(g.out_w())?,
        ];
        self.launch("maxpool2d_forward", ew(total), B1, 0, &args)?;
        Ok((y, idx))
    }
    fn maxpool2d_backward(&self, dy: &DevBuf, argmax: &DevBuf, g: &PoolGeom) -> Result<DevBuf> {
        let dx = self.zeroed(g.n * g.c * g.h * g.w)?;
        let total = dy.len();
        self.launch("maxpool2d_backward", ew(total), B1, 0, &[p(dy), p(argmax), p(&dx), i(total)?])?;
        Ok(dx)
    }
    fn global_avgpool_forward(&self, x: &DevBuf, n: usize, c: usize, hw: usize) -> Result<DevBuf> {
        let y = self.buf(n * c)?;
        self.launch("global_avgpool_forward", [(n * c) as u32, 1, 1], B1, 0, &[p(x), p(&y), i(n * c)?, i(hw)?])?;
        Ok(y)
    }
    fn global_avgpool_backward(&self, dy: &DevBuf, n: usize, c: usize, hw: usize) -> Result<DevBuf> {
        let dx = self.buf(n * c * hw)?;
        self.launch("global_avgpool_backward", ew(n * c * hw), B1, 0, &[p(dy), p(&dx), i(n * c)?, i(hw)?])?;
        Ok(dx)
    }
    fn channel_scale_forward(&self, x: &DevBuf, s: &DevBuf, n: usize, c: usize, hw: usize) -> Result<DevBuf> {
        let y = self.buf(n * c * hw)?;
        self.launch("channel_scale_forward", ew(n * c * hw), B1, 0, &[p(x), p(s), p(&y), i(n * c)?, i(hw)?])?;
        Ok(y)
    }
    fn channel_scale_backward(
        &self,
        dy: &DevBuf,
        x: &DevBuf,
        s: &DevBuf,
        n: usize,
        c: usize,
        hw: usize,
    ) -> Result<(DevBuf, DevBuf)> {
        let (dx, ds) = (self.buf(n * c * hw)?, self.buf(n * c)?);
        let args = [p(dy), p(x), p(s), p(&dx), p(&ds), i(n * c)?, i(hw)?];
        self.launch("channel_scale_backward", [(n * c) as u32, 1, 1], B1, 0, &args)?;
        Ok((dx, ds))
    }

    fn channel_dot(&self, a: &DevBuf, b: &DevBuf, n: usize, c: usize, hw: usize) -> Result<DevBuf> {
        let d = self.buf(n * c)?;
        self.launch("channel_dot", [(n * c) as u32, 1, 1], B1, 0, &[p(a), p(b), p(&d), i(n * c)?, i(hw)?])?;
        Ok(d)
    }
    fn se_backward_input(
        &self,
        dy: &DevBuf,
        gate: &DevBuf,
        dsqueeze: &DevBuf,
        n: usize,
        c: usize,
        hw: usize,
    ) -> Result<DevBuf> {
        let dx = self.buf(n * c * hw)?;
        let args = [p(dy), p(gate), p(dsqueeze), p(&dx), i(n * c)?, i(hw)?];
        self.launch("se_backward_input", ew(n * c * hw), B1, 0, &args)?;
        Ok(dx)
    }

    fn mel_project(
        &self,
        power: &DevBuf,
        fb: &DevBuf,
        clips: usize,
        bins: usize,
        frames: usize,
        n_mels: usize,
    ) -> Result<DevBuf> {
        // Each band's non-zero bin range, so the kernel skips the zeros of the triangle filters.
        let w = self.download(fb)?;
        let (mut lo, mut hi) = (Vec::with_capacity(n_mels), Vec::with_capacity(n_mels));
        for m in 0..n_mels {
            let row = &w[m * bins..(m + 1) * bins];
            let first = row.iter().position(|&v| v != 0.0).unwrap_or(0);
            let last = row.iter().rposition(|&v| v != 0.0).map_or(0, |l| l + 1);
            lo.push(first as u32);
            hi.push(last.max(first) as u32);
        }
        let (lo, hi) = (self.upload_index(&lo)?, self.upload_index(&hi)?);
        let mel = self.buf(clips * n_mels * frames)?;
        let args = [p(power), p(fb), p(&lo), p(&hi), p(&mel), i(clips)?, i(bins)?, i(frames)?, i(n_mels)?];
        self.launch("mel_project", ew(clips * n_mels * frames), B1, 0, &args)?;
        Ok(mel)
    }
    fn mel_project_backward(
        &self,
        dmel: &DevBuf,
        fb: &DevBuf,
        clips: usize,
        bins: usize,
        frames: usize,
        n_mels: usize,
    ) -> Result<DevBuf> {
        let dp = self.buf(clips * bins * frames)?;
        let args = [p(dmel), p(fb), p(&dp), i(clips)?, i(bins)?, i(frames)?, i(n_mels)?];
        self.launch("mel_project_backward", ew(clips * bins * frames), B1, 0, &args)?;
        Ok(dp)
    }
    fn power_to_db(
        &self,
        x: &DevBuf,
        clips: usize,
        len: usize,
        ref_max: bool,
        amin: f64,
        top_db: Option<f64>,
    ) -> Result<DevBuf> {
        let y = self.buf(clips * len)?;
        let refs = if ref_max { Some(self.clip_max(x, clips, len)?) } else { None };
        let args = [p(x), Arg::Ptr(refs.as_ref().map_or(0, |r| r.ptr())), p(&y), i(clips)?, i(len)?, f(amin)];
        self.launch("power_to_db_apply", ew(clips * len), B1, 0, &args)?;
        if let Some(t) = top_db {
            let top = self.clip_max(&y, clips, len)?;
            self.launch("db_floor", ew(clips * len), B1, 0, &[p(&y), p(&top), i(clips)?, i(len)?, f(t)])?;
        }
        Ok(y)
    }
    fn power_to_db_backward(
        &self,
        x: &DevBuf,
        y: &DevBuf,
        dy: &DevBuf,
        clips: usize,
        len: usize,
        ref_max: bool,
        amin: f64,
        top_db: Option<f64>,
    ) -> Result<DevBuf> {
        let dx = self.buf(clips * len)?;
        let top = top_db.map(|_| self.clip_max(y, clips, len)).transpose()?;
        let args = [
            p(x),
            p(y),
            p(dy),
            Arg::Ptr(top.as_ref().map_or(0, |t| t.ptr())),
            p(&dx),
            i(clips)?,
            i(len)?,
            f(amin),
            f(top_db.unwrap_or(0.0)),
        ];
        self.launch("power_to_db_backward", ew(clips * len), B1, 0, &args)?;
        let mut args = args.to_vec();
        args.push(Arg::I32(ref_max as i32));
        self.launch("power_to_db_backward_max", [clips as u32, 1, 1], B1, 0, &args)?;
        Ok(dx)
    }
    fn crop_pad(
        &self,
        x: &DevBuf,
        in_frames: &[usize],
        rows: usize,
        in_stride: usize,
        frames: usize,
        centre: bool,
        pad: f64,
    ) -> Result<DevBuf> {
        let clips = in_frames.len();
        let nf = in_frames.iter().map(|&n| u32::try_from(n.min(in_stride)).unwrap_or(u32::MAX)).collect::<Vec<_>>();
        let nf = self.upload_index(&nf)?;
        let y = self.buf(clips * rows * frames)?;
        let args =
            [p(x), p(&nf), p(&y), i(clips)?, i(rows)?, i(in_stride)?, i(frames)?, Arg::I32(centre as i32), f(pad)];
        self.launch("crop_pad", ew(clips * rows * frames), B1, 0, &args)?;
        Ok(y)
    }

    fn mse_forward(&self, pred: &DevBuf, target: &DevBuf) -> Result<DevBuf> {
        self.scalar_out("mse_forward", pred, target)
    }
    fn mse_backward(&self, pred: &DevBuf, target: &DevBuf, dl: &DevBuf) -> Result<DevBuf> {
        self.loss_backward("mse_backward", pred, target, dl)
    }
    fn l1_forward(&self, pred: &DevBuf, target: &DevBuf) -> Result<DevBuf> {
        self.scalar_out("l1_forward", pred, target)
    }
    fn l1_backward(&self, pred: &DevBuf, target: &DevBuf, dl: &DevBuf) -> Result<DevBuf> {
        self.loss_backward("l1_backward", pred, target, dl)
    }
    fn cross_entropy_forward(&self, logits: &DevBuf, labels: &DevBuf, rows: usize, classes: usize) -> Result<DevBuf> {
        let out = self.buf(1)?;
        self.launch(
            "cross_entropy_forward",
            [1, 1, 1],
            B1,
            0,
            &[p(logits), p(labels), p(&out), i(rows)?, i(classes)?],
        )?;
        Ok(out)
    }
    fn cross_entropy_backward(
        &self,
        logits: &DevBuf,
        labels: &DevBuf,
        rows: usize,
        classes: usize,
        dl: &DevBuf,
    ) -> Result<DevBuf> {
        let dx = self.buf(rows * classes)?;
        let args = [p(logits), p(labels), p(dl), p(&dx), i(rows)?, i(classes)?];
        self.launch("cross_entropy_backward", ew(rows * classes), B1, 0, &args)?;
        Ok(dx)
    }

    fn adam_update(&self, w: &mut DevBuf, g: &DevBuf, m: &mut DevBuf, v: &mut DevBuf, hp: &AdamStep) -> Result<()> {
        w.make_unique()?;
        m.make_unique()?;
        v.make_unique()?;
        let t = hp.step as i32;
        let step_size = hp.lr / (1.0 - hp.beta1.powi(t));
        let bc2_sqrt = (1.0 - hp.beta2.powi(t)).sqrt();
        let n = w.len();
        let args = [
            p(w),
            p(g),
            p(m),
            p(v),
            i(n)?,
            f(step_size),
            f(1.0 - hp.beta1),
            f(hp.beta2),
            f(1.0 - hp.beta2),
            f(hp.eps),
            f(hp.weight_decay),
            Arg::I32(hp.decoupled as i32),
            f(bc2_sqrt),
            f(hp.grad_scale),
            f(1.0 - hp.lr * hp.weight_decay),
        ];
        self.launch("adam_update", ew(n), B1, 0, &args)
    }
}
