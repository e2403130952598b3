//! The host SIMT layer (kernels/sim/) through its Rust FFI: every feature the kernels rely on,
//! launched from kernels/selftest.cu on host memory and checked exactly, plus the failure modes
//! that must be errors rather than hangs, and concurrent launches from several threads.

use moodgrad::backend::sim::ffi;
use std::time::Instant;

mod sim_args;
use sim_args::{Args, launch};

fn ok(kernel: &str, grid: [u32; 3], block: [u32; 3], shared: u32, args: Args) {
    launch(kernel, grid, block, shared, args).unwrap_or_else(|e| panic!("{kernel}: {e}"));
}

fn err(kernel: &str, grid: [u32; 3], block: [u32; 3], shared: u32, args: Args) -> String {
    match launch(kernel, grid, block, shared, args) {
        Ok(()) => panic!("{kernel}: launch succeeded, expected an error"),
        Err(e) => e.to_string(),
    }
}

/// Deterministic pseudo-random numbers (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1) with 24 significant bits.
    fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

#[test]
fn registry_lists_kernels_with_signatures() {
    let names = ffi::kernel_names();
    for k in ["st_block_reverse", "st_shuffle", "st_gemm_tiled", "st_axpy"] {
        assert!(names.contains(&k), "{k} missing from {names:?}");
    }
    assert_eq!(ffi::signature("st_axpy").unwrap(), "st_axpy(int, float, const float*, float*)");
    assert_eq!(
        ffi::signature("st_atomic_int").unwrap(),
        "st_atomic_int(int, int*, unsigned int*, unsigned long long*, int*, int*, unsigned int*, unsigned int*)"
    );
    assert!(ffi::signature("no_such_kernel").is_none());
}

#[test]
fn block_barrier_and_static_shared_memory() {
    let n = 1000usize;
    let x: Vec<f32> = (0..n).map(|i| i as f32 * 1.5 - 7.0).collect();
    for block in [256u32, 100, 1024, 33, 1] {
        let grid = (n as u32).div_ceil(block);
        let mut y = vec![f32::NAN; n];
        ok(
            "st_block_reverse",
            [grid, 1, 1],
            [block, 1, 1],
            0,
            Args::new().ptr(x.as_ptr()).ptr(y.as_mut_ptr()).i32(n as i32),
        );
        for (b, chunk) in y.chunks(block as usize).enumerate() {
            let base = b * block as usize;
            let c = chunk.len();
            for (t, &v) in chunk.iter().enumerate() {
                assert_eq!(v, x[base + c - 1 - t], "block {block}, element {}", base + t);
            }
        }
    }
}

#[test]
fn dynamic_shared_memory_is_poisoned_aligned_and_shared() {
    let n = 1000usize;
    let block = 128u32;
    let grid = (n as u32).div_ceil(block);
    let x: Vec<f32> = (0..n).map(|i| i as f32 + 0.25).collect();
    let mut y = vec![0f32; n];
    let mut poison = vec![0u32; n];
    let mut align = vec![u64::MAX; grid as usize];
    ok(
        "st_dynamic_shared",
        [grid, 1, 1],
        [block, 1, 1],
        block * 4,
        Args::new().ptr(x.as_ptr()).ptr(y.as_mut_ptr()).i32(n as i32).ptr(poison.as_mut_ptr()).ptr(align.as_mut_ptr()),
    );
    assert!(poison.iter().all(|&p| p == 0xFFFF_FFFF), "unwritten dynamic shared memory must read as 0xFF bytes");
    assert!(align.iter().all(|&a| a == 0), "dynamic shared memory must be 64-byte aligned: {align:?}");
    for (b, chunk) in y.chunks(block as usize).enumerate() {
        let base = b * block as usize;
        let c = chunk.len();
        for (t, &v) in chunk.iter().enumerate() {
            assert_eq!(v, x[base + (t + 1) % c]);
        }
    }

    let mut d = vec![0f64; 3 * 64];
    ok("st_dynamic_shared_f64", [3, 1, 1], [64, 1, 1], 64 * 8, Args::new().ptr(d.as_mut_ptr()));
    for (i, &v) in d.iter().enumerate() {
        let (b, t) = (i / 64, i % 64);
        assert_eq!(v, 0.5 * (63 - t) as f64 + (b * 64) as f64);
    }
}

