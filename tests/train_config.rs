//! The training config (presets, strict TOML, resolved writing, legacy counterpart), early
//! stopping, the learning-rate schedule and the epoch log.

use moodgrad::nn::AttentionKind;
use moodgrad::train::config::{
    Attention, Config, LyricsMode, Modality, PRESETS, Preprocessing, Restore, Scheduler, SplitName,
};
use moodgrad::train::early_stop::EarlyStopping;
use moodgrad::train::log::{self, EpochRecord, GroupLr, LogWriter, SplitMetrics};
use moodgrad::train::metrics::{Classification, Regression};
use moodgrad::train::schedule::schedule_for;
use std::path::Path;

const FILE: &str = "runs/exp1/config.toml";

fn parse(text: &str) -> moodgrad::Result<Config> {
    Config::parse(text, Path::new(FILE))
}

/// The error text, checked to name the file and the key.
fn error_naming(text: &str, key: &str) -> String {
    let e = parse(text).expect_err("the config should be rejected").to_string();
    assert!(e.contains(FILE), "error does not name the file: {e}");
    assert!(e.contains(&format!("`{key}`")), "error does not name `{key}`: {e}");
    e
}

#[test]
fn presets_reproduce_the_seed_with_the_guides_fixes() {
    let m3 = Config::preset("model3").unwrap();
    assert_eq!(m3.model.convs_per_block, 1);
    assert_eq!(m3.model.channels, [64, 128, 256, 512]);
    assert_eq!((m3.model.attention, m3.model.se_reduction, m3.model.dropout), (Attention::Se, 16, 0.5));
    assert_eq!((m3.model.audio_hidden, m3.model.audio_out, m3.model.head_hidden), (256, 64, 100));
    assert_eq!(
        (m3.lyrics.model.as_str(), m3.lyrics.mode, m3.lyrics.max_len),
        ("bert-base-uncased", LyricsMode::Frozen, 512)
    );
    let t = &m3.train;
    assert_eq!((t.epochs, t.batch_size, t.lr, t.clip, t.patience), (50, 16, 1e-3, 1.0, 10));
    assert_eq!((t.scheduler, t.step_size, t.gamma), (Scheduler::Step, 15, 0.5));
    assert_eq!((t.restore, t.quadrant_loss), (Restore::Best, 0.0));
    assert_eq!((m3.data.preprocessing, m3.data.split), (Preprocessing::Fixed, SplitName::Tvt70));
    let groups: Vec<(&str, f64)> = m3.lr_groups().iter().map(|g| (g.name, g.lr)).collect();
    assert_eq!(groups, [("audio", 1e-3), ("head", 1e-3)]);

    let m4 = Config::preset("model4").unwrap();
    assert_eq!(m4.model.convs_per_block, 2);
    let mut m4_as_m3 = m4.clone();
    m4_as_m3.model.convs_per_block = 1;
    m4_as_m3.preset = "model3".into();
    assert_eq!(m4_as_m3, m3, "model4 differs from model3 only in convs per block");

    let m5 = Config::preset("model5").unwrap();
    assert_eq!(
        (m5.lyrics.mode, m5.lyrics.lr, m5.train.patience, m5.model.convs_per_block),
        (LyricsMode::Finetune, 1e-5, 25, 1)
    );
    let groups: Vec<(&str, f64)> = m5.lr_groups().iter().map(|g| (g.name, g.lr)).collect();
    assert_eq!(groups, [("audio", 1e-3), ("lyrics", 1e-5), ("head", 1e-3)]);

    let tiny = Config::preset("tiny").unwrap();
    assert_eq!((tiny.lyrics.model.as_str(), tiny.train.epochs), ("builtin", 3));
    for p in PRESETS {
        Config::preset(p).unwrap().validate().unwrap();
    }
    assert!(Config::preset("model6").unwrap_err().to_string().contains("model3, model4, model5, tiny"));
}

