//! The one-input-channel convolution kernels (kernels/conv_cin1.cu) on `sim`: forward and weight
//! gradient against the CPU backend in f64 at odd shapes, bit-identical under different sim
//! schedules, the dispatch from `Conv::conv2d_forward` / `conv2d_backward_weight` actually taken
//! (launches counted by a device wrapper), and no input-gradient launch for an input that needs
//! no gradient (the spectrogram).
//!
//! Tolerances, relative to the largest |value| of the reference (computed in f64):
//! - forward 1e-5: each output is a sum of R·S ≤ 49 f32 products plus the bias, so its f32
//!   rounding is ≲ 49·2⁻²⁴ ≈ 3e-6 of the terms' scale; an indexing error is O(1);
//! - weight gradient 1e-4: sums of up to ~25 000 products in f32 (per thread and chunk) and
//!   double (across chunks); ~√L·2⁻²⁴ of the terms' scale typically, far below 1e-4 of the
//!   result's scale; a dropped or doubled chunk or tap is O(1).

use moodgrad::backend::cpu::Cpu;
use moodgrad::backend::kernel::sim::SimDevice;
use moodgrad::backend::kernel::{Arg, KernelBackend, RawDevice};
use moodgrad::backend::prelude::*;
use moodgrad::backend::{BmmGeom, ConvGeom};
use moodgrad::error::Result;
use moodgrad::nn::layers::{BatchNorm2d, Conv2d, vgg_unit_forward};
use moodgrad::params::ParamStore;
use moodgrad::rng::Rng;
use moodgrad::tape::Tape;
use moodgrad::tensor::Tensor;
use std::sync::{Arc, Mutex};

/// The sim device, recording the name of every kernel launched through it.
struct Counting {
    inner: SimDevice,
    launches: Mutex<Vec<&'static str>>,
}

impl Counting {
    fn backend() -> (KernelBackend, Arc<Counting>) {
        let dev = Arc::new(Counting { inner: SimDevice::new(), launches: Mutex::new(Vec::new()) });
        (KernelBackend::new(dev.clone()), dev)
    }
    /// The kernels launched since the last call.
    fn take(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.launches.lock().unwrap())
    }
}

impl RawDevice for Counting {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn profile(&self) -> moodgrad::backend::kernel::profile::DeviceProfile {
        self.inner.profile()
    }
    fn alloc(&self, bytes: usize) -> Result<u64> {
        self.inner.alloc(bytes)
    }
    fn free(&self, ptr: u64, bytes: usize) {
        self.inner.free(ptr, bytes)
    }
    fn recycled(&self, ptr: u64, bytes: usize) {
        self.inner.recycled(ptr, bytes)
    }
    fn htod(&self, dst: u64, src: &[u8]) -> Result<()> {
        self.inner.htod(dst, src)
    }
    fn dtoh(&self, src: u64, dst: &mut [u8]) -> Result<()> {
        self.inner.dtoh(src, dst)
    }
    fn dtod(&self, dst: u64, src: u64, bytes: usize) -> Result<()> {
        self.inner.dtod(dst, src, bytes)
    }
    unsafe fn launch(&self, k: &'static str, grid: [u32; 3], block: [u32; 3], shared: u32, args: &[Arg]) -> Result<()> {
        self.launches.lock().unwrap().push(k);
        // SAFETY: forwarded unchanged from KernelBackend, which upholds the contract.
        unsafe { self.inner.launch(k, grid, block, shared, args) }
    }
    fn set_max_dynamic_shared(&self, kernel: &'static str, bytes: u32) -> Result<()> {
        self.inner.set_max_dynamic_shared(kernel, bytes)
    }
    fn gemm(&self, a: u64, b: u64, c: u64, m: usize, k: usize, n: usize, ta: bool, tb: bool) -> Result<()> {
        self.inner.gemm(a, b, c, m, k, n, ta, tb)
    }
    fn gemm_batched(&self, a: u64, b: u64, c: u64, g: &BmmGeom) -> Result<()> {
        self.inner.gemm_batched(a, b, c, g)
    }
    fn synchronize(&self) -> Result<()> {
        self.inner.synchronize()
    }
}

fn geom(n: usize, h: usize, w: usize, k: usize, (kh, kw): (usize, usize), stride: usize, pad: usize) -> ConvGeom {
    ConvGeom { n, c_in: 1, h, w, c_out: k, kh, kw, stride, pad }
}

