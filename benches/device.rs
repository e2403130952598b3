//! Device benchmarks: CUDA when a GPU answers, otherwise the CPU backend (the host SIMT layer
//! is for correctness, not speed). tools/bench_torch_gpu.py times PyTorch's equivalents on the
//! same GPU; docs/perf.md puts them side by side.
//!
//! Throughput units: SE reports bytes (7 passes over the 32×512×16×161 activation: forward
//! reads x twice and writes y; backward reads dy and x, then dy again and writes dx); conv2d
//! reports FLOPs as "elements" (2·N·K·OH·OW·C·R·S per pass, three passes); copy reports bytes.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use moodgrad::backend::{AdamStep, Backend, ConvGeom};
use moodgrad::device::{Device, DeviceChoice};
use moodgrad::ops;
use moodgrad::rng::Rng;
use moodgrad::tape::Tape;
use moodgrad::tensor::Tensor;
use std::time::Duration;

fn randn(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.normal()).collect()
}

/// (name, c_in, c_out, h, w): the VGG convs of a 128×1292 spectrogram.
const VGG: [(&str, usize, usize, usize, usize); 4] = [
    ("block1_1to64_128x1292", 1, 64, 128, 1292),
    ("block2_64to128_64x646", 64, 128, 64, 646),
    ("block3_128to256_32x323", 128, 256, 32, 323),
    ("block4_256to512_16x161", 256, 512, 16, 161),
];

fn run<B: Backend>(c: &mut Criterion, be: B, gpu: bool) {
    let mut rng = Rng::new(9);
    let tag = if gpu { "cuda" } else { "cpu" };

    // Copy bandwidth: the yardstick for the SE block's memory-bound passes.
    let (n, ch, h, w) = (32, 512, 16, 161);
    let len = n * ch * h * w;
    let x = be.upload_f64(&randn(&mut rng, len)).unwrap();
    let mut g = c.benchmark_group(format!("device_{tag}"));
    g.sample_size(10).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Bytes((2 * len * 4) as u64));
    g.bench_function("copy_169MB", |b| {
        b.iter(|| {
            let y = be.copy(&x).unwrap();
            be.synchronize().unwrap();
            y
        })
    });

    // SE block forward + backward at the seed's batch 32.
    let w1 = Tensor::from_f64(&be, &[ch / 16, ch], &randn(&mut rng, ch * ch / 16)).unwrap();
    let w2 = Tensor::from_f64(&be, &[ch, ch / 16], &randn(&mut rng, ch * ch / 16)).unwrap();
    let xt = Tensor::new(vec![n, ch, h, w], x.clone()).unwrap();
    let dy = be.upload_f64(&randn(&mut rng, len)).unwrap();
    g.throughput(Throughput::Bytes((7 * len * 4) as u64));
    g.bench_function("se_fwd_bwd_32x512x16x161", |b| {
        b.iter(|| {
            let mut tape = Tape::new(be.clone());
            let xv = tape.input(xt.clone(), true);
            let (a, bb) = (tape.input(w1.clone(), true), tape.input(w2.clone(), true));
            let y = ops::squeeze_excite(&mut tape, &xv, &a, &bb).unwrap();
            let mut store = moodgrad::params::ParamStore::new(be.clone());
            let grads = tape.backward_from(&y, dy.clone(), &mut store).unwrap();
            be.synchronize().unwrap();
            grads.get(&xv).is_some()
        })
    });

    // The four VGG convolutions, forward + both backward passes, batch 16 on a GPU (the seed's
    // batch) and 1 on the CPU.
    let batch = if gpu { 16 } else { 1 };
    for (name, ci, co, h, w) in VGG {
        let geom = ConvGeom { n: batch, c_in: ci, h, w, c_out: co, kh: 3, kw: 3, stride: 1, pad: 1 };
        let xb = be.upload_f64(&randn(&mut rng, geom.input_len())).unwrap();
        let wb = be.upload_f64(&randn(&mut rng, geom.weight_len())).unwrap();
        let dyb = be.upload_f64(&randn(&mut rng, geom.output_len())).unwrap();
        g.throughput(Throughput::Elements((3.0 * geom.forward_flops()) as u64));
        g.bench_with_input(BenchmarkId::new("conv2d_fwd_bwd_flops", format!("{name}_n{batch}")), &geom, |b, geom| {
            b.iter(|| {
                let y = be.conv2d_forward(&xb, &wb, None, geom).unwrap();
                let dx = be.conv2d_backward_input(&dyb, &wb, geom).unwrap();
                let dw = be.conv2d_backward_weight(&dyb, &xb, geom).unwrap();
                be.synchronize().unwrap();
                (y, dx, dw)
            })
        });
        if ci == 1 {
            // The spectrogram layer's input needs no gradient: training runs only these two
            // (kernels/conv_cin1.cu on a GPU), so time them alone too.
            g.throughput(Throughput::Elements(geom.forward_flops() as u64));
            g.bench_with_input(BenchmarkId::new("conv2d_fwd_flops", format!("{name}_n{batch}")), &geom, |b, geom| {
                b.iter(|| {
                    let y = be.conv2d_forward(&xb, &wb, None, geom).unwrap();
                    be.synchronize().unwrap();
                    y
                })
            });
            g.bench_with_input(BenchmarkId::new("conv2d_wgrad_flops", format!("{name}_n{batch}")), &geom, |b, geom| {
                b.iter(|| {
                    let dw = be.conv2d_backward_weight(&dyb, &xb, geom).unwrap();
                    be.synchronize().unwrap();
                    dw
                })
            });
        }
    }

    // Adam with the clip coefficient over 10 M parameters in 20 tensors (norm, then update).
    let sizes = [500_000usize; 20];
    let mut ws: Vec<_> = sizes.iter().map(|&s| be.upload_f64(&randn(&mut rng, s)).unwrap()).collect();
    let gs: Vec<_> = sizes.iter().map(|&s| be.upload_f64(&randn(&mut rng, s)).unwrap()).collect();
    let mut ms: Vec<_> = sizes.iter().map(|&s| be.zeros(s).unwrap()).collect();
    let mut vs: Vec<_> = sizes.iter().map(|&s| be.zeros(s).unwrap()).collect();
    g.throughput(Throughput::Elements(10_000_000));
    let mut step = 0;
    g.bench_function("adam_clip_10M_params", |b| {
        b.iter(|| {
            step += 1;
            let refs: Vec<_> = gs.iter().collect();
            let norm = be.sum_squares_many(&refs).unwrap().sqrt();
            let hp = AdamStep {
                lr: 1e-3,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0,
                decoupled: false,
                step,
                grad_scale: (1.0 / (norm + 1e-6)).min(1.0),
            };
            for i in 0..sizes.len() {
                be.adam_update(&mut ws[i], &gs[i], &mut ms[i], &mut vs[i], &hp).unwrap();
            }
            be.synchronize().unwrap();
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    match Device::open(DeviceChoice::Auto).expect("open device") {
        Device::Kernels(b) => run(c, b, true),
        Device::Cpu(b) => {
            eprintln!("no GPU answered: device benches run on the CPU backend");
            run(c, b, false)
        }
    }
}

criterion_group!(device, benches);
criterion_main!(device);
