//! The timed workloads of `moodgrad bench kernels`, generic over the backend. Each returns one
//! `Record` per shape: the median of `runs` timed repetitions after `warmup` untimed ones, the
//! device synchronised before the clock stops.
//!
//! Bytes counted (GB/s): every large tensor once per pass the minimum algorithm must make over
//! it: a copy reads x and writes y (2·|x|); BatchNorm fwd+bwd reads x and writes y forward, reads
//! dy and the saved x and writes dx backward (5·|x|); SE fwd+bwd 7·|x|: the gate needs each
//! plane's mean before y can be written, and dgate each plane's Σ dy·x before dx can, so forward
//! reads x twice and writes y, backward reads dy twice and x once and writes dx (this was counted
//! as 5·|x| before, which overstated the GB/s by 7/5); SE + global pool reads x forward and
//! writes dx backward (2·|x|; its dy and the weights are [N, C] or smaller and not counted). FLOPs (conv,
//! unit): 3 × 2·N·C_out·OH·OW·C_in·9, forward + input grad + weight grad, as
//! tools/bench_torch_gpu.py counts them; the unit's BN/ReLU/pool work is not counted. The first
//! layer (one input channel) also reports its forward and weight gradient alone, 2·N·C_out·OH·OW·9
//! each.

use super::Plan;
use crate::backend::prelude::*;
use crate::backend::{Backend, BnParams, ChannelGeom, ConvGeom};
use crate::error::Result;
use crate::nn::attention::SqueezeExcite;
use crate::nn::layers::{BatchNorm2d, Conv2d, vgg_unit_forward};
use crate::nn::{AttentionKind, ModelConfig, SeedNet};
use crate::optim::{Adam, AdamConfig};
use crate::params::ParamStore;
use crate::rng::Rng;
use crate::tape::Tape;
use crate::tensor::{Tensor, shape_str};
use crate::train::lyrics::NoLyrics;
use crate::train::{Batch, Objective, StepOptions, train_step};
use std::time::Instant;

/// What one workload measured; `throughput` is GB/s, TFLOP/s or samples/s by `kind`.
pub struct Record {
    pub op: &'static str,
    pub name: String,
    pub shape: String,
    pub ms: f64,
    pub kind: Kind,
}

pub enum Kind {
    /// Memory-bound: bytes read + written per run.
    Bytes(f64),
    /// Compute-bound: floating-point operations per run.
    Flops(f64),
    /// A training step: samples per run, the backend's peak bytes, the process peak RSS (CPU).
    Step { samples: usize, peak_bytes: usize, peak_rss_bytes: Option<u64> },
}

