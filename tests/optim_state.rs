//! Adam's state by parameter name: moving a run from PyTorch to moodgrad mid-training (and back),
//! saving and loading it, and refusing bad state files without changing anything.
//!
//! resume_f64.safetensors (tools/make_optim_fixtures.py): PyTorch trained the seed network (narrow,
//! f64, three groups, one parameter frozen) 5 steps; the file holds its weights, its Adam state
//! converted to moodgrad's format by tools/optim_state.py, the next batch and the weights after
//! PyTorch's 6th step.

mod optim_common;

use moodgrad::io::{self, HostData, HostTensor, TensorFile};
use moodgrad::optim::Adam;
use moodgrad::params::ParamStore;
use moodgrad::train::lyrics::NoLyrics;
use moodgrad::train::{StepOptions, train_step};
use optim_common::*;
use std::path::Path;

/// The resumed network: weights and optimiser state after PyTorch's 5 steps.
fn resumed() -> (std::path::PathBuf, TensorFile, moodgrad::nn::SeedNet, ParamStore<Be>, Adam<Be>) {
    let (path, f) = fixture("resume_f64.safetensors");
    let (net, mut store) = network(&f);
    io::load_state_dict(&mut store, &path, &strip(&f, "weights.", false), &[]).unwrap();
    let mut opt = adam(&json(&f, "groups"), false);
    opt.load_state(&store, &path, &strip(&f, "state.", true)).unwrap();
    (path, f, net, store, opt)
}

#[test]
fn one_step_after_pytorch_state_matches_pytorch() {
    let (path, f, net, mut store, mut opt) = resumed();
    // The saved rates (StepLR halved them after the first epoch) replace the configured ones.
    let groups = json(&f, "groups");
    for (i, g) in groups.as_array().unwrap().iter().enumerate() {
        assert_eq!(opt.lr(i), g["lr"].as_f64().unwrap());
        assert_eq!(opt.lr(i), g["initial_lr"].as_f64().unwrap() / 2.0);
    }
    let frozen = store.find(&f.metadata["frozen"]).unwrap();
    let some = store.find("classifier_head.1.weight").unwrap();
    assert_eq!(opt.step_count(some), Some(5));
    assert_eq!(opt.step_count(frozen), None);

    let clip: f64 = f.metadata["clip"].parse().unwrap();
    let b = batch(&path, &f, "batch.");
    let rep =
        train_step(&net, &mut store, &mut opt, &mut NoLyrics, &b, &StepOptions::mse(Some(clip), 0), None).unwrap();
    // f64 on both sides from identical state: one step differs only by rounding (~1e-16 of
    // scale; measured ≤ 1e-15). A moment, step count or lr not carried over shows at ≥ 1e-4.
    let (tl, tn) = (vals(&f, "expect.loss")[0], vals(&f, "expect.grad_norm")[0]);
    assert!((rep.loss - tl).abs() <= 1e-13 * tl, "loss {} vs torch {tl}", rep.loss);
    assert!((rep.grad_norm - tn).abs() <= 1e-13 * tn, "grad_norm {} vs torch {tn}", rep.grad_norm);
    // Conv biases feeding BatchNorm (true gradient 0) and the running_mean after each drift on
    // f64 noise by ≤ lr·max|g|/eps per step (≈ 1e-3·1e-17/1e-8): 1e-12 absolute bounds them.
    let biases: Vec<&str> = f.metadata["bn_fed_conv_biases"].split(',').collect();
    let noise_fed = |k: &str| {
        biases.iter().any(|b| {
            let i: usize = b.trim_start_matches("audio_tower.features.").trim_end_matches(".bias").parse().unwrap();
            k == *b || k == format!("audio_tower.features.{}.running_mean", i + 1)
        })
    };
    let (mut worst, mut worst_name, mut worst_noise) = (0.0f64, String::new(), 0.0f64);
    for (k, ours) in snapshot(&store) {
        let want = vals(&f, &format!("expect.{k}"));
        let d = max_diff(&ours, &want);
        if noise_fed(&k) {
            assert!(d <= 1e-12, "after.{k}: off by {d:.1e}");
            worst_noise = worst_noise.max(d);
            continue;
        }
        let e = d / max_abs(&want).max(f64::MIN_POSITIVE);
        assert!(e <= 1e-12, "after.{k}: off by {d:.1e} ({e:.1e} of scale)");
        if e > worst {
            (worst, worst_name) = (e, k.clone());
        }
    }
    eprintln!(
        "resume from PyTorch: loss rel {:.1e}, grad_norm rel {:.1e}; weights ≤ {worst:.1e} of scale (worst \
         {worst_name}); BN-fed biases ≤ {worst_noise:.1e} abs",
        (rep.loss - tl).abs() / tl,
        (rep.grad_norm - tn).abs() / tn
    );
    if let Ok(dir) = std::env::var("MOODGRAD_OPTIM_EXPORT") {
        export_for_torch(Path::new(&dir), &path, &f, &net, &mut store, &mut opt);
    }
}