#[test]
fn model_section_maps_onto_nn_model_config() {
    let c = Config::preset("model4").unwrap();
    let mc = c.model_config(768);
    assert_eq!(mc, moodgrad::nn::ModelConfig::preset("model4", AttentionKind::Se).unwrap());
    let legacy = c.legacy().model_config(768);
    assert_eq!(legacy, moodgrad::nn::ModelConfig::preset("model4", AttentionKind::Legacy).unwrap());
    assert_eq!(Config::preset("tiny").unwrap().model_config(32).lyrics_dim, 32);
}

#[test]
fn a_file_overrides_its_preset() {
    let c = parse(
        r#"
        preset = "model5"
        [model]
        channels = [8, 16, 32]
        modality = "audio"
        [lyrics]
        mode = "top-k"
        layers = 3
        pool = "mean"
        [train]
        lr = 1          # an integer is accepted for a float key
        scheduler = "warmup-linear"
        warmup_epochs = 5
        loss = "l1"
        quadrant_loss = 0.25
        [data]
        split = "tvt_40_30_30"
        "#,
    )
    .unwrap();
    assert_eq!(c.preset, "model5");
    assert_eq!((c.model.channels.clone(), c.model.modality), (vec![8, 16, 32], Modality::Audio));
    assert_eq!((c.lyrics.mode, c.lyrics.layers), (LyricsMode::TopK, 3));
    assert_eq!((c.train.lr, c.train.scheduler, c.train.quadrant_loss), (1.0, Scheduler::WarmupLinear, 0.25));
    assert_eq!(c.train.patience, 25, "untouched keys keep model5's values");
    assert_eq!(c.data.split, SplitName::Tvt40);
    // Audio only: the lyrics encoder has no group even though its mode trains.
    assert!(c.lr_groups().iter().all(|g| g.name != "lyrics"));
    assert_eq!(parse("").unwrap(), Config::preset("model3").unwrap(), "an empty file is model3");
}

#[test]
fn resolved_config_round_trips_for_every_preset_and_its_legacy_twin() {
    let mut custom = Config::preset("model4").unwrap();
    custom.train.lr = 3.5e-4;
    custom.train.seed = 123_456_789;
    custom.lyrics.model = "/models/my bert \"v2\"".into();
    custom.model.dropout = 0.3;
    let mut all: Vec<Config> = PRESETS.iter().map(|p| Config::preset(p).unwrap()).collect();
    all.push(custom);
    for c in all.clone() {
        all.push(c.legacy());
    }
    for c in all {
        let text = c.to_toml().unwrap();
        assert!(text.starts_with("# moodgrad resolved config"), "{text}");
        assert_eq!(parse(&text).unwrap(), c, "round trip of\n{text}");
    }
}

