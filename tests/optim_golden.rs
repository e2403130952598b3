//! Parameter groups, schedules, clipping and Adam/AdamW against PyTorch (fixtures of
//! tools/make_optim_fixtures.py, torch 2.15 CPU).
//!
//! The training golden runs in float64 on both sides (moodgrad's `Cpu<f64>`, PyTorch double) so it
//! tests semantics, not rounding: the seed network at narrow widths, three groups with their own
//! learning rate and weight decay, one parameter frozen, StepLR(2, 0.5) stepped per epoch,
//! clip_grad_norm_(2.5: 4 of the 12 steps clipped), 4 epochs × 3 batches. Any semantic slip (a group's lr or decay applied to
//! the wrong tensors, the clip coefficient applied after the moments, a bias correction off by one
//! step, a frozen parameter moving, the scheduler stepping per batch) moves weights by ~lr·1e-1 or
//! more, against agreement here at ~1e-13 of scale.

mod optim_common;

use moodgrad::backend::Memory;
use moodgrad::io;
use moodgrad::optim::{Adam, AdamConfig, Interval, LrScheduler, ParamGroup, Schedule};
use moodgrad::train::lyrics::NoLyrics;
use moodgrad::train::{StepOptions, train_step};
use optim_common::*;
use std::collections::BTreeMap;

struct Run {
    loss: Vec<f64>,
    norm: Vec<f64>,
    lrs: Vec<Vec<f64>>,
    /// max |grad| over the BN-fed conv biases at each step (f64 noise around a true 0).
    bn_fed_grad: Vec<f64>,
    after: BTreeMap<String, Vec<f64>>,
    state: io::TensorFile,
}

fn train(run: &str, decoupled: bool) -> (io::TensorFile, Run) {
    let (path, f) = fixture("adam_groups_f64.safetensors");
    let (net, mut store) = network(&f);
    io::load_state_dict(&mut store, &path, &strip(&f, "init.", false), &[]).unwrap();
    let mut opt = adam(&json(&f, &format!("groups_{run}")), decoupled);
    let step_size: usize = f.metadata["step_size"].parse().unwrap();
    let gamma: f64 = f.metadata["gamma"].parse().unwrap();
    let mut sched = LrScheduler::new(Schedule::Step { step_size, gamma }, Interval::Epoch, &mut opt).unwrap();
    let clip: f64 = f.metadata["clip"].parse().unwrap();
    let biases: Vec<_> = f.metadata["bn_fed_conv_biases"].split(',').map(|n| store.find(n).unwrap()).collect();
    let batches: Vec<_> = (0..3).map(|b| batch(&path, &f, &format!("input.{b}."))).collect();
    let mut r = Run {
        loss: vec![],
        norm: vec![],
        lrs: vec![],
        bn_fed_grad: vec![],
        after: BTreeMap::new(),
        state: Default::default(),
    };
    let epochs: usize = f.metadata["epochs"].parse().unwrap();
    for _ in 0..epochs {
        for b in &batches {
            r.lrs.push((0..opt.num_groups()).map(|i| opt.lr(i)).collect());
            let rep = train_step(&net, &mut store, &mut opt, &mut NoLyrics, b, &StepOptions::mse(Some(clip), 0), None)
                .unwrap();
            r.loss.push(rep.loss);
            r.norm.push(rep.grad_norm);
            let g = biases
                .iter()
                .map(|&id| max_abs(&store.backend.download_f64(store.grad(id).unwrap()).unwrap()))
                .fold(0.0, f64::max);
            r.bn_fed_grad.push(g);
        }
        sched.step(&mut opt);
    }
    r.after = snapshot(&store);
    r.state = opt.export_state(&store).unwrap();
    (f, r)
}

/// How far Adam can carry a parameter whose true gradient is 0 (a conv bias feeding BatchNorm)
/// on f64 noise: m̂ is an average of past (clipped, so no larger) gradients, so each step moves it
/// by at most lr_t·max|g|/eps. Two implementations each drift that far, independently.
fn noise_drift(lrs: &[Vec<f64>], group: usize, grads: &[f64]) -> f64 {
    let mut worst: f64 = 0.0;
    lrs.iter()
        .zip(grads)
        .map(|(lr, &g)| {
            worst = worst.max(g);
            lr[group] * worst / 1e-8
        })
        .sum()
}

