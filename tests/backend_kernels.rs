//! Every `Backend` primitive of the kernel-launching backend against the CPU backend, through
//! the CUDA backend's own launch code (grids, argument lists). On `sim` always; on `cuda` too
//! when a GPU answers (otherwise those runs print that they were skipped and why).
//!
//! Tolerances: f32 kernels and the f32 CPU backend sum in different orders. For a reduction of
//! length L with terms of scale s the difference is ≲ L·2⁻²⁴·s in the worst case and ~√L·2⁻²⁴·s
//! typically; we allow 1e-5 relative to the output's scale for elementwise maps (a few ulps, and
//! transcendental functions differ by a few ulps between libm and CUDA), and 1e-4 for
//! reductions over up to ~10⁴ terms. An indexing or formula error is O(1).

use moodgrad::backend::batch_split::LaunchCaps;
use moodgrad::backend::cpu::Cpu;
use moodgrad::backend::kernel::KernelBackend;
use moodgrad::backend::prelude::*;
use moodgrad::backend::{
    AdamStep, BnParams, ChannelGeom, ConcatGeom, ConvGeom, CropGeom, DbGeom, MatmulGeom, MelGeom, PoolGeom, Precision,
    RowsGeom, Unary,
};
use moodgrad::device::kernel_devices;
use moodgrad::rng::Rng;

fn devices() -> Vec<KernelBackend> {
    // FP32 convolutions, compared with the CPU at FP32 tolerances (CUDA defaults to TF32).
    let mut devices: Vec<KernelBackend> =
        kernel_devices(Some(Precision::Fp32)).unwrap().into_iter().map(|(_, b)| b).collect();
    // And sim launching one sample and 97 elements at a time: the path a batch past the kernels'
    // 32-bit indices takes (pointer offsets, BatchNorm and gradient sums merged over parts), on
    // tensors small enough to compare with the CPU.
    let split = LaunchCaps { samples: 1, flat: 97, ..LaunchCaps::default() };
    devices.push(devices[0].clone().with_launch_caps(split));
    devices
}

fn randn(r: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| r.normal() as f32).collect()
}

fn close(what: &str, got: &[f32], want: &[f32], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1e-30f64, |m, v| m.max(v.abs() as f64));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let e = (*g as f64 - *w as f64).abs() / scale;
        assert!(e <= tol, "{what}[{i}]: {g} vs {w} (err {e:.2e} of scale {scale:.3e} > {tol:.0e})");
    }
}

/// Runs `f` on the CPU and on each kernel device, comparing every returned buffer.
macro_rules! same {
    ($what:expr, $tol:expr, |$b:ident, $up:ident| $body:expr) => {{
        let cpu = Cpu::<f32>::new();
        let want: Vec<Vec<f32>> = {
            let $b = &cpu;
            let $up = |v: &[f32]| cpu.upload(v).unwrap();
            let outs: Vec<Vec<f32>> = $body;
            outs
        };
        for dev in devices() {
            let got: Vec<Vec<f32>> = {
                let $b = &dev;
                let $up = |v: &[f32]| dev.upload(v).unwrap();
                $body
            };
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                close(&format!("{} on {} (output {k})", $what, dev.name()), g, w, $tol);
            }
        }
    }};
}

fn dl<B: Backend>(b: &B, x: &B::Buf) -> Vec<f32> {
    b.download_f64(x).unwrap().into_iter().map(|v| v as f32).collect()
}