/// With MOODGRAD_OPTIM_EXPORT=DIR: moodgrad's own state after its step, one more moodgrad step,
/// for `tools/optim_state.py check-moodgrad DIR` (the moodgrad → PyTorch direction).
fn export_for_torch(
    dir: &Path,
    path: &Path,
    f: &TensorFile,
    net: &moodgrad::nn::SeedNet,
    store: &mut ParamStore<Be>,
    opt: &mut Adam<Be>,
) {
    std::fs::create_dir_all(dir).unwrap();
    io::write(&dir.join("weights_before.safetensors"), &state_dict_f64(store)).unwrap();
    io::write(&dir.join("optimizer.safetensors"), &opt.export_state(store).unwrap()).unwrap();
    io::write(&dir.join("batch.safetensors"), &strip(f, "batch.", false)).unwrap();
    let clip: f64 = f.metadata["clip"].parse().unwrap();
    train_step(net, store, opt, &mut NoLyrics, &batch(path, f, "batch."), &StepOptions::mse(Some(clip), 0), None)
        .unwrap();
    io::write(&dir.join("weights_after.safetensors"), &state_dict_f64(store)).unwrap();
    let run = serde_json::json!({"clip": clip, "frozen": [f.metadata["frozen"]]});
    std::fs::write(dir.join("run.json"), run.to_string()).unwrap();
    eprintln!("wrote moodgrad's state to {} for tools/optim_state.py check-moodgrad", dir.display());
}

