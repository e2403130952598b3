//! Bad input to the lyrics tower that tests/text_hf.rs, text_load.rs, text_io.rs and text_cli.rs do
//! not already reach: a single tensor of one layer missing (named in the family's own spelling),
//! pickle-only folders (single and sharded) refused with "convert it to safetensors" both through
//! the library and through `moodgrad encode`, empty or folder-shaped config.json, empty or
//! integer-typed weights, and `moodgrad encode` on each bad model folder and on a single bad lyric
//! file: every one an error naming the file or tensor, none a panic.

mod text_common;

use moodgrad::backend::cpu::Cpu;
use moodgrad::nn::text::{LyricsTower, Pooling, TextEncoder, load_hf_weights};
use moodgrad::params::ParamStore;
use moodgrad::rng::Rng;
use moodgrad::text::hf::HfModelDir;
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use std::path::{Path, PathBuf};
use std::process::Command;
use text_common::{fixtures, read_st, tmp_dir};

type C = Cpu<f32>;

/// A copy of the tiny `family` fixture folder with `edit` applied to it.
fn edited(family: &str, tag: &str, edit: impl FnOnce(&Path)) -> PathBuf {
    let d = tmp_dir(&format!("bad-{tag}"));
    for e in std::fs::read_dir(fixtures().join("models").join(family)).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, d.join(p.file_name().unwrap())).unwrap();
    }
    edit(&d);
    d
}