/// The source lane of `lane` for shuffle `kind` (0 idx, 1 up, 2 down, 3 xor), or None when the
/// lane keeps its own value; `lanes` = how many lanes its warp has.
fn shuffle_source(kind: i32, lane: usize, arg: i32, width: usize, lanes: usize) -> Option<usize> {
    let seg = lane & !(width - 1);
    let pos = lane & (width - 1);
    let src = match kind {
        0 => Some(seg + ((lane as i32 * 5 + arg) as usize & (width - 1))),
        1 => (arg as usize <= pos).then(|| lane - arg as usize),
        2 => (arg as usize).lt(&(width - pos)).then(|| lane + arg as usize),
        _ => {
            let s = lane ^ (arg as usize & 31);
            (s < seg + width).then_some(s)
        }
    }?;
    (src < lanes).then_some(src)
}

#[test]
fn shuffles_of_every_kind_and_type_with_full_and_partial_warps() {
    // blockDim 64 = two full warps; 48 = a full warp and a 16-lane warp, whose mask names only
    // its 16 lanes (a full mask there is an error, tested below): reads from the lanes that do
    // not exist return the reader's own value.
    for block in [64usize, 48] {
        let grid = 2usize;
        let n = grid * block;
        for ty in 0..6 {
            let input: Vec<i64> = (0..n)
                .map(|i| match ty {
                    0 | 1 => i as i64 * 3 + 1,                              // exact in float
                    2 => i as i64 * 7919 - 300_000,                         // negative ints too
                    3 => 4_000_000_000 - i as i64 * 11,                     // above i32::MAX
                    _ => (i as i64 + 1) * 0x1_0000_0001 + 0x7000_0000_0000, // needs 64 bits
                })
                .collect();
            let cases: &[(i32, i32, i32)] = &[
                (0, 0, 32),
                (0, 3, 32),
                (0, 1, 8),
                (1, 1, 32),
                (1, 5, 32),
                (1, 2, 16),
                (2, 1, 32),
                (2, 8, 32),
                (2, 16, 32),
                (2, 3, 8),
                (3, 1, 32),
                (3, 16, 32),
                (3, 5, 32),
                (3, 2, 4),
            ];
            for &(kind, arg, width) in cases {
                for use_active in [0, 1] {
                    let mut out = vec![0i64; n];
                    ok(
                        "st_shuffle",
                        [grid as u32, 1, 1],
                        [block as u32, 1, 1],
                        0,
                        Args::new()
                            .i32(kind)
                            .i32(ty)
                            .i32(use_active)
                            .ptr(input.as_ptr())
                            .ptr(out.as_mut_ptr())
                            .i32(arg)
                            .i32(width),
                    );
                    for i in 0..n {
                        let t = i % block;
                        let (warp_base, lane) = (i - t % 32, t % 32);
                        let lanes = (block - (t - lane)).min(32);
                        let want = match shuffle_source(kind, lane, arg, width as usize, lanes) {
                            Some(src) => input[warp_base + src],
                            None => input[i],
                        };
                        let want = if ty == 2 {
                            want as i32 as i64
                        } else if ty == 3 {
                            want as u32 as i64
                        } else {
                            want
                        };
                        assert_eq!(
                            out[i], want,
                            "block {block} type {ty} kind {kind} arg {arg} width {width} active {use_active} thread {i}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn votes_with_full_and_partial_warps() {
    let mut rng = Rng(7);
    for block in [64usize, 48, 96, 20] {
        let n = 3 * block;
        for density in [0u64, 1, 2, 4] {
            // density 0: no lane true; 4: every lane true; else random.
            let pred: Vec<i32> = (0..n)
                .map(|_| match density {
                    0 => 0,
                    4 => 5,
                    d => i32::from(rng.next() % 4 < d) * (rng.next() % 3 + 1) as i32,
                })
                .collect();
            for use_active in [0, 1] {
                let (mut ballot, mut any, mut all, mut used) =
                    (vec![0u32; n], vec![-1i32; n], vec![-1i32; n], vec![0u32; n]);
                ok(
                    "st_vote",
                    [3, 1, 1],
                    [block as u32, 1, 1],
                    0,
                    Args::new()
                        .i32(use_active)
                        .ptr(pred.as_ptr())
                        .ptr(ballot.as_mut_ptr())
                        .ptr(any.as_mut_ptr())
                        .ptr(all.as_mut_ptr())
                        .ptr(used.as_mut_ptr()),
                );
                for i in 0..n {
                    let t = i % block;
                    let warp_base = i - t % 32;
                    let lanes = (block - (t - t % 32)).min(32);
                    let existing = if lanes == 32 { u32::MAX } else { (1u32 << lanes) - 1 };
                    let want: u32 = (0..lanes).filter(|&l| pred[warp_base + l] != 0).map(|l| 1u32 << l).sum();
                    assert_eq!(ballot[i], want, "block {block} thread {i}");
                    assert_eq!(any[i], i32::from(want != 0));
                    assert_eq!(all[i], i32::from(want == existing));
                    assert_eq!(used[i], existing, "mask (use_active {use_active})");
                }
            }
        }
    }
}

#[test]
fn activemask_is_the_lanes_that_reach_the_call() {
    for (block, n) in [(64usize, 40usize), (64, 64), (48, 48), (96, 70), (32, 1)] {
        let mut masks = vec![u32::MAX; 2 * n];
        let mut bcast = vec![f32::NAN; n];
        ok(
            "st_activemask",
            [1, 1, 1],
            [block as u32, 1, 1],
            0,
            Args::new().i32(n as i32).ptr(masks.as_mut_ptr()).ptr(bcast.as_mut_ptr()),
        );
        for t in 0..n {
            let (lane, base) = (t % 32, t - t % 32);
            let lanes = (n - base).min(32);
            let live = if lanes == 32 { u32::MAX } else { (1u32 << lanes) - 1 };
            assert_eq!(masks[2 * t], live, "block {block} n {n} thread {t}");
            let inner = if lane < 5 { live & 0x1f } else { 0 };
            assert_eq!(masks[2 * t + 1], inner, "block {block} n {n} thread {t}");
            assert_eq!(bcast[t], base as f32);
        }
    }
}

#[test]
fn syncwarp_orders_shared_memory_within_a_warp() {
    let n = 4 * 128;
    let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let mut y = vec![0f32; n];
    ok("st_syncwarp", [4, 1, 1], [128, 1, 1], 0, Args::new().ptr(x.as_ptr()).ptr(y.as_mut_ptr()));
    for i in 0..n {
        assert_eq!(y[i], x[i ^ 1]);
    }
}

#[test]
fn warp_and_block_reduction_with_double_atomics() {
    let n = 100_003usize;
    let x: Vec<f32> = (0..n).map(|i| (i % 17) as f32 - 8.0).collect();
    let want: f64 = x.iter().map(|&v| v as f64).sum();
    for (grid, block) in [(8u32, 256u32), (1, 1024), (37, 64)] {
        let mut out = 0f64;
        ok(
            "st_block_sum",
            [grid, 1, 1],
            [block, 1, 1],
            0,
            Args::new().ptr(x.as_ptr()).i32(n as i32).ptr(&mut out as *mut f64),
        );
        assert_eq!(out, want, "grid {grid} block {block}");
    }
}

fn key(v: u32) -> u32 {
    v.wrapping_mul(2654435761) >> 8
}

#[test]
fn integer_atomics_from_many_blocks() {
    let n = 50_000i32;
    let (mut isum, mut usum, mut ullsum) = (0i32, 0u32, 0u64);
    let (mut imax, mut imin, mut umax, mut umin) = (i32::MIN, i32::MAX, 0u32, u32::MAX);
    ok(
        "st_atomic_int",
        [64, 1, 1],
        [256, 1, 1],
        0,
        Args::new()
            .i32(n)
            .ptr(&mut isum as *mut i32)
            .ptr(&mut usum as *mut u32)
            .ptr(&mut ullsum as *mut u64)
            .ptr(&mut imax as *mut i32)
            .ptr(&mut imin as *mut i32)
            .ptr(&mut umax as *mut u32)
            .ptr(&mut umin as *mut u32),
    );
    let n64 = n as u64;
    assert_eq!(isum as u64, n64 * (n64 + 1) / 2);
    assert_eq!(usum as u64, n64 * (n64 + 1) / 2);
    assert_eq!(ullsum, n64 * (n64 + 1) * (2 * n64 + 1) / 6);
    let keys: Vec<u32> = (1..=n as u32).map(key).collect();
    assert_eq!(umax, *keys.iter().max().unwrap());
    assert_eq!(umin, *keys.iter().min().unwrap());
    assert_eq!(imax, *keys.iter().max().unwrap() as i32 - (1 << 23));
    assert_eq!(imin, *keys.iter().min().unwrap() as i32 - (1 << 23));
}

#[test]
fn float_atomics_from_many_blocks() {
    let n = 50_000i32;
    let (mut count, mut dsum, mut fsum) = (0f32, 0f64, 0f32);
    ok(
        "st_atomic_float",
        [64, 1, 1],
        [256, 1, 1],
        0,
        Args::new().i32(n).ptr(&mut count as *mut f32).ptr(&mut dsum as *mut f64).ptr(&mut fsum as *mut f32),
    );
    assert_eq!(count, n as f32);
    assert_eq!(dsum, 0.5 * (n as f64) * (n as f64 + 1.0) / 2.0);
    let want: f64 = (1..=n as u32).map(|v| 0.25 * (v % 64) as f64).sum();
    assert_eq!(fsum as f64, want);
}

#[test]
fn cas_loops_and_exchange() {
    let n = 20_000usize;
    let (mut flag, mut winners, mut cas_sum, mut fmax) = (0i32, 0i32, 0u64, f32::NEG_INFINITY);
    let (mut slot, mut uexch, mut fexch, mut ullexch) = (-1i32, 0u32, 0f32, 0u64);
    let mut exch_out = vec![0i32; n];
    ok(
        "st_atomic_cas",
        [16, 1, 1],
        [128, 1, 1],
        0,
        Args::new()
            .i32(n as i32)
            .ptr(&mut flag as *mut i32)
            .ptr(&mut winners as *mut i32)
            .ptr(&mut cas_sum as *mut u64)
            .ptr(&mut fmax as *mut f32)
            .ptr(&mut slot as *mut i32)
            .ptr(exch_out.as_mut_ptr())
            .ptr(&mut uexch as *mut u32)
            .ptr(&mut fexch as *mut f32)
            .ptr(&mut ullexch as *mut u64),
    );
    assert_eq!((flag, winners), (1, 1), "exactly one thread wins the CAS");
    let n64 = n as u64;
    assert_eq!(cas_sum, n64 * (n64 + 1) * (2 * n64 + 1) / 6);
    assert_eq!(fmax, (1..=n as u32).map(|v| key(v) as f32 * 0.25).fold(f32::NEG_INFINITY, f32::max));
    let mut seen: Vec<i32> = exch_out.clone();
    seen.push(slot);
    seen.sort_unstable();
    let want: Vec<i32> = std::iter::once(-1).chain(1..=n as i32).collect();
    assert_eq!(seen, want, "atomicExch's old values and the final value are a permutation");
    assert!((1..=n as u32).contains(&uexch) && (1..=n as u64).contains(&ullexch));
    assert!(fexch >= 1.0 && fexch <= n as f32 && fexch.fract() == 0.0);
}

#[test]
fn three_dimensional_grid_and_block_indices() {
    for (grid, block) in
        [([3u32, 2, 2], [8u32, 4, 3]), ([2, 3, 1], [5, 3, 3]), ([1, 1, 4], [1, 1, 64]), ([5, 1, 1], [7, 1, 1])]
    {
        let tpb = (block[0] * block[1] * block[2]) as usize;
        let blocks = (grid[0] * grid[1] * grid[2]) as usize;
        let mut coords = vec![u32::MAX; blocks * tpb * 8];
        let mut dims = [0u32; 7];
        ok("st_index3d", grid, block, 0, Args::new().ptr(coords.as_mut_ptr()).ptr(dims.as_mut_ptr()));
        assert_eq!(dims, [block[0], block[1], block[2], grid[0], grid[1], grid[2], 32]);
        for g in 0..blocks * tpb {
            let (b, tl) = (g / tpb, g % tpb);
            let (bx, by, bz) = (b as u32 % grid[0], (b as u32 / grid[0]) % grid[1], b as u32 / (grid[0] * grid[1]));
            let (tx, ty, tz) =
                (tl as u32 % block[0], (tl as u32 / block[0]) % block[1], tl as u32 / (block[0] * block[1]));
            // Warps are consecutive linear thread ids, x fastest.
            let (lane, warp_base) = (tl % 32, tl - tl % 32);
            let lanes = (tpb - warp_base).min(32);
            let ballot: u32 = (0..lanes).filter(|&l| (warp_base + l) % 3 == 0).map(|l| 1u32 << l).sum();
            let existing = if lanes == 32 { u32::MAX } else { (1u32 << lanes) - 1 };
            assert_eq!(
                &coords[g * 8..g * 8 + 8],
                &[tx, ty, tz, bx, by, bz, ballot, existing],
                "grid {grid:?} block {block:?} thread {g} (lane {lane})"
            );
        }
    }
}

fn gemm_reference(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut c = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0f32;
            for p in 0..k {
                acc += a[i * k + p] * b[p * n + j];
            }
            c[i * n + j] = acc;
        }
    }
    c
}

fn gemm(kernel: &str, a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut c = vec![f32::NAN; m * n];
    let args =
        Args::new().ptr(a.as_ptr()).ptr(b.as_ptr()).ptr(c.as_mut_ptr()).i32(m as i32).i32(n as i32).i32(k as i32);
    if kernel == "st_gemm_tiled" {
        ok(kernel, [(n as u32).div_ceil(64), (m as u32).div_ceil(64), 1], [256, 1, 1], 0, args);
    } else {
        ok(kernel, [(n as u32).div_ceil(16), (m as u32).div_ceil(16), 1], [16, 16, 1], 0, args);
    }
    c
}

#[test]
fn tiled_gemm_with_barriers_matches_the_plain_loop_bit_for_bit() {
    let mut rng = Rng(42);
    for (m, n, k) in [(100, 70, 37), (64, 64, 16), (1, 1, 1), (65, 129, 33), (512, 512, 512)] {
        let a: Vec<f32> = (0..m * k).map(|_| rng.f32()).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.f32()).collect();
        let t0 = Instant::now();
        let tiled = gemm("st_gemm_tiled", &a, &b, m, n, k);
        let t_tiled = t0.elapsed();
        let t0 = Instant::now();
        let naive = gemm("st_gemm_naive", &a, &b, m, n, k);
        let t_naive = t0.elapsed();
        let want = gemm_reference(&a, &b, m, n, k);
        assert!(tiled.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()), "tiled {m}x{n}x{k}");
        assert!(naive.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()), "naive {m}x{n}x{k}");
        if m == 512 {
            // Timings for information only: a verdict on them would depend on the machine.
            eprintln!("sim gemm 512x512x512: tiled (64x64 tiles, __syncthreads) {t_tiled:.2?}, naive {t_naive:.2?}");
        }
    }
}

#[test]
fn elementwise_kernel_over_4m_floats_with_a_grid_stride_loop_and_one_thread_per_element() {
    let n: usize = 4 << 20;
    let x: Vec<f32> = (0..n).map(|i| (i % 1000) as f32).collect();
    let mut y: Vec<f32> = (0..n).map(|i| (i % 7) as f32).collect();
    let grid = (n as u32).div_ceil(256).min(4096);
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t0 = Instant::now();
        ok(
            "st_axpy",
            [grid, 1, 1],
            [256, 1, 1],
            0,
            Args::new().i32(n as i32).f32(2.0).ptr(x.as_ptr()).ptr(y.as_mut_ptr()),
        );
        best = best.min(t0.elapsed().as_secs_f64());
    }
    for (i, &v) in y.iter().enumerate() {
        assert_eq!(v, (i % 7) as f32 + 6.0 * (i % 1000) as f32);
    }
    // One thread per element (16384 blocks): the fiber overhead without the grid-stride loop.
    let t0 = Instant::now();
    ok(
        "st_axpy",
        [(n as u32).div_ceil(256), 1, 1],
        [256, 1, 1],
        0,
        Args::new().i32(n as i32).f32(0.0).ptr(x.as_ptr()).ptr(y.as_mut_ptr()),
    );
    let one_per_thread = t0.elapsed().as_secs_f64();
    for (i, &v) in y.iter().enumerate() {
        assert_eq!(v, (i % 7) as f32 + 6.0 * (i % 1000) as f32, "one element per thread changed element {i}");
    }
    // Timings for information only (the sim README's cost table comes from simt_strict's bench).
    eprintln!(
        "sim axpy over 4M floats: {:.1} ms with grid {grid} x 256 (best of 3); {:.1} ms with one element per thread",
        best * 1e3,
        one_per_thread * 1e3
    );
}

