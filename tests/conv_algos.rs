//! Every CPU convolution algorithm (im2col, direct, Winograd F2/F4), forced for each pass, against
//! a six-loop f64 reference on odd shapes: odd H and W, channel counts that are not multiples of
//! the kernels' 8 rows or 32 lanes, batch 1 and 3, padding 0, 1, 2, panels that span tile rows
//! and samples, and several blocks per pass. Also: the workspace each call allocates is exactly
//! `workspace_bytes`, and the selection table's choices.

use moodgrad::backend::ConvGeom;
use moodgrad::backend::cpu::conv::{self, ConvAlgo, Pass};
use moodgrad::backend::cpu::conv::{SIMD_VAR, has_simd};
use moodgrad::float::Float;
use moodgrad::rng::Rng;

fn geom(n: usize, c_in: usize, c_out: usize, h: usize, w: usize, pad: usize) -> ConvGeom {
    ConvGeom { n, c_in, h, w, c_out, kh: 3, kw: 3, stride: 1, pad }
}

/// y = conv(x, w), dx = convᵀ(dy), dw = Σ dy ⊗ x by the definition, in f64.
struct Reference {
    y: Vec<f64>,
    dx: Vec<f64>,
    dw: Vec<f64>,
}

fn reference(x: &[f64], w: &[f64], dy: &[f64], g: &ConvGeom) -> Reference {
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut r = Reference { y: vec![0.0; g.output_len()], dx: vec![0.0; g.input_len()], dw: vec![0.0; g.weight_len()] };
    for n in 0..g.n {
        for co in 0..g.c_out {
            for oy in 0..oh {
                for ox in 0..ow {
                    let o = ((n * g.c_out + co) * oh + oy) * ow + ox;
                    for ci in 0..g.c_in {
                        for i in 0..3 {
                            for j in 0..3 {
                                let iy = (oy + i) as isize - g.pad as isize;
                                let ix = (ox + j) as isize - g.pad as isize;
                                if iy < 0 || ix < 0 || iy as usize >= g.h || ix as usize >= g.w {
                                    continue;
                                }
                                let xi = ((n * g.c_in + ci) * g.h + iy as usize) * g.w + ix as usize;
                                let wi = ((co * g.c_in + ci) * 3 + i) * 3 + j;
                                r.y[o] += x[xi] * w[wi];
                                r.dx[xi] += dy[o] * w[wi];
                                r.dw[wi] += dy[o] * x[xi];
                            }
                        }
                    }
                }
            }
        }
    }
    r
}

fn randn(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.normal()).collect()
}

fn cast<T: Float>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| T::from_f64(x)).collect()
}

/// max |got − want| / max |scale|, where scale is the same product on absolute values.
fn err<T: Float>(got: &[T], want: &[f64], scale: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let s = scale.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    got.iter().zip(want).map(|(a, b)| (a.to_f64() - b).abs()).fold(0.0, f64::max) / s
}

/// Runs every supported (algorithm, pass) on `g` in T and checks it against the reference.
fn check_all<T: Float>(g: &ConvGeom, seed: u64, tol: f64) -> usize {
    let mut rng = Rng::new(seed);
    let (x, w, b, dy) = (
        randn(&mut rng, g.input_len()),
        randn(&mut rng, g.weight_len()),
        randn(&mut rng, g.c_out),
        randn(&mut rng, g.output_len()),
    );
    let want = reference(&x, &w, &dy, g);
    let abs = |v: &[f64]| v.iter().map(|a| a.abs()).collect::<Vec<_>>();
    let scale = reference(&abs(&x), &abs(&w), &abs(&dy), g);
    let (xt, wt, bt, dyt) = (cast::<T>(&x), cast::<T>(&w), cast::<T>(&b), cast::<T>(&dy));
    let mut ran = 0;
    for algo in ConvAlgo::ALL {
        let e = size_of::<T>();
        if algo.supports(Pass::Forward, g, e) {
            let y = conv::forward_with(algo, &xt, &wt, None, g).unwrap();
            assert!(err(&y, &want.y, &scale.y) <= tol, "{algo:?} forward {g:?}: {:e}", err(&y, &want.y, &scale.y));
            assert_eq!(
                conv::last_workspace_bytes(),
                conv::workspace_bytes::<T>(algo, Pass::Forward, g),
                "{algo:?} fwd ws"
            );
            let yb = conv::forward_with(algo, &xt, &wt, Some(&bt), g).unwrap();
            let ohw = g.out_h() * g.out_w();
            let wb: Vec<f64> = want.y.iter().enumerate().map(|(i, v)| v + b[(i / ohw) % g.c_out]).collect();
            let sb: Vec<f64> = scale.y.iter().enumerate().map(|(i, v)| v + b[(i / ohw) % g.c_out].abs()).collect();
            assert!(err(&yb, &wb, &sb) <= tol, "{algo:?} forward+bias {g:?}: {:e}", err(&yb, &wb, &sb));
            ran += 1;
        }
        if algo.supports(Pass::BackwardInput, g, e) {
            let dx = conv::backward_input_with(algo, &dyt, &wt, g).unwrap();
            assert!(err(&dx, &want.dx, &scale.dx) <= tol, "{algo:?} dx {g:?}: {:e}", err(&dx, &want.dx, &scale.dx));
            assert_eq!(
                conv::last_workspace_bytes(),
                conv::workspace_bytes::<T>(algo, Pass::BackwardInput, g),
                "{algo:?} dx ws"
            );
            ran += 1;
        }
        if algo.supports(Pass::BackwardWeight, g, e) {
            let dw = conv::backward_weight_with(algo, &dyt, &xt, g).unwrap();
            assert!(err(&dw, &want.dw, &scale.dw) <= tol, "{algo:?} dw {g:?}: {:e}", err(&dw, &want.dw, &scale.dw));
            assert_eq!(
                conv::last_workspace_bytes(),
                conv::workspace_bytes::<T>(algo, Pass::BackwardWeight, g),
                "{algo:?} dw ws"
            );
            ran += 1;
        }
    }
    ran
}