#[test]
fn elementwise_and_activations() {
    let mut r = Rng::new(1);
    let (a, c) = (randn(&mut r, 1037), randn(&mut r, 1037));
    same!("add/mul/scale", 1e-6, |b, up| {
        let (x, y) = (up(&a), up(&c));
        let mut z = b.add(&x, &y).unwrap();
        b.add_assign(&mut z, &y).unwrap();
        b.scale_assign(&mut z, -0.37).unwrap();
        vec![dl(b, &b.mul(&x, &y).unwrap()), dl(b, &z), dl(b, &b.fill(7, 2.5).unwrap()), dl(b, &b.zeros(5).unwrap())]
    });
    for op in [Unary::Relu, Unary::Sigmoid, Unary::Tanh, Unary::Gelu] {
        same!(format!("{op:?}"), 1e-5, |b, up| {
            let (x, d) = (up(&a), up(&c));
            let y = b.unary_forward(op, &x).unwrap();
            let dx = b.unary_backward(op, &x, &y, &d).unwrap();
            vec![dl(b, &y), dl(b, &dx)]
        });
    }
    // ReLU with its byte mask; the backward writes over a gradient nothing else holds, and copies
    // one that is shared (the original must survive).
    same!("relu mask", 0.0, |b, up| {
        let (x, d) = (up(&a), up(&c));
        let (y, mask) = b.relu_forward(&x).unwrap();
        let kept = d.clone();
        let dx = b.relu_backward(d, &mask).unwrap();
        let m: Vec<f32> = b.download_mask(&mask).unwrap().iter().map(|&v| v as f32).collect();
        vec![dl(b, &y), dl(b, &dx), m, dl(b, &kept)]
    });
    same!("dropout mask", 0.0, |b, _up| vec![dl(b, &b.dropout_mask(3001, 0.3, 12345).unwrap())]);
}

#[test]
fn reductions_rows_and_concat() {
    let mut r = Rng::new(2);
    let x = randn(&mut r, 37 * 19);
    let y = randn(&mut r, 37 * 5);
    same!("sum_rows/concat/split/bias", 1e-5, |b, up| {
        let (xb, yb) = (up(&x), up(&y));
        let cg = ConcatGeom { rows: 37, left: 19, right: 5 };
        let rg = RowsGeom { rows: 37, cols: 19 };
        let cat = b.concat_cols(&xb, &yb, &cg).unwrap();
        let (s1, s2) = b.split_cols(&cat, &cg).unwrap();
        let mut xb2 = xb.clone();
        b.add_row_bias(&mut xb2, &up(&x[..19]), &rg).unwrap();
        vec![dl(b, &b.sum_rows(&xb, &rg).unwrap()), dl(b, &cat), dl(b, &s1), dl(b, &s2), dl(b, &xb2), dl(b, &xb)]
    });
    same!("channel_sums", 1e-5, |b, up| {
        vec![dl(b, &b.channel_sums(&up(&x), &ChannelGeom { n: 1, c: 37, hw: 19 }).unwrap())]
    });
    for dev in devices() {
        let cpu = Cpu::<f32>::new();
        let bufs: Vec<_> = [&x[..], &y[..], &x[..5]].iter().map(|v| dev.upload(v).unwrap()).collect();
        let refs: Vec<_> = bufs.iter().collect();
        let cb: Vec<_> = [&x[..], &y[..], &x[..5]].iter().map(|v| cpu.upload(v).unwrap()).collect();
        let want: f64 = cb.iter().map(|b| cpu.sum_squares(b).unwrap()).sum();
        let got = dev.sum_squares_many(&refs).unwrap();
        assert!((got - want).abs() <= 1e-9 * want, "sum_squares_many on {}: {got} vs {want}", dev.name());
        assert!(dev.all_finite(&bufs[0]).unwrap());
        let mut bad = x.clone();
        bad[100] = f32::NAN;
        assert!(!dev.all_finite(&dev.upload(&bad).unwrap()).unwrap());
    }
}

#[test]
fn matmul_all_transpositions() {
    let mut r = Rng::new(3);
    let (m, k, n) = (7, 13, 5);
    let a = randn(&mut r, m * k);
    let bm = randn(&mut r, k * n);
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        same!(format!("matmul ta={ta} tb={tb}"), 1e-5, |b, up| {
            vec![dl(b, &b.matmul(&up(&a), &up(&bm), &MatmulGeom { m, k, n, ta, tb }).unwrap())]
        });
    }
}

