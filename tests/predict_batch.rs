//! `predict --input DIR|LIST.csv --out FILE`: batch prediction through the binary, on a tiny
//! bimodal run trained on synthetic songs. The rows equal one-by-one `predict` bit for bit; bad
//! files are skipped rows with their reason; `--resume` after a SIGKILL (and a torn last line)
//! ends with every song exactly once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

// Not every helper of the shared runner is used here.
#[allow(dead_code)]
mod run_common;
use run_common::{bin, moodgrad, s};

fn tmp(name: &str) -> PathBuf {
    run_common::tmp_dir("batch", name)
}

/// Every file under `dir` with extension `ext`, sorted.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p, ext));
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// A tiny bimodal run (built-in encoder, 1 epoch) and its synthetic songs: (data, run).
fn tiny_run() -> &'static (PathBuf, PathBuf) {
    static RUN: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    RUN.get_or_init(|| {
        let data = tmp("data");
        let (ok, out) = moodgrad(&["synth", "--out", s(&data), "--songs", "12", "--seed", "3"]);
        assert!(ok, "{out}");
        let run = tmp("run");
        let args = ["train", "--data", s(&data), "--config", "tiny", "--out", s(&run), "--epochs", "1"];
        let (ok, out) = moodgrad(&[&args[..], &["--device", "cpu"]].concat());
        assert!(ok, "{out}");
        (data, run)
    })
}

/// An input folder of the run's songs: `in/<Q>/A0xx.wav` with lyrics `lyr/A0xx.txt` (renamed
/// from synth's L0xx.txt, so stems match); `copies` extra copies of each song under new names.
fn song_folder(name: &str, copies: usize) -> (PathBuf, PathBuf, Vec<PathBuf>) {
    let (data, _) = tiny_run();
    let (input, lyrics) = (tmp(&format!("{name}-in")), tmp(&format!("{name}-lyr")));
    let mut songs = Vec::new();
    for wav in files(&data.join("audio"), "wav") {
        let q = wav.parent().unwrap().file_name().unwrap();
        let id = wav.file_stem().unwrap().to_str().unwrap().to_string();
        let lyric = files(&data.join("lyrics"), "txt")
            .into_iter()
            .find(|l| l.file_stem().unwrap().to_str().unwrap() == id.replace('A', "L"))
            .unwrap();
        std::fs::create_dir_all(input.join(q)).unwrap();
        std::fs::create_dir_all(&lyrics).unwrap();
        for k in 0..=copies {
            let stem = if k == 0 { id.clone() } else { format!("{id}_copy{k}") };
            let to = input.join(q).join(format!("{stem}.wav"));
            std::fs::copy(&wav, &to).unwrap();
            std::fs::copy(&lyric, lyrics.join(format!("{stem}.txt"))).unwrap();
            songs.push(to);
        }
    }
    (input, lyrics, songs)
}

/// The rows of a batch CSV by path: (status, valence, arousal, quadrant, message).
fn csv_rows(path: &Path) -> Vec<(String, Vec<String>)> {
    let mut r = csv::Reader::from_path(path).unwrap();
    assert_eq!(r.headers().unwrap().iter().collect::<Vec<_>>().join(","), moodgrad::train::batch_output::CSV_HEADER);
    r.records()
        .map(|row| {
            let row = row.unwrap();
            (row[0].to_string(), row.iter().skip(1).map(str::to_string).collect())
        })
        .collect()
}

fn batch(run: &Path, input: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["predict", "--run", s(run), "--input", s(input), "--device", "cpu"];
    args.extend(extra);
    moodgrad(&args)
}

/// Every song of a folder, with batches of 3, equals `predict` of that song alone (a batch of 1)
/// to the last bit: in eval mode each song's spectrogram and lyric go through the same ops with
/// no cross-song reduction (BatchNorm uses its running statistics, lyrics pad to max_len), so the
/// batch's size cannot change a song's numbers. The CSV and the JSON lines agree.
#[test]
fn batch_rows_equal_one_by_one_predict() {
    let (_, run) = tiny_run();
    let (input, lyrics, songs) = song_folder("same", 0);
    let out = tmp("same-out").join("rows.csv");
    let (ok, text) = batch(run, &input, &["--lyrics-dir", s(&lyrics), "--out", s(&out), "--batch", "3"]);
    assert!(ok, "{text}");
    assert!(text.contains("12 predicted, 0 skipped"), "{text}");
    let rows: HashMap<String, Vec<String>> = csv_rows(&out).into_iter().collect();
    assert_eq!(rows.len(), songs.len());
    let jsonl = out.with_extension("jsonl");
    let (ok, text) = batch(run, &input, &["--lyrics-dir", s(&lyrics), "--out", s(&jsonl), "--batch", "5"]);
    assert!(ok, "{text}");
    let json: Vec<serde_json::Value> =
        std::fs::read_to_string(&jsonl).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(json.len(), songs.len());
    for (song, j) in songs.iter().zip(&json) {
        let id = song.file_stem().unwrap().to_str().unwrap();
        let lyric = lyrics.join(format!("{id}.txt"));
        let args = ["predict", "--run", s(run), "--json", "--device", "cpu", s(song), "--lyrics", s(&lyric)];
        let (ok, one) = moodgrad(&args);
        assert!(ok, "{one}");
        let one: serde_json::Value = serde_json::from_str(one.lines().find(|l| l.starts_with('{')).unwrap()).unwrap();
        let row = &rows[s(song)];
        assert_eq!(row[0], "ok", "{row:?}");
        for (k, col) in [("valence", 1), ("arousal", 2)] {
            let want = one[k].as_f64().unwrap();
            assert_eq!(
                row[col].parse::<f64>().unwrap().to_bits(),
                want.to_bits(),
                "{id} {k}: CSV {row:?}, alone {one}"
            );
            assert_eq!(j[k].as_f64().unwrap().to_bits(), want.to_bits(), "{id} {k}: JSON {j}, alone {one}");
        }
        assert_eq!(row[3], one["quadrant"].as_str().unwrap());
        assert_eq!(j["path"], s(song));
    }
}

