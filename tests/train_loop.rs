//! `moodgrad train` — the loop, the schedule, the clip, validation, best-epoch selection — against
//! the seed study's PyTorch loop (tools/make_train_loop_golden.py → tests/fixtures/train/
//! loop_golden.safetensors): the same 12 songs, split and lyric vectors, the same
//! PyTorch-initialised weights (given by `--init-weights`), dropout 0, Adam 1e-2, StepLR(1, 0.5),
//! clip 1.0, 3 epochs, the training songs in a fixed order (`shuffle = false`), once as one
//! full-batch step per epoch and once as mini-batches of 3 (steps of 3, 3 and 2 songs).
//!
//! Also here: `best.safetensors` holds the best epoch's weights when that epoch is not the last
//! (before and after a kill and `--resume`), and `--init-weights` refusing a misfit without
//! touching the run folder.

use moodgrad::audio::PreprocessParams;
use moodgrad::backend::cpu::Cpu;
use moodgrad::data::cache::{self, Entry, Manifest, MasterRow};
use moodgrad::io::{self, HostData, TensorFile};
use moodgrad::train::config::Config;
use moodgrad::train::init_weights::InitWeights;
use moodgrad::train::log::read_log;
use moodgrad::train::run::{RunStart, train_run};
use std::path::{Path, PathBuf};

mod run_common;
use run_common::{bin, moodgrad, s, same_bits};

fn tmp(name: &str) -> PathBuf {
    run_common::tmp_dir("loop", name)
}

const FIXTURE: &str = "tests/fixtures/train/loop_golden.safetensors";
const EPOCHS: usize = 3;

fn fixture() -> TensorFile {
    io::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE)).expect("the loop fixture")
}

fn vals(f: &TensorFile, k: &str) -> Vec<f64> {
    f.tensors.get(k).unwrap_or_else(|| panic!("fixture lacks {k}")).to_f64()
}

/// The fixture's songs as a MERGE-like folder: its split files, and in `moodgrad-cache/fixed/`
/// the cache `moodgrad preprocess` would write (spectrograms, manifest, master list); the lyric
/// vectors as `moodgrad encode` writes them; the initial weights under PyTorch's names.
struct LoopData {
    cache: PathBuf,
    vectors: PathBuf,
    init: PathBuf,
}

fn write_data(f: &TensorFile, root: &Path) -> LoopData {
    let songs: serde_json::Value = serde_json::from_str(&f.metadata["songs"]).unwrap();
    let songs = songs.as_array().unwrap();
    let cache = root.join("moodgrad-cache").join("fixed");
    std::fs::create_dir_all(&cache).unwrap();
    // Only the split files are read from the MERGE folder; the rest of its layout need only exist.
    for kind in ["audio", "lyrics"] {
        for q in ["Q1", "Q2", "Q3", "Q4"] {
            std::fs::create_dir_all(root.join(kind).join(q)).unwrap();
        }
    }
    std::fs::write(root.join("merge_bimodal_complete_metadata.csv"), "Audio_Song\n").unwrap();
    std::fs::write(root.join("merge_bimodal_complete_av_values.csv"), "Audio_Song\n").unwrap();
    let split_dir = root.join("tvt_dataframes").join("tvt_70_15_15");
    std::fs::create_dir_all(&split_dir).unwrap();
    let target = vals(f, "target");
    let params = cache::params_json(&PreprocessParams::default());
    let manifest = Manifest::load(&cache).unwrap();
    let (mut rows, mut vectors) = (Vec::new(), TensorFile::default());
    let mut splits: [(&str, String); 3] =
        [("train", "Song\n".into()), ("validate", "Song\n".into()), ("test", "Song\n".into())];
    for (i, song) in songs.iter().enumerate() {
        let id = song["id"].as_str().unwrap();
        let spec = &f.tensors[&format!("spec.{id}")];
        let HostData::F32(data) = &spec.data else { panic!("spec.{id} is not F32") };
        let (n_mels, frames) = (spec.shape[0], spec.shape[1]);
        let output = cache::write_npy(&cache, id, n_mels, frames, data).unwrap();
        manifest
            .append(&Entry {
                song_id: id.into(),
                source: format!("{id}.mp3"),
                size: 0,
                mtime_ns: 0,
                duration_s: 30.0,
                source_frames: frames,
                frames,
                output: output.clone(),
                format: "npy".into(),
                params: params.clone(),
            })
            .unwrap();
        rows.push(MasterRow {
            song_id: id.into(),
            spectrogram_path: s(&cache.join(&output)).into(),
            lyrics_path: String::new(),
            valence: target[2 * i],
            arousal: target[2 * i + 1],
            quadrant: song["quadrant"].as_str().unwrap().into(),
        });
        vectors.tensors.insert(id.into(), f.tensors[&format!("lyrics.{id}")].clone());
        let split = song["split"].as_str().unwrap();
        let part = splits.iter_mut().find(|(name, _)| *name == split).expect("train, validate or test");
        part.1 += &format!("{id}\n");
    }
    for (name, text) in &splits {
        std::fs::write(split_dir.join(format!("tvt_70_15_15_{name}_bimodal_complete.csv")), text).unwrap();
    }
    std::fs::write(cache.join(cache::MASTER_LIST), cache::master_list_bytes(&rows).unwrap()).unwrap();
    let vectors_path = root.join("vectors.safetensors");
    io::write(&vectors_path, &vectors).unwrap();
    let mut init = TensorFile::default();
    for (k, t) in &f.tensors {
        if let Some(name) = k.strip_prefix("init.") {
            init.tensors.insert(name.into(), t.clone());
        }
    }
    let init_path = root.join("init.safetensors");
    io::write(&init_path, &init).unwrap();
    LoopData { cache, vectors: vectors_path, init: init_path }
}

