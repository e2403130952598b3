//! Times every CPU convolution algorithm per pass on the production shapes, interleaved in one
//! process (round r runs each algorithm once, so load from other processes hits all alike).
//! Prints per (shape, pass, algorithm) the median and min wall ms over the rounds and this
//! process's CPU time (median ms, all threads) and CPU time ÷ wall time (2.0 = both cores busy).
//! On a loaded machine the CPU time is the steadier figure.
//!
//! cargo run --release --example convalgo -- [batch] [rounds] [shape] [algorithm] [pass]
//! (the last three are substrings that select, e.g. `b2_ WinogradF4 Forward`; the algorithm
//! `chosen` runs the selection's choice and im2col, `selected` the choice alone)

use moodgrad::backend::ConvGeom;
use moodgrad::backend::cpu::conv::{self, ConvAlgo, Pass};
use moodgrad::rng::Rng;
use std::time::Instant;

/// (name, c_in, c_out, h, w): the VGG convs of MODEL_3 and MODEL_4's second convs.
const SHAPES: [(&str, usize, usize, usize, usize); 8] = [
    ("b1_1to64", 1, 64, 128, 1292),
    ("b2_64to128", 64, 128, 64, 646),
    ("b3_128to256", 128, 256, 32, 323),
    ("b4_256to512", 256, 512, 16, 161),
    ("m4_64to64", 64, 64, 128, 1292),
    ("m4_128to128", 128, 128, 64, 646),
    ("m4_256to256", 256, 256, 32, 323),
    ("m4_512to512", 512, 512, 16, 161),
];

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

unsafe extern "C" {
    fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
}

/// This process's CPU seconds, all threads (CLOCK_PROCESS_CPUTIME_ID, Linux).
fn cpu_s() -> f64 {
    let mut t = Timespec { sec: 0, nsec: 0 };
    // SAFETY: clock 2 is CLOCK_PROCESS_CPUTIME_ID; t is a valid timespec.
    unsafe { clock_gettime(2, &mut t) };
    t.sec as f64 + t.nsec as f64 * 1e-9
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let batch: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let filter = args.get(3).cloned().unwrap_or_default();
    let algo_filter = args.get(4).cloned().unwrap_or_default();
    let pass_filter = args.get(5).cloned().unwrap_or_default();
    let mut rng = Rng::new(1);
    for (name, ci, co, h, w) in SHAPES {
        if !name.contains(&filter) {
            continue;
        }
        let g = ConvGeom { n: batch, c_in: ci, h, w, c_out: co, kh: 3, kw: 3, stride: 1, pad: 1 };
        let x: Vec<f32> = (0..g.input_len()).map(|_| rng.normal() as f32).collect();
        let wt: Vec<f32> = (0..g.weight_len()).map(|_| rng.normal() as f32).collect();
        let b: Vec<f32> = (0..co).map(|_| rng.normal() as f32).collect();
        let dy: Vec<f32> = (0..g.output_len()).map(|_| rng.normal() as f32).collect();
        for pass in [Pass::Forward, Pass::BackwardInput, Pass::BackwardWeight] {
            if !format!("{pass:?}").contains(&pass_filter) {
                continue;
            }
            let chosen = conv::choose::<f32>(pass, &g);
            let algos: Vec<ConvAlgo> = ConvAlgo::ALL
                .into_iter()
                .filter(|&a| {
                    a.supports(pass, &g, 4)
                        && if algo_filter == "chosen" {
                            a == chosen || a == ConvAlgo::Im2col
                        } else if algo_filter == "selected" {
                            a == chosen
                        } else {
                            format!("{a:?}").contains(&algo_filter)
                        }
                })
                .collect();
            let mut times = vec![Vec::new(); algos.len()];
            let mut util = vec![0.0; algos.len()];
            let mut cpu = vec![Vec::new(); algos.len()];
            for r in 0..rounds + 1 {
                for (k, &a) in algos.iter().enumerate() {
                    let (t0, c0) = (Instant::now(), cpu_s());
                    let out = match pass {
                        Pass::Forward => conv::forward_with(a, &x, &wt, Some(&b), &g),
                        Pass::BackwardInput => conv::backward_input_with(a, &dy, &wt, &g),
                        Pass::BackwardWeight => conv::backward_weight_with(a, &dy, &x, &g),
                    }
                    .unwrap();
                    let dt = t0.elapsed().as_secs_f64();
                    std::hint::black_box(out);
                    if r > 0 {
                        let dc = cpu_s() - c0;
                        times[k].push(dt * 1e3);
                        cpu[k].push(dc * 1e3);
                        util[k] += dc / dt / rounds as f64;
                    }
                }
            }
            for (k, a) in algos.iter().enumerate() {
                let mut t = times[k].clone();
                t.sort_by(f64::total_cmp);
                let mut c = cpu[k].clone();
                c.sort_by(f64::total_cmp);
                println!(
                    "{name:12} n={batch} {:14} {:11} wall median {:8.2} ms  min {:8.2}  cpu median {:8.2} ms  cpu/wall {:.2}  ws {:6.2} MB{}",
                    format!("{pass:?}"),
                    format!("{a:?}"),
                    t[t.len() / 2],
                    t[0],
                    c[c.len() / 2],
                    util[k],
                    conv::workspace_bytes::<f32>(*a, pass, &g) as f64 / 1e6,
                    if *a == chosen { "  <- chosen" } else { "" }
                );
            }
        }
    }
}