#[test]
fn resolved_config_writes_every_key() {
    let text = Config::preset("model3").unwrap().to_toml().unwrap();
    let v: toml::Table = text.parse().unwrap();
    let keys = |s: &str| {
        let mut k: Vec<String> = v[s].as_table().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let sorted = |a: &[&str]| {
        let mut k: Vec<String> = a.iter().map(|s| s.to_string()).collect();
        k.sort();
        k
    };
    assert_eq!(v["preset"].as_str(), Some("model3"));
    assert_eq!(
        keys("model"),
        sorted(&[
            "convs_per_block",
            "channels",
            "attention",
            "se_reduction",
            "audio_hidden",
            "audio_out",
            "head_hidden",
            "dropout",
            "modality"
        ])
    );
    assert_eq!(keys("lyrics"), sorted(&["model", "mode", "layers", "lr", "max_len", "pool", "vectors"]));
    assert_eq!(
        keys("train"),
        sorted(&[
            "epochs",
            "batch_size",
            "lr",
            "clip",
            "patience",
            "scheduler",
            "step_size",
            "gamma",
            "warmup_epochs",
            "seed",
            "loss",
            "quadrant_loss",
            "restore",
            "shuffle",
            "accumulate",
            "sync_batchnorm"
        ])
    );
    assert_eq!(keys("data"), sorted(&["preprocessing", "split"]));
    assert!(text.contains("scheduler = \"step\"") && text.contains("attention = \"se\""), "{text}");
}

#[test]
fn write_resolved_then_load() {
    let dir = std::env::temp_dir().join(format!("moodgrad-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.toml");
    let c = Config::preset("tiny").unwrap().legacy();
    c.write_resolved(&path).unwrap();
    assert_eq!(Config::load(&path).unwrap(), c);
    let e = Config::load(&dir.join("missing.toml")).unwrap_err().to_string();
    assert!(e.contains("missing.toml") && e.contains("cannot read"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn legacy_counterpart_switches_exactly_the_guides_fixes() {
    let fixed = Config::preset("model5").unwrap();
    let legacy = fixed.legacy();
    assert_eq!(legacy.data.preprocessing, Preprocessing::Legacy);
    assert_eq!(legacy.model.attention, Attention::Legacy);
    assert_eq!((legacy.train.clip, legacy.clip()), (0.0, None));
    assert_eq!(legacy.train.restore, Restore::Last);
    assert_eq!(fixed.clip(), Some(1.0));
    let mut back = legacy.clone();
    back.data.preprocessing = fixed.data.preprocessing;
    back.model.attention = fixed.model.attention;
    back.train.clip = fixed.train.clip;
    back.train.restore = fixed.train.restore;
    assert_eq!(back, fixed, "nothing else changes");
}

#[test]
fn unknown_keys_are_errors_naming_key_and_file() {
    let e = error_naming("[train]\nepoch = 3\n", "train.epoch");
    println!("{e}");
    assert!(e.contains("did you mean `epochs`?") && e.contains("batch_size"), "suggests and lists the keys: {e}");
    error_naming("[model]\nchanels = [1]\n", "model.chanels");
    error_naming("[lyrics]\npooling = \"cls\"\n", "lyrics.pooling");
    let e = error_naming("[data]\nroot = \"x\"\n", "data.root");
    assert!(!e.contains("did you mean"), "no far-fetched suggestion: {e}");
    error_naming("[optimizer]\nlr = 1\n", "optimizer");
    error_naming("presets = \"model3\"\n", "presets");
    let e = error_naming("preset = \"model9\"\n", "preset");
    assert!(e.contains("model4"), "{e}");
}

#[test]
fn wrong_types_are_errors_naming_key_and_file() {
    let e = error_naming("[train]\nepochs = \"ten\"\n", "train.epochs");
    println!("{e}");
    assert!(e.contains("integer") && e.contains("\"ten\""), "{e}");
    error_naming("[train]\nepochs = 2.5\n", "train.epochs");
    error_naming("[train]\nepochs = -3\n", "train.epochs");
    error_naming("[train]\nlr = \"fast\"\n", "train.lr");
    error_naming("[train]\nseed = true\n", "train.seed");
    error_naming("[model]\nchannels = 64\n", "model.channels");
    error_naming("[model]\nchannels = [64, \"x\"]\n", "model.channels[1]");
    error_naming("[lyrics]\nmodel = 5\n", "lyrics.model");
    error_naming("train = 5\n", "train");
    error_naming("preset = 3\n", "preset");
    let e = error_naming("[train]\nscheduler = \"plateau\"\n", "train.scheduler");
    assert!(e.contains("\"step\", \"cosine\", \"warmup-linear\""), "{e}");
    error_naming("[model]\nattention = \"cbam\"\n", "model.attention");
    error_naming("[data]\nsplit = \"tvt_80_10_10\"\n", "data.split");
    let e = parse("[train\nepochs = 1").unwrap_err().to_string();
    assert!(e.contains(FILE) && e.contains("not valid TOML"), "{e}");
}

#[test]
fn invalid_values_are_errors_naming_key_and_file() {
    println!("{}", error_naming("[train]\nepochs = 0\n", "train.epochs"));
    error_naming("[train]\nlr = 0\n", "train.lr");
    error_naming("[train]\nlr = -1e-3\n", "train.lr");
    error_naming("[train]\nlr = nan\n", "train.lr");
    error_naming("[train]\nbatch_size = 0\n", "train.batch_size");
    error_naming("[train]\nclip = -1\n", "train.clip");
    error_naming("[train]\npatience = 0\n", "train.patience");
    error_naming("[train]\ngamma = 0\n", "train.gamma");
    error_naming("[train]\nstep_size = 0\n", "train.step_size");
    error_naming("[train]\nquadrant_loss = -0.5\n", "train.quadrant_loss");
    error_naming("[train]\nscheduler = \"warmup-linear\"\nwarmup_epochs = 50\n", "train.warmup_epochs");
    error_naming("[model]\ndropout = 1.0\n", "model.dropout");
    error_naming("[model]\nchannels = []\n", "model.channels");
    error_naming("[model]\nchannels = [8, 0]\n", "model.channels");
    error_naming("[model]\nchannels = [8]\nse_reduction = 16\n", "model.se_reduction");
    error_naming("[lyrics]\nmode = \"top-k\"\nlayers = 0\n", "lyrics.layers");
    error_naming("[lyrics]\nmax_len = 1\n", "lyrics.max_len");
    error_naming("[lyrics]\nlr = 0\n", "lyrics.lr");
    parse("[train]\nclip = 0\n").expect("clip = 0 turns clipping off");
    let mut c = Config::preset("model3").unwrap();
    c.train.epochs = 0;
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("`train.epochs`") && e.contains("model3"), "{e}");
}

/// The learning rate of each interval (epoch or step) under the config's scheduler.
fn lrs(t: &moodgrad::train::config::TrainSection, steps_per_epoch: usize, n: usize) -> Vec<f64> {
    use moodgrad::optim::{Adam, AdamConfig, LrScheduler};
    let (schedule, interval) = schedule_for(t, steps_per_epoch);
    let mut opt = Adam::<moodgrad::backend::cpu::Cpu<f32>>::new(AdamConfig { lr: 1.0, ..Default::default() });
    let mut s = LrScheduler::new(schedule, interval, &mut opt).unwrap();
    (0..n)
        .map(|_| {
            let lr = opt.lr(0);
            s.step(&mut opt);
            lr
        })
        .collect()
}

#[test]
fn step_cosine_and_warmup_schedules() {
    let mut t = Config::preset("model3").unwrap().train;
    // StepLR(15, 0.5) stepped per epoch: epochs 0-14 at 1, 15-29 at 0.5, 30-44 at 0.25, 45-49 at 0.125.
    assert_eq!(schedule_for(&t, 97).1, moodgrad::optim::Interval::Epoch);
    let f = lrs(&t, 97, 50);
    assert!(f[..15].iter().all(|&x| x == 1.0) && f[15..30].iter().all(|&x| x == 0.5));
    assert!(f[30..45].iter().all(|&x| x == 0.25) && f[45..].iter().all(|&x| x == 0.125));
    t.scheduler = Scheduler::Cosine;
    let f = lrs(&t, 97, 50);
    assert_eq!(f[0], 1.0);
    // CosineAnnealingLR(T_max = 50) at epochs 10 and 25: (1 + cos(π·e/50)) / 2 (PyTorch's recursive
    // form equals the closed one to a few ulps).
    assert!((f[10] - (1.0 + (std::f64::consts::PI / 5.0).cos()) / 2.0).abs() < 1e-14);
    assert!((f[25] - 0.5).abs() < 1e-14);
    // Warm-up then linear decay, per optimiser step: 10 epochs of 2 steps, 3 warm-up epochs.
    t.scheduler = Scheduler::WarmupLinear;
    t.epochs = 10;
    t.warmup_epochs = 3;
    assert_eq!(schedule_for(&t, 2).1, moodgrad::optim::Interval::Step);
    let f = lrs(&t, 2, 20);
    for (k, g) in f.iter().enumerate() {
        let want = if k < 6 { k as f64 / 6.0 } else { (20 - k) as f64 / 14.0 };
        assert!((g - want).abs() < 1e-15, "step {k}: {f:?}");
    }
}

#[test]
fn early_stopping_counts_patience_like_the_seed() {
    let mut es = EarlyStopping::new(3, Restore::Best);
    let losses = [0.9, 0.8, 0.85, 0.8, 0.7, 0.75, 0.71, f64::NAN];
    let mut verdicts = Vec::new();
    for (i, &l) in losses.iter().enumerate() {
        let v = es.observe(i + 1, l);
        verdicts.push((v.improved, v.stop));
        if v.stop {
            break;
        }
    }
    // An equal loss (0.8 at epoch 4) is not an improvement; NaN never is.
    assert_eq!(
        verdicts,
        [
            (true, false),
            (true, false),
            (false, false),
            (false, false),
            (true, false),
            (false, false),
            (false, false),
            (false, true)
        ]
    );
    assert_eq!(es.best(), Some((5, 0.7)));
    assert_eq!(es.restored_epoch(), Some(5));
    assert!(es.keeps_snapshots());
}

#[test]
fn legacy_early_stopping_restores_the_last_epoch() {
    let mut es = EarlyStopping::new(2, Restore::Last);
    for (e, l) in [(1, 0.5), (2, 0.4), (3, 0.45), (4, 0.47)] {
        es.observe(e, l);
    }
    assert_eq!(es.best(), Some((2, 0.4)), "the true best is still reported");
    assert_eq!(es.restored_epoch(), Some(4), "the shallow copy followed the live weights");
    assert!(!es.keeps_snapshots());
}

#[test]
fn early_stopping_state_survives_a_checkpoint() {
    let mut es = EarlyStopping::new(3, Restore::Best);
    es.observe(1, 0.5);
    es.observe(2, 0.6);
    let saved = serde_json::to_string(&es).unwrap();
    let mut resumed: EarlyStopping = serde_json::from_str(&saved).unwrap();
    assert_eq!(resumed, es);
    for (e, l) in [(3, 0.55), (4, 0.52)] {
        assert_eq!(resumed.observe(e, l), es.observe(e, l));
    }
    assert!(resumed.observe(5, 0.51).stop);
    let fresh: EarlyStopping =
        serde_json::from_str(&serde_json::to_string(&EarlyStopping::new(1, Restore::Last)).unwrap()).unwrap();
    assert_eq!(fresh.best(), None);
}

fn record(epoch: usize, val_loss: f64) -> EpochRecord {
    let reg = Regression { mae: 0.1, rmse: 0.12, r2: 0.4, pearson: 0.7 };
    let split = |loss| SplitMetrics {
        loss,
        valence: reg,
        arousal: reg,
        quadrant: Classification { accuracy: 0.6, macro_f1: 0.55 },
    };
    EpochRecord {
        epoch,
        train: split(0.03),
        val: split(val_loss),
        grad_norm_mean: 0.8,
        grad_norm_max: 2.5,
        lr: vec![GroupLr { group: "audio".into(), lr: 1e-3 }, GroupLr { group: "head".into(), lr: 1e-3 }],
        samples_per_s: 85.0,
        seconds: 18.3,
        data_wait_s: 0.02,
        train_cpu_per_wall: 1.93,
        best: epoch == 1,
    }
}

#[test]
fn log_appends_one_line_per_epoch_and_reads_back() {
    let dir = std::env::temp_dir().join(format!("moodgrad-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("log.jsonl");
    std::fs::remove_file(&path).ok();
    let mut w = LogWriter::append_to(&path).unwrap();
    w.append(&record(1, 0.05)).unwrap();
    // Flushed: visible to another reader before the writer is dropped.
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
    w.append(&record(2, 0.04)).unwrap();
    drop(w);
    let mut w = LogWriter::append_to(&path).unwrap(); // a resumed run appends
    w.append(&record(3, 0.045)).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 3);
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    for k in ["epoch", "train", "val", "grad_norm_mean", "grad_norm_max", "lr", "samples_per_s", "seconds"] {
        assert!(first.get(k).is_some(), "missing {k}");
    }
    assert_eq!(first["val"]["valence"]["pearson"], 0.7);
    assert_eq!(first["lr"][0]["group"], "audio");
    assert_eq!(log::read_log(&path).unwrap(), vec![record(1, 0.05), record(2, 0.04), record(3, 0.045)]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn log_reader_ignores_a_torn_tail_and_names_bad_lines() {
    let p = Path::new("run/log.jsonl");
    let good = serde_json::to_string(&record(1, 0.05)).unwrap();
    let torn = format!("{good}\n{}", &good[..good.len() / 2]);
    assert_eq!(log::parse_log(&torn, p).unwrap(), vec![record(1, 0.05)]);
    let bad = format!("{good}\n{{\"epoch\": 2}}\n");
    let e = log::parse_log(&bad, p).unwrap_err().to_string();
    assert!(e.contains("run/log.jsonl") && e.contains("line 2"), "{e}");
    // NaN metrics are written as null and read back as NaN.
    let mut r = record(1, f64::NAN);
    r.val.arousal.pearson = f64::NAN;
    let line = serde_json::to_string(&r).unwrap();
    assert!(line.contains("null"));
    let back = log::parse_log(&format!("{line}\n"), p).unwrap();
    assert!(back[0].val.loss.is_nan() && back[0].val.arousal.pearson.is_nan());
}

fn compare_args(config: Option<&Path>) -> moodgrad::cli::compare::CompareArgs {
    moodgrad::cli::compare::CompareArgs {
        data: "unused".into(),
        out: "unused".into(),
        models: vec![],
        config: config.map(Path::to_path_buf),
        lyrics_model: None,
        epochs: None,
        seeds: 1,
        device: "cpu".into(),
        devices: vec![],
        shard: None,
        collect: false,
        precision: None,
    }
}

/// `compare --config FILE`: the file's keys apply on top of each model's preset, so MODEL_4 keeps
/// two convs per block and MODEL_5 keeps fine-tuning its encoder in its own learning-rate group;
/// a file that sets what tells the models apart is refused, naming the key.
#[test]
fn compare_config_keeps_each_models_identity() {
    let dir = std::env::temp_dir().join(format!("moodgrad-compare-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("shared.toml");
    std::fs::write(&file, "preset = \"model3\"\n[model]\nchannels = [8, 16, 32, 64]\n[train]\nepochs = 7\nlr = 2e-3\n")
        .unwrap();
    let a = compare_args(Some(&file));
    let cfg = |m: &str| moodgrad::cli::compare::model_config(&a, m).unwrap();
    for m in ["model3", "model4", "model5"] {
        let (c, preset) = (cfg(m), Config::preset(m).unwrap());
        assert_eq!(c.preset, m);
        assert_eq!((c.train.epochs, c.train.lr, c.model.channels.clone()), (7, 2e-3, vec![8, 16, 32, 64]), "{m}");
        assert_eq!(c.model.convs_per_block, preset.model.convs_per_block, "{m}");
        assert_eq!(c.lyrics.mode, preset.lyrics.mode, "{m}");
    }
    assert_eq!(cfg("model4").model.convs_per_block, 2);
    let groups: Vec<&str> = cfg("model5").lr_groups().iter().map(|g| g.name).collect();
    assert_eq!(groups, ["audio", "lyrics", "head"], "model5 fine-tunes its encoder in its own group");
    assert_eq!(cfg("model5").lr_groups()[1].lr, Config::preset("model5").unwrap().lyrics.lr);
    assert!(!cfg("model3").lr_groups().iter().any(|g| g.name == "lyrics"));
    for (key, line) in
        [("lyrics.mode", "[lyrics]\nmode = \"frozen\"\n"), ("model.convs_per_block", "[model]\nconvs_per_block = 1\n")]
    {
        std::fs::write(&file, line).unwrap();
        let e = moodgrad::cli::compare::model_config(&a, "model5").unwrap_err().to_string();
        assert!(e.contains(key) && e.contains("shared.toml"), "{e}");
    }
}
