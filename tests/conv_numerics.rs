//! f32 rounding of every CPU convolution algorithm at every production shape, against f64.
//!
//! Winograd changes rounding (its transforms have coefficients up to 8 and 1/24), and the f64
//! finite differences and small goldens cannot see that. So for each production layer (MODEL_3's
//! four VGG convs and MODEL_4's second convs, C_in/C_out as in the models) on a real-size tile of
//! its map (a 32 × 64 crop, full channel counts, batch 1), each algorithm's f32 forward, input
//! gradient and weight gradient are compared with an f64 reference on the same f32-rounded
//! inputs. The rule (issue 10): the algorithm the selection uses for that shape has an f32 error
//! at most 2× the im2col path's, in both measures below; an algorithm that fails it must be off
//! for that shape.
//!
//! Measure: max and RMS over the outputs of |f32 − f64|, each divided by the RMS over the
//! outputs of s = Σ|a·b| (the same convolution on absolute values, in f64). Why s: a rounding
//! error of any summation order is bounded by a multiple of Σ|a·b|, not of |Σ a·b|; the output
//! RMS would depend on how much the data cancels (post-ReLU inputs against zero-mean weights
//! cancel a lot). Why one normaliser for the whole tensor, not per element: a Winograd output's
//! error depends on its whole input tile, not on its own 3×3 window. With one normaliser the
//! ratio between two paths is exactly the ratio of their absolute errors.
//!
//! The f64 reference is the im2col path in f64 (its rounding, ~1e-16 of s, is ~1e-9 of the f32
//! errors measured here; tests/conv_tiling.rs pins it to a six-loop convolution at 1e-12).

use moodgrad::backend::ConvGeom;
use moodgrad::backend::cpu::conv::{self, ConvAlgo, Pass};
use moodgrad::rng::Rng;

/// (name, c_in, c_out, map h, map w) of the production convolutions.
const SHAPES: [(&str, usize, usize, usize, usize); 8] = [
    ("block1 1->64", 1, 64, 128, 1292),
    ("block2 64->128", 64, 128, 64, 646),
    ("block3 128->256", 128, 256, 32, 323),
    ("block4 256->512", 256, 512, 16, 161),
    ("model4 64->64", 64, 64, 128, 1292),
    ("model4 128->128", 128, 128, 64, 646),
    ("model4 256->256", 256, 256, 32, 323),
    ("model4 512->512", 512, 512, 16, 161),
];

/// The batch sizes the selection is checked at (the step benches use 2 and 16).
const BATCHES: [usize; 3] = [1, 2, 16];

#[derive(Clone, Copy, Debug)]
struct Err {
    max: f64,
    rms: f64,
}

fn err(got: &[f32], want: &[f64], scale: &[f64]) -> Err {
    let n = want.len() as f64;
    let s_rms = (scale.iter().map(|s| s * s).sum::<f64>() / n).sqrt();
    let d = got.iter().zip(want).map(|(&a, &b)| (a as f64 - b).abs());
    let (max, ss) = d.fold((0.0f64, 0.0f64), |(m, ss), e| (m.max(e), ss + e * e));
    Err { max: max / s_rms, rms: (ss / n).sqrt() / s_rms }
}

fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

fn abs64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| (x as f64).abs()).collect()
}

/// Inputs shaped like the layer's real ones: block 1 reads a dB spectrogram (about −80..+10);
/// the others read BatchNorm + ReLU outputs (half-normal, half of them zero). Weights are
/// PyTorch's default U(±1/√fan_in); the upstream gradient is zero-mean.
fn data(rng: &mut Rng, g: &ConvGeom) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let x: Vec<f32> = (0..g.input_len())
        .map(|_| if g.c_in == 1 { (-35.0 + 20.0 * rng.normal()) as f32 } else { rng.normal().max(0.0) as f32 })
        .collect();
    let bound = 1.0 / ((9 * g.c_in) as f64).sqrt();
    let w: Vec<f32> = (0..g.weight_len()).map(|_| (bound * (2.0 * rng.uniform() - 1.0)) as f32).collect();
    let dy: Vec<f32> = (0..g.output_len()).map(|_| (1e-3 * rng.normal()) as f32).collect();
    (x, w, dy)
}

fn run(algo: ConvAlgo, pass: Pass, x: &[f32], w: &[f32], dy: &[f32], g: &ConvGeom) -> Vec<f32> {
    match pass {
        Pass::Forward => conv::forward_with(algo, x, w, None, g),
        Pass::BackwardInput => conv::backward_input_with(algo, dy, w, g),
        Pass::BackwardWeight => conv::backward_weight_with(algo, dy, x, g),
    }
    .unwrap()
}

fn run64(pass: Pass, x: &[f64], w: &[f64], dy: &[f64], g: &ConvGeom) -> Vec<f64> {
    let a = ConvAlgo::Im2col;
    match pass {
        Pass::Forward => conv::forward_with(a, x, w, None, g),
        Pass::BackwardInput => conv::backward_input_with(a, dy, w, g),
        Pass::BackwardWeight => conv::backward_weight_with(a, dy, x, g),
    }
    .unwrap()
}

#[test]
fn chosen_algorithms_round_at_most_twice_as_badly_as_im2col_at_production_shapes() {
    let mut rng = Rng::new(2024);
    let mut failures = Vec::new();
    for (name, c_in, c_out, h, w) in SHAPES {
        let crop = ConvGeom { n: 1, c_in, h: h.min(32), w: w.min(64), c_out, kh: 3, kw: 3, stride: 1, pad: 1 };
        let (x, wt, dy) = data(&mut rng, &crop);
        let (x64, w64, dy64) = (to64(&x), to64(&wt), to64(&dy));
        let (xa, wa, dya) = (abs64(&x), abs64(&wt), abs64(&dy));
        for pass in [Pass::Forward, Pass::BackwardInput, Pass::BackwardWeight] {
            let want = run64(pass, &x64, &w64, &dy64, &crop);
            let scale = run64(pass, &xa, &wa, &dya, &crop);
            let base = err(&run(ConvAlgo::Im2col, pass, &x, &wt, &dy, &crop), &want, &scale);
            let chosen: Vec<ConvAlgo> =
                BATCHES.iter().map(|&n| conv::choose::<f32>(pass, &ConvGeom { n, h, w, ..crop })).collect();
            for algo in ConvAlgo::ALL {
                if !algo.supports(pass, &crop, 4) {
                    continue;
                }
                let e = err(&run(algo, pass, &x, &wt, &dy, &crop), &want, &scale);
                let (rmax, rrms) = (e.max / base.max, e.rms / base.rms);
                let on = chosen.contains(&algo);
                println!(
                    "{name:16} {:15} {:11} max {:.2e} rms {:.2e}  ratio to im2col: max {rmax:.2} rms {rrms:.2}{}",
                    format!("{pass:?}"),
                    format!("{algo:?}"),
                    e.max,
                    e.rms,
                    if on { "  (chosen)" } else { "" }
                );
                if on && (rmax > 2.0 || rrms > 2.0) {
                    failures.push(format!("{name} {pass:?} {algo:?}: ratio max {rmax:.2}, rms {rrms:.2}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "chosen paths rounding > 2x im2col's: {failures:#?}");
}