fn check(run: &str, decoupled: bool) {
    let (f, r) = train(run, decoupled);
    let steps = r.loss.len();
    assert_eq!(steps, 12);
    // The rates come from the same products (base·0.5ᵏ): equal to the bit.
    let lrs = vals(&f, &format!("{run}.lr"));
    let ours: Vec<f64> = r.lrs.concat();
    assert_eq!(ours, lrs, "{run}: learning rates per step");

    // Losses and pre-clip norms: both sides round only at ~1e-16 per operation; the trajectories
    // stay within ~1e-14 relative over 12 steps (measured ≤ 3e-15); 1e-12 leaves room for other
    // summation orders, while any semantic difference shows at ≥ 1e-4.
    let (tl, tn) = (vals(&f, &format!("{run}.loss")), vals(&f, &format!("{run}.grad_norm")));
    let mut worst_ln: f64 = 0.0;
    for s in 0..steps {
        let (el, en) = ((r.loss[s] - tl[s]).abs() / tl[s], (r.norm[s] - tn[s]).abs() / tn[s]);
        assert!(el <= 1e-12, "{run}: loss[{s}] {} vs torch {} (rel {el:.1e})", r.loss[s], tl[s]);
        assert!(en <= 1e-12, "{run}: grad_norm[{s}] {} vs torch {} (rel {en:.1e})", r.norm[s], tn[s]);
        worst_ln = worst_ln.max(el).max(en);
    }
    let clip: f64 = f.metadata["clip"].parse().unwrap();
    let clipped = tn.iter().filter(|&&n| n > clip).count();
    assert!(clipped > 0 && clipped < steps, "the fixture should exercise both sides of the clip");

    // Weights after 12 steps: 1e-11 of each tensor's largest entry (measured ≤ 1e-13: the f64
    // rounding of two implementations, carried through 12 Adam steps and the BN statistics).
    // Conv biases feeding BatchNorm (true gradient 0) and the running_mean that follows each take
    // their own bound instead: both sides' noise drift (noise_drift), ~1e-11 absolute.
    let tgrad = vals(&f, &format!("{run}.bn_fed_grad_max"));
    let audio_group = 0;
    let drift = noise_drift(&r.lrs, audio_group, &tgrad) + noise_drift(&r.lrs, audio_group, &r.bn_fed_grad);
    let biases: Vec<&str> = f.metadata["bn_fed_conv_biases"].split(',').collect();
    let bn_after = |b: &str| {
        let i: usize = b.trim_start_matches("audio_tower.features.").trim_end_matches(".bias").parse().unwrap();
        format!("audio_tower.features.{}.running_mean", i + 1)
    };
    let (mut worst, mut worst_name, mut worst_bias) = (0.0f64, String::new(), 0.0f64);
    for (k, ours) in &r.after {
        let want = vals(&f, &format!("{run}.after.{k}"));
        let d = max_diff(ours, &want);
        if biases.contains(&k.as_str()) || biases.iter().any(|b| bn_after(b) == *k) {
            assert!(
                d <= drift + 1e-12 * max_abs(&want),
                "{run}: {k} off by {d:.1e}, beyond the noise drift {drift:.1e}"
            );
            worst_bias = worst_bias.max(d);
            continue;
        }
        let e = d / max_abs(&want).max(f64::MIN_POSITIVE);
        assert!(e <= 1e-11, "{run}: after.{k} off by {e:.1e} of its scale");
        if e > worst {
            (worst, worst_name) = (e, k.clone());
        }
    }
    // The frozen parameter never moved and never got moments.
    let frozen = &f.metadata["frozen"];
    assert_eq!(r.after[frozen], vals(&f, &format!("init.{frozen}")), "{run}: the frozen parameter moved");
    assert!(!r.state.tensors.keys().any(|k| k.starts_with(&format!("{frozen}."))), "{run}: frozen moments");
    eprintln!(
        "{run}: loss/grad_norm rel ≤ {worst_ln:.1e}; weights ≤ {worst:.1e} of scale (worst {worst_name}); \
         BN-fed biases ≤ {worst_bias:.1e} abs (bound {drift:.1e}); clipped in {clipped}/{steps} steps"
    );
    if run == "adam" {
        check_state(&f, &r);
    }
}

/// moodgrad's exported Adam state against PyTorch's, converted by tools/optim_state.py: the same
/// entries (none for the frozen parameter), the same step counts, the moments to 1e-11 of scale
/// (noise-fed moments of the BN-fed biases: |m| ≤ max|g|, v ≤ max|g|²), and the groups' rates
/// after the last scheduler step.
fn check_state(f: &io::TensorFile, r: &Run) {
    let want = strip(f, "adam.state.", false);
    let keys: Vec<_> = r.state.tensors.keys().collect();
    assert_eq!(keys, want.tensors.keys().collect::<Vec<_>>(), "exported state entries");
    let g = tgrad_max(f).max(max_abs(&r.bn_fed_grad));
    let biases: Vec<&str> = f.metadata["bn_fed_conv_biases"].split(',').collect();
    let mut worst: f64 = 0.0;
    for (k, t) in &r.state.tensors {
        let (ours, theirs) = (t.to_f64(), want.tensors[k].to_f64());
        if k.ends_with(".step") {
            assert_eq!(ours, theirs, "{k}");
            assert_eq!(t.dtype_name(), "I64");
            continue;
        }
        let d = max_diff(&ours, &theirs);
        if biases.iter().any(|b| k.starts_with(&format!("{b}."))) {
            let bound = if k.ends_with("exp_avg_sq") { 4.0 * g * g } else { 2.0 * g };
            assert!(d <= bound, "{k}: {d:.1e} > {bound:.1e}");
            continue;
        }
        let e = d / max_abs(&theirs).max(f64::MIN_POSITIVE);
        assert!(e <= 1e-11, "{k} off by {e:.1e} of scale");
        worst = worst.max(e);
    }
    let saved: serde_json::Value = serde_json::from_str(&r.state.metadata["groups"]).unwrap();
    let theirs = json(f, "state_groups_adam");
    for (a, b) in saved.as_array().unwrap().iter().zip(theirs.as_array().unwrap()) {
        for k in ["name", "prefixes", "lr", "initial_lr", "weight_decay"] {
            assert_eq!(a[k], b[k], "group {} {k}", a["name"]);
        }
    }
    eprintln!("adam: exported moments ≤ {worst:.1e} of scale; entries, steps and group rates equal");
}

