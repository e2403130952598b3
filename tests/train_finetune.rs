//! MODEL_5's path end to end on a real Hugging Face encoder (all-MiniLM-L6-v2, which CI installs
//! and names in MOODGRAD_MINILM_DIR): `train` fine-tuning it with the model in three
//! learning-rate groups (audio, lyrics, head), fully (`finetune`) and its top layers only
//! (`top-k`); a kill and `--resume` ending bit for bit where the uninterrupted run ends; then
//! `evaluate` and `predict` on the run.

use moodgrad::io::{self, TensorFile};
use moodgrad::train::log::read_log;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[path = "minilm_common/mod.rs"]
mod minilm_common;
use minilm_common::minilm_dir as minilm;
mod run_common;
use run_common::{bin, moodgrad, s, same_bits};

fn tmp(name: &str) -> PathBuf {
    run_common::tmp_dir("finetune", name)
}

/// A small audio tower over the real encoder; 2 epochs of batch 4.
fn write_config(dir: &Path, model: &Path, mode: &str) -> PathBuf {
    let path = dir.join(format!("{mode}.toml"));
    let text = format!(
        "preset = \"model5\"\n\
         [model]\nchannels = [8, 16]\nse_reduction = 4\naudio_hidden = 16\naudio_out = 8\nhead_hidden = 16\n\
         [lyrics]\nmodel = \"{}\"\nmode = \"{mode}\"\nlayers = 2\nlr = 1e-4\nmax_len = 32\n\
         [train]\nepochs = 2\nbatch_size = 4\npatience = 2\n\
         [data]\nsplit = \"random\"\n",
        s(model)
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn train_args<'a>(data: &'a Path, config: &'a Path, out: &'a Path) -> Vec<&'a str> {
    vec!["train", "--data", s(data), "--config", s(config), "--out", s(out), "--device", "cpu"]
}

/// Which of the encoder's tensors moved from the pretrained weights: (name, moved).
fn encoder_moves(run: &Path, model: &Path) -> Vec<(String, bool)> {
    let best = io::read(&run.join("best.safetensors")).unwrap();
    let pretrained: TensorFile = io::read(&model.join("model.safetensors")).unwrap();
    let mut out = Vec::new();
    for (k, t) in &best.tensors {
        let Some(name) = k.strip_prefix("lyrics_tower.") else { continue };
        let Some(p) = pretrained.tensors.get(name).or_else(|| pretrained.tensors.get(&format!("bert.{name}"))) else {
            continue;
        };
        out.push((name.to_string(), t.to_f64() != p.to_f64()));
    }
    assert!(out.len() > 50, "only {} encoder tensors matched the pretrained file", out.len());
    out
}

fn song_files(data: &Path, id: &str) -> (PathBuf, PathBuf) {
    let lyric_id = id.replace('A', "L");
    for q in ["Q1", "Q2", "Q3", "Q4"] {
        let audio = data.join("audio").join(q).join(format!("{id}.wav"));
        if audio.is_file() {
            return (audio, data.join("lyrics").join(q).join(format!("{lyric_id}.txt")));
        }
    }
    panic!("no audio for {id}");
}

#[test]
fn minilm_fine_tunes_end_to_end_in_three_groups_with_resume_evaluate_and_predict() {
    let Some(model) = minilm() else { return };
    let root = tmp("full");
    let data = root.join("data");
    let (ok, text) = moodgrad(&["synth", "--out", s(&data), "--songs", "16", "--seed", "11"]);
    assert!(ok, "{text}");
    let config = write_config(&root, &model, "finetune");
    let a = root.join("run-a");
    let (ok, text) = moodgrad(&train_args(&data, &config, &a));
    assert!(ok, "{text}");
    let log = read_log(&a.join("log.jsonl")).unwrap();
    let groups: Vec<(String, f64)> = log[0].lr.iter().map(|g| (g.group.clone(), g.lr)).collect();
    assert_eq!(
        groups,
        [("audio".to_string(), 1e-3), ("lyrics".to_string(), 1e-4), ("head".to_string(), 1e-3)],
        "three learning-rate groups"
    );
    let moves = encoder_moves(&a, &model);
    for layer in 0..6 {
        let tag = format!("encoder.layer.{layer}.");
        assert!(moves.iter().any(|(n, m)| n.starts_with(&tag) && *m), "layer {layer} did not train");
    }
    assert!(moves.iter().any(|(n, m)| n.starts_with("embeddings.") && *m), "the embeddings did not train");

    // Killed in epoch 2, resumed: the same weights as the uninterrupted run, bit for bit.
    let c = root.join("run-c");
    let mut child = bin()
        .args(train_args(&data, &config, &c))
        .env("MOODGRAD_INJECT_FAULT", "stall_in_epoch_2")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !(c.join("log.jsonl").is_file() && c.join("checkpoint").is_dir()) {
        assert!(start.elapsed() < Duration::from_secs(600), "epoch 1 did not finish in 10 minutes");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut resume = train_args(&data, &config, &c);
    resume.push("--resume");
    let (ok, text) = moodgrad(&resume);
    assert!(ok && text.contains("resumed after epoch 1"), "{text}");
    same_bits(&a.join("best.safetensors"), &c.join("best.safetensors"));

    let (ok, text) = moodgrad(&["evaluate", s(&c), "--split", "test", "--json", "--device", "cpu"]);
    assert!(ok, "{text}");
    let m: serde_json::Value = serde_json::from_str(text.lines().find(|l| l.starts_with('{')).unwrap()).unwrap();
    assert!(m["valence"]["mae"].as_f64().unwrap().is_finite(), "{m}");
    let (audio, lyric) = song_files(&data, "A001");
    let (ok, text) =
        moodgrad(&["predict", "--run", s(&c), "--json", "--device", "cpu", s(&audio), "--lyrics", s(&lyric)]);
    assert!(ok, "{text}");
    let p: serde_json::Value = serde_json::from_str(text.lines().find(|l| l.starts_with('{')).unwrap()).unwrap();
    assert!(p["valence"].as_f64().unwrap().is_finite() && p["song"] == "A001", "{p}");
}

/// `top-k` with layers = 2: the top two of MiniLM's six layers (and the pooler) train, everything
/// below stays exactly the pretrained weights.
#[test]
fn minilm_top_k_trains_only_its_top_layers() {
    let Some(model) = minilm() else { return };
    let root = tmp("topk");
    let data = root.join("data");
    let (ok, text) = moodgrad(&["synth", "--out", s(&data), "--songs", "16", "--seed", "12"]);
    assert!(ok, "{text}");
    let config = write_config(&root, &model, "top-k");
    let run = root.join("run");
    let (ok, text) = moodgrad(&train_args(&data, &config, &run));
    assert!(ok, "{text}");
    let log = read_log(&run.join("log.jsonl")).unwrap();
    let names: Vec<&str> = log[0].lr.iter().map(|g| g.group.as_str()).collect();
    assert_eq!(names, ["audio", "lyrics", "head"]);
    for (name, moved) in encoder_moves(&run, &model) {
        let top = name.starts_with("encoder.layer.4.") || name.starts_with("encoder.layer.5.");
        if top {
            assert!(moved || name.ends_with("bias"), "{name} is in the top two layers but did not train");
        } else if !name.starts_with("pooler.") {
            assert!(!moved, "{name} is below the top two layers but changed");
        }
    }
    let (ok, text) = moodgrad(&["evaluate", s(&run), "--split", "validate", "--json", "--device", "cpu"]);
    assert!(ok, "{text}");
}