#[test]
fn math_functions_match_the_c_library() {
    let n = 300usize;
    let x: Vec<f32> = (0..n).map(|i| 0.01 + i as f32 * 0.037).collect();
    let mut out = vec![0f32; 24 * n];
    ok("st_math", [2, 1, 1], [256, 1, 1], 0, Args::new().ptr(x.as_ptr()).ptr(out.as_mut_ptr()).i32(n as i32));
    for (i, &v) in x.iter().enumerate() {
        let d = v as f64;
        let got = |f: usize| out[f * n + i];
        let same = |f: usize, want: f32| {
            assert_eq!(got(f).to_bits(), want.to_bits(), "function {f} at {v}: {} vs {want}", got(f))
        };
        same(0, v.exp());
        same(1, v.ln());
        same(2, v.ln_1p());
        same(3, v.sqrt());
        same(4, 1.0 / v.sqrt());
        same(5, v.max(1.0));
        same(6, v.min(1.0));
        same(7, v.abs());
        same(8, v.tanh());
        let erf = libm::erff(v);
        assert!((got(9) - erf).abs() <= 2.0 * f32::EPSILON, "erff({v}) = {} vs {erf}", got(9));
        same(10, v.powf(1.5));
        same(11, (v * 3.0).floor());
        same(12, (v * 3.0).ceil());
        same(13, v.exp());
        same(14, v.ln());
        same(15, v / 3.0);
        same(16, v.mul_add(v, -1.0));
        same(17, (d.exp() + d.ln() + d.sqrt() + d.abs() + d.max(1.0)) as f32);
        same(18, v.exp() + v.ln() + v.sqrt() + v.abs() + v.max(1.0));
        same(19, 57.0);
        same(20, f32::from_bits(v.to_bits() + 1));
        same(21, -v);
        same(22, f32::MAX);
        same(23, 9.0 + v);
    }
}