/// Rewrites `dir/model.safetensors` through `f` over (key, dtype, shape, bytes).
fn rewrite_weights(dir: &Path, f: impl Fn(&str, Dtype, &[usize], &[u8]) -> Option<(Dtype, Vec<usize>, Vec<u8>)>) {
    let (t, _) = read_st(&dir.join("model.safetensors"));
    let kept: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> =
        t.iter().filter_map(|(k, v)| f(k, v.dtype, &v.shape, &v.bytes).map(|(d, s, b)| (k.clone(), d, s, b))).collect();
    let views: Vec<(String, TensorView)> =
        kept.iter().map(|(k, d, s, b)| (k.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
}

fn drop_key(dir: &Path, key: &str) {
    rewrite_weights(dir, |k, d, s, b| (k != key).then(|| (d, s.to_vec(), b.to_vec())));
}

/// Opens, builds and loads the folder the way `LyricsTower::from_hf` does, returning the error.
fn load_err(dir: &Path) -> String {
    let r = (|| -> moodgrad::Result<()> {
        let hf = HfModelDir::open(dir)?;
        let mut store = ParamStore::new(C::new());
        let enc = TextEncoder::new(&mut store, "lyrics_tower", &hf.config, &mut Rng::new(3))?;
        load_hf_weights(&mut store, &enc, &hf)?;
        Ok(())
    })();
    match r {
        Ok(()) => panic!("{} was accepted", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn tower_err(dir: &Path) -> String {
    let mut store = ParamStore::new(C::new());
    match LyricsTower::from_hf(&mut store, "lyrics_tower", dir.to_str().unwrap(), Pooling::Cls, 16) {
        Ok(_) => panic!("{} was accepted by LyricsTower::from_hf", dir.display()),
        Err(e) => e.to_string(),
    }
}

/// `moodgrad encode` on `model` and `lyrics`: must fail, without a panic; returns stderr.
fn encode_err(model: &Path, lyrics: &Path) -> String {
    let out_file = model.with_extension("vectors.safetensors");
    let out = Command::new(env!("CARGO_BIN_EXE_moodgrad"))
        .args(["encode", "--model", model.to_str().unwrap(), "--lyrics", lyrics.to_str().unwrap()])
        .args(["--out", out_file.to_str().unwrap(), "--device", "cpu", "--max-len", "16"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "encode accepted {}: {err}", model.display());
    assert!(!err.contains("panicked"), "{err}");
    assert!(!out_file.exists(), "a failed encode left {}", out_file.display());
    err
}

fn lyrics_dir(tag: &str) -> PathBuf {
    let d = tmp_dir(&format!("bad-lyrics-{tag}"));
    std::fs::write(d.join("a.txt"), "hello there, river").unwrap();
    d
}

#[test]
fn one_missing_tensor_of_one_layer_is_named_in_the_familys_spelling() {
    // BERT: the first layer's attention LayerNorm weight alone.
    let d = edited("bert", "bert-one", |d| drop_key(d, "encoder.layer.0.attention.output.LayerNorm.weight"));
    let e = load_err(&d);
    assert!(e.contains("model.safetensors") && e.contains("1 encoder tensor(s) missing"), "{e}");
    assert!(e.contains("encoder.layer.0.attention.output.LayerNorm.weight"), "{e}");
    let t = tower_err(&d);
    assert!(t.contains("encoder.layer.0.attention.output.LayerNorm.weight"), "the tower names it too: {t}");
    // DistilBERT names it its own way (not BERT's canonical name).
    let d = edited("distilbert", "distil-one", |d| drop_key(d, "transformer.layer.1.ffn.lin2.weight"));
    let e = load_err(&d);
    assert!(e.contains("transformer.layer.1.ffn.lin2.weight") && !e.contains("output.dense"), "{e}");
    // RoBERTa: the word embeddings (a tensor outside the layers), and the family in the hint.
    let d = edited("roberta", "roberta-one", |d| drop_key(d, "embeddings.word_embeddings.weight"));
    let e = load_err(&d);
    assert!(e.contains("embeddings.word_embeddings.weight") && e.contains("roberta"), "{e}");
}

#[test]
fn pickle_only_folders_are_refused_with_convert_to_safetensors() {
    for bin in ["pytorch_model.bin", "pytorch_model.bin.index.json"] {
        let d = edited("bert", &format!("pickle-{bin}"), |d| {
            std::fs::remove_file(d.join("model.safetensors")).unwrap();
            std::fs::write(d.join(bin), b"PK\x03\x04 would be a pickle").unwrap();
        });
        for e in [load_err(&d), tower_err(&d), encode_err(&d, &lyrics_dir("pickle"))] {
            assert!(e.contains(bin) && e.contains("Convert it to safetensors") && e.contains("never unpickles"), "{e}");
        }
    }
    // A folder with both: the safetensors file is used and the pickle never opened.
    let d = edited("bert", "pickle-and-st", |d| std::fs::write(d.join("pytorch_model.bin"), b"not read").unwrap());
    let hf = HfModelDir::open(&d).unwrap();
    assert_eq!(hf.weights, vec![d.join("model.safetensors")]);
}

#[test]
fn unusable_config_files_are_named() {
    let d = edited("bert", "cfg-empty", |d| std::fs::write(d.join("config.json"), "").unwrap());
    let e = load_err(&d);
    assert!(e.contains("config.json") && e.contains("not valid JSON"), "{e}");
    // config.json that is a folder: not a config.
    let d = edited("bert", "cfg-dir", |d| {
        std::fs::remove_file(d.join("config.json")).unwrap();
        std::fs::create_dir(d.join("config.json")).unwrap();
    });
    assert!(load_err(&d).contains("no config.json"));
    // model_type of a decoder, through the CLI.
    let d = edited("bert", "cfg-t5", |d| {
        let c = std::fs::read_to_string(d.join("config.json")).unwrap().replace("\"bert\"", "\"t5\"");
        std::fs::write(d.join("config.json"), c).unwrap();
    });
    let e = encode_err(&d, &lyrics_dir("t5"));
    assert!(e.contains("config.json") && e.contains("`t5`") && e.contains("bert, distilbert and roberta"), "{e}");
}

#[test]
fn unusable_weight_files_are_named() {
    // Zero bytes.
    let d = edited("bert", "st-empty", |d| std::fs::write(d.join("model.safetensors"), b"").unwrap());
    let e = load_err(&d);
    assert!(e.contains("model.safetensors") && e.contains("not a valid safetensors file"), "{e}");
    // An integer tensor where a float weight belongs (same shape, so only the dtype is wrong).
    let d = edited("bert", "st-int", |d| {
        rewrite_weights(d, |k, dt, s, b| {
            Some(if k == "pooler.dense.bias" {
                (Dtype::I32, s.to_vec(), vec![0; b.len()])
            } else {
                (dt, s.to_vec(), b.to_vec())
            })
        })
    });
    let e = load_err(&d);
    assert!(e.contains("pooler.dense.bias") && e.contains("I32"), "{e}");
    // Missing tensor, through the CLI.
    let d = edited("bert", "st-cli", |d| drop_key(d, "encoder.layer.1.output.dense.weight"));
    let e = encode_err(&d, &lyrics_dir("st"));
    assert!(e.contains("model.safetensors") && e.contains("encoder.layer.1.output.dense.weight"), "{e}");
}

#[test]
fn encode_of_a_single_bad_lyric_file_says_why() {
    let model = fixtures().join("models/bert");
    let d = tmp_dir("bad-one-lyric");
    for (name, bytes, why) in
        [("latin1.txt", b"caf\xe9 au lait".as_slice(), "not UTF-8"), ("nul.txt", b"\x00\x00\x00".as_slice(), "NUL")]
    {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        let out = d.join("o.safetensors");
        let r = Command::new(env!("CARGO_BIN_EXE_moodgrad"))
            .args(["encode", "--model", model.to_str().unwrap(), "--lyrics", p.to_str().unwrap()])
            .args(["--out", out.to_str().unwrap(), "--device", "cpu", "--max-len", "16"])
            .output()
            .unwrap();
        let all = format!("{}{}", String::from_utf8_lossy(&r.stdout), String::from_utf8_lossy(&r.stderr));
        assert!(!r.status.success() && !all.contains("panicked"), "{name}: {all}");
        assert!(all.contains("no lyric could be encoded") && all.contains(name) && all.contains(why), "{name}: {all}");
    }
    // An empty lyric is not bad input: an instrumental song, encoded as [CLS] [SEP] with a warning.
    let p = d.join("empty.txt");
    std::fs::write(&p, b"").unwrap();
    let out = d.join("o.safetensors");
    let r = Command::new(env!("CARGO_BIN_EXE_moodgrad"))
        .args(["encode", "--model", model.to_str().unwrap(), "--lyrics", p.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap(), "--device", "cpu", "--max-len", "16"])
        .output()
        .unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&r.stdout), String::from_utf8_lossy(&r.stderr));
    assert!(r.status.success() && all.contains("no lyrics (the file holds no text"), "{all}");
}
