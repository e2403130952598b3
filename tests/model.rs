//! The seed network's structure, PyTorch semantics of the stateful pieces, and the refusal of
//! bad user input.

use moodgrad::backend::Memory;
use moodgrad::backend::cpu::Cpu;
use moodgrad::io::{self, HostData, HostTensor, TensorFile};
use moodgrad::nn::{AttentionKind, ModelConfig, SeedNet};
use moodgrad::ops;
use moodgrad::optim::{Adam, AdamConfig, clip_coefficient, grad_norm};
use moodgrad::params::ParamStore;
use moodgrad::rng::Rng;
use moodgrad::tape::Tape;
use moodgrad::tensor::Tensor;
use moodgrad::train::lyrics::NoLyrics;
use moodgrad::train::{Batch, StepOptions, train_step};

type B = Cpu<f32>;

fn build(model: &str, att: AttentionKind, channels: &[usize], lyrics: usize) -> (SeedNet, ParamStore<B>) {
    let mut cfg = ModelConfig::preset(model, att).unwrap();
    cfg.channels = channels.to_vec();
    cfg.lyrics_dim = lyrics;
    let mut store = ParamStore::new(B::new());
    let net = SeedNet::new(cfg, &mut store, &mut Rng::new(3)).unwrap();
    (net, store)
}

fn names(store: &ParamStore<B>) -> Vec<String> {
    store.entries().iter().map(|e| e.name.clone()).collect()
}

#[test]
fn model3_se_has_pytorch_names_and_parameter_count() {
    let (_, store) = build("model3", AttentionKind::Se, &[64, 128, 256, 512], 768);
    let n = names(&store);
    for want in [
        "audio_tower.features.0.weight",
        "audio_tower.features.1.running_mean",
        "audio_tower.features.1.num_batches_tracked",
        "audio_tower.features.12.weight",
        "audio_tower.features.13.running_var",
        "audio_tower.features.15.excitation.0.weight",
        "audio_tower.features.15.excitation.2.weight",
        "audio_tower.classifier.1.weight",
        "audio_tower.classifier.4.bias",
        "classifier_head.1.weight",
        "classifier_head.4.bias",
    ] {
        assert!(n.iter().any(|x| x == want), "missing {want}");
    }
    assert!(!n.iter().any(|x| x.contains("excitation.0.bias")), "SE linears have no bias");
    // Hand count: convs 640+73856+295168+1180160, BN 2·(64+128+256+512), SE 2·512·32,
    // classifier 512·256+256 + 256·64+64, head 832·100+100 + 100·2+2.
    assert_eq!(store.num_params(), 1_815_790);
    // 4 convs·2 + 4 BN·(2 params + 3 buffers) + 2 SE + 4 classifier + 4 head.
    assert_eq!(n.len(), 8 + 20 + 2 + 4 + 4);
}

#[test]
fn model4_and_legacy_layouts() {
    let (_, s4) = build("model4", AttentionKind::Se, &[64, 128, 256, 512], 768);
    let n4 = names(&s4);
    // Two conv units per block: conv,bn,relu,conv,bn,relu,pool -> block 2 starts at 7.
    for want in ["audio_tower.features.3.weight", "audio_tower.features.7.weight", "audio_tower.features.24.weight"] {
        assert!(n4.iter().any(|x| x == want), "missing {want}");
    }
    assert!(n4.iter().any(|x| x == "audio_tower.features.27.excitation.0.weight"));
    let (_, sl) = build("model3", AttentionKind::Legacy, &[64, 128, 256, 512], 768);
    let nl = names(&sl);
    for want in [
        "audio_tower.fc1.weight",
        "audio_tower.attention.attention.0.weight",
        "audio_tower.attention.attention.0.bias",
        "audio_tower.attention.attention.2.weight",
        "audio_tower.fc2.bias",
    ] {
        assert!(nl.iter().any(|x| x == want), "missing {want}");
    }
    assert!(!nl.iter().any(|x| x.contains("excitation") || x.contains("classifier.")), "legacy has no SE");
}