/// Odd shapes: (batch, c_in, c_out, h, w, pad). Panels of 32 tiles span tile rows (w 11 → 3
/// or 6 tiles per row) and samples (batch 3 of small maps); 33 input channels cross the weight
/// gradient's 32-lane channel panels; 9 and 13 output channels leave partial 8-row groups.
const ODD: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 1, 9, 7, 11, 1),
    (3, 3, 5, 9, 11, 1),
    (3, 5, 13, 5, 7, 0),
    (1, 17, 3, 13, 9, 2),
    (3, 33, 9, 6, 35, 1),
    (1, 7, 13, 1, 1, 1),
    (1, 40, 10, 37, 70, 1),
];

#[test]
fn every_algorithm_matches_the_definition_in_f64() {
    // f64: a wrong index is an O(1) error; rounding stays below 1e-13 of the Σ|·| scale even
    // through F(4×4)'s transforms (coefficients up to 8 and 1/24).
    let mut ran = 0;
    for (i, &(n, ci, co, h, w, p)) in ODD.iter().enumerate() {
        ran += check_all::<f64>(&geom(n, ci, co, h, w, p), 10 + i as u64, 1e-13);
    }
    assert!(ran >= ODD.len() * 9, "some algorithm was not run ({ran})");
}

#[test]
fn every_algorithm_matches_the_definition_in_f32() {
    // f32 on this CPU runs the AVX-512 kernels where it has them. 2e-5 of the Σ|·| scale is
    // ~170 ulps: rounding of a few-thousand-term sum, far below any indexing error.
    let mut ran = 0;
    for (i, &(n, ci, co, h, w, p)) in ODD.iter().enumerate() {
        ran += check_all::<f32>(&geom(n, ci, co, h, w, p), 20 + i as u64, 2e-5);
    }
    assert!(ran >= ODD.len() * 9, "some algorithm was not run ({ran})");
}

#[test]
fn several_blocks_per_pass_in_f32() {
    // Large enough that the Winograd forward (V ≈ 1 MiB per block) and weight gradient (≈ 8 MiB
    // per block) each run several blocks, and the direct path many rows.
    let g = geom(2, 64, 72, 61, 131, 1);
    assert!(check_all::<f32>(&g, 3, 2e-5) >= 9);
}

/// The f32 checks and the selection again in a child process with the AVX-512 kernels off
/// (MOODGRAD_CPU_SIMD=off): the portable paths a CPU without AVX-512 runs (plain Rust, no fused
/// multiply-add), so their verdict is known on every machine, not only on AVX2-only ones.
#[test]
fn the_f32_checks_hold_on_the_portable_paths() {
    if std::env::var_os(SIMD_VAR).is_some() {
        // This process already runs the portable paths: the tests named below do so themselves.
        return;
    }
    let tests = ["every_algorithm_matches_the_definition_in_f32", "several_blocks_per_pass_in_f32", "selection_table"];
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(tests)
        .args(["--exact", "--nocapture"])
        .env(SIMD_VAR, "off")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "with {SIMD_VAR}=off:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("{} passed", tests.len())), "{stdout}");
}