/// The fixture's network and loop as a config (TOML text).
fn config_text(f: &TensorFile, data: &LoopData, batch: usize, lr: f64, epochs: usize, gamma: f64) -> String {
    let m: serde_json::Value = serde_json::from_str(&f.metadata["model"]).unwrap();
    let channels: Vec<u64> = m["channels"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).collect();
    format!(
        "preset = \"model3\"\n\
         [model]\nchannels = {channels:?}\nse_reduction = 16\naudio_hidden = {}\naudio_out = {}\nhead_hidden = {}\n\
         dropout = 0.0\n\
         [lyrics]\nmode = \"frozen\"\nvectors = \"{}\"\n\
         [train]\nepochs = {epochs}\nbatch_size = {batch}\nlr = {lr:?}\nclip = 1.0\npatience = {epochs}\n\
         scheduler = \"step\"\nstep_size = 1\ngamma = {gamma:?}\nshuffle = false\n\
         [data]\nsplit = \"tvt_70_15_15\"\n",
        m["audio_hidden"],
        m["audio_out"],
        m["head_hidden"],
        s(&data.vectors)
    )
}

fn fixture_loop(f: &TensorFile) -> (f64, [usize; 2]) {
    let l: serde_json::Value = serde_json::from_str(&f.metadata["loop"]).unwrap();
    let lr = l["lr"].as_f64().unwrap();
    (lr, [l["batch"]["full"].as_u64().unwrap() as usize, l["batch"]["mini"].as_u64().unwrap() as usize])
}

/// (train losses, validation losses, best epoch) of a run's log.
fn logged(run: &Path) -> (Vec<f64>, Vec<f64>, usize) {
    let recs = read_log(&run.join("log.jsonl")).unwrap();
    let best = recs.iter().filter(|r| r.best).map(|r| r.epoch).next_back().expect("a best epoch");
    (recs.iter().map(|r| r.train.loss).collect(), recs.iter().map(|r| r.val.loss).collect(), best)
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// Largest |a − b| / scale.
fn rel_err(a: &[f64], b: &[f64], scale: f64) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / scale.max(1e-30)).fold(0.0, f64::max)
}

