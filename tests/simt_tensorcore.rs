//! The host SIMT layer's tensor-core and asynchronous-copy emulation (kernels/mma.cuh,
//! kernels/sim/simt.cpp), through the self-test kernels of kernels/selftest_tc.cu: cvt.rna.tf32
//! rounding bit for bit, mma.sync m16n8k8 with PTX's fragment layouts against a plain matrix
//! product, cp.async groups that land only at their wait (a read before the wait or without the
//! barrier sees the poison), and dynamic shared memory above 48 KiB only after the opt-in.

use moodgrad::backend::sim::ffi;
use moodgrad::error::Result;
use moodgrad::rng::Rng;

mod sim_args;
use sim_args::{Args, launch_1d as launch};

/// cvt.rna.tf32.f32 written independently of the layer: keep 10 mantissa bits, round to nearest
/// with ties away from zero (on the magnitude), NaN to the canonical 0x7fffffff.
fn rna_tf32(x: f32) -> u32 {
    if x.is_nan() {
        return 0x7fff_ffff;
    }
    if x.is_infinite() {
        return x.to_bits();
    }
    let u = x.to_bits();
    let (sign, mag) = (u & 0x8000_0000, u & 0x7fff_ffff);
    let kept = mag & !0x1fff;
    let rest = mag & 0x1fff;
    sign | if rest >= 0x1000 { kept + 0x2000 } else { kept }
}

#[test]
fn cvt_rna_tf32_rounds_to_nearest_ties_away_bit_for_bit() {
    let mut xs: Vec<f32> = vec![
        0.0,
        -0.0,
        1.0,
        f32::from_bits(0x3f80_1000), // exactly half way: away from zero
        f32::from_bits(0xbf80_1000),
        f32::from_bits(0x3f80_0fff), // just below half: down
        f32::from_bits(0x3f80_3000), // half way above an odd kept value: still away (not to even)
        f32::from_bits(0x3fff_f000), // rounds up into the next binade
        f32::MAX,                    // rounds up to infinity
        f32::MIN_POSITIVE,
        f32::from_bits(1), // the smallest subnormal
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::from_bits(0x7f80_0001), // a signalling NaN with a low payload
    ];
    let mut rng = Rng::new(7);
    xs.extend((0..4000).map(|_| f32::from_bits(rng.next_u64() as u32)));
    let mut y = vec![0u32; xs.len()];
    let args = Args::default().ptr(xs.as_ptr()).ptr(y.as_mut_ptr()).i32(xs.len() as i32);
    launch("st_tf32_cvt", 4, 256, 0, args).unwrap();
    for (x, got) in xs.iter().zip(&y) {
        assert_eq!(*got, rna_tf32(*x), "cvt.rna.tf32 of {x:e} ({:#010x})", x.to_bits());
        assert_eq!(got & 0x1fff, if x.is_nan() { 0x1fff } else { 0 }, "low 13 bits of {x:e}");
    }
    assert_eq!(y[3], 0x3f80_2000);
    assert_eq!(y[6], 0x3f80_4000);
    assert_eq!(y[7], 0x4000_0000);
    assert_eq!(y[8], f32::INFINITY.to_bits());
}

/// Runs st_mma_tf32 over `tiles` independent 16×8×8 products.
fn mma(a: &[f32], b: &[f32], c: &[f32], tiles: u32, round: bool) -> Result<Vec<f32>> {
    let mut d = vec![0f32; c.len()];
    let args =
        Args::default().ptr(a.as_ptr()).ptr(b.as_ptr()).ptr(c.as_ptr()).ptr(d.as_mut_ptr()).i32(i32::from(round));
    launch("st_mma_tf32", tiles, 32, 0, args)?;
    Ok(d)
}

#[test]
fn mma_m16n8k8_tf32_is_the_matrix_product_of_the_rounded_operands() {
    let tiles = 6usize;
    let mut rng = Rng::new(11);
    let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| (rng.uniform() * 4.0 - 2.0) as f32).collect() };
    let (a, b, c) = (draw(tiles * 128), draw(tiles * 64), draw(tiles * 128));
    let d = mma(&a, &b, &c, tiles as u32, true).unwrap();
    let tf = |x: f32| f32::from_bits(rna_tf32(x)) as f64;
    for t in 0..tiles {
        for i in 0..16 {
            for j in 0..8 {
                // Each product of TF32 values is exact in double, and |Σ| < 2^6 with 22-bit
                // products: the double sum of 8 products and C is exact, so the one rounding to
                // float is the only one and the emulation must match it exactly.
                let mut s = c[t * 128 + i * 8 + j] as f64;
                for k in 0..8 {
                    s += tf(a[t * 128 + i * 8 + k]) * tf(b[t * 64 + k * 8 + j]);
                }
                let got = d[t * 128 + i * 8 + j];
                assert_eq!(got.to_bits(), (s as f32).to_bits(), "tile {t} D[{i}][{j}]: {got} vs {s}");
            }
        }
    }
    // A layout mix-up (say A's a1/a2 swapped, or B read row-major) would change D: check that
    // the operands' structure matters, with a non-symmetric A and B = a shifted identity.
    let mut a = vec![0f32; 128];
    let mut b = vec![0f32; 64];
    for i in 0..16 {
        for k in 0..8 {
            a[i * 8 + k] = (i * 8 + k) as f32;
        }
    }
    for k in 0..8 {
        b[k * 8 + (k + 1) % 8] = 1.0;
    }
    let d = mma(&a, &b, &[0f32; 128], 1, true).unwrap();
    for i in 0..16 {
        for j in 0..8 {
            assert_eq!(d[i * 8 + j], a[i * 8 + (j + 7) % 8], "D[{i}][{j}] = A[{i}][(j-1) mod 8]");
        }
    }
}