#[test]
fn init_follows_pytorch_bounds() {
    let (_, store) = build("model3", AttentionKind::Se, &[64, 128, 256, 512], 768);
    let be = B::new();
    let w = store.value(store.find("audio_tower.features.4.weight").unwrap()).to_f64(&be).unwrap();
    let bound = 1.0 / ((64 * 9) as f64).sqrt();
    assert!(w.iter().all(|x| x.abs() <= bound));
    // U(−b, b) has variance b²/3; 73728 draws pin it within 2%.
    let var = w.iter().map(|x| x * x).sum::<f64>() / w.len() as f64;
    assert!((var / (bound * bound / 3.0) - 1.0).abs() < 0.02, "variance ratio {}", var / (bound * bound / 3.0));
    let g = store.value(store.find("audio_tower.features.1.weight").unwrap()).to_f64(&be).unwrap();
    let b = store.value(store.find("audio_tower.features.1.bias").unwrap()).to_f64(&be).unwrap();
    assert!(g.iter().all(|&x| x == 1.0) && b.iter().all(|&x| x == 0.0));
}

fn small_batch(seed: u64, n: usize, h: usize, w: usize, t: usize) -> Batch<B> {
    let be = B::new();
    let mut r = Rng::new(seed);
    let v = |r: &mut Rng, k: usize| -> Vec<f64> { (0..k).map(|_| r.normal()).collect() };
    Batch::with_vectors(
        Tensor::from_f64(&be, &[n, 1, h, w], &v(&mut r, n * h * w)).unwrap(),
        Tensor::from_f64(&be, &[n, t], &v(&mut r, n * t)).unwrap(),
        Tensor::from_f64(&be, &[n, 2], &(0..n * 2).map(|_| r.uniform()).collect::<Vec<_>>()).unwrap(),
    )
}

#[test]
fn batchnorm_counts_batches_and_eval_uses_running_stats() {
    let (net, mut store) = build("model3", AttentionKind::Se, &[4, 8, 8, 16], 5);
    let batch = small_batch(1, 3, 16, 24, 5);
    let mut opt = Adam::new(AdamConfig::default());
    let nbt = store.find("audio_tower.features.1.num_batches_tracked").unwrap();
    train_step(&net, &mut store, &mut opt, &mut NoLyrics, &batch, &StepOptions::mse(Some(1.0), 0), None).unwrap();
    train_step(&net, &mut store, &mut opt, &mut NoLyrics, &batch, &StepOptions::mse(Some(1.0), 1), None).unwrap();
    assert_eq!(store.counter(nbt), Some(2));
    // Eval: no counter change, no running-stat change, same output twice.
    let rm = store.find("audio_tower.features.1.running_mean").unwrap();
    let before = store.value(rm).to_f64(&store.backend).unwrap();
    let eval = |store: &mut ParamStore<B>| {
        let mut tape = Tape::no_grad(B::new());
        let a = tape.input(batch.audio.clone().unwrap(), false);
        let l = tape.input(batch.lyrics_vectors().unwrap().clone(), false);
        let out = net.forward(&mut tape, store, &a, &l, false, 0).unwrap();
        out.pred.buf().to_vec()
    };
    let (y1, y2) = (eval(&mut store), eval(&mut store));
    assert_eq!(y1, y2);
    assert_eq!(store.value(rm).to_f64(&store.backend).unwrap(), before);
    assert_eq!(store.counter(nbt), Some(2));
}

