//! CPU benchmarks: the four VGG conv shapes, the conv algorithms per production shape and pass,
//! the fused VGG unit against the unfused ops, the SE block, full MODEL_3 and MODEL_4 training steps.
//! tools/perf_report.py puts these beside tools/bench_torch_cpu.py's PyTorch figures.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use moodgrad::backend::ConvGeom;
use moodgrad::backend::cpu::Cpu;
use moodgrad::backend::cpu::conv::{self as cpu_conv, ConvAlgo, Pass};
use moodgrad::backend::prelude::*;
use moodgrad::nn::attention::SqueezeExcite;
use moodgrad::nn::layers::{BatchNorm2d, Conv2d, vgg_unit_forward};
use moodgrad::nn::{AttentionKind, ModelConfig, SeedNet};
use moodgrad::ops;
use moodgrad::optim::{Adam, AdamConfig};
use moodgrad::params::ParamStore;
use moodgrad::rng::Rng;
use moodgrad::tape::Tape;
use moodgrad::tensor::Tensor;
use moodgrad::train::lyrics::NoLyrics;
use moodgrad::train::{Batch, StepOptions, train_step};
use std::hint::black_box;
use std::time::Duration;

type B = Cpu<f32>;

/// As the moodgrad binary: large buffers on transparent huge pages.
#[global_allocator]
static ALLOC: moodgrad::hugepages::HugePageAlloc = moodgrad::hugepages::HugePageAlloc;

fn randn(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.normal() as f32).collect()
}

/// (name, c_in, c_out, h, w): the VGG convs of a 1×128×1292 spectrogram, MODEL_3's four and
/// MODEL_4's second conv of each block.
const VGG: [(&str, usize, usize, usize, usize); 8] = [
    ("block1_1to64_128x1292", 1, 64, 128, 1292),
    ("block2_64to128_64x646", 64, 128, 64, 646),
    ("block3_128to256_32x323", 128, 256, 32, 323),
    ("block4_256to512_16x161", 256, 512, 16, 161),
    ("m4_64to64_128x1292", 64, 64, 128, 1292),
    ("m4_128to128_64x646", 128, 128, 64, 646),
    ("m4_256to256_32x323", 256, 256, 32, 323),
    ("m4_512to512_16x161", 512, 512, 16, 161),
];

fn conv(c: &mut Criterion) {
    let be = B::new();
    let mut rng = Rng::new(1);
    let mut g = c.benchmark_group("conv2d_fwd_bwd");
    g.sample_size(10).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    for (name, ci, co, h, w) in VGG {
        let geom = ConvGeom { n: 1, c_in: ci, h, w, c_out: co, kh: 3, kw: 3, stride: 1, pad: 1 };
        let x = be.upload(&randn(&mut rng, geom.input_len())).unwrap();
        let wt = be.upload(&randn(&mut rng, geom.weight_len())).unwrap();
        let b = be.upload(&randn(&mut rng, co)).unwrap();
        let dy = be.upload(&randn(&mut rng, geom.output_len())).unwrap();
        g.throughput(Throughput::Elements((3.0 * geom.forward_flops()) as u64));
        g.bench_function(name, |bch| {
            bch.iter(|| {
                let y = be.conv2d_forward(&x, &wt, Some(&b), &geom).unwrap();
                let dx = be.conv2d_backward_input(&dy, &wt, &geom).unwrap();
                let dw = be.conv2d_backward_weight(&dy, &x, &geom).unwrap();
                let db = be.channel_sums(&dy, &geom.output_channels()).unwrap();
                black_box((y, dx, dw, db))
            })
        });
    }
    g.finish();
}