#[test]
fn conv2d_forward_and_backward_on_odd_shapes() {
    let mut r = Rng::new(4);
    for g in [
        ConvGeom { n: 2, c_in: 3, h: 9, w: 13, c_out: 5, kh: 3, kw: 3, stride: 1, pad: 1 },
        ConvGeom { n: 1, c_in: 1, h: 17, w: 11, c_out: 17, kh: 3, kw: 3, stride: 1, pad: 1 },
        ConvGeom { n: 3, c_in: 17, h: 7, w: 6, c_out: 3, kh: 3, kw: 3, stride: 2, pad: 1 },
        ConvGeom { n: 1, c_in: 64, h: 16, w: 20, c_out: 65, kh: 3, kw: 3, stride: 1, pad: 1 },
    ] {
        let x = randn(&mut r, g.input_len());
        let w = randn(&mut r, g.weight_len());
        let bias = randn(&mut r, g.c_out);
        let dy = randn(&mut r, g.output_len());
        // Reductions over C·R·S ≤ 576 (forward) and N·OH·OW ≤ 320 (weight gradient) terms.
        same!(format!("conv2d {g:?}"), 1e-4, |b, up| {
            let (xb, wb, bb, dyb) = (up(&x), up(&w), up(&bias), up(&dy));
            vec![
                dl(b, &b.conv2d_forward(&xb, &wb, Some(&bb), &g).unwrap()),
                dl(b, &b.conv2d_forward(&xb, &wb, None, &g).unwrap()),
                dl(b, &b.conv2d_backward_input(&dyb, &wb, &g).unwrap()),
                dl(b, &b.conv2d_backward_weight(&dyb, &xb, &g).unwrap()),
                dl(b, &b.channel_sums(&dyb, &g.output_channels()).unwrap()),
            ]
        });
    }
}

#[test]
fn batchnorm_train_eval_backward() {
    let mut r = Rng::new(5);
    for (n, c, hw) in [(1, 1, 37), (3, 17, 21), (2, 512, 9)] {
        let x: Vec<f32> = randn(&mut r, n * c * hw).iter().map(|v| 3.0 * v + 1.5).collect();
        let gamma = randn(&mut r, c);
        let beta = randn(&mut r, c);
        let dy = randn(&mut r, n * c * hw);
        same!(format!("batchnorm {n}x{c}x{hw}"), 1e-4, |b, up| {
            let (mut rm, mut rv) = (up(&vec![0.2; c]), up(&vec![1.3; c]));
            let g = ChannelGeom { n, c, hw };
            let bp = BnParams { momentum: 0.1, eps: 1e-5 };
            let (y, mean, invstd) =
                b.batchnorm_forward_train(&up(&x), &up(&gamma), &up(&beta), &mut rm, &mut rv, &g, &bp).unwrap();
            let (dx, dg, db) = b.batchnorm_backward(&up(&dy), &up(&x), &up(&gamma), &mean, &invstd, &g).unwrap();
            let ye = b.batchnorm_forward_eval(&up(&x), &up(&gamma), &up(&beta), &rm, &rv, &g, 1e-5).unwrap();
            vec![
                dl(b, &y),
                dl(b, &mean),
                dl(b, &invstd),
                dl(b, &rm),
                dl(b, &rv),
                dl(b, &dx),
                dl(b, &dg),
                dl(b, &db),
                dl(b, &ye),
            ]
        });
    }
}

