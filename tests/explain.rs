//! `predict --explain`'s saliency, checked in f64 on a small seed network (two VGG units, an SE
//! block, the bimodal head): the tape's input gradient equals central finite differences of the
//! output, and where the output cannot depend on the input (a time range every first-layer unit
//! over it has switched off) the saliency is exactly zero.

use moodgrad::backend::cpu::Cpu;
use moodgrad::nn::{AttentionKind, ModelConfig, SeedNet};
use moodgrad::params::ParamStore;
use moodgrad::rng::Rng;
use moodgrad::tape::Tape;
use moodgrad::tensor::Tensor;
use moodgrad::train::explain::{input_gradients, se_gates, smooth_abs};

type C64 = Cpu<f64>;
const H: usize = 16;
const W: usize = 24;
const LYRICS: usize = 6;

fn small_net(store: &mut ParamStore<C64>, seed: u64) -> SeedNet {
    let mut c = ModelConfig::preset("model3", AttentionKind::Se).unwrap();
    c.channels = vec![4, 8];
    c.se_reduction = 2;
    c.audio_hidden = 12;
    c.audio_out = 5;
    c.head_hidden = 7;
    c.lyrics_dim = LYRICS;
    SeedNet::new(c, store, &mut Rng::new(seed)).unwrap()
}

/// The prediction for `audio` in eval mode, on a tape that records nothing.
fn predict(net: &SeedNet, store: &mut ParamStore<C64>, audio: &[f64], lyrics: &[f64]) -> [f64; 2] {
    let be = store.backend.clone();
    let mut tape = Tape::no_grad(be.clone());
    let x = tape.input(Tensor::from_f64(&be, &[1, 1, H, W], audio).unwrap(), false);
    let l = tape.input(Tensor::from_f64(&be, &[1, LYRICS], lyrics).unwrap(), false);
    let p =
        net.forward_inputs(&mut tape, store, Some(&x), Some(&l), false, 0).unwrap().pred.value().to_f64(&be).unwrap();
    [p[0], p[1]]
}

fn inputs(rng: &mut Rng) -> (Vec<f64>, Vec<f64>) {
    ((0..H * W).map(|_| rng.normal()).collect(), (0..LYRICS).map(|_| rng.normal()).collect())
}

fn gradients(net: &SeedNet, store: &mut ParamStore<C64>, audio: &[f64], lyrics: &[f64]) -> ([f64; 2], [Vec<f64>; 2]) {
    let be = store.backend.clone();
    let a = Tensor::from_f64(&be, &[1, 1, H, W], audio).unwrap();
    let l = Tensor::from_f64(&be, &[1, LYRICS], lyrics).unwrap();
    input_gradients(net, store, &a, Some(&l)).unwrap()
}

/// Central differences with h = 1e-5 in f64: truncation ~h²·|f'''| ≈ 1e-10 and rounding
/// ~1e-16/h ≈ 1e-11, so a tolerance of 1e-7 (relative to max(|g|, 1)) separates a right gradient
/// from a wrong one (a wrong cell or axis is off by O(|g|)). A ReLU or max-pool kink within h of
/// a random normal input has probability ~1e-5 per unit, never seen with these seeds.
#[test]
fn saliency_equals_central_differences_in_f64() {
    for seed in [1, 2] {
        let mut store = ParamStore::new(C64::new());
        let net = small_net(&mut store, seed);
        let mut rng = Rng::new(seed + 100);
        let (audio, lyrics) = inputs(&mut rng);
        let (pred, grads) = gradients(&net, &mut store, &audio, &lyrics);
        assert_eq!(pred, predict(&net, &mut store, &audio, &lyrics), "the explained prediction is the model's");
        let h = 1e-5;
        for (k, g) in grads.iter().enumerate() {
            assert_eq!(g.len(), H * W);
            let largest = (0..g.len()).max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs())).unwrap();
            assert!(g[largest].abs() > 1e-6, "output {k} depends on the input");
            let mut cells = vec![largest];
            cells.extend((0..6).map(|_| rng.below(H * W)));
            for j in cells {
                let mut x = audio.clone();
                x[j] += h;
                let up = predict(&net, &mut store, &x, &lyrics)[k];
                x[j] -= 2.0 * h;
                let down = predict(&net, &mut store, &x, &lyrics)[k];
                let fd = (up - down) / (2.0 * h);
                let err = (fd - g[j]).abs() / g[j].abs().max(1.0);
                assert!(err < 1e-7, "seed {seed}, output {k}, cell {j}: tape {} vs differences {fd}", g[j]);
            }
        }
    }
}