/// The run's `best.safetensors` against the fixture's `{prefix}best.*`, each float tensor within
/// `tol(name)` of its largest entry; counters exactly. Returns the worst relative error.
fn check_best(run: &Path, f: &TensorFile, prefix: &str, tol: &dyn Fn(&str) -> f64, what: &str) -> f64 {
    let ours = io::read(&run.join("best.safetensors")).unwrap();
    let mut worst: f64 = 0.0;
    let mut n = 0;
    for (k, t) in &f.tensors {
        let Some(name) = k.strip_prefix(prefix) else { continue };
        let o = ours.tensors.get(name).unwrap_or_else(|| panic!("{what}: best.safetensors lacks {name}"));
        assert_eq!(o.shape, t.shape, "{what}: {name}");
        if let (HostData::I64(a), HostData::I64(b)) = (&o.data, &t.data) {
            assert_eq!(a, b, "{what}: {name}");
            continue;
        }
        let want = t.to_f64();
        let e = rel_err(&o.to_f64(), &want, max_abs(&want));
        assert!(e <= tol(name), "{what}: best.{name} off by {e:.2e} of its scale (allowed {:.2e})", tol(name));
        worst = worst.max(e);
        n += 1;
    }
    assert!(n > 10, "{what}: only {n} tensors compared");
    worst
}

/// In f64 both sides round only at ~1e-16, so the loop's every decision — batching, the clip's
/// factor, the schedule, the validation loss's definition, the best epoch — must agree to many
/// digits; any semantic difference would show at O(1e-3) or more (one epoch's learning-rate
/// step moves the losses by ~1e-2). The bounds: losses 1e-9 relative, weights 1e-8 of each
/// tensor's scale. Adam's sign sensitivity does not arise: a conv bias feeding BatchNorm has a
/// true gradient of 0 and an f64 rounding residue of ~1e-17, far below Adam's eps (1e-8), so its
/// update is ~lr·1e-9 on either side instead of ±lr.
#[test]
fn train_in_f64_matches_the_pytorch_loop_full_batch_and_mini_batches() {
    let f = fixture();
    let (lr, batches) = fixture_loop(&f);
    let root = tmp("f64");
    let data = write_data(&f, &root);
    for (case, batch) in [("full", batches[0]), ("mini", batches[1])] {
        let cfg = Config::parse(&config_text(&f, &data, batch, lr, EPOCHS, 0.5), Path::new("loop.toml")).unwrap();
        let out = root.join(format!("run-{case}"));
        let start = RunStart {
            resume: false,
            init: Some(InitWeights { path: data.init.clone(), prefix_map: vec![], partial: false }),
        };
        train_run(Cpu::<f64>::new(), cfg, &data.cache, &out, &start, &mut |_| {}).unwrap();
        let (train, val, best) = logged(&out);
        let p = format!("{case}.f64.");
        let (t_train, t_val) = (vals(&f, &format!("{p}train_loss")), vals(&f, &format!("{p}val_loss")));
        let t_best = vals(&f, &format!("{p}best_epoch"))[0] as usize;
        eprintln!("{case} f64: train {train:?} (torch {t_train:?}), val {val:?} (torch {t_val:?}), best {best}");
        for e in 0..EPOCHS {
            assert!((train[e] - t_train[e]).abs() <= 1e-9 * t_train[e].abs(), "{case}: epoch {} train loss", e + 1);
            assert!((val[e] - t_val[e]).abs() <= 1e-9 * t_val[e].abs(), "{case}: epoch {} validation loss", e + 1);
        }
        assert_eq!(best, t_best, "{case}: best epoch");
        let w = check_best(&out, &f, &format!("{p}best."), &|_| 1e-8, &format!("{case} f64"));
        eprintln!("{case} f64: best weights within {w:.1e} of scale");
    }
}