#[test]
fn batchnorm_running_stats_use_unbiased_variance() {
    let be = B::new();
    // One channel, values 1..=4: mean 2.5, biased var 1.25, unbiased 5/3.
    let mut tape = Tape::new(be.clone());
    let x = tape.input(Tensor::from_f64(&be, &[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]).unwrap(), false);
    let g = tape.input(Tensor::from_f64(&be, &[1], &[1.0]).unwrap(), false);
    let b = tape.input(Tensor::from_f64(&be, &[1], &[0.0]).unwrap(), false);
    let mut rm = Tensor::from_f64(&be, &[1], &[0.0]).unwrap();
    let mut rv = Tensor::from_f64(&be, &[1], &[1.0]).unwrap();
    let st = ops::BatchNormState { running_mean: &mut rm, running_var: &mut rv, momentum: 0.1, eps: 1e-5 };
    let y = ops::batchnorm2d(&mut tape, &x, &g, &b, st, true).unwrap();
    assert!((rm.buf()[0] - 0.25).abs() < 1e-7);
    assert!((rv.buf()[0] - (0.9 + 0.1 * 5.0 / 3.0)).abs() < 1e-6);
    let yv = y.value().to_f64(&be).unwrap();
    let want = (1.0 - 2.5) / (1.25f64 + 1e-5).sqrt();
    assert!((yv[0] - want).abs() < 1e-6, "{} vs {want}", yv[0]);
}

#[test]
fn dropout_is_identity_in_eval_and_inverted_in_train() {
    let be = B::new();
    let mut tape = Tape::new(be.clone());
    let x = tape.input(Tensor::from_f64(&be, &[100, 100], &vec![1.0; 10_000]).unwrap(), true);
    let e = ops::dropout(&mut tape, &x, 0.5, false, 1).unwrap();
    // Eval dropout is the input itself: the same buffer, not a copy.
    assert!(std::ptr::eq(e.buf().as_ptr(), x.buf().as_ptr()));
    let d = ops::dropout(&mut tape, &x, 0.5, true, 1).unwrap();
    let v = d.value().to_f64(&be).unwrap();
    assert!(v.iter().all(|&y| y == 0.0 || y == 2.0));
    let kept = v.iter().filter(|&&y| y == 2.0).count();
    // Binomial(10000, 0.5): sd 50, so ±300 is 6 sigma.
    assert!((kept as i64 - 5000).abs() < 300, "kept {kept}");
}

#[test]
fn adam_matches_the_textbook_update_and_clip_scales_first() {
    let be = B::new();
    let mut store = ParamStore::new(be.clone());
    let id = store.add_param("w", Tensor::from_f64(&be, &[3], &[0.5, -0.25, 1.0]).unwrap());
    let g = [0.3, -2.0, 1e-3];
    let mut opt = Adam::new(AdamConfig { lr: 0.01, weight_decay: 0.1, ..Default::default() });
    let (mut w, mut m, mut v) = ([0.5f64, -0.25, 1.0], [0.0; 3], [0.0; 3]);
    for t in 1..=3 {
        store.zero_grad();
        store.accumulate_grad(id, be.upload_f64(&g).unwrap()).unwrap();
        let norm = grad_norm(&store).unwrap();
        let want_norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - want_norm).abs() < 1e-6);
        let coef = clip_coefficient(norm, 1.0);
        assert!((coef - 1.0 / (want_norm + 1e-6)).abs() < 1e-9);
        opt.step(&mut store, coef).unwrap();
        for i in 0..3 {
            let gi = g[i] * coef + 0.1 * w[i];
            m[i] = 0.9 * m[i] + 0.1 * gi;
            v[i] = 0.999 * v[i] + 0.001 * gi * gi;
            let mh = m[i] / (1.0 - 0.9f64.powi(t));
            let vh = v[i] / (1.0 - 0.999f64.powi(t));
            w[i] -= 0.01 * mh / (vh.sqrt() + 1e-8);
        }
        let got = store.value(id).to_f64(&be).unwrap();
        for i in 0..3 {
            // f32 storage: 1e-6 relative to weights of order 1.
            assert!((got[i] - w[i]).abs() < 2e-6, "step {t} elem {i}: {} vs {}", got[i], w[i]);
        }
    }
    // Below the threshold nothing is scaled.
    assert_eq!(clip_coefficient(0.5, 1.0), 1.0);
}

#[test]
fn adamw_decays_the_weight_not_the_gradient() {
    let be = B::new();
    let mut store = ParamStore::new(be.clone());
    let id = store.add_param("w", Tensor::from_f64(&be, &[1], &[2.0]).unwrap());
    store.accumulate_grad(id, be.upload_f64(&[0.0]).unwrap()).unwrap();
    let mut opt = Adam::new(AdamConfig { lr: 0.1, weight_decay: 0.5, decoupled: true, ..Default::default() });
    opt.step(&mut store, 1.0).unwrap();
    // Zero gradient: Adam's step is 0, only the decay 2·(1 − 0.1·0.5) acts.
    assert!((store.value(id).buf()[0] - 1.9).abs() < 1e-6);
}