fn tgrad_max(f: &io::TensorFile) -> f64 {
    max_abs(&vals(f, "adam.bn_fed_grad_max"))
}

#[test]
fn adam_three_groups_frozen_steplr_clip_match_pytorch_f64() {
    check("adam", false);
}

#[test]
fn adamw_three_groups_frozen_steplr_clip_match_pytorch_f64() {
    check("adamw", true);
}

/// Per-step learning rates of StepLR, CosineAnnealingLR and transformers'
/// get_linear_schedule_with_warmup (a LambdaLR), stepped per epoch or per step, over two groups
/// with different base rates. Halfway through every case the scheduler is saved (to_json) and
/// restored into a fresh optimiser and scheduler, as a resumed run would be.
#[test]
fn schedules_match_torch_lr_scheduler() {
    let (_, f) = fixture("schedules.safetensors");
    let cases = json(&f, "cases");
    let (mut exact, mut total, mut worst) = (0, 0, 0.0f64);
    for (name, c) in cases.as_object().unwrap() {
        let a = &c["args"];
        let u = |k: &str| a[k].as_u64().unwrap() as usize;
        let schedule = match c["kind"].as_str().unwrap() {
            "step" => Schedule::Step { step_size: u("step_size"), gamma: a["gamma"].as_f64().unwrap() },
            "cosine" => Schedule::Cosine { t_max: u("t_max"), eta_min: a["eta_min"].as_f64().unwrap() },
            "warmup-linear" => Schedule::WarmupLinear { warmup: u("warmup"), total: u("total") },
            k => panic!("unknown kind {k}"),
        };
        let interval = if c["interval"] == "epoch" { Interval::Epoch } else { Interval::Step };
        let base: Vec<f64> = c["base_lrs"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        let fresh = || -> Adam<Be> {
            let g = ParamGroup { name: "a".into(), prefixes: vec!["a.".into()], lr: base[0], weight_decay: 0.0 };
            Adam::with_groups(AdamConfig { lr: base[1], ..Default::default() }, vec![g])
        };
        let mut opt = fresh();
        let mut sched = LrScheduler::new(schedule, interval, &mut opt).unwrap();
        let (epochs, batches) = (c["epochs"].as_u64().unwrap() as usize, c["batches"].as_u64().unwrap() as usize);
        let want = vals(&f, name);
        assert_eq!(want.len(), epochs * batches * 2, "{name}");
        let mut got = Vec::new();
        let resume_at = epochs * batches / 2;
        for e in 0..epochs {
            for b in 0..batches {
                if e * batches + b == resume_at {
                    // Round trip through the checkpoint's JSON into a new optimiser + scheduler.
                    let saved = serde_json::to_string(&sched.to_json(&opt)).unwrap();
                    let state = LrScheduler::state_from_json(&serde_json::from_str(&saved).unwrap()).unwrap();
                    opt = fresh();
                    sched = LrScheduler::new(schedule, interval, &mut opt).unwrap();
                    sched.restore(&state, &mut opt).unwrap();
                }
                got.extend([opt.lr(0), opt.lr(1)]);
                if interval == Interval::Step {
                    sched.step(&mut opt);
                }
            }
            if interval == Interval::Epoch {
                sched.step(&mut opt);
            }
        }
        // Same formulas in the same order as PyTorch's; only `cos` may come from another libm
        // (≤ 1 ulp per call), and the cosine recursion carries that over ≤ 45 steps: ≤ 1e-13 of
        // the base rate. A wrong branch, off-by-one count or per-step/per-epoch mix-up is ≥ 1e-2.
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let e = (g - w).abs() / base[i % 2];
            assert!(e <= 1e-13, "{name}: step {} group {}: lr {g} vs torch {w}", i / 2, i % 2);
            worst = worst.max(e);
            exact += (g == w) as usize;
            total += 1;
        }
    }
    eprintln!("schedules: {exact} of {total} rates bit-equal to torch's, worst {worst:.1e} of the base rate");
}