/// A corrupt MP3, an empty file, a song without its lyric and a PDF are four skipped rows with
/// their reasons, the rest are predicted, and the job succeeds. An empty lyric file is not a
/// skip: as in single-file `predict`, it is an instrumental song, encoded as [CLS] [SEP] with a
/// warning in its row (a missing lyric file is an error there, and a skip here).
#[test]
fn bad_files_are_skipped_rows_and_the_rest_predicted() {
    let (_, run) = tiny_run();
    let (input, lyrics, songs) = song_folder("bad", 0);
    std::fs::write(input.join("corrupt.mp3"), b"ID3\x03\x00\x00\x00\x00\x00\x00not really an mp3 at all".repeat(40))
        .unwrap();
    std::fs::write(input.join("empty.wav"), b"").unwrap();
    std::fs::write(input.join("notes.pdf"), b"%PDF-1.4 not audio").unwrap();
    std::fs::copy(&songs[0], input.join("nolyric.wav")).unwrap();
    std::fs::write(lyrics.join("corrupt.txt"), "la la").unwrap();
    std::fs::write(lyrics.join("empty.txt"), "la la").unwrap();
    let instrumental = songs[1].file_stem().unwrap().to_str().unwrap();
    std::fs::write(lyrics.join(format!("{instrumental}.txt")), "").unwrap();
    let out = tmp("bad-out").join("rows.csv");
    let (ok, text) = batch(run, &input, &["--lyrics-dir", s(&lyrics), "--out", s(&out)]);
    assert!(ok, "{text}");
    assert!(text.contains(&format!("{} predicted, 4 skipped", songs.len())), "{text}");
    let rows: HashMap<String, Vec<String>> = csv_rows(&out).into_iter().collect();
    let reason = |name: &str| -> String {
        let r = &rows[s(&input.join(name))];
        assert_eq!(r[0], "skipped", "{name}: {r:?}");
        assert!(r[1].is_empty() && r[2].is_empty(), "{name}: a skipped row has no numbers: {r:?}");
        r[5].clone()
    };
    assert!(reason("corrupt.mp3").contains("undecodable"), "{rows:?}");
    assert!(reason("empty.wav").contains("empty file"), "{rows:?}");
    assert!(reason("notes.pdf").contains("not an audio file"), "{rows:?}");
    let why = reason("nolyric.wav");
    assert!(why.contains("no lyric") && why.contains("nolyric.txt"), "{why}");
    for song in &songs {
        assert_eq!(rows[s(song)][0], "ok", "{song:?}: {:?}", rows[s(song)]);
    }
    assert!(rows[s(&songs[1])][5].contains("no lyrics"), "the empty lyric's warning: {:?}", rows[s(&songs[1])]);
    assert_eq!(rows.len(), songs.len() + 4, "no row for the lyrics themselves");
    for name in ["corrupt.mp3", "empty.wav", "notes.pdf", "nolyric.wav"] {
        assert!(text.contains(&format!("skipped {}", input.join(name).display())), "summary lists {name}:\n{text}");
    }
}