/// Odd shapes: H, W not multiples of the 8 × 128 tile, W both below and above 128, N = 1 and 3,
/// K = 5, 64 and 70 (not a multiple of the 8-channel groups, and more than one 32-channel
/// weight-gradient pass), 1×1 to 7×7 and a non-square kernel (more than one 9-tap group),
/// stride 1 and 2, pad 0 to 3.
fn shapes() -> Vec<ConvGeom> {
    vec![
        geom(2, 13, 150, 64, (3, 3), 1, 1),
        geom(1, 9, 20, 5, (3, 3), 1, 1),
        geom(3, 11, 37, 5, (5, 5), 2, 2),
        geom(3, 10, 131, 64, (1, 1), 1, 0),
        geom(1, 17, 29, 64, (5, 5), 1, 0),
        geom(3, 12, 270, 70, (3, 3), 2, 0),
        geom(1, 15, 15, 3, (7, 7), 2, 3),
        geom(1, 6, 133, 64, (3, 5), 1, 2),
    ]
}

fn randn(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.normal()).collect()
}

fn f32_round(v: &[f64]) -> Vec<f64> {
    v.iter().map(|&x| x as f32 as f64).collect()
}

fn close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1e-30f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let e = (g - w).abs() / scale;
        assert!(e <= tol, "{what}[{i}]: {g} vs {w} (err {e:.2e} of scale {scale:.3e} > {tol:.0e})");
    }
}

struct Case {
    x: Vec<f64>,
    w: Vec<f64>,
    b: Vec<f64>,
    dy: Vec<f64>,
}

/// Inputs already rounded to f32, so the f64 reference sees exactly what the kernels see.
fn case(g: &ConvGeom, seed: u64) -> Case {
    let mut rng = Rng::new(seed);
    Case {
        x: f32_round(&randn(&mut rng, g.input_len())),
        w: f32_round(&randn(&mut rng, g.weight_len())),
        b: f32_round(&randn(&mut rng, g.c_out)),
        dy: f32_round(&randn(&mut rng, g.output_len())),
    }
}

fn run_kernels(be: &KernelBackend, g: &ConvGeom, c: &Case) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let up = |v: &[f64]| be.upload_f64(v).unwrap();
    let (x, w, b, dy) = (up(&c.x), up(&c.w), up(&c.b), up(&c.dy));
    let y = be.conv2d_forward(&x, &w, Some(&b), g).unwrap();
    let y_nobias = be.conv2d_forward(&x, &w, None, g).unwrap();
    let dw = be.conv2d_backward_weight(&dy, &x, g).unwrap();
    let down = |v| be.download_f64(&v).unwrap();
    (down(y), down(y_nobias), down(dw))
}

#[test]
fn matches_the_cpu_backend_at_odd_shapes() {
    let cpu = Cpu::<f64>::new();
    let (be, dev) = Counting::backend();
    for (s, g) in shapes().iter().enumerate() {
        let c = case(g, 100 + s as u64);
        let up = |v: &[f64]| cpu.upload_f64(v).unwrap();
        let (x, w, b, dy) = (up(&c.x), up(&c.w), up(&c.b), up(&c.dy));
        let want_y = cpu.download_f64(&cpu.conv2d_forward(&x, &w, Some(&b), g).unwrap()).unwrap();
        let want_y0 = cpu.download_f64(&cpu.conv2d_forward(&x, &w, None, g).unwrap()).unwrap();
        let want_dw = cpu.download_f64(&cpu.conv2d_backward_weight(&dy, &x, g).unwrap()).unwrap();

        dev.take();
        let (y, y0, dw) = run_kernels(&be, g, &c);
        let launched = dev.take();
        assert!(launched.contains(&"conv_cin1_forward"), "{g:?}: {launched:?}");
        assert!(launched.contains(&"conv_cin1_backward_weight"), "{g:?}: {launched:?}");
        assert!(!launched.contains(&"conv2d_forward") && !launched.contains(&"conv2d_backward_weight"), "{launched:?}");
        close(&format!("forward {g:?}"), &y, &want_y, 1e-5);
        close(&format!("forward without bias {g:?}"), &y0, &want_y0, 1e-5);
        close(&format!("weight gradient {g:?}"), &dw, &want_dw, 1e-4);
    }
}

/// More than WGRAD_TARGET_CHUNKS (1024) tiles, so each chunk sums several tiles.
#[test]
fn weight_gradient_with_several_tiles_per_chunk() {
    let g = geom(2, 4160, 3, 5, (3, 3), 1, 1); // 2 · 520 · 1 = 1040 tiles
    let c = case(&g, 7);
    let cpu = Cpu::<f64>::new();
    let up = |v: &[f64]| cpu.upload_f64(v).unwrap();
    let want = cpu.download_f64(&cpu.conv2d_backward_weight(&up(&c.dy), &up(&c.x), &g).unwrap()).unwrap();
    let (be, dev) = Counting::backend();
    let dw = be.conv2d_backward_weight(&be.upload_f64(&c.dy).unwrap(), &be.upload_f64(&c.x).unwrap(), &g).unwrap();
    assert_eq!(dev.take(), ["conv_cin1_backward_weight", "splitk_sum"]);
    close("weight gradient, 2 tiles per chunk", &be.download_f64(&dw).unwrap(), &want, 1e-4);
}

