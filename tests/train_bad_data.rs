//! Bad data given to `moodgrad train`: each case a clear error (or a reported skip) naming the song,
//! the file or the key, and the fix; never a panic, never a half-made run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn moodgrad_env(args: &[&str], env: &[(&str, &Path)]) -> (bool, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_moodgrad"));
    // A hub name missing from the cache (the presets' bert-base-uncased) must fail, never download.
    c.args(args).env("HF_HUB_OFFLINE", "1");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("run moodgrad");
    let text = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(!text.contains("panicked"), "moodgrad panicked:\n{text}");
    (o.status.success(), text)
}

fn moodgrad(args: &[&str]) -> (bool, String) {
    moodgrad_env(args, &[])
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("moodgrad-bad-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}

/// A preprocessed synthetic MERGE folder, made once; each test works on its own copy.
fn dataset(name: &str) -> PathBuf {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    let base = BASE.get_or_init(|| {
        let d = tmp("base");
        let (ok, out) = moodgrad(&["synth", "--out", s(&d), "--songs", "16", "--seed", "21"]);
        assert!(ok, "{out}");
        let (ok, out) = moodgrad(&["preprocess", "--data", s(&d), "--jobs", "2"]);
        assert!(ok, "{out}");
        d
    });
    let d = tmp(name);
    copy_dir(base, &d);
    // The copied master list names the base's files: point it at the copy's.
    let list = d.join("moodgrad-cache/fixed/master_processed_file_list.csv");
    let text = std::fs::read_to_string(&list).unwrap().replace(s(base), s(&d));
    std::fs::write(&list, text).unwrap();
    d
}

fn cache(d: &Path) -> PathBuf {
    d.join("moodgrad-cache/fixed")
}

/// The first song of the cache's master list: (id, spectrogram path, lyric path).
fn first_song(d: &Path) -> (String, PathBuf, PathBuf) {
    let text = std::fs::read_to_string(cache(d).join("master_processed_file_list.csv")).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let row: Vec<&str> = text.lines().nth(1).unwrap().split(',').collect();
    let col = |n: &str| row[header.iter().position(|h| *h == n).unwrap()].to_string();
    (col("song_id"), PathBuf::from(col("spectrogram_path")), PathBuf::from(col("lyrics_path")))
}

fn train(data: &Path, run: &Path, extra: &[&str]) -> (bool, String) {
    let mut a =
        vec!["train", "--data", s(data), "--config", "tiny", "--out", s(run), "--epochs", "1", "--device", "cpu"];
    a.extend(extra);
    moodgrad(&a)
}

#[test]
fn a_missing_cache_entry_names_the_song_and_says_to_preprocess() {
    let d = dataset("missing-entry");
    let (id, spec, _) = first_song(&d);
    std::fs::remove_file(&spec).unwrap();
    let (ok, out) = train(&cache(&d), &tmp("missing-entry-run"), &[]);
    assert!(!ok && out.contains(&id) && out.contains("moodgrad preprocess"), "{out}");
}

#[test]
fn a_nan_in_a_spectrogram_names_the_song_the_file_and_the_position() {
    let d = dataset("nan");
    let (id, spec, _) = first_song(&d);
    let (shape, mut v) = moodgrad::data::npy::read_f32(&spec).unwrap();
    v[3 * shape[1] + 7] = f32::NAN;
    std::fs::write(&spec, moodgrad::data::npy::encode_f32(&shape, &v).unwrap()).unwrap();
    let (ok, out) = train(&cache(&d), &tmp("nan-run"), &[]);
    assert!(!ok && out.contains(&id) && out.contains("NaN") && out.contains("row 3, frame 7"), "{out}");
}

#[test]
fn a_missing_lyric_names_the_song_and_the_file() {
    let d = dataset("lyric");
    let (id, _, lyric) = first_song(&d);
    std::fs::remove_file(&lyric).unwrap();
    let (ok, out) = train(&cache(&d), &tmp("lyric-run"), &[]);
    assert!(!ok && out.contains(&format!("song {id}")) && out.contains(s(&lyric)), "{out}");
}

/// An empty lyric (an instrumental song) trains like any other: encoded as [CLS] [SEP], with the
/// same warning `encode` and `preprocess --tokenizer` print, naming the song.
#[test]
fn an_empty_lyric_trains_with_a_warning_naming_the_song() {
    let d = dataset("empty-lyric");
    let (id, _, lyric) = first_song(&d);
    std::fs::write(&lyric, "").unwrap();
    let (ok, out) = train(&cache(&d), &tmp("empty-lyric-run"), &[]);
    assert!(ok, "{out}");
    let sentence = "no lyrics (the file holds no text; an instrumental song?): encoded as [CLS] [SEP] alone";
    assert!(out.contains(&format!("warning: song {id}: {}: {sentence}", lyric.display())), "{out}");
}

/// The 70/15/15 split file of `part` in a synthetic MERGE folder.
fn split_file(d: &Path, part: &str) -> PathBuf {
    let dir = d.join("tvt_dataframes/tvt_70_15_15");
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with(&format!("tvt_70_15_15_{part}_")))
        .unwrap_or_else(|| panic!("no {part} split file in {dir:?}"))
}

fn merge_split_config(d: &Path) -> PathBuf {
    let p = d.join("split.toml");
    std::fs::write(&p, "preset = \"tiny\"\n[data]\nsplit = \"tvt_70_15_15\"\n").unwrap();
    p
}

#[test]
fn an_empty_split_is_an_error_naming_it() {
    let d = dataset("empty-split");
    let f = split_file(&d, "validate");
    let header = std::fs::read_to_string(&f).unwrap().lines().next().unwrap().to_string();
    std::fs::write(&f, header + "\n").unwrap();
    let cfg = merge_split_config(&d);
    let (ok, out) =
        moodgrad(&["train", "--data", s(&d), "--config", s(&cfg), "--out", s(&tmp("empty-run")), "--device", "cpu"]);
    assert!(!ok && out.contains("validate split is empty"), "{out}");
}

#[test]
fn a_split_song_missing_from_the_metadata_is_a_reported_skip() {
    let d = dataset("unknown-song");
    let f = split_file(&d, "train");
    let mut text = std::fs::read_to_string(&f).unwrap();
    let header: Vec<String> = text.lines().next().unwrap().split(',').map(String::from).collect();
    let row: Vec<&str> = header.iter().map(|h| if h == "Song" { "A999" } else { "" }).collect();
    text.push_str(&row.join(","));
    text.push('\n');
    std::fs::write(&f, text).unwrap();
    let cfg = merge_split_config(&d);
    let run = tmp("unknown-run");
    let (ok, out) = moodgrad(&[
        "train",
        "--data",
        s(&d),
        "--config",
        s(&cfg),
        "--out",
        s(&run),
        "--epochs",
        "1",
        "--device",
        "cpu",
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("skipped 1 song") && out.contains("A999"), "{out}");
}

#[test]
fn an_unknown_config_key_names_the_key_and_the_file() {
    let d = tmp("key");
    std::fs::create_dir_all(&d).unwrap();
    let cfg = d.join("bad.toml");
    std::fs::write(&cfg, "preset = \"tiny\"\n[train]\nepoch = 3\n").unwrap();
    let run = d.join("run");
    let (ok, out) = moodgrad(&["train", "--data", s(&d), "--config", s(&cfg), "--out", s(&run), "--device", "cpu"]);
    assert!(!ok && out.contains("epoch") && out.contains("bad.toml"), "{out}");
    assert!(!run.exists(), "a refused config must not start a run");
}

#[test]
fn resume_with_another_config_is_refused_naming_the_difference() {
    let d = dataset("resume");
    let run = tmp("resume-run");
    let (ok, out) = train(&d, &run, &[]);
    assert!(ok, "{out}");
    let (ok, out) = train(&d, &run, &["--resume", "--batch", "2"]);
    assert!(!ok && out.contains("--resume with another config") && out.contains("batch_size"), "{out}");
    // Without --config, --resume continues with the run's own config.
    let (ok, out) =
        moodgrad(&["train", "--data", s(&d), "--out", s(&run), "--resume", "--epochs", "1", "--device", "cpu"]);
    assert!(ok, "{out}");
}

#[test]
fn resume_without_the_best_weights_is_refused_naming_the_file() {
    let d = dataset("resume-best");
    let run = tmp("resume-best-run");
    let (ok, out) = train(&d, &run, &[]);
    assert!(ok, "{out}");
    let best = run.join("best.safetensors");
    std::fs::remove_file(&best).unwrap();
    // Before this was refused, the resumed run ended writing its last weights as the "best".
    let (ok, out) = train(&d, &run, &["--resume"]);
    assert!(!ok && out.contains("best.safetensors") && out.contains("records epoch 1 as the best"), "{out}");
    assert!(!best.exists(), "nothing was written under the best's name");
}

#[test]
fn a_lyrics_model_that_is_not_found_stops_before_any_work() {
    let d = tmp("hub");
    let (ok, out) = moodgrad(&["synth", "--out", s(&d), "--songs", "8"]);
    assert!(ok, "{out}");
    let empty = tmp("hub-home");
    std::fs::create_dir_all(&empty).unwrap();
    let run = tmp("hub-run");
    let (ok, out) = moodgrad_env(
        &["train", "--data", s(&d), "--config", "model3", "--out", s(&run), "--device", "cpu"],
        &[("HF_HOME", &empty), ("HOME", &empty), ("XDG_CACHE_HOME", &empty)],
    );
    assert!(!ok, "{out}");
    assert!(out.contains("bert-base-uncased") && out.contains("--lyrics-model builtin"), "{out}");
    assert!(out.contains(s(&empty)), "the error must name the places looked: {out}");
    assert!(!d.join("moodgrad-cache").exists() && !run.exists(), "work started before the check");
}

#[test]
fn a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let d = dataset("nan-loss");
    let run = tmp("nan-loss-run");
    let args = ["train", "--data", s(&d), "--config", "tiny", "--out", s(&run), "--epochs", "3", "--device", "cpu"];
    let mut c = Command::new(env!("CARGO_BIN_EXE_moodgrad"));
    let o = c.args(args).env("MOODGRAD_INJECT_FAULT", "nan_loss_epoch_2").output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("epoch 2, step 1: the loss is NaN") && out.contains("last good checkpoint"), "{out}");
    assert!(out.contains("epoch 1)"), "the kept checkpoint is epoch 1's: {out}");
    assert_eq!(std::fs::read_to_string(run.join("log.jsonl")).unwrap().lines().count(), 1);
    // The kept checkpoint continues (without the fault) to the end.
    let mut resume = args.to_vec();
    resume.push("--resume");
    let (ok, out) = moodgrad(&resume);
    assert!(ok && out.contains("resumed after epoch 1"), "{out}");
    assert_eq!(std::fs::read_to_string(run.join("log.jsonl")).unwrap().lines().count(), 3);
}