#[test]
fn kernels_may_use_half_the_fiber_stack() {
    let mut out = vec![0u32; 128];
    ok("st_big_stack", [2, 1, 1], [64, 1, 1], 0, Args::new().ptr(out.as_mut_ptr()));
    for (i, &s) in out.iter().enumerate() {
        let want = (8192u32 * 8191 / 2).wrapping_add(8192u32.wrapping_mul(i as u32));
        assert_eq!(s, want);
    }
}

#[test]
fn divergent_barriers_are_errors_not_hangs() {
    let mut y = vec![0f32; 64 * 100];
    let e = err("st_divergent_sync", [1, 1, 1], [64, 1, 1], 0, Args::new().ptr(y.as_mut_ptr()));
    assert!(e.contains("kernel st_divergent_sync: __syncthreads not reached by all threads of block (0,0,0)"), "{e}");
    // Many blocks: one error, every block still accounted for.
    let e = err("st_divergent_sync", [100, 1, 1], [64, 1, 1], 0, Args::new().ptr(y.as_mut_ptr()));
    assert!(e.contains("__syncthreads not reached"), "{e}");
    let e = err("st_split_sync", [1, 1, 1], [64, 1, 1], 0, Args::new().ptr(y.as_mut_ptr()));
    assert!(e.contains("kernel st_split_sync: __syncthreads not reached") && e.contains("selftest.cu"), "{e}");
    let e = err("st_early_exit_sync", [1, 1, 1], [64, 1, 1], 0, Args::new().ptr(y.as_mut_ptr()));
    assert!(e.contains("kernel st_early_exit_sync: __syncthreads not reached") && e.contains("exited"), "{e}");
    // A one-thread block's barrier is trivially complete.
    let mut z = [0f32; 1];
    ok("st_divergent_sync", [1, 1, 1], [1, 1, 1], 0, Args::new().ptr(z.as_mut_ptr()));
    assert_eq!(z[0], 1.0);
}