/// The production convs of MODEL_3 (VGG blocks) and MODEL_4 (their second convs).
const PRODUCTION: [(&str, usize, usize, usize, usize); 8] = [
    ("b1_1to64_128x1292", 1, 64, 128, 1292),
    ("b2_64to128_64x646", 64, 128, 64, 646),
    ("b3_128to256_32x323", 128, 256, 32, 323),
    ("b4_256to512_16x161", 256, 512, 16, 161),
    ("m4_64to64_128x1292", 64, 64, 128, 1292),
    ("m4_128to128_64x646", 128, 128, 64, 646),
    ("m4_256to256_32x323", 256, 256, 32, 323),
    ("m4_512to512_16x161", 512, 512, 16, 161),
];

/// Every algorithm that computes the pass, per production shape and pass, batch 1 (bench ids
/// `conv2d_algos/<pass>/<shape>/<algo>`; the selection's choice is marked `*`). Winograd is left
/// out at C_in = 1, where it has no channel reduction and runs 3-8× slower than im2col.
fn conv_algos(c: &mut Criterion) {
    let mut rng = Rng::new(4);
    let mut g = c.benchmark_group("conv2d_algos");
    g.sample_size(10).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    for (name, ci, co, h, w) in PRODUCTION {
        let geom = ConvGeom { n: 1, c_in: ci, h, w, c_out: co, kh: 3, kw: 3, stride: 1, pad: 1 };
        let x = randn(&mut rng, geom.input_len());
        let wt = randn(&mut rng, geom.weight_len());
        let b = randn(&mut rng, co);
        let dy = randn(&mut rng, geom.output_len());
        g.throughput(Throughput::Elements(geom.forward_flops() as u64));
        for pass in [Pass::Forward, Pass::BackwardInput, Pass::BackwardWeight] {
            let chosen = cpu_conv::choose::<f32>(pass, &geom);
            for algo in ConvAlgo::ALL {
                let winograd = matches!(algo, ConvAlgo::WinogradF2 | ConvAlgo::WinogradF4);
                if !algo.supports(pass, &geom, 4) || (winograd && ci == 1) {
                    continue;
                }
                let mark = if algo == chosen { "*" } else { "" };
                g.bench_function(format!("{pass:?}/{name}/{algo:?}{mark}"), |bch| {
                    bch.iter(|| {
                        black_box(match pass {
                            Pass::Forward => cpu_conv::forward_with(algo, &x, &wt, Some(&b), &geom),
                            Pass::BackwardInput => cpu_conv::backward_input_with(algo, &dy, &wt, &geom),
                            Pass::BackwardWeight => cpu_conv::backward_weight_with(algo, &dy, &x, &geom),
                        })
                    })
                });
            }
        }
    }
    g.finish();
}

/// MODEL_3's four VGG units (conv → BN → ReLU → max-pool, the last without the pool), forward
/// and backward through the tape in training mode at batch 1: the fused op and the four ops
/// (bench ids `vgg_unit/<fused|unfused>/<block>`).
fn vgg_unit(c: &mut Criterion) {
    let be = B::new();
    let mut rng = Rng::new(5);
    let mut g = c.benchmark_group("vgg_unit");
    g.sample_size(10).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    for (k, (name, ci, co, h, w)) in VGG[..4].iter().copied().enumerate() {
        let pool = k < 3;
        let mut store = ParamStore::new(be.clone());
        let conv = Conv2d::new(&mut store, &mut rng, "conv", ci, co, 3, 1, 1).unwrap();
        let bn = BatchNorm2d::new(&mut store, "bn", co).unwrap();
        let x = Tensor::new(vec![1, ci, h, w], be.upload(&randn(&mut rng, ci * h * w)).unwrap()).unwrap();
        let out = co * if pool { (h / 2) * (w / 2) } else { h * w };
        // A fixed upstream gradient, as tools/bench_torch_cpu.py's `unit(x).backward(gy)`.
        let gy = be.upload(&randn(&mut rng, out)).unwrap();
        for fused in [true, false] {
            let id = format!("{}/{name}", if fused { "fused" } else { "unfused" });
            g.bench_function(id, |bch| {
                bch.iter(|| {
                    let mut tape = Tape::new(be.clone());
                    // The input needs a gradient (as every unit's but the first in the model).
                    let xv = tape.input(x.clone(), true);
                    let y = if fused {
                        vgg_unit_forward(&conv, &bn, pool, &mut tape, &mut store, &xv, true).unwrap()
                    } else {
                        let z = conv.forward(&mut tape, &store, &xv).unwrap();
                        let z = bn.forward(&mut tape, &mut store, &z, true).unwrap();
                        let z = ops::relu(&mut tape, &z).unwrap();
                        if pool { ops::maxpool2d(&mut tape, &z, 2, 2).unwrap() } else { z }
                    };
                    store.zero_grad();
                    black_box(tape.backward_from(&y, gy.clone(), &mut store).unwrap().get(&xv).map(|g| g[0]))
                })
            });
        }
    }
    g.finish();
}