#[test]
fn unsupported_geometry_is_an_error_not_a_panic() {
    let g = ConvGeom { n: 1, c_in: 2, h: 9, w: 9, c_out: 3, kh: 3, kw: 3, stride: 2, pad: 1 };
    let x = vec![0.0f32; g.input_len()];
    let w = vec![0.0f32; g.weight_len()];
    for algo in [ConvAlgo::Direct, ConvAlgo::WinogradF2, ConvAlgo::WinogradF4] {
        let e = conv::forward_with(algo, &x, &w, None, &g).unwrap_err().to_string();
        assert!(e.contains("Im2col"), "{e}");
    }
    // No output at all (a 2-row map, no padding): refused, not a panic in the block planning.
    let g = geom(1, 2, 3, 2, 9, 0);
    for algo in [ConvAlgo::Direct, ConvAlgo::WinogradF2, ConvAlgo::WinogradF4] {
        for pass in [Pass::Forward, Pass::BackwardInput, Pass::BackwardWeight] {
            assert!(!algo.supports(pass, &g, 4), "{algo:?} {pass:?}");
        }
        assert!(conv::backward_weight_with(algo, &[0.0f32; 0], &[0.0f32; 18], &g).is_err());
    }
}

#[test]
fn gradients_of_every_algorithm_through_the_tape_match_finite_differences() {
    use moodgrad::gradcheck::check_op;
    use moodgrad::ops;
    // (input, weight, with bias, pad): odd sizes, 1 and 17 input channels, batch 1..3, pad 0-2.
    let cases: [([usize; 4], [usize; 4], bool, usize); 4] = [
        ([2, 3, 7, 9], [5, 3, 3, 3], true, 1),
        ([1, 17, 5, 7], [3, 17, 3, 3], true, 1),
        ([3, 2, 6, 5], [4, 2, 3, 3], false, 0),
        ([1, 1, 9, 11], [6, 1, 3, 3], true, 2),
    ];
    for algo in ConvAlgo::ALL {
        for (xs, ws, bias, pad) in cases {
            let g = ConvGeom { n: xs[0], c_in: xs[1], h: xs[2], w: xs[3], c_out: ws[0], kh: 3, kw: 3, stride: 1, pad };
            let mut shapes = vec![xs.to_vec(), ws.to_vec()];
            if bias {
                shapes.push(vec![ws[0]]);
            }
            let errs = conv::with_algo(algo, || {
                // The tape's calls really take the forced path (they run on this thread).
                for pass in [Pass::Forward, Pass::BackwardInput, Pass::BackwardWeight] {
                    assert_eq!(conv::choose::<f64>(pass, &g), algo, "{pass:?} {g:?}");
                }
                check_op(&shapes, 17, 1e-5, |t, v| ops::conv2d(t, &v[0], &v[1], v.get(2), 1, pad)).unwrap()
            });
            // Central differences with h = 1e-5 in f64: truncation ~1e-10, rounding ~1e-11;
            // a wrong gradient is off by O(1).
            for (i, e) in errs.iter().enumerate() {
                assert!(*e < 1e-6, "{algo:?} {g:?}: input {i} relative error {e:.2e}");
            }
        }
    }
    // And the override ends with the closure.
    let g = geom(1, 17, 3, 5, 7, 1);
    assert_eq!(conv::choose::<f64>(Pass::Forward, &g), ConvAlgo::Im2col);
}

#[test]
fn selection_table() {
    let simd = cfg!(target_arch = "x86_64")
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::env::var(SIMD_VAR).map_or(true, |v| v != "off");
    assert_eq!(has_simd::<f32>(), simd);
    let prod = [(1, 64, 128, 1292), (64, 128, 64, 646), (128, 256, 32, 323), (256, 512, 16, 161), (512, 512, 16, 161)];
    for n in [1, 2, 16] {
        for (ci, co, h, w) in prod {
            let g = geom(n, ci, co, h, w, 1);
            for pass in [Pass::Forward, Pass::BackwardInput, Pass::BackwardWeight] {
                // f64 has no SIMD kernels: the gemm crate everywhere.
                assert_eq!(conv::choose::<f64>(pass, &g), ConvAlgo::Im2col);
                let want = match (simd, ci < 16, pass) {
                    (false, _, _) => ConvAlgo::Im2col,
                    (true, true, Pass::Forward) => ConvAlgo::Direct,
                    (true, true, _) => ConvAlgo::Im2col,
                    (true, false, _) => ConvAlgo::WinogradF2,
                };
                assert_eq!(conv::choose::<f32>(pass, &g), want, "{pass:?} {g:?}");
            }
        }
    }
    // Outside 3×3 stride 1, pad ≤ 2: im2col.
    for g in [
        ConvGeom { n: 1, c_in: 64, h: 9, w: 9, c_out: 8, kh: 3, kw: 3, stride: 2, pad: 1 },
        ConvGeom { n: 1, c_in: 64, h: 9, w: 9, c_out: 8, kh: 5, kw: 5, stride: 1, pad: 2 },
        ConvGeom { n: 1, c_in: 64, h: 9, w: 9, c_out: 8, kh: 3, kw: 3, stride: 1, pad: 3 },
    ] {
        assert_eq!(conv::choose::<f32>(Pass::Forward, &g), ConvAlgo::Im2col, "{g:?}");
    }
}