#[test]
fn no_grad_tape_records_nothing_and_params_get_no_grad() {
    let (net, mut store) = build("model3", AttentionKind::Se, &[4, 8, 8, 16], 5);
    let batch = small_batch(2, 2, 16, 16, 5);
    let mut tape = Tape::no_grad(B::new());
    let a = tape.input(batch.audio.clone().unwrap(), false);
    let l = tape.input(batch.lyrics_vectors().unwrap().clone(), false);
    let t = tape.input(batch.target.clone().unwrap(), false);
    let out = net.forward(&mut tape, &mut store, &a, &l, true, 0).unwrap();
    let loss = ops::mse_loss(&mut tape, &out.pred, &t).unwrap();
    assert!(!loss.tracked());
    tape.backward(&loss, &mut store).unwrap();
    assert!(store.param_ids().iter().all(|&id| store.grad(id).is_none()));
}

fn write_state(store: &ParamStore<B>, path: &std::path::Path, edit: impl FnOnce(&mut TensorFile)) {
    let mut f = TensorFile { tensors: io::state_dict(store).unwrap(), metadata: Default::default() };
    edit(&mut f);
    io::write(path, &f).unwrap();
}

#[test]
fn weights_round_trip_and_bad_files_are_refused_by_name() {
    let dir = tempdir("weights");
    let (_, store) = build("model3", AttentionKind::Se, &[4, 8, 8, 16], 5);
    let (_, mut other) = build("model3", AttentionKind::Se, &[4, 8, 8, 16], 5);
    let good = dir.join("good.safetensors");
    write_state(&store, &good, |_| {});
    let f = io::read(&good).unwrap();
    io::load_state_dict(&mut other, &good, &f, &[]).unwrap();
    assert_eq!(io::state_dict(&other).unwrap(), io::state_dict(&store).unwrap());

    let load = |edit: &dyn Fn(&mut TensorFile)| -> String {
        let p = dir.join("bad.safetensors");
        write_state(&store, &p, |f| edit(f));
        let (_, mut s) = build("model3", AttentionKind::Se, &[4, 8, 8, 16], 5);
        let f = io::read(&p).unwrap();
        io::load_state_dict(&mut s, &p, &f, &[]).unwrap_err().to_string()
    };
    let e = load(&|f| {
        f.tensors.remove("audio_tower.features.4.weight");
    });
    assert!(e.contains("missing tensor `audio_tower.features.4.weight`") && e.contains("8x4x3x3"), "{e}");
    let e = load(&|f| {
        f.tensors.insert("classifier_head.4.bias".into(), HostTensor::f32(&[3], vec![0.0; 3]));
    });
    assert!(e.contains("classifier_head.4.bias") && e.contains("shape 3 ") && e.contains("expects 2"), "{e}");
    let e = load(&|f| {
        f.tensors.insert("classifier_head.4.bias".into(), HostTensor::f64(&[2], vec![0.0; 2]));
    });
    assert!(e.contains("classifier_head.4.bias") && e.contains("dtype F64") && e.contains("F32"), "{e}");
    let e = load(&|f| {
        f.tensors.insert("audio_tower.features.1.num_batches_tracked".into(), HostTensor::f32(&[], vec![0.0]));
    });
    assert!(e.contains("num_batches_tracked") && e.contains("I64"), "{e}");
    let e = load(&|f| {
        f.tensors.insert("audio_tower.extra.weight".into(), HostTensor::f32(&[1], vec![0.0]));
    });
    assert!(e.contains("unexpected") && e.contains("audio_tower.extra.weight"), "{e}");

    // Not safetensors at all, empty, truncated, missing: errors naming the file, no panic.
    let junk = dir.join("junk.safetensors");
    for bytes in [b"not a tensor file at all".to_vec(), vec![], std::fs::read(&good).unwrap()[..40].to_vec()] {
        std::fs::write(&junk, bytes).unwrap();
        let e = io::read(&junk).unwrap_err().to_string();
        assert!(e.contains("junk.safetensors"), "{e}");
    }
    let e = io::read(&dir.join("absent.safetensors")).unwrap_err().to_string();
    assert!(e.contains("absent.safetensors") && e.contains("cannot read"), "{e}");
}

