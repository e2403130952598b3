//! Shared by tests/se_pool.rs and tests/vgg_unit.rs: a small seed network in f64, run once with
//! a fused op on and once off, to compare the two paths' loss and gradients.
#![allow(dead_code)]

use moodgrad::backend::cpu::Cpu;
use moodgrad::nn::{AttentionKind, ModelConfig, SeedNet};
use moodgrad::params::ParamStore;
use moodgrad::rng::Rng;
use moodgrad::tensor::Tensor;
use moodgrad::train::{Batch, mse_objective};

pub type C64 = Cpu<f64>;

/// The preset with narrow widths (channels 4, 8, 16; SE hidden 4; lyrics 5).
pub fn small_config(model: &str, attention: AttentionKind) -> ModelConfig {
    let mut cfg = ModelConfig::preset(model, attention).unwrap();
    cfg.channels = vec![4, 8, 16];
    cfg.se_reduction = 4;
    cfg.lyrics_dim = 5;
    cfg
}

/// A fixed batch of n spectrograms h × w and lyrics vectors of width t.
pub fn batch(be: &C64, n: usize, h: usize, w: usize, t: usize) -> Batch<C64> {
    let mut r = Rng::new(11);
    let mut randn = |shape: &[usize]| {
        let k = shape.iter().product();
        Tensor::from_f64(be, shape, &(0..k).map(|_| r.normal()).collect::<Vec<_>>()).unwrap()
    };
    let (audio, lyrics) = (randn(&[n, 1, h, w]), randn(&[n, t]));
    let target = Tensor::from_f64(be, &[n, 2], &(0..n * 2).map(|i| (i as f64 * 0.37).fract()).collect::<Vec<_>>());
    Batch::with_vectors(audio, lyrics, target.unwrap())
}

/// One parameter's gradient after a training-mode forward + backward.
pub struct ParamGrad {
    pub name: String,
    pub grad: Vec<f64>,
    /// A conv bias (a `.bias` beside a 4-D weight): BatchNorm cancels it.
    pub conv_bias: bool,
}

/// The loss and every parameter's gradient of `cfg`'s network (init seed 3, `setup` applied,
/// e.g. a fused op switched off) on a 3 × 12 × `width` batch.
pub fn loss_and_grads(cfg: &ModelConfig, width: usize, setup: impl Fn(&mut SeedNet)) -> (f64, Vec<ParamGrad>) {
    let be = C64::new();
    let mut store = ParamStore::new(be.clone());
    let mut net = SeedNet::new(cfg.clone(), &mut store, &mut Rng::new(3)).unwrap();
    setup(&mut net);
    let loss = mse_objective(&net, &mut store, &batch(&be, 3, 12, width, cfg.lyrics_dim), true, 0, true).unwrap();
    let grads = store
        .param_ids()
        .into_iter()
        .map(|id| {
            let name = store.name(id).to_string();
            let weight = name.strip_suffix(".bias").and_then(|p| store.find(&format!("{p}.weight")));
            let conv_bias = weight.is_some_and(|w| store.value(w).shape().len() == 4);
            ParamGrad { grad: store.grad(id).unwrap().to_vec(), name, conv_bias }
        })
        .collect();
    (loss, grads)
}