/// Median milliseconds of `f` over `runs` runs after `warmup` runs, synchronising before each stop.
pub fn time_ms<B: Backend>(be: &B, p: &Plan, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    for _ in 0..p.warmup {
        f()?;
    }
    be.synchronize()?;
    let mut ts = Vec::with_capacity(p.runs);
    for _ in 0..p.runs {
        let t = Instant::now();
        f()?;
        be.synchronize()?;
        ts.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ts.sort_by(f64::total_cmp);
    Ok(ts[ts.len() / 2])
}

fn randn<B: Backend>(be: &B, rng: &mut Rng, len: usize) -> Result<B::Buf> {
    let v: Vec<f64> = (0..len).map(|_| rng.normal()).collect();
    be.upload_f64(&v)
}

fn tensor<B: Backend>(be: &B, rng: &mut Rng, shape: &[usize]) -> Result<Tensor<B>> {
    Tensor::new(shape.to_vec(), randn(be, rng, shape.iter().product())?)
}

const F32: f64 = 4.0;

/// Device-to-device copy bandwidth (GB/s, read + write) of a `bytes`-byte buffer: the yardstick.
pub fn copy_gbps<B: Backend>(be: &B, p: &Plan, bytes: usize) -> Result<f64> {
    let x = be.fill(bytes / 4, 1.0)?;
    let ms = time_ms(be, p, || be.copy(&x).map(drop))?;
    Ok(2.0 * (x.len() as f64 * F32) / ms / 1e6)
}

/// The same on host memory (the CPU backend's and sim's): a parallel memcpy into a buffer
/// already written once, so the figure is bandwidth, not the page faults of a fresh allocation.
pub fn host_copy_gbps<B: Backend>(be: &B, p: &Plan, bytes: usize) -> Result<f64> {
    use rayon::prelude::*;
    const CHUNK: usize = 1 << 20;
    let src = vec![1.0f32; bytes / 4];
    let mut dst = vec![0.0f32; bytes / 4];
    let ms = time_ms(be, p, || {
        dst.par_chunks_mut(CHUNK).zip(src.par_chunks(CHUNK)).for_each(|(d, s)| d.copy_from_slice(s));
        Ok(())
    })?;
    std::hint::black_box(&dst);
    Ok(2.0 * (src.len() as f64 * F32) / ms / 1e6)
}

/// `Memory::copy` of the SE block's activation map.
pub fn copy<B: Backend>(be: &B, p: &Plan) -> Result<Vec<Record>> {
    let shape = p.se_shape();
    let x = randn(be, &mut Rng::new(1), shape.iter().product())?;
    let ms = time_ms(be, p, || be.copy(&x).map(drop))?;
    let bytes = 2.0 * x.len() as f64 * F32;
    Ok(vec![Record { op: "copy", name: "copy".into(), shape: shape_str(&shape), ms, kind: Kind::Bytes(bytes) }])
}

/// `SqueezeExcite(512, 16)` forward + backward through a tape, alone and folded with the pool.
pub fn se<B: Backend>(be: &B, p: &Plan) -> Result<Vec<Record>> {
    let mut rng = Rng::new(2);
    let shape = p.se_shape();
    let n: usize = shape.iter().product();
    let mut store = ParamStore::new(be.clone());
    let se = SqueezeExcite::new(&mut store, &mut rng, "se", shape[1], 16)?;
    let x = tensor(be, &mut rng, &shape)?;
    let mut out = Vec::new();
    for pooled in [false, true] {
        let dy = randn(be, &mut rng, if pooled { shape[0] * shape[1] } else { n })?;
        let ms = time_ms(be, p, || {
            let mut tape = Tape::new(be.clone());
            let xv = tape.input(x.clone(), true);
            let y =
                if pooled { se.forward_pooled(&mut tape, &store, &xv)? } else { se.forward(&mut tape, &store, &xv)? };
            store.zero_grad();
            tape.backward_from(&y, dy.clone(), &mut store).map(drop)
        })?;
        let (op, passes) = if pooled { ("se_pool", 2.0) } else { ("se", 7.0) };
        let kind = Kind::Bytes(passes * n as f64 * F32);
        out.push(Record { op, name: op.into(), shape: shape_str(&shape), ms, kind });
    }
    Ok(out)
}

/// Conv2d 3×3 pad 1 without bias: forward, input grad, weight grad at each VGG block's map.
pub fn conv<B: Backend>(be: &B, p: &Plan) -> Result<Vec<Record>> {
    let mut rng = Rng::new(3);
    let mut out = Vec::new();
    for (name, ci, co, h, w) in p.vgg() {
        let g = ConvGeom { n: p.batch, c_in: ci, h, w, c_out: co, kh: 3, kw: 3, stride: 1, pad: 1 };
        let x = randn(be, &mut rng, g.input_len())?;
        let wt = randn(be, &mut rng, g.weight_len())?;
        let dy = randn(be, &mut rng, g.output_len())?;
        let ms = time_ms(be, p, || {
            be.conv2d_forward(&x, &wt, None, &g)?;
            be.conv2d_backward_input(&dy, &wt, &g)?;
            be.conv2d_backward_weight(&dy, &x, &g).map(drop)
        })?;
        let kind = Kind::Flops(3.0 * g.forward_flops());
        out.push(Record { op: "conv", name: name.clone(), shape: conv_shape(p.batch, ci, co, h, w), ms, kind });
        if ci == 1 {
            out.extend(first_layer_passes(be, p, &g, &name, (&x, &wt, &dy))?);
        }
    }
    Ok(out)
}

/// The spectrogram layer's two passes alone (`<name>_fwd`, `<name>_wgrad`): its input needs no
/// gradient, so training runs only these (kernels/conv_cin1.cu on the kernel backends).
fn first_layer_passes<B: Backend>(
    be: &B,
    p: &Plan,
    g: &ConvGeom,
    name: &str,
    (x, wt, dy): (&B::Buf, &B::Buf, &B::Buf),
) -> Result<Vec<Record>> {
    let shape = conv_shape(g.n, g.c_in, g.c_out, g.h, g.w);
    let fwd = time_ms(be, p, || be.conv2d_forward(x, wt, None, g).map(drop))?;
    let wgrad = time_ms(be, p, || be.conv2d_backward_weight(dy, x, g).map(drop))?;
    let flops = g.forward_flops();
    Ok(vec![
        Record { op: "conv", name: format!("{name}_fwd"), shape: shape.clone(), ms: fwd, kind: Kind::Flops(flops) },
        Record { op: "conv", name: format!("{name}_wgrad"), shape, ms: wgrad, kind: Kind::Flops(flops) },
    ])
}

/// "16x64x64x646->128": the input map and the output channels.
fn conv_shape(n: usize, ci: usize, co: usize, h: usize, w: usize) -> String {
    format!("{}->{co}", shape_str(&[n, ci, h, w]))
}

/// BatchNorm training forward + backward (the backend primitives) at block 1's map.
pub fn bn<B: Backend>(be: &B, p: &Plan) -> Result<Vec<Record>> {
    let mut rng = Rng::new(4);
    let (_, _, c, h, w) = p.vgg()[0].clone();
    let g = ChannelGeom { n: p.batch, c, hw: h * w };
    let x = randn(be, &mut rng, g.len())?;
    let dy = randn(be, &mut rng, g.len())?;
    let (gamma, beta) = (be.fill(c, 1.0)?, be.zeros(c)?);
    let (mut rm, mut rv) = (be.zeros(c)?, be.fill(c, 1.0)?);
    let bp = BnParams { momentum: 0.1, eps: 1e-5 };
    let ms = time_ms(be, p, || {
        let (_, mean, invstd) = be.batchnorm_forward_train(&x, &gamma, &beta, &mut rm, &mut rv, &g, &bp)?;
        be.batchnorm_backward(&dy, &x, &gamma, &mean, &invstd, &g).map(drop)
    })?;
    let kind = Kind::Bytes(5.0 * g.len() as f64 * F32);
    Ok(vec![Record { op: "bn", name: "bn".into(), shape: shape_str(&[p.batch, c, h, w]), ms, kind }])
}

/// The fused VGG unit (conv → BN → ReLU → 2×2 max-pool, the last block without the pool)
/// forward + backward in training mode, the input needing a gradient, at each block's map.
pub fn unit<B: Backend>(be: &B, p: &Plan) -> Result<Vec<Record>> {
    let mut rng = Rng::new(5);
    let mut out = Vec::new();
    for (k, (name, ci, co, h, w)) in p.vgg().into_iter().enumerate() {
        let pool = k < 3;
        let mut store = ParamStore::new(be.clone());
        let conv = Conv2d::new(&mut store, &mut rng, "conv", ci, co, 3, 1, 1)?;
        let bn = BatchNorm2d::new(&mut store, "bn", co)?;
        let x = tensor(be, &mut rng, &[p.batch, ci, h, w])?;
        let (oh, ow) = if pool { (h / 2, w / 2) } else { (h, w) };
        let dy = randn(be, &mut rng, p.batch * co * oh * ow)?;
        let ms = time_ms(be, p, || {
            let mut tape = Tape::new(be.clone());
            let xv = tape.input(x.clone(), true);
            let y = vgg_unit_forward(&conv, &bn, pool, &mut tape, &mut store, &xv, true)?;
            store.zero_grad();
            tape.backward_from(&y, dy.clone(), &mut store).map(drop)
        })?;
        let g = ConvGeom { n: p.batch, c_in: ci, h, w, c_out: co, kh: 3, kw: 3, stride: 1, pad: 1 };
        let kind = Kind::Flops(3.0 * g.forward_flops());
        out.push(Record { op: "unit", name, shape: conv_shape(p.batch, ci, co, h, w), ms, kind });
    }
    Ok(out)
}

/// Full training steps (forward, backward, clip at 1.0, Adam) of the SE seed network on a random
/// [B, 1, H, W] audio + [B, 768] lyrics batch.
pub fn step<B: Backend>(be: &B, p: &Plan) -> Result<Vec<Record>> {
    let mut rng = Rng::new(6);
    let cfg = ModelConfig::preset(p.config, AttentionKind::Se)?;
    let lyrics_dim = cfg.lyrics_dim;
    let mut store = ParamStore::new(be.clone());
    let net = SeedNet::new(cfg, &mut store, &mut rng)?;
    let (b, (h, w)) = (p.batch, p.input);
    let target: Vec<f64> = (0..b * 2).map(|_| rng.uniform()).collect();
    let batch = Batch::with_vectors(
        tensor(be, &mut rng, &[b, 1, h, w])?,
        tensor(be, &mut rng, &[b, lyrics_dim])?,
        Tensor::from_f64(be, &[b, 2], &target)?,
    );
    let mut opt = Adam::new(AdamConfig::default());
    let (mut s, mut peak) = (0u64, 0usize);
    let ms = time_ms(be, p, || {
        s += 1;
        let options = StepOptions { objective: Objective::MSE, clip: Some(1.0), seed: s };
        let r = train_step(&net, &mut store, &mut opt, &mut NoLyrics, &batch, &options, None)?;
        peak = peak.max(r.peak_bytes);
        Ok(())
    })?;
    let kind = Kind::Step { samples: b, peak_bytes: peak, peak_rss_bytes: super::peak_rss_bytes() };
    let name = format!("{}_se", p.config);
    Ok(vec![Record { op: "step", name, shape: shape_str(&[b, 1, h, w]), ms, kind }])
}
