//! Times the SE block + global average pool of MODEL_3/4 (512 channels, 16 × 161 map), forward
//! and backward through the tape, unfused (two ops) against folded (`ops::squeeze_excite_pool`),
//! interleaved so outside load hits both alike:
//! `cargo run --release --example sepool -- [batch] [rounds]`.

use moodgrad::backend::cpu::Cpu;
use moodgrad::backend::prelude::*;
use moodgrad::ops;
use moodgrad::params::ParamStore;
use moodgrad::rng::Rng;
use moodgrad::tape::Tape;
use moodgrad::tensor::Tensor;
use std::time::Instant;

type B = Cpu<f32>;

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (n, rounds) = (args.first().copied().unwrap_or(2), args.get(1).copied().unwrap_or(20));
    let (c, h, w) = (512, 16, 161);
    let be = B::new();
    let mut r = Rng::new(1);
    let mut t = |shape: &[usize]| {
        let v: Vec<f32> = (0..shape.iter().product()).map(|_| r.normal() as f32).collect();
        Tensor::new(shape, be.upload(&v).unwrap()).unwrap()
    };
    let (x, w1, w2) = (t(&[n, c, h, w]), t(&[c / 16, c]), t(&[c, c / 16]));
    let dy = be.fill(n * c, 1.0).unwrap();
    let step = |fold: bool| {
        let mut tape = Tape::new(be.clone());
        let (xv, w1v, w2v) = (tape.input(x.clone(), true), tape.input(w1.clone(), true), tape.input(w2.clone(), true));
        let y = if fold {
            ops::squeeze_excite_pool(&mut tape, &xv, &w1v, &w2v).unwrap()
        } else {
            let s = ops::squeeze_excite(&mut tape, &xv, &w1v, &w2v).unwrap();
            ops::global_avgpool(&mut tape, &s).unwrap()
        };
        let mut store = ParamStore::new(be.clone());
        drop(tape.backward_from(&y, dy.clone(), &mut store).unwrap());
    };
    let mut times = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (k, fold) in [false, true].into_iter().enumerate() {
            let t0 = Instant::now();
            step(fold);
            times[k].push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    for (k, name) in ["unfused SE + GAP", "folded squeeze_excite_pool"].iter().enumerate() {
        times[k].sort_by(f64::total_cmp);
        let (med, min) = (times[k][times[k].len() / 2], times[k][0]);
        println!("{name:<28} batch {n}: median {med:.3} ms, min {min:.3} ms ({rounds} rounds)");
    }
}
