//! Times the encoder's primitives at one MiniLM layer's shapes (sequence 512) on the CPU, to see
//! where a forward goes: `cargo run --release --example op_timing`.

use moodgrad::backend::cpu::Cpu;
use moodgrad::backend::prelude::*;
use moodgrad::backend::{BmmGeom, HeadsGeom, LayerNormGeom, MatmulGeom, SoftmaxGeom, Unary};
use moodgrad::rng::Rng;
use std::time::Instant;

fn time(name: &str, reps: usize, mut f: impl FnMut()) {
    f();
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    println!("{name:<28} {:8.3} ms", t.elapsed().as_secs_f64() * 1e3 / reps as f64);
}

fn main() {
    let be = Cpu::<f32>::new();
    let mut r = Rng::new(1);
    let mut rnd = |n: usize| be.upload(&(0..n).map(|_| r.normal() as f32).collect::<Vec<_>>()).unwrap();
    let (l, h, heads, inter) = (512, 384, 12, 1536);
    let d = h / heads;
    let x = rnd(l * h);
    let w = rnd(h * h);
    let wi = rnd(inter * h);
    let q = rnd(l * h);
    let s = rnd(heads * l * l);
    let mask = be.fill(l, 1.0).unwrap();
    let g = rnd(h);
    let xi = rnd(l * inter);
    time("linear 384->384", 20, || {
        drop(be.matmul(&x, &w, &MatmulGeom { m: l, k: h, n: h, ta: false, tb: true }).unwrap())
    });
    time("linear 384->1536", 20, || {
        drop(be.matmul(&x, &wi, &MatmulGeom { m: l, k: h, n: inter, ta: false, tb: true }).unwrap())
    });
    let qk = BmmGeom { batch: heads, m: l, k: d, n: l, ta: false, tb: true, alpha: 1.0 };
    time("bmm q·kᵀ (12×512×32×512)", 20, || drop(be.bmm(&q, &q, &qk).unwrap()));
    let pv = BmmGeom { batch: heads, m: l, k: l, n: d, ta: false, tb: false, alpha: 1.0 };
    time("bmm p·v (12×512×512×32)", 20, || drop(be.bmm(&s, &q, &pv).unwrap()));
    let sg = SoftmaxGeom { batch: 1, heads, q: l, k: l, scale: 0.17 };
    time("masked softmax 12×512×512", 20, || drop(be.masked_softmax_forward(&s, &mask, &sg).unwrap()));
    let hg = HeadsGeom { batch: 1, seq: l, heads, head_dim: d };
    time("split heads", 20, || drop(be.split_heads(&x, &hg).unwrap()));
    let lg = LayerNormGeom { rows: l, cols: h, eps: 1e-12 };
    time("layernorm 512×384", 20, || drop(be.layernorm_forward(&x, &g, &g, &lg).unwrap()));
    time("gelu 512×1536", 20, || drop(be.unary_forward(Unary::Gelu, &xi).unwrap()));
    time("add 512×384", 20, || drop(be.add(&x, &q).unwrap()));
    time("add_row_bias 512×1536", 20, || {
        let mut y = xi.clone();
        be.add_row_bias(&mut y, &rnd_bias(&be, inter), &moodgrad::backend::RowsGeom { rows: l, cols: inter }).unwrap()
    });
}

fn rnd_bias(be: &Cpu<f32>, n: usize) -> <Cpu<f32> as Memory>::Buf {
    be.fill(n, 0.1).unwrap()
}