#[test]
fn mma_rejects_operands_that_were_not_rounded_to_tf32() {
    let a = vec![1.0f32 + f32::EPSILON; 128];
    let b = vec![1.0f32; 64];
    let err = mma(&a, &b, &[0f32; 128], 1, false).unwrap_err().to_string();
    assert!(err.contains("not a tf32 value") && err.contains("st_mma_tf32"), "{err}");
    // The same data rounded first is accepted.
    mma(&a, &b, &[0f32; 128], 1, true).unwrap();
}

#[test]
fn mma_on_a_partial_warp_is_an_error() {
    let mut d = vec![0f32; 128];
    let (a, b, c) = (vec![1f32; 128], vec![1f32; 64], vec![0f32; 128]);
    let args = Args::default().ptr(a.as_ptr()).ptr(b.as_ptr()).ptr(c.as_ptr()).ptr(d.as_mut_ptr()).i32(1);
    let err = launch("st_mma_tf32", 1, 16, 0, args).unwrap_err().to_string();
    assert!(err.contains("full warp"), "{err}");
}

/// st_cp_async over one block of `threads`: y and whether any element is the NaN poison.
fn cp_async(threads: usize, mode: i32, zfill: bool) -> Vec<f32> {
    let n = 2 * threads;
    let x: Vec<f32> = (0..n).map(|i| i as f32 + 0.5).collect();
    let mut y = vec![-1f32; n];
    let args = Args::default().ptr(x.as_ptr()).ptr(y.as_mut_ptr()).i32(mode).i32(i32::from(zfill));
    launch("st_cp_async", 1, threads as u32, (n * 4) as u32, args).unwrap();
    y
}

#[test]
fn cp_async_lands_at_its_wait_group_and_zero_fills() {
    let threads = 64;
    // y[t] = x[(t + 1) % B], y[B + t] = x[B + (t + 1) % B] for B threads.
    let src = |i: usize| if i < threads { (i + 1) % threads } else { threads + (i - threads + 1) % threads };
    for seed in [None, Some(1u64), Some(2), Some(3)] {
        ffi::set_schedule_seed(seed);
        let y = cp_async(threads, 0, false);
        for (i, v) in y.iter().enumerate() {
            assert_eq!(*v, src(i) as f32 + 0.5, "{seed:?}: y[{i}]");
        }
        // Zero fill: the odd threads' group-1 copies read nothing and write zeros.
        let y = cp_async(threads, 0, true);
        for (i, v) in y.iter().enumerate() {
            let s = src(i);
            let want = if s >= threads && (s - threads) % 2 == 1 { 0.0 } else { s as f32 + 0.5 };
            assert_eq!(*v, want, "{seed:?}: zero-filled y[{i}]");
        }
        // Reading the second group after wait_group 1 (still in flight): the poison, except where
        // the neighbour that issued the copy has already exited (its copies then land, as a GPU
        // thread's do), which in thread order is only thread 0 and otherwise about half.
        let y = cp_async(threads, 1, false);
        let poisoned = y[threads..].iter().filter(|v| v.is_nan()).count();
        assert!(poisoned > 0, "{seed:?}: reads before the wait must see the unwritten memory");
        if seed.is_none() {
            assert_eq!(poisoned, threads - 1, "thread order");
        }
        for (i, v) in y.iter().enumerate() {
            assert!(v.is_nan() || *v == src(i) as f32 + 0.5, "{seed:?}: y[{i}] = {v}");
        }
        assert!(y[..threads].iter().all(|v| !v.is_nan()), "{seed:?}: the first group was waited for");
        // Waited but no barrier: a neighbour's copy has not landed when its reader runs first.
        let y = cp_async(threads, 2, false);
        assert!(y[threads..].iter().any(|v| v.is_nan()), "{seed:?}: a missing barrier after the wait went unnoticed");
    }
    ffi::reset_schedule();
}