/// The binary itself, as users run it (f32, `--device cpu`), against PyTorch's f32 loop. Bounds
/// from the fixture's own conditioning: PyTorch f32 lies some distance from the exact (f64) run;
/// a second correct f32 implementation lies about as far in an independent direction, so the two
/// can differ by twice it; three times it is allowed (floor: 1e-6 for the losses, 1e-5 of scale
/// for the weights, a few f32 ulps accumulated over 3 epochs). A conv bias feeding BatchNorm is
/// the extreme case: its f32 gradient is rounding noise, so Adam moves it by ±lr per step on
/// either side, and PyTorch's own f32 and f64 runs differ there by ~lr; its bound comes out
/// accordingly wide, and the validation loss, which sees those biases through the running means,
/// carries their share in its own bound.
#[test]
fn the_train_command_matches_the_pytorch_loop_in_f32() {
    let f = fixture();
    let (lr, batches) = fixture_loop(&f);
    let root = tmp("f32");
    let data = write_data(&f, &root);
    for (case, batch) in [("full", batches[0]), ("mini", batches[1])] {
        let config = root.join(format!("{case}.toml"));
        std::fs::write(&config, config_text(&f, &data, batch, lr, EPOCHS, 0.5)).unwrap();
        let out = root.join(format!("run-{case}"));
        let (ok, text) = moodgrad(&[
            "train",
            "--data",
            s(&data.cache),
            "--config",
            s(&config),
            "--out",
            s(&out),
            "--init-weights",
            s(&data.init),
            "--device",
            "cpu",
        ]);
        assert!(ok, "{text}");
        let info: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
        assert_eq!(info["init_weights"]["path"].as_str().unwrap(), s(&std::fs::canonicalize(&data.init).unwrap()));
        assert!(info["init_weights"]["missing"].as_array().unwrap().is_empty(), "{info}");
        let (train, val, best) = logged(&out);
        let (p32, p64) = (format!("{case}.f32."), format!("{case}.f64."));
        let cond = |k: &str| {
            let (a, b) = (vals(&f, &format!("{p32}{k}")), vals(&f, &format!("{p64}{k}")));
            rel_err(&a, &b, max_abs(&b))
        };
        let (tol_train, tol_val) = ((3.0 * cond("train_loss")).max(1e-6), (3.0 * cond("val_loss")).max(1e-6));
        let (t_train, t_val) = (vals(&f, &format!("{p32}train_loss")), vals(&f, &format!("{p32}val_loss")));
        let (e_train, e_val) = (rel_err(&train, &t_train, max_abs(&t_train)), rel_err(&val, &t_val, max_abs(&t_val)));
        eprintln!(
            "{case} f32: train {train:?} (torch {t_train:?}) err {e_train:.1e} of {tol_train:.1e}; val {val:?} (torch \
             {t_val:?}) err {e_val:.1e} of {tol_val:.1e}; best {best}"
        );
        assert!(e_train <= tol_train, "{case}: train losses off by {e_train:.2e} (allowed {tol_train:.2e})");
        assert!(e_val <= tol_val, "{case}: validation losses off by {e_val:.2e} (allowed {tol_val:.2e})");
        assert_eq!(best, vals(&f, &format!("{p32}best_epoch"))[0] as usize, "{case}: best epoch");
        let tol = |name: &str| {
            let (a, b) = (vals(&f, &format!("{p32}best.{name}")), vals(&f, &format!("{p64}best.{name}")));
            (3.0 * rel_err(&a, &b, max_abs(&b))).max(1e-5)
        };
        let w = check_best(&out, &f, &format!("{p32}best."), &tol, &format!("{case} f32"));
        eprintln!("{case} f32: best weights within {w:.1e} of scale");
    }
}

/// Runs `moodgrad train` on the fixture's data with `config`, `--init-weights` from the fixture.
fn train_cmd<'a>(data: &'a LoopData, config: &'a Path, out: &'a Path) -> Vec<&'a str> {
    vec![
        "train",
        "--data",
        s(&data.cache),
        "--config",
        s(config),
        "--out",
        s(out),
        "--init-weights",
        s(&data.init),
        "--device",
        "cpu",
    ]
}

/// `moodgrad evaluate RUN --split validate --json`'s loss.
fn evaluated_val_loss(run: &Path) -> f64 {
    let (ok, text) = moodgrad(&["evaluate", s(run), "--split", "validate", "--json", "--device", "cpu"]);
    assert!(ok, "{text}");
    let line = text.lines().find(|l| l.starts_with('{')).expect("a JSON line");
    serde_json::from_str::<serde_json::Value>(line).unwrap()["loss"].as_f64().expect("a loss")
}

