//! `moodgrad encode` and `moodgrad preprocess --tokenizer` end to end, through the binary.
//!
//! encode: the tiny BERT fixture on the three reference texts reproduces transformers' [CLS]
//! vectors (1e-5 of their scale, the f32 bound of tests/text_encoder.rs), and bad lyrics (empty,
//! 1 MB, not UTF-8, binary) are skipped or warned about by name without failing the run; bad
//! models are errors naming what was wrong.

mod text_common;

use std::path::{Path, PathBuf};
use std::process::Command;
use text_common::{fixtures, read_st, tmp_dir};

/// Offline: a hub name missing from the cache must fail here, not be downloaded.
fn moodgrad(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_moodgrad")).args(args).env("HF_HUB_OFFLINE", "1").output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn write(p: PathBuf, bytes: impl AsRef<[u8]>) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// The sentence every command prints for a lyric file with no text.
const NO_LYRICS: &str = "no lyrics (the file holds no text; an instrumental song?): encoded as [CLS] [SEP] alone";

#[test]
fn encode_reproduces_transformers_and_reports_bad_lyrics() {
    let d = tmp_dir("cli-encode");
    let lyrics = d.join("lyrics");
    let (refs, meta) = read_st(&fixtures().join("models/bert_reference.safetensors"));
    let texts: Vec<String> = serde_json::from_str(&meta["texts"]).unwrap();
    for (i, t) in texts.iter().enumerate() {
        write(lyrics.join(format!("Q{}/song{i}.txt", i + 1)), t);
    }
    write(lyrics.join("Q4/empty.txt"), "  \n");
    write(lyrics.join("Q4/latin1.txt"), b"caf\xe9 au lait\n");
    write(lyrics.join("Q4/binary.txt"), b"\x00\x01\x02PK\x03\x04");
    let huge: String = "love me tender love me true ".repeat(40_000); // ~1.1 MB
    write(lyrics.join("Q4/huge.txt"), &huge);
    write(lyrics.join("notes.md"), "not a lyric");
    let out = d.join("vectors.safetensors");
    let model = fixtures().join("models/bert");
    let (ok, stdout, stderr) = moodgrad(&[
        "encode",
        "--model",
        s(&model),
        "--lyrics",
        s(&lyrics),
        "--max-len",
        "24",
        "--batch",
        "2",
        "--out",
        s(&out),
        "--device",
        "cpu",
    ]);
    println!("{stdout}{stderr}");
    assert!(ok, "{stderr}");
    assert!(stdout.contains("encode: 5 lyrics"), "{stdout}");
    assert!(stdout.contains("skipped 2"), "{stdout}");
    // An empty lyric (an instrumental song) is encoded, as transformers encodes "", with a warning.
    let tok = moodgrad::text::tokenize::LyricsTokenizer::from_dir(&model).unwrap();
    let (empty, hello) = (tok.encode("  \n", 24).unwrap(), tok.encode("hello", 24).unwrap());
    assert_eq!(empty.input_ids[..2], [hello.input_ids[0], *hello.input_ids.iter().rfind(|&&t| t != 0).unwrap()]);
    assert_eq!(empty.attention_mask.iter().sum::<i64>(), 2, "[CLS] [SEP] and padding");
    for (name, why) in [("empty.txt", NO_LYRICS), ("latin1.txt", "UTF-8"), ("binary.txt", "")] {
        let line = stdout.lines().find(|l| l.contains(name)).unwrap_or_else(|| panic!("{name} not reported: {stdout}"));
        assert!(line.contains(why), "{line}");
    }
    assert!(stdout.contains("huge.txt") && stdout.contains("unusually large"), "{stdout}");
    assert!(!stderr.contains("lyrics,"), "a progress bar was drawn on a pipe: {stderr}");

    let (vecs, vmeta) = read_st(&out);
    assert_eq!(vecs.keys().collect::<Vec<_>>(), ["empty", "huge", "song0", "song1", "song2"]);
    assert_eq!(vmeta["pooling"], "cls");
    assert_eq!(vmeta["dim"], "32");
    assert!(vmeta["skipped"].contains("latin1.txt"));
    let want: Vec<f64> =
        refs["f64.cls"].bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for i in 0..3 {
        let got = vecs[&format!("song{i}")].f32s();
        let e =
            got.iter().zip(&want[i * 32..(i + 1) * 32]).fold(0.0f64, |m, (g, w)| m.max((*g as f64 - w).abs())) / scale;
        assert!(e <= 1e-5, "song{i}: [CLS] off by {e:.2e} of the scale");
    }
}

#[test]
fn encode_bad_models_and_inputs_are_clear_errors() {
    let d = tmp_dir("cli-encode-bad");
    write(d.join("l/a.txt"), "hello there");
    let out = d.join("o.safetensors");
    let run = |model: &str, lyrics: &Path, extra: &[&str]| {
        let mut a = vec![
            "encode",
            "--model",
            model,
            "--lyrics",
            s(lyrics),
            "--out",
            s(&out),
            "--device",
            "cpu",
            "--max-len",
            "16",
        ];
        a.extend_from_slice(extra);
        let (ok, _, err) = moodgrad(&a);
        assert!(!ok, "accepted: {a:?}");
        assert!(!err.contains("panicked"), "{err}");
        err
    };
    let e = run("no-such-org/no-such-model", &d.join("l"), &[]);
    assert!(e.contains("not found") && e.contains("HF_HUB_OFFLINE=1 is set"), "{e}");
    let e = run(s(&d.join("l")), &d.join("l"), &[]);
    assert!(e.contains("no config.json"), "{e}");
    let bert = fixtures().join("models/bert");
    let e = run(s(&bert), &d.join("missing"), &[]);
    assert!(e.contains("missing") && e.contains("no such file or folder"), "{e}");
    let e = run(s(&bert), &d.join("l"), &["--pool", "max"]);
    assert!(e.contains("--pool `max`"), "{e}");
    let e = run(s(&fixtures().join("models/distilbert")), &d.join("l"), &["--pool", "pooler"]);
    assert!(e.contains("no pooler"), "{e}");
    write(d.join("only_binary/x.txt"), b"\x00\x01");
    let e = run(s(&bert), &d.join("only_binary"), &[]);
    assert!(e.contains("no lyric could be encoded") && e.contains("x.txt"), "{e}");
}

#[test]
fn preprocess_tokenizer_writes_pt_files_and_redoes_them_for_another_tokenizer() {
    let d = tmp_dir("cli-pre-tok");
    let data = d.join("merge");
    let (ok, _, err) = moodgrad(&["synth", "--out", s(&data), "--songs", "5", "--max-seconds", "2"]);
    assert!(ok, "{err}");
    let cache = d.join("cache");
    let bert = fixtures().join("models/bert");
    let pre = |tok: &Path| {
        let (ok, out, err) =
            moodgrad(&["preprocess", "--data", s(&data), "--out", s(&cache), "--tokenizer", s(tok), "--max-len", "32"]);
        assert!(ok, "{out}{err}");
        out
    };
    // One instrumental song: its lyric file is empty.
    let blank = std::fs::read_dir(data.join("lyrics/Q1")).unwrap().next().unwrap().unwrap().path();
    std::fs::write(&blank, "").unwrap();
    let out = pre(&bert);
    println!("{out}");
    assert!(out.contains("lyrics: 5 tokenized (5 new, 0 unchanged)"), "{out}");
    assert!(out.contains(&format!("{}: {NO_LYRICS}", blank.display())), "{out}");
    let list = std::fs::read_to_string(cache.join("master_processed_file_list.csv")).unwrap();
    let rows: Vec<&str> = list.lines().skip(1).collect();
    assert_eq!(rows.len(), 5);
    let tok = moodgrad::text::tokenize::LyricsTokenizer::from_dir(&bert).unwrap();
    for r in &rows {
        let cols: Vec<&str> = r.split(',').collect();
        let (id, lyrics_path) = (cols[0], cols[2]);
        assert_eq!(lyrics_path, s(&cache.join(format!("processed_lyrics/{id}.pt"))));
        // The file is exactly what the .pt writer makes of the tokenizer's encoding of the lyric
        // (whose source the manifest records).
        let manifest = text_common::read_json(&cache.join("processed_lyrics/manifest.json"));
        let source = manifest["files"][id]["source"].as_str().unwrap().to_string();
        let text = std::fs::read_to_string(&source).unwrap();
        let enc = tok.encode(&text, 32).unwrap();
        let want = d.join(format!("want/{id}.pt"));
        std::fs::create_dir_all(want.parent().unwrap()).unwrap();
        moodgrad::text::torch_pt::write_tokenized_pt(&want, &enc).unwrap();
        assert_eq!(std::fs::read(lyrics_path).unwrap(), std::fs::read(&want).unwrap(), "{id}");
        assert_eq!(manifest["tokenizer"], tok.hash());
        assert_eq!(manifest["max_len"], 32);
    }
    let out = pre(&bert);
    assert!(out.contains("(0 new, 5 unchanged)"), "{out}");
    let out = pre(&fixtures().join("models/roberta"));
    assert!(out.contains("(5 new, 0 unchanged)") && out.contains("another tokenizer"), "{out}");
    // Without --tokenizer the list names the .txt files again.
    let (ok, out, _) = moodgrad(&["preprocess", "--data", s(&data), "--out", s(&cache)]);
    assert!(ok, "{out}");
    let list = std::fs::read_to_string(cache.join("master_processed_file_list.csv")).unwrap();
    assert!(list.lines().skip(1).all(|r| r.split(',').nth(2).unwrap().ends_with(".txt")), "{list}");
}