/// export_state → file → load_state into a fresh optimiser: both continue bit for bit alike.
#[test]
fn exported_state_reloads_and_continues_identically() {
    let (path, f, net, mut store, mut opt) = resumed();
    let b = batch(&path, &f, "batch.");
    let clip = Some(f.metadata["clip"].parse().unwrap());
    train_step(&net, &mut store, &mut opt, &mut NoLyrics, &b, &StepOptions::mse(clip, 0), None).unwrap();
    let dir = std::env::temp_dir().join(format!("moodgrad-optim-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("optimizer.safetensors");
    io::write(&file, &opt.export_state(&store).unwrap()).unwrap();
    let weights = state_dict_f64(&store);

    let (_, mut store2) = network(&f);
    io::load_state_dict(&mut store2, &path, &weights, &[]).unwrap();
    let mut opt2 = adam(&json(&f, "groups"), false);
    opt2.load_state(&store2, &file, &io::read(&file).unwrap()).unwrap();
    assert_eq!(opt.lrs(), opt2.lrs());
    train_step(&net, &mut store, &mut opt, &mut NoLyrics, &b, &StepOptions::mse(clip, 0), None).unwrap();
    train_step(&net, &mut store2, &mut opt2, &mut NoLyrics, &b, &StepOptions::mse(clip, 0), None).unwrap();
    assert_eq!(snapshot(&store), snapshot(&store2), "the reloaded optimiser diverged");
    let id = store.find("classifier_head.4.bias").unwrap();
    assert_eq!(opt2.step_count(id), Some(7), "5 PyTorch steps and 2 of ours");
    std::fs::remove_dir_all(&dir).ok();
}

/// A parameter frozen after it trained keeps its moments (as PyTorch does): they export, load
/// back, and stay unused while it is frozen.
#[test]
fn moments_of_a_parameter_frozen_mid_training_survive_a_reload() {
    let (path, f, net, mut store, opt) = resumed();
    let id = store.find("classifier_head.1.weight").unwrap();
    store.set_trainable(id, false);
    let saved = opt.export_state(&store).unwrap();
    assert!(saved.tensors.contains_key("classifier_head.1.weight.exp_avg"));
    let mut opt2 = adam(&json(&f, "groups"), false);
    opt2.load_state(&store, &path, &saved).unwrap();
    assert_eq!(opt2.step_count(id), Some(5));
    let before = store.value(id).to_f64(&store.backend).unwrap();
    train_step(
        &net,
        &mut store,
        &mut opt2,
        &mut NoLyrics,
        &batch(&path, &f, "batch."),
        &StepOptions::mse(Some(2.5), 0),
        None,
    )
    .unwrap();
    assert_eq!(store.value(id).to_f64(&store.backend).unwrap(), before, "a frozen parameter moved");
    assert_eq!(opt2.step_count(id), Some(5));
}

/// Each bad state file is refused with a message naming the problem, and the optimiser keeps
/// every moment, step count and rate it had.
#[test]
fn bad_optimiser_state_is_refused_and_changes_nothing() {
    let (path, f, _net, store, mut opt) = resumed();
    let good = strip(&f, "state.", true);
    let before = opt.export_state(&store).unwrap();
    let lrs = opt.lrs();
    let w = "classifier_head.1.weight";
    let edit = |change: &dyn Fn(&mut TensorFile)| {
        let mut t = good.clone();
        change(&mut t);
        t
    };
    let set_group = |t: &mut TensorFile, i: usize, k: &str, v: serde_json::Value| {
        let mut g: serde_json::Value = serde_json::from_str(&t.metadata["groups"]).unwrap();
        g[i][k] = v;
        t.metadata.insert("groups".into(), g.to_string());
    };
    let cases: Vec<(&str, TensorFile, &str)> = vec![
        (
            "missing exp_avg",
            edit(&|t| drop(t.tensors.remove(&format!("{w}.exp_avg")))),
            "missing optimiser entry `classifier_head.1.weight.exp_avg`",
        ),
        (
            "missing exp_avg_sq",
            edit(&|t| drop(t.tensors.remove(&format!("{w}.exp_avg_sq")))),
            "missing optimiser entry `classifier_head.1.weight.exp_avg_sq`",
        ),
        (
            "missing step",
            edit(&|t| drop(t.tensors.remove(&format!("{w}.step")))),
            "missing optimiser entry `classifier_head.1.weight.step`",
        ),
        (
            "wrong shape",
            edit(&|t| {
                let m = t.tensors.get_mut(&format!("{w}.exp_avg")).unwrap();
                m.shape = vec![m.shape[1], m.shape[0]];
            }),
            "`classifier_head.1.weight.exp_avg` has shape [16, 12] but the parameter has shape [12, 16]",
        ),
        (
            "unknown parameter",
            edit(&|t| {
                for s in ["exp_avg", "exp_avg_sq", "step"] {
                    let v = t.tensors[&format!("{w}.{s}")].clone();
                    t.tensors.insert(format!("lyrics_tower.x.{s}"), v);
                }
            }),
            "optimiser state for `lyrics_tower.x`, which is not a parameter of this model",
        ),
        (
            "state for a buffer",
            edit(&|t| {
                let z = HostTensor::f64(&[4], vec![0.0; 4]);
                t.tensors.insert("audio_tower.features.1.running_mean.exp_avg".into(), z.clone());
                t.tensors.insert("audio_tower.features.1.running_mean.exp_avg_sq".into(), z);
                t.tensors.insert("audio_tower.features.1.running_mean.step".into(), HostTensor::i64(&[], vec![1]));
            }),
            "`audio_tower.features.1.running_mean`, which is not a parameter",
        ),
        (
            "not an entry",
            edit(&|t| drop(t.tensors.insert("momentum_buffer".into(), HostTensor::f64(&[], vec![0.0])))),
            "`momentum_buffer` is not an optimiser entry",
        ),
        (
            "group names",
            edit(&|t| set_group(t, 1, "name", "classifier".into())),
            r#"parameter groups ["audio", "classifier", "default"] but this run has ["audio", "head", "default"]"#,
        ),
        (
            "group prefixes",
            edit(&|t| set_group(t, 0, "prefixes", serde_json::json!(["audio_tower."]))),
            r#"group `audio` was saved with prefixes ["audio_tower."], this run has ["audio_tower.features."]"#,
        ),
        (
            "group weight decay",
            edit(&|t| set_group(t, 1, "weight_decay", 0.0.into())),
            "group `head` was saved with weight_decay 0, this run has 0.01",
        ),
        ("group without lr", edit(&|t| set_group(t, 2, "lr", serde_json::Value::Null)), "group \"default\" has no lr"),
        (
            "AdamW state",
            edit(&|t| drop(t.metadata.insert("optimizer".into(), "AdamW".into()))),
            "the optimiser state is AdamW's but this run uses Adam",
        ),
        (
            "betas",
            edit(&|t| drop(t.metadata.insert("betas".into(), "[0.9, 0.99]".into()))),
            "saved with betas [0.9, 0.99], this run has [0.9, 0.999]",
        ),
        (
            "eps",
            edit(&|t| drop(t.metadata.insert("eps".into(), "1e-6".into()))),
            "saved with eps 1e-6, this run has 1e-8",
        ),
        (
            "fractional step",
            edit(&|t| drop(t.tensors.insert(format!("{w}.step"), HostTensor::f64(&[], vec![2.5])))),
            "`classifier_head.1.weight.step` is not a whole non-negative scalar",
        ),
        (
            "negative step",
            edit(&|t| drop(t.tensors.insert(format!("{w}.step"), HostTensor::i64(&[], vec![-1])))),
            "is not a whole non-negative scalar",
        ),
        (
            "non-finite moment",
            edit(&|t| {
                if let HostData::F64(v) = &mut t.tensors.get_mut(&format!("{w}.exp_avg_sq")).unwrap().data {
                    v[3] = f64::NAN;
                }
            }),
            "tensor `classifier_head.1.weight.exp_avg_sq` holds a non-finite value (NaN) at flat index 3",
        ),
        (
            "integer moment",
            edit(&|t| {
                let m = t.tensors.get_mut(&format!("{w}.exp_avg")).unwrap();
                m.data = HostData::I64(vec![0; m.len()]);
            }),
            "tensor `classifier_head.1.weight.exp_avg` has dtype I64; expected a float tensor",
        ),
    ];
    for (what, file, msg) in cases {
        let err = opt.load_state(&store, &path, &file).expect_err(what).to_string();
        assert!(err.contains(msg), "{what}: error `{err}` lacks `{msg}`");
        assert!(err.contains("resume_f64.safetensors"), "{what}: the error names no file: {err}");
        let now = opt.export_state(&store).unwrap();
        assert_eq!(now.tensors, before.tensors, "{what}: a failed load changed the state");
        assert_eq!(opt.lrs(), lrs, "{what}: a failed load changed the rates");
    }
    // The good file still loads after all that.
    opt.load_state(&store, &path, &good).unwrap();
}

/// A truncated optimiser file is refused when read, naming the file.
#[test]
fn truncated_state_file_is_refused() {
    let (path, f, _net, store, opt) = resumed();
    let bytes = io::encode(&path, &opt.export_state(&store).unwrap()).unwrap();
    let cut = Path::new("optimizer.safetensors");
    for len in [0, 7, bytes.len() / 2, bytes.len() - 1] {
        let err = io::parse(cut, &bytes[..len]).expect_err("a truncated file parsed").to_string();
        assert!(err.contains("optimizer.safetensors") && err.contains("truncated"), "{err}");
    }
    drop(f);
}