#[test]
fn nan_in_the_batch_is_refused_and_nan_loss_changes_no_weight() {
    let dir = tempdir("nan");
    let p = dir.join("batch.safetensors");
    let mut f = TensorFile::default();
    f.tensors.insert("audio".into(), HostTensor::f32(&[1, 1, 2, 2], vec![0.0, f32::NAN, 0.0, 0.0]));
    io::write(&p, &f).unwrap();
    let file = io::read(&p).unwrap();
    let e = io::tensor_from_file(&B::new(), &p, &file, "audio", 4).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("batch.safetensors") && e.contains("`audio`") && e.contains("non-finite"), "{e}");

    // A NaN that reaches the loss (here through a weight) stops the step before Adam runs.
    let (net, mut store) = build("model3", AttentionKind::Se, &[4, 8, 8, 16], 5);
    let w = store.find("classifier_head.4.weight").unwrap();
    let mut poisoned = store.value(w).to_f64(&store.backend).unwrap();
    poisoned[0] = f64::NAN;
    let nan = store.backend.upload_f64(&poisoned).unwrap();
    store.value_mut(w).set_buf(nan).unwrap();
    let before = io::state_dict(&store).unwrap();
    let mut opt = Adam::new(AdamConfig::default());
    let e = train_step(
        &net,
        &mut store,
        &mut opt,
        &mut NoLyrics,
        &small_batch(3, 2, 16, 16, 5),
        &StepOptions::mse(Some(1.0), 0),
        None,
    )
    .map(|_| ())
    .unwrap_err();
    assert!(e.to_string().contains("loss is NaN") && e.to_string().contains("no weights were changed"), "{e}");
    let after = io::state_dict(&store).unwrap();
    for (k, v) in &before {
        if !k.contains("running") && !k.contains("num_batches") {
            let same = match (&v.data, &after[k].data) {
                (HostData::F32(a), HostData::F32(b)) => a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
                (a, b) => a == b,
            };
            assert!(same, "{k} changed");
        }
    }
}

#[test]
fn nan_gradient_is_named() {
    let be = B::new();
    let mut store = ParamStore::new(be.clone());
    let a = store.add_param("ok", Tensor::from_f64(&be, &[2], &[1.0, 1.0]).unwrap());
    let b = store.add_param("layer.weight", Tensor::from_f64(&be, &[2], &[1.0, 1.0]).unwrap());
    store.accumulate_grad(a, be.upload(&[0.1, 0.2]).unwrap()).unwrap();
    store.accumulate_grad(b, be.upload(&[f32::INFINITY, 0.2]).unwrap()).unwrap();
    let e = grad_norm(&store).unwrap_err().to_string();
    assert!(e.contains("`layer.weight`") && e.contains("no weights were changed"), "{e}");
}

#[test]
fn wrong_input_shapes_are_errors_not_panics() {
    let (net, mut store) = build("model3", AttentionKind::Se, &[4, 8, 8, 16], 5);
    let mut bad = small_batch(4, 2, 16, 16, 6);
    let mut opt = Adam::new(AdamConfig::default());
    let e = train_step(&net, &mut store, &mut opt, &mut NoLyrics, &bad, &StepOptions::mse(Some(1.0), 0), None)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("lyrics vector") && e.contains("[2, 6]"), "{e}");
    bad = small_batch(4, 2, 4, 16, 5);
    let e = train_step(&net, &mut store, &mut opt, &mut NoLyrics, &bad, &StepOptions::mse(Some(1.0), 0), None)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("smaller than 8x8"), "{e}");
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("moodgrad-test-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