fn se_block(c: &mut Criterion) {
    let be = B::new();
    let mut rng = Rng::new(2);
    let mut store = ParamStore::new(be.clone());
    let se = SqueezeExcite::new(&mut store, &mut rng, "se", 512, 16).unwrap();
    let shape = [1, 512, 16, 161];
    let x = Tensor::new(shape.to_vec(), be.upload(&randn(&mut rng, 512 * 16 * 161)).unwrap()).unwrap();
    // A fixed upstream gradient, as tools/bench_torch_cpu.py's `se(x).backward(gy)`.
    let gy = be.upload(&randn(&mut rng, 512 * 16 * 161)).unwrap();
    let mut g = c.benchmark_group("se_block");
    g.sample_size(20);
    g.bench_function("fwd_bwd_1x512x16x161", |bch| {
        bch.iter(|| {
            let mut tape = Tape::new(be.clone());
            let xv = tape.input(x.clone(), true);
            let y = se.forward(&mut tape, &store, &xv).unwrap();
            store.zero_grad();
            black_box(tape.backward_from(&y, gy.clone(), &mut store).unwrap().get(&xv).map(|g| g[0]))
        })
    });
    // As in the SE models: SE then the global average pool, folded into one op.
    let gp = be.upload(&randn(&mut rng, 512)).unwrap();
    g.bench_function("fwd_bwd_pooled_1x512x16x161", |bch| {
        bch.iter(|| {
            let mut tape = Tape::new(be.clone());
            let xv = tape.input(x.clone(), true);
            let y = se.forward_pooled(&mut tape, &store, &xv).unwrap();
            store.zero_grad();
            black_box(tape.backward_from(&y, gp.clone(), &mut store).unwrap().get(&xv).map(|g| g[0]))
        })
    });
    g.finish();
}

fn train(c: &mut Criterion) {
    let be = B::new();
    let mut g = c.benchmark_group("train_step");
    g.sample_size(10).measurement_time(Duration::from_secs(20)).warm_up_time(Duration::from_secs(2));
    for model in ["model3", "model4"] {
        let mut rng = Rng::new(3);
        let mut store = ParamStore::new(be.clone());
        let net = SeedNet::new(ModelConfig::preset(model, AttentionKind::Se).unwrap(), &mut store, &mut rng).unwrap();
        let up = |shape: &[usize], v: Vec<f32>| Tensor::new(shape, be.upload(&v).unwrap()).unwrap();
        let batch = Batch::with_vectors(
            up(&[2, 1, 128, 1292], randn(&mut rng, 2 * 128 * 1292)),
            up(&[2, 768], randn(&mut rng, 2 * 768)),
            up(&[2, 2], vec![0.2, 0.7, 0.6, 0.4]),
        );
        let mut opt = Adam::new(AdamConfig::default());
        let mut s = 0u64;
        g.bench_function(format!("{model}_batch2_128x1292"), |bch| {
            bch.iter(|| {
                s += 1;
                let options = StepOptions::mse(Some(1.0), s);
                black_box(train_step(&net, &mut store, &mut opt, &mut NoLyrics, &batch, &options, None).unwrap())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, conv, conv_algos, vgg_unit, se_block, train);
criterion_main!(benches);
