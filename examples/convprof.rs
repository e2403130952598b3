use moodgrad::backend::ConvGeom;
use moodgrad::backend::cpu::Cpu;
use moodgrad::backend::prelude::*;
use std::time::Instant;
fn main() {
    let be = Cpu::<f32>::new();
    for (ci, co, h, w) in [(1, 64, 128, 1292), (64, 128, 64, 646), (128, 256, 32, 323), (256, 512, 16, 161)] {
        let g = ConvGeom { n: 1, c_in: ci, h, w, c_out: co, kh: 3, kw: 3, stride: 1, pad: 1 };
        let x = be.fill(g.input_len(), 0.5).unwrap();
        let wt = be.fill(g.weight_len(), 0.1).unwrap();
        let dy = be.fill(g.output_len(), 0.2).unwrap();
        for _ in 0..2 {
            let t = Instant::now();
            let _y = be.conv2d_forward(&x, &wt, None, &g).unwrap();
            let t1 = t.elapsed().as_secs_f64() * 1e3;
            let t = Instant::now();
            let _dx = be.conv2d_backward_input(&dy, &wt, &g).unwrap();
            let t2 = t.elapsed().as_secs_f64() * 1e3;
            let t = Instant::now();
            let _dw = be.conv2d_backward_weight(&dy, &x, &g).unwrap();
            let t3 = t.elapsed().as_secs_f64() * 1e3;
            println!(
                "{ci}->{co}: fwd {t1:.1} ms  bwd_in {t2:.1}  bwd_w {t3:.1}  ({:.1} GFLOP per pass)",
                g.forward_flops() / 1e9
            );
        }
    }
}