#[test]
fn pooling_and_channel_scale() {
    let mut r = Rng::new(6);
    for g in
        [PoolGeom { n: 2, c: 3, h: 7, w: 9, k: 2, stride: 2 }, PoolGeom { n: 1, c: 17, h: 9, w: 7, k: 3, stride: 2 }]
    {
        let x = randn(&mut r, g.n * g.c * g.h * g.w);
        let dy = randn(&mut r, g.n * g.c * g.out_h() * g.out_w());
        same!(format!("maxpool {g:?}"), 1e-6, |b, up| {
            let (y, idx) = b.maxpool2d_forward(&up(&x), &g).unwrap();
            let places: Vec<f32> = b.download_mask(&idx).unwrap().iter().map(|&v| v as f32).collect();
            vec![dl(b, &y), dl(b, &b.maxpool2d_backward(&up(&dy), &idx, &g).unwrap()), places]
        });
    }
    let (n, c, hw) = (3, 17, 23);
    let x = randn(&mut r, n * c * hw);
    let s = randn(&mut r, n * c);
    let dy = randn(&mut r, n * c * hw);
    let cg = ChannelGeom { n, c, hw };
    same!("avgpool/channel_scale", 1e-5, |b, up| {
        let (dx, ds) = b.channel_scale_backward(&up(&dy), &up(&x), &up(&s), &cg).unwrap();
        vec![
            dl(b, &b.global_avgpool_forward(&up(&x), &cg).unwrap()),
            dl(b, &b.global_avgpool_backward(&up(&s), &cg).unwrap()),
            dl(b, &b.channel_scale_forward(&up(&x), &up(&s), &cg).unwrap()),
            dl(b, &dx),
            dl(b, &ds),
        ]
    });
}

#[test]
fn losses_and_adam() {
    let mut r = Rng::new(7);
    let (p, t) = (randn(&mut r, 34), randn(&mut r, 34));
    let labels: Vec<u32> = (0..17).map(|i| (i * 7 % 2) as u32).collect();
    same!("losses", 1e-5, |b, up| {
        let (pb, tb, dl1) = (up(&p), up(&t), up(&[0.7]));
        let lab = b.upload_index(&labels).unwrap();
        vec![
            dl(b, &b.mse_forward(&pb, &tb).unwrap()),
            dl(b, &b.mse_backward(&pb, &tb, &dl1).unwrap()),
            dl(b, &b.l1_forward(&pb, &tb).unwrap()),
            dl(b, &b.l1_backward(&pb, &tb, &dl1).unwrap()),
            dl(b, &b.cross_entropy_forward(&pb, &lab, &RowsGeom { rows: 17, cols: 2 }).unwrap()),
            dl(b, &b.cross_entropy_backward(&pb, &lab, &RowsGeom { rows: 17, cols: 2 }, &dl1).unwrap()),
        ]
    });
    let (w, g) = (randn(&mut r, 1031), randn(&mut r, 1031));
    for decoupled in [false, true] {
        same!(format!("adam decoupled={decoupled}"), 1e-6, |b, up| {
            let (mut wb, gb, mut m, mut v) = (up(&w), up(&g), b.zeros(1031).unwrap(), b.zeros(1031).unwrap());
            for step in 1..=3 {
                let hp = AdamStep {
                    lr: 1e-3,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: 0.01,
                    decoupled,
                    step,
                    grad_scale: 0.37,
                };
                b.adam_update(&mut wb, &gb, &mut m, &mut v, &hp).unwrap();
            }
            vec![dl(b, &wb), dl(b, &m), dl(b, &v)]
        });
    }
}

#[test]
fn a_clone_never_sees_another_clones_write() {
    for dev in devices() {
        let a = dev.upload(&[1.0, 2.0, 3.0]).unwrap();
        let mut b = a.clone();
        dev.scale_assign(&mut b, 10.0).unwrap();
        assert_eq!(dev.download(&a).unwrap(), [1.0, 2.0, 3.0]);
        assert_eq!(dev.download(&b).unwrap(), [10.0, 20.0, 30.0]);
    }
}

