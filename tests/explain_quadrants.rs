//! `evaluate RUN --explain`: the last SE block's channel weights averaged per quadrant over a
//! split equal, quadrant by quadrant, the per-song weights of `predict --explain` on the same
//! songs' audio files averaged by hand, grouped by true and by predicted quadrant.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

// Not every helper of the shared runner is used here.
#[allow(dead_code)]
mod run_common;
use run_common::{moodgrad, s, tmp_dir};

/// Every file under `dir` with extension `ext`, by file stem.
fn files(dir: &Path, ext: &str, out: &mut HashMap<String, PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, ext, out);
        } else if p.extension().is_some_and(|x| x == ext) {
            out.insert(p.file_stem().unwrap().to_str().unwrap().to_string(), p);
        }
    }
}

/// f32 network on the CPU: the evaluation computes the gates in batches of the run's size and
/// `predict --explain` one song at a time, which may change the convolutions' summation order
/// (a few ulps of f32, ~1e-7 on a gate in (0, 1)); 1e-5 allows that a hundredfold, while a song
/// counted in the wrong quadrant or a shifted channel moves a mean by the spread of the gates
/// between songs and channels, checked below to be far larger.
const TOL: f64 = 1e-5;

#[test]
fn per_quadrant_se_weights_are_the_mean_of_the_songs_predict_explain_weights() {
    let (data, run, out) = (tmp_dir("seq", "data"), tmp_dir("seq", "run"), tmp_dir("seq", "out"));
    let (ok, text) = moodgrad(&["synth", "--out", s(&data), "--songs", "16", "--seed", "8"]);
    assert!(ok, "{text}");
    let args = ["train", "--data", s(&data), "--config", "tiny", "--out", s(&run), "--epochs", "1", "--device", "cpu"];
    let (ok, text) = moodgrad(&args);
    assert!(ok, "{text}");
    // The train split: ~11 songs, so most quadrants average several.
    let eval = ["evaluate", s(&run), "--split", "train", "--explain", "--out", s(&out), "--device", "cpu", "--json"];
    let (ok, text) = moodgrad(&eval);
    assert!(ok, "{text}");
    let agg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("se_quadrants_train.json")).unwrap()).unwrap();
    assert!(std::fs::metadata(out.join("se_quadrants_train.png")).unwrap().len() > 10_000);

    // The split's songs and true quadrants from the predictions evaluate wrote.
    let mut truth: Vec<(String, String)> = Vec::new();
    let mut r = csv::Reader::from_path(run.join("predictions_train.csv")).unwrap();
    for row in r.records() {
        let row = row.unwrap();
        truth.push((row[0].to_string(), row[5].to_string()));
    }
    assert_eq!(agg["songs"].as_u64().unwrap() as usize, truth.len());
    let (mut audio, mut lyrics) = (HashMap::new(), HashMap::new());
    files(&data.join("audio"), "wav", &mut audio);
    files(&data.join("lyrics"), "txt", &mut lyrics);
    let mut cmd: Vec<String> = ["predict", "--run", s(&run), "--json", "--device", "cpu", "--explain", "--out"]
        .iter()
        .map(|x| x.to_string())
        .collect();
    cmd.push(s(&out.join("songs")).to_string());
    cmd.extend(truth.iter().map(|(id, _)| s(&audio[id]).to_string()));
    cmd.push("--lyrics".into());
    cmd.extend(truth.iter().map(|(id, _)| s(&lyrics[&id.replace('A', "L")]).to_string()));
    let (ok, text) = moodgrad(&cmd.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{text}");
    let per_song: Vec<serde_json::Value> =
        text.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(per_song.len(), truth.len(), "{text}");
    let gates = |v: &serde_json::Value| -> Vec<f64> {
        v["se_weights"].as_array().unwrap().iter().map(|g| g.as_f64().unwrap()).collect()
    };
    let channels = agg["channels"].as_u64().unwrap() as usize;
    assert_eq!(channels, 16, "the tiny preset's last block");

    for (group, quadrant_of) in [("by_true_quadrant", 0usize), ("by_predicted_quadrant", 1)] {
        let mut groups = 0;
        for q in ["Q1", "Q2", "Q3", "Q4"] {
            let members: Vec<Vec<f64>> = per_song
                .iter()
                .zip(&truth)
                .filter(|(p, t)| if quadrant_of == 0 { t.1 == q } else { p["quadrant"] == q })
                .map(|(p, _)| gates(p))
                .collect();
            let got = &agg[group][q];
            assert_eq!(got["songs"].as_u64().unwrap() as usize, members.len(), "{group} {q}");
            if members.is_empty() {
                assert!(got["mean"].is_null());
                continue;
            }
            groups += 1;
            let mean: Vec<f64> =
                (0..channels).map(|c| members.iter().map(|g| g[c]).sum::<f64>() / members.len() as f64).collect();
            let got: Vec<f64> = got["mean"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            let err = mean.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(err < TOL, "{group} {q}: by hand {mean:?}\nevaluate {got:?}\n(max difference {err})");
            let spread = mean.iter().cloned().fold(f64::MIN, f64::max) - mean.iter().cloned().fold(f64::MAX, f64::min);
            assert!(spread > 100.0 * TOL, "{group} {q}: channels differ ({spread}), so a shift would show");
        }
        // A one-epoch model may predict every song in one quadrant; the true labels span several.
        assert!(groups >= if quadrant_of == 0 { 3 } else { 1 }, "{group}: {groups} quadrant(s) with songs");
    }
    // The songs' gates differ by far more than the tolerance, so a song in the wrong group would show.
    let (a, b) = (gates(&per_song[0]), gates(&per_song[1]));
    assert!(a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max) > 100.0 * TOL);
    let csv = std::fs::read_to_string(out.join("se_quadrants_train.csv")).unwrap();
    assert_eq!(csv.lines().count(), channels + 1, "a header and one row per channel");
}