#[test]
fn warp_collective_misuse_is_an_error() {
    let mut y = vec![0f32; 64];
    let e = err("st_shfl_exited", [1, 1, 1], [64, 1, 1], 0, Args::new().ptr(y.as_mut_ptr()));
    assert!(e.contains("kernel st_shfl_exited") && e.contains("exited") && e.contains("__shfl_down_sync"), "{e}");
    let e = err("st_shfl_bad_mask", [1, 1, 1], [64, 1, 1], 0, Args::new().ptr(y.as_mut_ptr()));
    assert!(e.contains("kernel st_shfl_bad_mask") && e.contains("mask 0x00000001"), "{e}");
    let e = err("st_deadlock", [1, 1, 1], [64, 1, 1], 0, Args::new().ptr(y.as_mut_ptr()));
    assert!(e.contains("kernel st_deadlock: deadlock in block (0,0,0)"), "{e}");
    let e = err("st_mixed_collectives", [1, 1, 1], [64, 1, 1], 0, Args::new().ptr(y.as_mut_ptr()));
    assert!(e.contains("__ballot_sync") && e.contains("__shfl_sync"), "{e}");
    // The thread's runner is clean again afterwards.
    block_barrier_and_static_shared_memory();
}

#[test]
fn invalid_launches_are_errors_naming_the_kernel() {
    let mut y = vec![0f32; 4096];
    let args = || Args::new().ptr(y.as_ptr());
    let e = err("st_divergent_sync", [1, 1, 1], [2048, 1, 1], 0, args());
    assert!(e.contains("kernel st_divergent_sync") && e.contains("2048"), "{e}");
    let e = err("st_divergent_sync", [1, 1, 1], [32, 32, 2], 0, args());
    assert!(e.contains("2048 threads"), "{e}");
    let e = err("st_divergent_sync", [0, 1, 1], [32, 1, 1], 0, args());
    assert!(e.contains("kernel st_divergent_sync: grid (0,1,1)"), "{e}");
    let e = err("st_divergent_sync", [1, 1, 1], [0, 1, 1], 0, args());
    assert!(e.contains("block (0,1,1)"), "{e}");
    let e = err("st_dynamic_shared_f64", [1, 1, 1], [32, 1, 1], 48 * 1024 + 1, args());
    assert!(e.contains("kernel st_dynamic_shared_f64") && e.contains("49153"), "{e}");
    let e = err("st_axpy", [1, 1, 1], [32, 1, 1], 0, args());
    assert!(
        e.contains("kernel st_axpy: 1 argument(s) passed, but it takes 4: st_axpy(int, float, const float*, float*)"),
        "{e}"
    );
    let e = err("no_such_kernel", [1, 1, 1], [32, 1, 1], 0, args());
    assert!(e.contains("no kernel named `no_such_kernel`"), "{e}");
    y[0] = 0.0;
}