/// A job killed with SIGKILL part-way, with its last row torn as a kill mid-write leaves it, then
/// `--resume`: every song exactly once, the torn one predicted again. Without `--resume` the
/// output is not overwritten.
#[test]
fn resume_after_a_kill_gives_every_song_once() {
    let (_, run) = tiny_run();
    let (input, lyrics, songs) = song_folder("resume", 4);
    let out = tmp("resume-out").join("rows.csv");
    let args = |resume: bool| {
        let mut a = vec!["predict", "--run", s(run), "--input", s(&input), "--device", "cpu"];
        a.extend(["--lyrics-dir", s(&lyrics), "--out", s(&out), "--batch", "1"]);
        if resume {
            a.push("--resume");
        }
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let mut child = bin().args(args(false)).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let t0 = Instant::now();
    let rows_now = || std::fs::read_to_string(&out).map(|t| t.lines().count().saturating_sub(1)).unwrap_or(0);
    while rows_now() < 3 && t0.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let complete = &text[..text.rfind('\n').unwrap() + 1];
    let before = complete.lines().count() - 1;
    assert!(before < songs.len(), "the job finished before the kill ({before} rows of {})", songs.len());
    // The last complete row torn after 20 bytes, as a kill during its write would leave it.
    let last_start = complete.trim_end_matches('\n').rfind('\n').unwrap() + 1;
    std::fs::write(&out, &complete[..last_start + 20]).unwrap();
    let (ok, again) = moodgrad(&args(false).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!ok && again.contains("--resume"), "an existing output is not overwritten: {again}");
    let (ok, resumed) = moodgrad(&args(true).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{resumed}");
    assert!(resumed.contains(&format!("({} already in", before - 1)), "the torn row is redone:\n{resumed}");
    let rows = csv_rows(&out);
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (path, r) in &rows {
        *seen.entry(path).or_default() += 1;
        assert_eq!(r[0], "ok", "{path}: {r:?}");
    }
    assert_eq!(rows.len(), songs.len(), "one row per song");
    for song in &songs {
        assert_eq!(seen.get(s(song)), Some(&1), "{song:?} once");
    }
}

/// A CSV list names audio and lyric paths (relative to the list); a row without audio is a
/// skipped row, and lyrics not in the list are found beside the audio.
#[test]
fn a_csv_list_names_the_songs() {
    let (_, run) = tiny_run();
    let (input, lyrics, songs) = song_folder("list", 0);
    let list = input.join("list.csv");
    let rel = |p: &Path| p.strip_prefix(&input).unwrap().display().to_string();
    let mut text = String::from("audio,lyrics\n");
    text += &format!(
        "{},{}\n",
        rel(&songs[0]),
        lyrics.join(format!("{}.txt", songs[0].file_stem().unwrap().to_str().unwrap())).display()
    );
    std::fs::copy(
        lyrics.join(format!("{}.txt", songs[1].file_stem().unwrap().to_str().unwrap())),
        songs[1].with_extension("txt"),
    )
    .unwrap();
    text += &format!("{},\n", rel(&songs[1]));
    text += ",\n";
    std::fs::write(&list, text).unwrap();
    let out = tmp("list-out").join("rows.jsonl");
    let (ok, text) = batch(run, &list, &["--out", s(&out)]);
    assert!(ok, "{text}");
    let rows: Vec<serde_json::Value> =
        std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!((rows[0]["status"].as_str(), rows[1]["status"].as_str()), (Some("ok"), Some("ok")), "{rows:?}");
    assert_eq!(rows[0]["path"], s(&songs[0]));
    assert!(rows[2]["status"] == "skipped" && rows[2]["reason"].as_str().unwrap().contains("line 4"), "{rows:?}");
}

/// `predict --explain` on a bimodal run: per song a PNG and a JSON whose prediction is the plain
/// `predict`'s, one SE weight per channel of the last block (16 in the tiny preset), and the
/// audio-only and lyrics-only predictions from the training means.
#[test]
fn explain_writes_a_picture_and_the_modality_ablations() {
    let (_, run) = tiny_run();
    let (_, lyrics, songs) = song_folder("explain", 0);
    let lyric = lyrics.join(format!("{}.txt", songs[0].file_stem().unwrap().to_str().unwrap()));
    let out = tmp("explain-out");
    let common = ["predict", "--run", s(run), "--json", "--device", "cpu", s(&songs[0]), "--lyrics", s(&lyric)];
    let (ok, text) = moodgrad(&[&common[..], &["--explain", "--out", s(&out)]].concat());
    assert!(ok, "{text}");
    let line = |t: &str| -> serde_json::Value {
        serde_json::from_str(t.lines().find(|l| l.starts_with('{')).unwrap()).unwrap()
    };
    let (e, (ok, plain)) = (line(&text), moodgrad(&common));
    assert!(ok, "{plain}");
    let p = line(&plain);
    for k in ["valence", "arousal"] {
        assert_eq!(e[k].as_f64().unwrap().to_bits(), p[k].as_f64().unwrap().to_bits(), "{k}: {e} vs {p}");
        for ablation in ["audio_only", "lyrics_only"] {
            assert!(e[ablation][k].as_f64().is_some_and(f64::is_finite), "{ablation}: {e}");
        }
    }
    let gates = e["se_weights"].as_array().unwrap();
    assert_eq!(gates.len(), 16, "{e}");
    assert!(gates.iter().all(|g| g.as_f64().is_some_and(|g| g > 0.0 && g < 1.0)));
    let stem = songs[0].file_stem().unwrap().to_str().unwrap();
    assert!(std::fs::metadata(out.join(format!("{stem}_explain.png"))).unwrap().len() > 10_000);
    assert_eq!(line(&std::fs::read_to_string(out.join(format!("{stem}_explain.json"))).unwrap()), e);
}