#[test]
fn a_misaligned_16_byte_cp_async_fails_the_launch() {
    let x: Vec<f32> = (0..1024).map(|i| i as f32).collect();
    let mut y = vec![0f32; 512];
    // A Vec<f32>'s buffer is 16-byte aligned here (the allocator's minimum on x86-64 is 16).
    assert_eq!(x.as_ptr() as usize % 16, 0);
    let args = Args::default().ptr(x.as_ptr()).ptr(y.as_mut_ptr()).i32(0);
    launch("st_cp_async_x4", 1, 128, 2048, args).unwrap();
    for (i, v) in y.iter().enumerate() {
        assert_eq!(*v, ((i + 4) % 512) as f32, "y[{i}]");
    }
    let args = Args::default().ptr(x.as_ptr()).ptr(y.as_mut_ptr()).i32(1);
    let err = launch("st_cp_async_x4", 1, 128, 2048, args).unwrap_err().to_string();
    assert!(err.contains("misaligned 16-byte copy"), "{err}");
}

#[test]
fn dynamic_shared_memory_above_48_kib_needs_the_opt_in() {
    let run = |floats: usize| -> Result<Vec<f32>> {
        let mut y = vec![0f32; floats];
        let args = Args::default().ptr(y.as_mut_ptr()).i32(floats as i32);
        launch("st_dynamic_shared_big", 1, 256, (floats * 4) as u32, args)?;
        Ok(y)
    };
    // 48 KiB works without it.
    let y = run(12 * 1024).unwrap();
    assert_eq!(y[0], (12 * 1024 - 1) as f32);
    // 100 KiB: refused until the kernel's maximum is raised, as cuLaunchKernel refuses it.
    let big = 25 * 1024;
    let err = run(big).unwrap_err().to_string();
    assert!(err.contains("48 KiB without the opt-in"), "{err}");
    ffi::set_max_dynamic_shared("st_dynamic_shared_big", (big * 4) as u32).unwrap();
    let y = run(big).unwrap();
    for (i, v) in y.iter().enumerate() {
        assert_eq!(*v, (big - 1 - i) as f32, "y[{i}]");
    }
    // Beyond sm_90's 227 KiB per block the opt-in itself fails.
    let err = ffi::set_max_dynamic_shared("st_dynamic_shared_big", 228 * 1024).unwrap_err().to_string();
    assert!(err.contains("227") || err.contains("232448"), "{err}");
    assert!(ffi::set_max_dynamic_shared("no_such_kernel", 1024).is_err());
}

/// The emulated card's limits (`ffi::set_arch`, which `SimDevice` calls before each launch, per
/// thread): a T4 (sm_75) has neither mma.sync .tf32 nor cp.async, and an A10 (sm_86) refuses
/// more than 99 KiB of shared memory per block, opt-in or not, where sm_90 allows 227 KiB.
#[test]
fn the_emulated_card_gates_tensor_cores_and_shared_memory() {
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            ffi::set_arch(90, 227 * 1024);
        }
    }
    let _restore = Restore;
    ffi::set_arch(75, 64 * 1024);
    let (a, b, c) = (vec![1f32; 128], vec![1f32; 64], vec![0f32; 128]);
    let err = mma(&a, &b, &c, 1, true).unwrap_err().to_string();
    assert!(err.contains("mma.sync") && err.contains("sm_75"), "{err}");
    let x = vec![1f32; 64];
    let mut y = vec![0f32; 64];
    let args = Args::default().ptr(x.as_ptr()).ptr(y.as_mut_ptr()).i32(0).i32(0);
    let err = launch("st_cp_async", 1, 32, 256, args).unwrap_err().to_string();
    assert!(err.contains("cp.async") && err.contains("sm_75"), "{err}");

    ffi::set_arch(86, 99 * 1024);
    let floats = 27 * 1024; // 108 KiB: the TF32 convolutions' 128-row tiles need 108 KiB.
    let err = ffi::set_max_dynamic_shared("st_dynamic_shared_big", (floats * 4) as u32).unwrap_err().to_string();
    assert!(err.contains("sm_86"), "{err}");
    // A kernel already opted in to more (under sm_90) is still held to 99 KiB here: the 128-row
    // TF32 convolution, refused before it runs (so its arguments are never read).
    let (kernel, bytes) = ("conv2d_forward_tf32", 110_592u32);
    ffi::set_arch(90, 227 * 1024);
    ffi::set_max_dynamic_shared(kernel, bytes).unwrap();
    ffi::set_arch(86, 99 * 1024);
    let args = (0..15).fold(Args::default(), |a, _| a.i32(0));
    let err = launch(kernel, 1, 256, bytes, args).unwrap_err().to_string();
    assert!(err.contains("101376") && err.contains("sm_86"), "{err}");
}