#[test]
fn concurrent_launches_from_eight_threads() {
    std::thread::scope(|s| {
        for t in 0..8u64 {
            s.spawn(move || {
                let mut rng = Rng(100 + t);
                for round in 0..6 {
                    let n = 1000 + 37 * t as usize + round;
                    let x: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
                    let mut y = vec![0f32; n];
                    let block = 256u32;
                    ok(
                        "st_block_reverse",
                        [(n as u32).div_ceil(block), 1, 1],
                        [block, 1, 1],
                        0,
                        Args::new().ptr(x.as_ptr()).ptr(y.as_mut_ptr()).i32(n as i32),
                    );
                    for (b, chunk) in y.chunks(block as usize).enumerate() {
                        let c = chunk.len();
                        for (i, &v) in chunk.iter().enumerate() {
                            assert_eq!(v, x[b * block as usize + c - 1 - i], "thread {t} round {round}");
                        }
                    }
                    let (m, nn, k) = (70 + t as usize, 65, 40 + round);
                    let a: Vec<f32> = (0..m * k).map(|_| rng.f32()).collect();
                    let bm: Vec<f32> = (0..k * nn).map(|_| rng.f32()).collect();
                    let c = gemm("st_gemm_tiled", &a, &bm, m, nn, k);
                    assert!(c.iter().zip(gemm_reference(&a, &bm, m, nn, k)).all(|(p, q)| p.to_bits() == q.to_bits()));
                    let mut sum = 0f64;
                    ok(
                        "st_block_sum",
                        [7, 1, 1],
                        [128, 1, 1],
                        0,
                        Args::new().ptr(x.as_ptr()).i32(n as i32).ptr(&mut sum as *mut f64),
                    );
                    let want: f64 = x.iter().map(|&v| v as f64).sum();
                    assert!((sum - want).abs() <= 1e-9 * x.iter().map(|v| v.abs() as f64).sum::<f64>());
                    let mut z = vec![0f32; 64];
                    assert!(launch("st_deadlock", [1, 1, 1], [64, 1, 1], 0, Args::new().ptr(z.as_mut_ptr())).is_err());
                }
            });
        }
    });
}