#[test]
fn bit_identical_under_different_schedules() {
    use moodgrad::backend::sim::set_schedule_seed;
    let (be, _) = Counting::backend();
    for g in [geom(3, 17, 300, 64, (3, 3), 1, 1), geom(2, 4160, 3, 5, (3, 3), 1, 1), geom(1, 15, 15, 3, (7, 7), 2, 3)] {
        let c = case(&g, 11);
        let bits = |seed: Option<u64>| {
            set_schedule_seed(seed);
            let (y, y0, dw) = run_kernels(&be, &g, &c);
            [y, y0, dw].map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<u64>>())
        };
        let a = bits(Some(1));
        assert_eq!(a, bits(Some(0x5eed_0002)), "{g:?}: schedules 1 and 0x5eed0002 differ");
        assert_eq!(a, bits(None), "{g:?}: schedule 1 and thread order differ");
        moodgrad::backend::sim::reset_schedule();
    }
}

/// Shapes outside the kernels' range go to the implicit-GEMM kernels, and still agree.
#[test]
fn other_shapes_take_the_general_kernels() {
    let cpu = Cpu::<f64>::new();
    let (be, dev) = Counting::backend();
    let outside = [
        ConvGeom { c_in: 2, ..geom(1, 9, 20, 5, (3, 3), 1, 1) },
        geom(1, 12, 20, 5, (9, 9), 1, 4),
        geom(1, 30, 40, 5, (3, 3), 3, 1),
        geom(1, 9, 20, 300, (7, 7), 1, 3), // forward weights over 48 KB of shared memory
    ];
    for (s, g) in outside.iter().enumerate() {
        let c = case(g, 200 + s as u64);
        let up = |v: &[f64]| cpu.upload_f64(v).unwrap();
        let want_y = cpu.download_f64(&cpu.conv2d_forward(&up(&c.x), &up(&c.w), Some(&up(&c.b)), g).unwrap()).unwrap();
        dev.take();
        let (y, _, _) = run_kernels(&be, g, &c);
        let launched = dev.take();
        assert!(
            launched.contains(&"conv2d_forward") && !launched.contains(&"conv_cin1_forward"),
            "{g:?}: {launched:?}"
        );
        // The last shape's weight gradient still fits (it stages no weights).
        let wgrad_cin1 = s == 3;
        assert_eq!(launched.contains(&"conv_cin1_backward_weight"), wgrad_cin1, "{g:?}: {launched:?}");
        assert_eq!(launched.contains(&"conv2d_backward_weight"), !wgrad_cin1, "{g:?}: {launched:?}");
        close(&format!("forward {g:?}"), &y, &want_y, 1e-5);
    }
}

/// The spectrogram needs no gradient: neither `conv2d` nor the fused VGG unit may run the input
/// gradient for it, while the weight gradient still runs (and with an input that does need a
/// gradient, both run: the check can fail).
#[test]
fn no_input_gradient_for_an_input_without_one() {
    let (be, dev) = Counting::backend();
    let mut rng = Rng::new(5);
    let mut store = ParamStore::new(be.clone());
    let conv = Conv2d::new(&mut store, &mut rng, "conv", 1, 8, 3, 1, 1).unwrap();
    let bn = BatchNorm2d::new(&mut store, "bn", 8).unwrap();
    let x = Tensor::from_f64(&be, &[2, 1, 10, 12], &randn(&mut rng, 240)).unwrap();
    for fused in [false, true] {
        for needs_grad in [false, true] {
            let mut tape = Tape::new(be.clone());
            let xv = tape.input(x.clone(), needs_grad);
            let y = if fused {
                vgg_unit_forward(&conv, &bn, true, &mut tape, &mut store, &xv, true).unwrap()
            } else {
                conv.forward(&mut tape, &store, &xv).unwrap()
            };
            let dy = be.upload_f64(&randn(&mut rng, y.value().numel())).unwrap();
            store.zero_grad();
            dev.take();
            let grads = tape.backward_from(&y, dy, &mut store).unwrap();
            let launched = dev.take();
            let what = format!("fused {fused}, input needs a gradient: {needs_grad}: {launched:?}");
            assert_eq!(launched.contains(&"conv2d_backward_input"), needs_grad, "{what}");
            assert_eq!(grads.get(&xv).is_some(), needs_grad, "{what}");
            assert!(launched.contains(&"conv_cin1_backward_weight"), "{what}");
            assert!(store.grad(conv.weight).is_some(), "{what}: no weight gradient");
        }
    }
}