/// The fixture's mini-batch loop peaks at epoch 1 of 3 (PyTorch's too: epoch 2 overshoots), so
/// the run must end with epoch 1's weights. Evaluating
/// `best.safetensors` on the validation split runs the same computation as the loop's validation
/// pass did after epoch 1 on those same weights, so the loss is reproduced bit for bit — any
/// other epoch's weights (or a shallow copy that kept training) would give another number. Then
/// the same after a kill in epoch 3, when the best weights can only come back from the file.
#[test]
fn best_safetensors_holds_the_best_epoch_when_it_is_not_the_last_even_after_a_kill() {
    let f = fixture();
    let (lr, batches) = fixture_loop(&f);
    let root = tmp("best");
    let data = write_data(&f, &root);
    let config = root.join("mini.toml");
    std::fs::write(&config, config_text(&f, &data, batches[1], lr, EPOCHS, 0.5)).unwrap();
    let a = root.join("run-a");
    let (ok, text) = moodgrad(&train_cmd(&data, &config, &a));
    assert!(ok, "{text}");
    let (_, val, best) = logged(&a);
    assert!(best < val.len(), "precondition: the best epoch ({best}) must come before the last ({val:?})");
    assert!(val[best - 1] < val.iter().skip(best).copied().fold(f64::INFINITY, f64::min));
    assert_eq!(evaluated_val_loss(&a), val[best - 1], "best.safetensors is not epoch {best}'s weights");

    let c = root.join("run-c");
    let mut child = bin()
        .args(train_cmd(&data, &config, &c))
        .env("MOODGRAD_INJECT_FAULT", "stall_in_epoch_3")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let log = c.join("log.jsonl");
    let start = std::time::Instant::now();
    while std::fs::read_to_string(&log).unwrap_or_default().lines().count() < 2 {
        assert!(start.elapsed() < std::time::Duration::from_secs(300), "epoch 2 did not finish in 5 minutes");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Epoch 2's checkpoint is renamed into place after its log line: wait for it to say epoch 2.
    let ck_epoch = || -> Option<u64> {
        let ck = moodgrad::train::checkpoint::load(&c.join("checkpoint")).ok()?;
        ck.user["epochs_done"].as_u64()
    };
    while ck_epoch() != Some(2) {
        assert!(start.elapsed() < std::time::Duration::from_secs(300), "no epoch-2 checkpoint in 5 minutes");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut resume = train_cmd(&data, &config, &c);
    resume.retain(|a| *a != "--init-weights" && *a != s(&data.init));
    resume.push("--resume");
    let (ok, text) = moodgrad(&resume);
    assert!(ok, "{text}");
    assert!(text.contains("resumed after epoch 2"), "{text}");
    assert_eq!(logged(&c), logged(&a));
    same_bits(&a.join("best.safetensors"), &c.join("best.safetensors"));
    assert_eq!(evaluated_val_loss(&c), val[best - 1]);
    // The resumed run still records where its weights started.
    let info: serde_json::Value = serde_json::from_slice(&std::fs::read(c.join("run.json")).unwrap()).unwrap();
    assert!(info["init_weights"]["sha256"].as_str().is_some_and(|h| h.len() == 64), "{info}");
}

/// A misfit is refused naming the tensor and both shapes (or the missing tensor), with no run
/// folder left behind; `--init-prefix` maps a wrapper's names; `--init-partial` loads what fits
/// and records what did not.
#[test]
fn init_weights_refuses_a_misfit_without_touching_the_run_folder() {
    let f = fixture();
    let (lr, batches) = fixture_loop(&f);
    let root = tmp("init");
    let data = write_data(&f, &root);
    let config = root.join("c.toml");
    std::fs::write(&config, config_text(&f, &data, batches[0], lr, 1, 0.5)).unwrap();
    let init = io::read(&data.init).unwrap();
    let variant = |name: &str, edit: &dyn Fn(&mut TensorFile)| -> LoopData {
        let mut t = init.clone();
        edit(&mut t);
        let path = root.join(format!("{name}.safetensors"));
        io::write(&path, &t).unwrap();
        LoopData { cache: data.cache.clone(), vectors: data.vectors.clone(), init: path }
    };
    let conv = "audio_tower.features.4.weight";

    let reshaped = variant("reshaped", &|t| {
        let w = t.tensors.get_mut(conv).unwrap();
        w.shape = vec![w.shape[0] * w.shape[1], w.shape[2], w.shape[3]];
    });
    let out = root.join("run-reshaped");
    let (ok, text) = moodgrad(&train_cmd(&reshaped, &config, &out));
    assert!(!ok, "{text}");
    let shape = &init.tensors[conv].shape;
    let want = format!("{}x{}x{}x{}", shape[0], shape[1], shape[2], shape[3]);
    assert!(text.contains(conv) && text.contains(&want), "names the tensor and the model's shape: {text}");
    assert!(!out.exists(), "a refused run left {} behind", out.display());

    let missing = variant("missing", &|t| {
        t.tensors.remove(conv);
    });
    let out = root.join("run-missing");
    let (ok, text) = moodgrad(&train_cmd(&missing, &config, &out));
    assert!(!ok && text.contains(&format!("missing tensor `{conv}`")), "{text}");
    assert!(!out.exists());

    // An existing empty folder stays empty.
    std::fs::create_dir_all(&out).unwrap();
    let (ok, _) = moodgrad(&train_cmd(&missing, &config, &out));
    assert!(!ok);
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "the refused run wrote into {}", out.display());

    let mut partial = train_cmd(&missing, &config, &out);
    partial.push("--init-partial");
    let (ok, text) = moodgrad(&partial);
    assert!(ok, "{text}");
    assert!(text.contains("missing from the file") && text.contains(conv), "{text}");
    let info: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(info["init_weights"]["missing"], serde_json::json!([conv]), "{info}");

    let wrapped = variant("wrapped", &|t| {
        t.tensors = std::mem::take(&mut t.tensors).into_iter().map(|(k, v)| (format!("model.{k}"), v)).collect();
    });
    let out = root.join("run-wrapped");
    let (ok, text) = moodgrad(&train_cmd(&wrapped, &config, &out));
    assert!(!ok && (text.contains("unexpected") || text.contains("missing")), "{text}");
    let mut mapped = train_cmd(&wrapped, &config, &out);
    mapped.extend(["--init-prefix", "model.="]);
    let (ok, text) = moodgrad(&mapped);
    assert!(ok, "{text}");
    let direct = root.join("run-direct");
    let (ok, text) = moodgrad(&train_cmd(&data, &config, &direct));
    assert!(ok, "{text}");
    same_bits(&out.join("best.safetensors"), &direct.join("best.safetensors"));
}

/// `[train] accumulate = 2` against PyTorch's accumulation loop (tools/make_accumulate_golden.py:
/// the same data, split and initial weights; batch 4 in micro-batches of 2, each forward with
/// BatchNorm on its own 2 songs and `(loss / 2).backward()`, then the clip and Adam), in f64
/// through the library (bounds as above: 1e-9 of the losses, 1e-8 of each tensor's scale) and in
/// f32 through the binary (PyTorch's own f32-vs-f64 difference × 3, floors as above).
#[test]
fn gradient_accumulation_matches_pytorchs_accumulation_loop() {
    let f = fixture();
    let acc =
        io::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/train/accumulate_golden.safetensors"))
            .expect("the accumulation fixture");
    let l: serde_json::Value = serde_json::from_str(&acc.metadata["loop"]).unwrap();
    let (batch, parts) = (l["batch"].as_u64().unwrap() as usize, l["accumulate"].as_u64().unwrap());
    let root = tmp("accumulate");
    let data = write_data(&f, &root);
    let text = config_text(&f, &data, batch, l["lr"].as_f64().unwrap(), EPOCHS, 0.5)
        .replace("shuffle = false\n", &format!("shuffle = false\naccumulate = {parts}\n"));
    let init = InitWeights { path: data.init.clone(), prefix_map: vec![], partial: false };

    let cfg = Config::parse(&text, Path::new("accumulate.toml")).unwrap();
    let out = root.join("run-f64");
    train_run(Cpu::<f64>::new(), cfg, &data.cache, &out, &RunStart { resume: false, init: Some(init) }, &mut |_| {})
        .unwrap();
    let (train, val, best) = logged(&out);
    let (t_train, t_val) = (vals(&acc, "f64.train_loss"), vals(&acc, "f64.val_loss"));
    eprintln!("f64: train {train:?} (torch {t_train:?}), val {val:?} (torch {t_val:?}), best {best}");
    for e in 0..EPOCHS {
        assert!((train[e] - t_train[e]).abs() <= 1e-9 * t_train[e].abs(), "epoch {} train loss", e + 1);
        assert!((val[e] - t_val[e]).abs() <= 1e-9 * t_val[e].abs(), "epoch {} validation loss", e + 1);
    }
    assert_eq!(best, vals(&acc, "f64.best_epoch")[0] as usize);
    check_best(&out, &acc, "f64.best.", &|_| 1e-8, "accumulate f64");

    let config = root.join("accumulate.toml");
    std::fs::write(&config, &text).unwrap();
    let out = root.join("run-f32");
    let (ok, log) = moodgrad(&train_cmd(&data, &config, &out));
    assert!(ok, "{log}");
    let (train, val, best) = logged(&out);
    let cond = |k: &str| {
        let (a, b) = (vals(&acc, &format!("f32.{k}")), vals(&acc, &format!("f64.{k}")));
        rel_err(&a, &b, max_abs(&b))
    };
    let (t_train, t_val) = (vals(&acc, "f32.train_loss"), vals(&acc, "f32.val_loss"));
    let (e_train, e_val) = (rel_err(&train, &t_train, max_abs(&t_train)), rel_err(&val, &t_val, max_abs(&t_val)));
    let (tol_train, tol_val) = ((3.0 * cond("train_loss")).max(1e-6), (3.0 * cond("val_loss")).max(1e-6));
    eprintln!("f32: train err {e_train:.1e} of {tol_train:.1e}, val err {e_val:.1e} of {tol_val:.1e}, best {best}");
    assert!(e_train <= tol_train && e_val <= tol_val, "f32 losses: {train:?} {val:?} vs {t_train:?} {t_val:?}");
    assert_eq!(best, vals(&acc, "f32.best_epoch")[0] as usize);
    let tol = |name: &str| {
        let (a, b) = (vals(&acc, &format!("f32.best.{name}")), vals(&acc, &format!("f64.best.{name}")));
        (3.0 * rel_err(&a, &b, max_abs(&b))).max(1e-5)
    };
    check_best(&out, &acc, "f32.best.", &tol, "accumulate f32");
}

/// Micro-batches keep the batch's order, differ in size by at most one (the first ones larger,
/// as make_accumulate_golden.py's `micro_batches`), and carry each song's spectrogram and target.
#[test]
fn a_batch_splits_into_ordered_micro_batches() {
    use moodgrad::train::loader::HostBatch;
    let (n_mels, frames) = (2, 3);
    let host = |n: usize| HostBatch {
        songs: (0..n).collect(),
        audio: (0..n * n_mels * frames).map(|i| i as f32).collect(),
        n_mels,
        frames,
        target: (0..2 * n).map(|i| i as f32).collect(),
    };
    for (n, parts, sizes) in [(4, 2, vec![2, 2]), (5, 2, vec![3, 2]), (7, 3, vec![3, 2, 2]), (2, 4, vec![1, 1])] {
        let micro = host(n).split(parts);
        assert_eq!(micro.iter().map(|m| m.songs.len()).collect::<Vec<_>>(), sizes, "{n} songs in {parts}");
        let songs: Vec<usize> = micro.iter().flat_map(|m| m.songs.clone()).collect();
        assert_eq!(songs, (0..n).collect::<Vec<_>>());
        for m in &micro {
            for (j, &song) in m.songs.iter().enumerate() {
                assert_eq!(m.audio[j * n_mels * frames], (song * n_mels * frames) as f32);
                assert_eq!(m.target[2 * j + 1], (2 * song + 1) as f32);
            }
        }
    }
}