#[test]
fn spectrogram_front_end_batched_over_clips() {
    let mut r = Rng::new(8);
    // The real filterbank (sparse triangles) on a short batch: 3 clips × 1025 bins × 11 frames.
    let (clips, bins, frames, n_mels) = (3, 1025, 11, 128);
    let fb = moodgrad::audio::mel::mel_filterbank(22050.0, 2048, n_mels, 0.0, None);
    let power: Vec<f32> = randn(&mut r, clips * bins * frames).iter().map(|v| v * v * 1e-3).collect();
    let dmel = randn(&mut r, clips * n_mels * frames);
    // Sums of ≤ 60 f32 products in f64 on both sides: a few ulps.
    same!("mel_project", 1e-6, |b, up| {
        let (pb, fbb) = (up(&power), up(&fb));
        let g = MelGeom { clips, bins, frames, n_mels };
        vec![
            dl(b, &b.mel_project(&pb, &fbb, &g).unwrap()),
            dl(b, &b.mel_project_backward(&up(&dmel), &fbb, &g).unwrap()),
        ]
    });
    let len = n_mels * frames;
    let mel: Vec<f32> = randn(&mut r, clips * len).iter().map(|v| (v * 4.0).exp()).collect();
    let dy = randn(&mut r, clips * len);
    for ref_max in [false, true] {
        for top_db in [None, Some(80.0), Some(10.0)] {
            // dB values are O(10-100) and each is one log of an f32: 1e-6 of scale is ~10 ulps.
            same!(format!("power_to_db ref_max={ref_max} top_db={top_db:?}"), 1e-6, |b, up| {
                let x = up(&mel);
                let g = DbGeom { clips, len, ref_max, amin: 1e-10, top_db };
                let y = b.power_to_db(&x, &g).unwrap();
                let dx = b.power_to_db_backward(&x, &y, &up(&dy), &g).unwrap();
                vec![dl(b, &y), dl(b, &dx)]
            });
        }
    }
    // Crop/pad: clip 0 longer than the target (centre crop), clip 1 shorter (padded), clip 2 equal.
    let (rows, stride, target) = (5, 17, 12);
    let x = randn(&mut r, 3 * rows * stride);
    for centre in [true, false] {
        same!(format!("crop_pad centre={centre}"), 0.0, |b, up| {
            let g = CropGeom { rows, in_stride: stride, frames: target, centre, pad: -80.0 };
            vec![dl(b, &b.crop_pad(&up(&x), &[17, 7, 12], &g).unwrap())]
        });
    }
}

/// The batched backend ops agree with the per-clip librosa-matching path of `moodgrad::audio`.
#[test]
fn batched_front_end_matches_the_per_clip_audio_path() {
    use moodgrad::audio::mel;
    let mut r = Rng::new(9);
    let (n_mels, frames) = (16, 23);
    let cpu = Cpu::<f32>::new();
    let x: Vec<f32> = randn(&mut r, n_mels * frames).iter().map(|v| (v * 5.0).exp()).collect();
    for (ref_max, top_db) in [(false, Some(80.0)), (true, Some(80.0)), (false, None)] {
        let mut want = x.clone();
        mel::power_to_db(&mut want, ref_max, 1e-10, top_db);
        let g = DbGeom { clips: 1, len: n_mels * frames, ref_max, amin: 1e-10, top_db };
        let got = cpu.power_to_db(&cpu.upload(&x).unwrap(), &g).unwrap();
        // log10 vs ln·(10/ln 10) in f64 before rounding to f32: at most one ulp apart.
        close("power_to_db vs audio::mel", &got, &want, 1e-6);
    }
    for (n, centre, pad) in [(31, true, -80.0f32), (31, false, 0.0), (9, true, -80.0)] {
        let data = randn(&mut r, n_mels * n);
        let want = mel::crop_or_pad(&data, n_mels, n, frames, centre, pad);
        let g = CropGeom { rows: n_mels, in_stride: n, frames, centre, pad: pad as f64 };
        let got = cpu.crop_pad(&cpu.upload(&data).unwrap(), &[n], &g).unwrap();
        assert_eq!(got.to_vec(), want, "crop_pad vs audio::mel::crop_or_pad (n {n}, centre {centre})");
    }
}
