//! The tiled CPU convolution against a direct six-loop convolution, on shapes large enough to be
//! cut into several tiles (tile edges are where an off-by-one would hide). f64, so any
//! difference beyond 1e-12 relative is a bug, not rounding.

use moodgrad::backend::cpu::Cpu;
use moodgrad::backend::{Conv, ConvGeom, Memory};
use moodgrad::rng::Rng;

fn direct(x: &[f64], w: &[f64], g: &ConvGeom) -> Vec<f64> {
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut y = vec![0.0; g.output_len()];
    for n in 0..g.n {
        for co in 0..g.c_out {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = 0.0;
                    for ci in 0..g.c_in {
                        for i in 0..g.kh {
                            for j in 0..g.kw {
                                let iy = (oy * g.stride + i) as isize - g.pad as isize;
                                let ix = (ox * g.stride + j) as isize - g.pad as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w {
                                    s += x[((n * g.c_in + ci) * g.h + iy as usize) * g.w + ix as usize]
                                        * w[((co * g.c_in + ci) * g.kh + i) * g.kw + j];
                                }
                            }
                        }
                    }
                    y[((n * g.c_out + co) * oh + oy) * ow + ox] = s;
                }
            }
        }
    }
    y
}

fn close(a: &[f64], b: &[f64], what: &str) {
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= 1e-12 * scale, "{what}[{i}]: {x} vs {y}");
    }
}

#[test]
fn tiled_conv_matches_direct_convolution_across_tile_edges() {
    let be = Cpu::<f64>::new();
    let mut rng = Rng::new(5);
    // 32·9 = 288 unfolded rows × 300 columns per output row: tiles of 12 rows, so 41 rows → 4.
    for g in [
        ConvGeom { n: 2, c_in: 32, h: 41, w: 300, c_out: 3, kh: 3, kw: 3, stride: 1, pad: 1 },
        ConvGeom { n: 1, c_in: 3, h: 97, w: 700, c_out: 5, kh: 3, kw: 3, stride: 1, pad: 1 },
    ] {
        let x: Vec<f64> = (0..g.input_len()).map(|_| rng.normal()).collect();
        let w: Vec<f64> = (0..g.weight_len()).map(|_| rng.normal()).collect();
        let dy: Vec<f64> = (0..g.output_len()).map(|_| rng.normal()).collect();
        let (xb, wb, dyb) = (be.upload(&x).unwrap(), be.upload(&w).unwrap(), be.upload(&dy).unwrap());
        close(&be.conv2d_forward(&xb, &wb, None, &g).unwrap(), &direct(&x, &w, &g), "forward");
        // <dy, conv(x)> is linear in x and in w: check both adjoints through it.
        let dx = be.conv2d_backward_input(&dyb, &wb, &g).unwrap();
        let dw = be.conv2d_backward_weight(&dyb, &xb, &g).unwrap();
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
        let lhs = dot(&dy, &direct(&x, &w, &g));
        assert!((dot(&dx, &x) - lhs).abs() <= 1e-10 * lhs.abs().max(1.0), "backward_input adjoint");
        assert!((dot(&dw, &w) - lhs).abs() <= 1e-10 * lhs.abs().max(1.0), "backward_weight adjoint");
        // And elementwise: dx at a few input points by the definition Σ dy·w.
        let e = g.input_len() / 3;
        let mut unit = vec![0.0; g.input_len()];
        unit[e] = 1.0;
        let want = dot(&dy, &direct(&unit, &w, &g));
        assert!((dx[e] - want).abs() <= 1e-10 * want.abs().max(1.0), "dx[{e}] {} vs {want}", dx[e]);
    }
}
