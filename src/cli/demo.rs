//! `moodgrad demo`: trains the seed's MODEL_3 (SE) on a built-in synthetic batch set, so a
//! newcomer sees the whole training path run (forward, MSE, backward, clip, Adam, eval).
//!
//! The synthetic "spectrograms" carry arousal as overall energy tilted towards high bands and
//! valence as a periodic (harmonic) texture; the "lyrics vector" carries valence weakly. So
//! both targets are learnable, and the falling validation loss is a real signal.

use crate::backend::Backend;
use crate::device::{Device, DeviceChoice};
use crate::error::Result;
use crate::io::{self, TensorFile};
use crate::nn::{AttentionKind, ModelConfig, SeedNet};
use crate::ops;
use crate::optim::{Adam, AdamConfig};
use crate::params::ParamStore;
use crate::rng::Rng;
use crate::tape::Tape;
use crate::tensor::Tensor;
use crate::train::{Batch, train_step};
use std::path::Path;

/// One synthetic example: an [H, W] image in dB-like units, a lyrics vector and (v, a).
fn example(rng: &mut Rng, h: usize, w: usize, t: usize) -> (Vec<f64>, Vec<f64>, [f64; 2]) {
    let (v, a) = (rng.uniform_range(0.1, 0.9), rng.uniform_range(0.1, 0.9));
    let period = 4.0 + 12.0 * (1.0 - v);
    let mut img = Vec::with_capacity(h * w);
    for i in 0..h {
        let band = i as f64 / h as f64;
        for j in 0..w {
            let tilt = a * (0.5 + band);
            let texture = 0.6 * v * (2.0 * std::f64::consts::PI * j as f64 / period).sin();
            img.push(tilt + texture + 0.2 * rng.normal());
        }
    }
    let lyr: Vec<f64> = (0..t).map(|k| if k < 8 { v - 0.5 + 0.3 * rng.normal() } else { rng.normal() }).collect();
    (img, lyr, [v, a])
}

fn make_batch<B: Backend>(be: &B, rng: &mut Rng, n: usize, h: usize, w: usize, t: usize) -> Result<Batch<B>> {
    let (mut au, mut ly, mut ta) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let (i, l, y) = example(rng, h, w, t);
        au.extend(i);
        ly.extend(l);
        ta.extend(y);
    }
    Ok(Batch {
        audio: Tensor::from_f64(be, &[n, 1, h, w], &au)?,
        lyrics: Tensor::from_f64(be, &[n, t], &ly)?,
        target: Tensor::from_f64(be, &[n, 2], &ta)?,
    })
}

/// Validation MSE in eval mode (running BN statistics, no dropout, no tape).
fn evaluate<B: Backend>(net: &SeedNet, store: &mut ParamStore<B>, batch: &Batch<B>) -> Result<f64> {
    let mut tape = Tape::no_grad(store.backend.clone());
    let a = tape.input(batch.audio.clone(), false);
    let l = tape.input(batch.lyrics.clone(), false);
    let t = tape.input(batch.target.clone(), false);
    let out = net.forward(&mut tape, store, &a, &l, false, 0)?;
    let loss = ops::mse_loss(&mut tape, &out.pred, &t)?;
    Ok(loss.value().to_f64(&store.backend)?[0])
}

pub fn run(steps: usize, batch_size: usize, seed: u64, out: Option<&Path>, device: DeviceChoice) -> Result<()> {
    crate::on_device!(Device::open(device)?, |b| run_on(b, steps, batch_size, seed, out))
}

fn run_on<B: Backend>(be: B, steps: usize, batch_size: usize, seed: u64, out: Option<&Path>) -> Result<()> {
    let (h, w, t) = (64, 128, 768);
    let cfg = ModelConfig::preset("model3", AttentionKind::Se)?;
    let mut rng = Rng::new(seed);
    let mut store = ParamStore::new(be.clone());
    let net = SeedNet::new(cfg, &mut store, &mut rng)?;
    println!(
        "moodgrad demo: MODEL_3 + SE ({} parameters) on synthetic {h}x{w} spectrograms, batch {batch_size}, {}",
        store.num_params(),
        be.name()
    );
    let train: Vec<Batch<B>> = (0..8).map(|_| make_batch(&be, &mut rng, batch_size, h, w, t)).collect::<Result<_>>()?;
    let val = make_batch(&be, &mut rng, 32, h, w, t)?;
    let mut opt = Adam::new(AdamConfig::default());
    let start = std::time::Instant::now();
    let first = evaluate(&net, &mut store, &val)?;
    println!("before training: validation MSE {first:.4}");
    // The best validation weights are kept as a deep copy on the host (the seed's
    // `state_dict().copy()` was shallow and silently kept the last step's weights).
    let mut best = (first, 0, TensorFile { tensors: io::state_dict(&store)?, metadata: Default::default() });
    for s in 0..steps {
        let r = train_step(&net, &mut store, &mut opt, &train[s % train.len()], Some(1.0), seed ^ s as u64)?;
        if s % 5 == 4 || s + 1 == steps {
            let v = evaluate(&net, &mut store, &val)?;
            let mark = if v < best.0 { "  (best so far)" } else { "" };
            println!(
                "step {:>3}  train loss {:.4}  grad norm {:.3}  validation MSE {v:.4}{mark}",
                s + 1,
                r.loss,
                r.grad_norm
            );
            if v < best.0 {
                best = (v, s + 1, TensorFile { tensors: io::state_dict(&store)?, metadata: Default::default() });
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{steps} steps in {secs:.1} s ({:.1} samples/s)", (steps * batch_size) as f64 / secs);
    io::load_state_dict(&mut store, Path::new("<best snapshot>"), &best.2, &[])?;
    let restored = evaluate(&net, &mut store, &val)?;
    println!(
        "restored the best step ({}, validation MSE {:.4}; re-evaluated: {restored:.4}); the untrained model scored {first:.4}",
        best.1, best.0
    );
    if let Some(p) = out {
        io::write(p, &TensorFile { tensors: io::state_dict(&store)?, metadata: Default::default() })?;
        println!("saved the trained weights to {} (PyTorch state_dict names)", p.display());
    }
    Ok(())
}
