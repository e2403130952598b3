//! Loading Hugging Face folders into the encoder as they are: F16/BF16 weights, bert-base-uncased's
//! legacy names and heads, and bad folders (no config, an unknown model type, a missing layer, a
//! wrong shape, no pooler for --pool pooler): each a clear error naming the file or tensor.

mod text_common;

use moodgrad::backend::cpu::Cpu;
use moodgrad::nn::text::{LyricsTower, Pooling, TextEncoder, load_hf_weights};
use moodgrad::params::ParamStore;
use moodgrad::rng::Rng;
use moodgrad::text::hf::HfModelDir;
use std::path::Path;
use text_common::{fixtures, read_st, tmp_dir};

type C = Cpu<f32>;

fn load(dir: &Path) -> moodgrad::Result<(ParamStore<C>, TextEncoder, moodgrad::nn::text::LoadSummary)> {
    let hf = HfModelDir::open(dir)?;
    let mut store = ParamStore::new(C::new());
    let enc = TextEncoder::new(&mut store, "lyrics_tower", &hf.config, &mut Rng::new(3))?;
    let s = load_hf_weights(&mut store, &enc, &hf)?;
    Ok((store, enc, s))
}

fn value(store: &ParamStore<C>, name: &str) -> Vec<f32> {
    let id = store.find(name).unwrap_or_else(|| panic!("no {name}"));
    store.value(id).to_f64(&store.backend).unwrap().into_iter().map(|v| v as f32).collect()
}

#[test]
fn f16_and_bf16_weights_load_as_their_f32_values() {
    let (ref_store, _, _) = load(&fixtures().join("models/bert")).unwrap();
    for (dir, round) in [
        ("bert_f16", (|x: f32| half::f16::from_f32(x).to_f32()) as fn(f32) -> f32),
        ("bert_bf16", |x: f32| half::bf16::from_f32(x).to_f32()),
    ] {
        let (store, enc, s) = load(&fixtures().join(dir)).unwrap();
        assert_eq!(s.converted.len(), enc.params().len(), "{dir}: every tensor converted: {}", s.describe());
        assert!(s.missing.is_empty());
        for id in enc.params() {
            let name = store.name(id);
            let want: Vec<f32> = value(&ref_store, name).into_iter().map(round).collect();
            assert_eq!(value(&store, name), want, "{dir}: {name}");
        }
        println!("{dir}: {}", s.describe());
    }
}

#[test]
fn legacy_bert_checkpoint_loads_with_heads_reported_unused() {
    let dir = fixtures().join("legacy_bert_pretraining");
    let (store, _, s) = load(&dir).unwrap();
    println!("legacy: {}", s.describe());
    assert!(s.missing.is_empty(), "{:?}", s.missing);
    let unused: Vec<&str> = s.unused.iter().map(|u| u.0.as_str()).collect();
    assert!(unused.iter().any(|k| k.starts_with("cls.predictions")), "{unused:?}");
    assert!(unused.iter().any(|k| k.starts_with("cls.seq_relationship")), "{unused:?}");
    assert!(unused.contains(&"bert.embeddings.position_ids"), "{unused:?}");
    // LayerNorm.gamma → LayerNorm.weight, by value.
    let (file, _) = read_st(&dir.join("model.safetensors"));
    assert_eq!(
        value(&store, "lyrics_tower.embeddings.LayerNorm.weight"),
        file["bert.embeddings.LayerNorm.gamma"].f32s()
    );
    assert_eq!(
        value(&store, "lyrics_tower.encoder.layer.1.output.LayerNorm.bias"),
        file["bert.encoder.layer.1.output.LayerNorm.beta"].f32s()
    );
}

#[test]
fn distilbert_keeps_its_own_parameter_names() {
    let (store, enc, _) = load(&fixtures().join("models/distilbert")).unwrap();
    let names: Vec<&str> = enc.params().iter().map(|&id| store.name(id)).collect();
    assert!(names.contains(&"lyrics_tower.transformer.layer.0.attention.q_lin.weight"), "{names:?}");
    assert!(names.contains(&"lyrics_tower.transformer.layer.1.output_layer_norm.bias"));
    assert!(!names.iter().any(|n| n.contains("token_type") || n.contains("pooler")));
}