/// First conv's weights all positive and its bias 0, BatchNorm at its initial running statistics
/// (x / √(1 + ε)): where the input is −100 over columns 8..16, every unit whose 3×3 window lies
/// inside that range is negative, so its ReLU is off and nothing passes. Cells 10..=13 only feed
/// such units, so the output ignores them: the saliency there is exactly 0 and so is the finite
/// difference, while outside it is not.
#[test]
fn an_ignored_time_range_has_zero_saliency() {
    let mut store = ParamStore::new(C64::new());
    let net = small_net(&mut store, 3);
    for (name, positive) in [("audio_tower.features.0.weight", true), ("audio_tower.features.0.bias", false)] {
        let id = store.find(name).unwrap();
        for w in store.value_mut(id).buf_mut().make_mut().iter_mut() {
            *w = if positive { w.abs() + 0.01 } else { 0.0 };
        }
    }
    let mut rng = Rng::new(7);
    let (mut audio, lyrics) = inputs(&mut rng);
    for r in 0..H {
        for c in 8..16 {
            audio[r * W + c] = -100.0;
        }
    }
    let (_, grads) = gradients(&net, &mut store, &audio, &lyrics);
    for (k, g) in grads.iter().enumerate() {
        for r in 0..H {
            for c in 10..=13 {
                assert_eq!(g[r * W + c], 0.0, "output {k}, row {r}, column {c}");
            }
        }
        let outside = (0..H).flat_map(|r| (0..7).map(move |c| r * W + c)).map(|j| g[j].abs()).fold(0.0, f64::max);
        assert!(outside > 1e-6, "output {k}: the rest of the input matters ({outside})");
    }
    let base = predict(&net, &mut store, &audio, &lyrics);
    audio[5 * W + 11] += 1.0;
    assert_eq!(predict(&net, &mut store, &audio, &lyrics), base, "a cell in the range changes nothing");
    // The smoothing for display spreads the map but keeps it non-negative and of the same size.
    let sm = smooth_abs(&grads[0], H, W, 2.0);
    assert_eq!(sm.len(), H * W);
    assert!(sm.iter().all(|&v| v >= 0.0));
}

/// The SE gates are the sigmoid of the excitation: one value per channel in (0, 1), and they
/// change with the song.
#[test]
fn se_gates_are_one_weight_per_channel() {
    let mut store = ParamStore::new(C64::new());
    let net = small_net(&mut store, 4);
    let mut rng = Rng::new(9);
    let be = store.backend.clone();
    let gates = |store: &mut ParamStore<C64>, a: &[f64]| {
        se_gates(&net, store, &Tensor::from_f64(&be, &[1, 1, H, W], a).unwrap()).unwrap().unwrap()
    };
    let (a, _) = inputs(&mut rng);
    let (b, _) = inputs(&mut rng);
    let (ga, gb) = (gates(&mut store, &a), gates(&mut store, &b));
    assert_eq!(ga.len(), 8, "the last block's channels");
    assert!(ga.iter().all(|&g| g > 0.0 && g < 1.0), "{ga:?}");
    assert_ne!(ga, gb, "the weights depend on the song");
}

/// The saliency picture's colour scale reads the median and the 99th percentile of the drawn
/// cells by nearest rank.
#[test]
fn percentile_is_the_nearest_rank() {
    use moodgrad::train::plot_explain::percentile;
    let v: Vec<f64> = (0..=100).rev().map(f64::from).collect();
    assert_eq!(percentile(v.clone(), 0.99), 99.0);
    assert_eq!(percentile(v.clone(), 0.5), 50.0);
    assert_eq!(percentile(v, 1.0), 100.0);
    assert_eq!(percentile(Vec::new(), 0.5), 0.0);
}