/// A copy of the tiny BERT folder with `edit` applied to its files.
fn edited_bert(tag: &str, edit: impl FnOnce(&Path)) -> std::path::PathBuf {
    let d = tmp_dir(tag);
    for f in ["config.json", "model.safetensors", "vocab.txt", "tokenizer.json", "tokenizer_config.json"] {
        let src = fixtures().join("models/bert").join(f);
        if src.is_file() {
            std::fs::copy(&src, d.join(f)).unwrap();
        }
    }
    edit(&d);
    d
}

fn err_of<T>(r: moodgrad::Result<T>) -> String {
    match r {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_folders_give_errors_naming_the_file_and_tensor() {
    // No config.json.
    let d = edited_bert("noconfig", |d| std::fs::remove_file(d.join("config.json")).unwrap());
    let e = err_of(load(&d));
    assert!(e.contains("no config.json") && e.contains(d.to_str().unwrap()), "{e}");

    // An unknown model type.
    let d = edited_bert("gpt", |d| {
        let c = std::fs::read_to_string(d.join("config.json")).unwrap().replace("\"bert\"", "\"gpt2\"");
        std::fs::write(d.join("config.json"), c).unwrap();
    });
    let e = err_of(load(&d));
    assert!(e.contains("config.json") && e.contains("gpt2") && e.contains("not supported"), "{e}");

    // A safetensors file missing a layer: every tensor of encoder.layer.1 dropped.
    let d = edited_bert("nolayer", |d| {
        let (t, _) = read_st(&d.join("model.safetensors"));
        let views: Vec<(String, safetensors::tensor::TensorView)> = t
            .iter()
            .filter(|(k, _)| !k.starts_with("encoder.layer.1."))
            .map(|(k, v)| {
                (k.clone(), safetensors::tensor::TensorView::new(v.dtype, v.shape.clone(), &v.bytes).unwrap())
            })
            .collect();
        safetensors::serialize_to_file(views, None, &d.join("model.safetensors")).unwrap();
    });
    let e = err_of(load(&d));
    assert!(e.contains("model.safetensors") && e.contains("missing") && e.contains("encoder.layer.1."), "{e}");

    // A config that disagrees with the weights' shapes.
    let d = edited_bert("shape", |d| {
        let c = std::fs::read_to_string(d.join("config.json"))
            .unwrap()
            .replace("\"intermediate_size\": 37", "\"intermediate_size\": 40");
        std::fs::write(d.join("config.json"), c).unwrap();
    });
    let e = err_of(load(&d));
    assert!(
        e.contains("model.safetensors") && e.contains("intermediate.dense") && e.contains("[37]") && e.contains("[40]"),
        "{e}"
    );

    // --pool pooler on a checkpoint without a pooler (the legacy pre-training one has it; drop it).
    let d = edited_bert("nopooler", |d| {
        let (t, _) = read_st(&d.join("model.safetensors"));
        let views: Vec<(String, safetensors::tensor::TensorView)> = t
            .iter()
            .filter(|(k, _)| !k.starts_with("pooler."))
            .map(|(k, v)| {
                (k.clone(), safetensors::tensor::TensorView::new(v.dtype, v.shape.clone(), &v.bytes).unwrap())
            })
            .collect();
        safetensors::serialize_to_file(views, None, &d.join("model.safetensors")).unwrap();
    });
    let (_, _, s) = load(&d).unwrap();
    assert_eq!(s.missing, vec!["lyrics_tower.pooler.dense.weight", "lyrics_tower.pooler.dense.bias"]);
    let mut store = ParamStore::new(C::new());
    let e = err_of(LyricsTower::from_hf(&mut store, "lyrics_tower", d.to_str().unwrap(), Pooling::Pooler, 64));
    assert!(e.contains("no pooler"), "{e}");
    // … while [CLS] pooling works from it.
    let mut store = ParamStore::new(C::new());
    assert!(LyricsTower::from_hf(&mut store, "lyrics_tower", d.to_str().unwrap(), Pooling::Cls, 64).is_ok());

    // max_len beyond the position table.
    let mut store = ParamStore::new(C::new());
    let e = err_of(LyricsTower::from_hf(
        &mut store,
        "t",
        fixtures().join("models/bert").to_str().unwrap(),
        Pooling::Cls,
        512,
    ));
    assert!(e.contains("--max-len 512") && e.contains("2 to 64"), "{e}");
}
