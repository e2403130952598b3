//! Hugging Face folders: config.json of the three families, checkpoint key mapping against what
//! transformers loads (tests/fixtures/text/key_map.json), the local-cache lookup, refusals; and the
//! encoder fixtures' names, shapes and dtypes (so they cannot silently rot before the encoder uses them).

mod text_common;

use moodgrad::text::hf::{
    Activation, CacheRoots, CheckpointTensor, EncoderConfig, Family, HfModelDir, Hub, KeyMap, Need, encoder_tensors,
    family_name, map_checkpoint_key, plan_checkpoint, read_safetensors_header,
};
use safetensors::Dtype;
use std::path::{Path, PathBuf};
use text_common::*;

/// The cache lookup alone: an offline hub is never asked (downloads: tests/text_hub.rs).
fn resolve_model_path(spec: &str, roots: &CacheRoots) -> moodgrad::Result<PathBuf> {
    moodgrad::text::hf::resolve_model_path(spec, Need::Model, roots, &Hub::offline("HF_HUB_OFFLINE=1"))
}

fn family(name: &str) -> Family {
    Family::from_model_type(name).unwrap()
}

#[test]
fn configs_of_the_three_families() {
    let m = fixtures().join("models");
    let bert = EncoderConfig::from_file(&m.join("bert/config.json")).unwrap();
    assert_eq!(
        (bert.family, bert.vocab_size, bert.hidden, bert.layers, bert.heads, bert.intermediate, bert.max_positions),
        (Family::Bert, 300, 32, 2, 4, 37, 64)
    );
    assert_eq!(
        (bert.type_vocab_size, bert.pad_token_id, bert.position_offset, bert.activation),
        (2, 0, 0, Activation::Gelu)
    );
    assert!(bert.has_pooler && bert.layer_norm_eps == 1e-12 && bert.max_len() == 64 && bert.head_dim() == 8);

    let distil = EncoderConfig::from_file(&m.join("distilbert/config.json")).unwrap();
    assert_eq!(
        (
            distil.family,
            distil.hidden,
            distil.layers,
            distil.heads,
            distil.intermediate,
            distil.type_vocab_size,
            distil.has_pooler
        ),
        (Family::DistilBert, 32, 2, 4, 37, 0, false)
    );

    let roberta = EncoderConfig::from_file(&m.join("roberta/config.json")).unwrap();
    assert_eq!(
        (roberta.family, roberta.vocab_size, roberta.type_vocab_size, roberta.pad_token_id, roberta.position_offset),
        (Family::Roberta, 320, 1, 1, 2)
    );
    assert_eq!((roberta.max_positions, roberta.max_len(), roberta.activation), (66, 64, Activation::GeluTanh));

    let minilm = EncoderConfig::from_file(&fixtures().join("minilm/config.json")).unwrap();
    assert_eq!(
        (minilm.hidden, minilm.layers, minilm.heads, minilm.intermediate, minilm.vocab_size),
        (384, 6, 12, 1536, 30522)
    );
}

#[test]
fn config_errors_name_the_problem() {
    let bad = |json: &str| EncoderConfig::from_json_str(json).unwrap_err();
    assert!(bad(r#"{"hidden_size": 8}"#).contains("no `model_type`"));
    let e = bad(r#"{"model_type": "gpt2"}"#);
    assert!(e.contains("`gpt2`") && e.contains("bert, distilbert and roberta"), "{e}");
    assert!(bad(r#"{"model_type": "bert", "hidden_size": 10, "num_attention_heads": 4}"#).contains("not a multiple"));
    assert!(bad(r#"{"model_type": "bert", "hidden_act": "swish"}"#).contains("`swish`"));
    assert!(bad(r#"{"model_type": "bert", "position_embedding_type": "relative_key"}"#).contains("relative_key"));
    assert!(bad(r#"{"model_type": "bert", "vocab_size": "many"}"#).contains("`vocab_size`"));
    assert!(bad("{not json").contains("not valid JSON"));
    // transformers' defaults fill what a config leaves out.
    let r = EncoderConfig::from_json_str(r#"{"model_type": "roberta"}"#).unwrap();
    assert_eq!((r.vocab_size, r.hidden, r.pad_token_id, r.position_offset, r.max_len()), (50265, 768, 1, 2, 510));
    let d = EncoderConfig::from_json_str(r#"{"model_type": "distilbert", "activation": "relu"}"#).unwrap();
    assert_eq!((d.layers, d.activation), (6, Activation::Relu));
}

/// Every key of every checkpoint in key_map.json maps where transformers loads it (traced by value),
/// and plan_checkpoint reports the same unused keys and missing tensors.
#[test]
fn key_mapping_matches_transformers() {
    let km = read_json(&fixtures().join("key_map.json"));
    let mut seen = 0;
    for ckpt in km["checkpoints"].as_array().unwrap() {
        let name = ckpt["name"].as_str().unwrap();
        let fam = family(ckpt["family"].as_str().unwrap());
        let mut tensors = Vec::new();
        for e in ckpt["entries"].as_array().unwrap() {
            let key = e["key"].as_str().unwrap();
            let got = map_checkpoint_key(fam, key);
            match e["loaded_as"].as_str() {
                Some(target) => match &got {
                    KeyMap::Encoder(c) => assert_eq!(family_name(fam, c), target, "{name}: {key}"),
                    KeyMap::Unused(why) => panic!("{name}: {key} should load as {target}, mapped unused ({why})"),
                },
                None => {
                    assert!(matches!(got, KeyMap::Unused(_)), "{name}: {key} is unused in transformers, got {got:?}")
                }
            }
            let shape = e["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
            tensors.push(CheckpointTensor { key: key.into(), dtype: e["dtype"].as_str().unwrap().into(), shape });
            seen += 1;
        }
        // The plan: configs of the traced models (MiniLM's real one, the tiny ones otherwise).
        let config = if name == "minilm" {
            EncoderConfig::from_file(&fixtures().join("minilm/config.json")).unwrap()
        } else {
            let dir = match fam {
                Family::Bert => "bert",
                Family::DistilBert => "distilbert",
                Family::Roberta => "roberta",
            };
            EncoderConfig::from_file(&fixtures().join(format!("models/{dir}/config.json"))).unwrap()
        };
        let plan = plan_checkpoint(&config, &tensors, name).unwrap();
        let unused_expected: Vec<&str> = ckpt["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["loaded_as"].is_null())
            .map(|e| e["key"].as_str().unwrap())
            .collect();
        let unused: Vec<&str> = plan.unused.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(unused, unused_expected, "{name}: unused keys");
        let mut missing: Vec<String> = plan.missing_optional.iter().map(|c| family_name(fam, c)).collect();
        missing.sort();
        let missing_expected: Vec<&str> =
            ckpt["missing"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
        assert_eq!(missing, missing_expected, "{name}: encoder tensors no key fills");
        println!(
            "{name}: {} keys, {} loaded, {} unused, missing {missing:?}",
            tensors.len(),
            plan.load.len(),
            unused.len()
        );
    }
    assert!(seen > 300, "key_map.json holds {seen} keys");
}

#[test]
fn legacy_names_heads_and_buffers() {
    use KeyMap::*;
    let b = Family::Bert;
    assert_eq!(map_checkpoint_key(b, "bert.embeddings.LayerNorm.gamma"), Encoder("embeddings.LayerNorm.weight".into()));
    assert_eq!(
        map_checkpoint_key(b, "bert.encoder.layer.11.output.LayerNorm.beta"),
        Encoder("encoder.layer.11.output.LayerNorm.bias".into())
    );
    assert!(
        matches!(map_checkpoint_key(b, "cls.predictions.transform.LayerNorm.gamma"), Unused(w) if w.contains("`cls`"))
    );
    assert!(matches!(map_checkpoint_key(b, "bert.embeddings.position_ids"), Unused(w) if w.contains("buffer")));
    assert!(matches!(map_checkpoint_key(b, "encoder.layer.x.output.dense.weight"), Unused(_)));
    assert!(matches!(map_checkpoint_key(Family::DistilBert, "embeddings.token_type_embeddings.weight"), Unused(_)));
    assert_eq!(
        map_checkpoint_key(Family::DistilBert, "distilbert.transformer.layer.3.ffn.lin2.bias"),
        Encoder("encoder.layer.3.output.dense.bias".into())
    );
    assert!(
        matches!(map_checkpoint_key(Family::Roberta, "lm_head.decoder.weight"), Unused(w) if w.contains("lm_head"))
    );
}

#[test]
fn plan_rejects_mismatched_checkpoints() {
    let config = EncoderConfig::from_file(&fixtures().join("models/bert/config.json")).unwrap();
    let good: Vec<CheckpointTensor> = encoder_tensors(&config)
        .into_iter()
        .map(|s| CheckpointTensor { key: s.name, dtype: "F32".into(), shape: s.shape })
        .collect();
    assert!(plan_checkpoint(&config, &good, "ok").is_ok());
    let mut wrong_shape = good.clone();
    wrong_shape[0].shape = vec![301, 32];
    let e = plan_checkpoint(&config, &wrong_shape, "ckpt").unwrap_err().to_string();
    assert!(
        e.contains("embeddings.word_embeddings.weight") && e.contains("[301, 32]") && e.contains("config.json"),
        "{e}"
    );
    let missing: Vec<_> = good.iter().filter(|t| !t.key.contains("layer.1.")).cloned().collect();
    let e = plan_checkpoint(&config, &missing, "ckpt").unwrap_err().to_string();
    assert!(e.contains("missing") && e.contains("encoder.layer.1."), "{e}");
    let mut twice = good.clone();
    twice.push(CheckpointTensor { key: "bert.pooler.dense.bias".into(), dtype: "F32".into(), shape: vec![32] });
    assert!(plan_checkpoint(&config, &twice, "ckpt").unwrap_err().to_string().contains("both map to"));
    let mut extra_layer = good;
    extra_layer.push(CheckpointTensor {
        key: "encoder.layer.2.output.dense.bias".into(),
        dtype: "F32".into(),
        shape: vec![32],
    });
    assert!(plan_checkpoint(&config, &extra_layer, "ckpt").unwrap_err().to_string().contains("2-layer"));
}

#[test]
fn model_folders_open_and_plan() {
    for (dir, dtype, unused) in [
        ("models/bert", "F32", 0),
        ("models/distilbert", "F32", 0),
        ("models/roberta", "F32", 0),
        ("bert_f16", "F16", 0),
        ("bert_bf16", "BF16", 0),
        ("legacy_bert_pretraining", "F32", 10),
    ] {
        let m = HfModelDir::open(&fixtures().join(dir)).unwrap();
        let plan = m.plan().unwrap();
        let specs = encoder_tensors(&m.config);
        assert_eq!(plan.load.len(), specs.len(), "{dir}");
        assert_eq!(plan.unused.len(), unused, "{dir}: {:?}", plan.unused);
        let tensors = m.checkpoint_tensors().unwrap();
        let float_dtypes: Vec<&str> = tensors.iter().filter(|t| t.dtype != "I64").map(|t| t.dtype.as_str()).collect();
        assert!(float_dtypes.iter().all(|d| *d == dtype), "{dir}: {float_dtypes:?}");
        let tok = m.tokenizer().unwrap();
        assert!(tok.vocab_size() <= m.config.vocab_size);
        assert_eq!(m.fingerprint().unwrap().len(), 64);
    }
    // The bf16 and f16 copies hold the same tensors as the f32 model, with its values rounded.
    let (f32s, _) = read_st(&fixtures().join("models/bert/model.safetensors"));
    for (dir, dt) in [("bert_f16", Dtype::F16), ("bert_bf16", Dtype::BF16)] {
        let (half, _) = read_st(&fixtures().join(dir).join("model.safetensors"));
        assert_eq!(half.keys().collect::<Vec<_>>(), f32s.keys().collect::<Vec<_>>());
        for (k, t) in &half {
            assert_eq!((t.dtype, &t.shape), (dt, &f32s[k].shape), "{dir} {k}");
            let orig = f32s[k].f32s();
            let back: Vec<f32> = t
                .bytes
                .chunks_exact(2)
                .map(|c| {
                    let bits = u16::from_le_bytes([c[0], c[1]]);
                    if dt == Dtype::BF16 { f32::from_bits((bits as u32) << 16) } else { f16_to_f32(bits) }
                })
                .collect();
            // Half-precision rounding: relative 2^-8 (bf16) / 2^-11 (f16), plus f16's subnormal step.
            let rel = if dt == Dtype::BF16 { 1.0 / 256.0 } else { 1.0 / 2048.0 };
            for (a, b) in orig.iter().zip(&back) {
                assert!((a - b).abs() <= rel * a.abs() + 6e-8, "{dir} {k}: {a} vs {b}");
            }
        }
    }
}

fn f16_to_f32(h: u16) -> f32 {
    let (s, e, m) = ((h >> 15) as u32, ((h >> 10) & 31) as i32, (h & 1023) as f32);
    let v = if e == 0 { m * 2f32.powi(-24) } else { (1.0 + m / 1024.0) * 2f32.powi(e - 15) };
    if s == 1 { -v } else { v }
}

#[test]
fn pytorch_bin_alone_is_refused_with_the_conversion_command() {
    let d = tmp_dir("bin-only");
    std::fs::copy(fixtures().join("models/bert/config.json"), d.join("config.json")).unwrap();
    std::fs::write(d.join("pytorch_model.bin"), b"PK\x03\x04 pretend pickle").unwrap();
    let e = HfModelDir::open(&d).unwrap_err().to_string();
    assert!(
        e.contains("pytorch_model.bin") && e.contains("never unpickles") && e.contains("Convert it to safetensors"),
        "{e}"
    );
    assert!(e.contains("from safetensors.torch import save_file") && e.contains("model.safetensors"), "{e}");
    // Missing config: named, with the folder's contents.
    std::fs::remove_file(d.join("config.json")).unwrap();
    let e = HfModelDir::open(&d).unwrap_err().to_string();
    assert!(e.contains("no config.json") && e.contains("pytorch_model.bin"), "{e}");
    // Unknown model_type.
    std::fs::write(d.join("config.json"), r#"{"model_type": "t5"}"#).unwrap();
    let e = HfModelDir::open(&d).unwrap_err().to_string();
    assert!(e.contains("config.json") && e.contains("`t5`"), "{e}");
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn truncated_safetensors_header_is_an_error() {
    let d = tmp_dir("trunc-st");
    let bytes = std::fs::read(fixtures().join("models/bert/model.safetensors")).unwrap();
    std::fs::write(d.join("cut.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let e = read_safetensors_header(&d.join("cut.safetensors")).unwrap_err().to_string();
    assert!(e.contains("cut.safetensors") && e.contains("truncated"), "{e}");
    std::fs::write(d.join("tiny.safetensors"), b"abc").unwrap();
    assert!(read_safetensors_header(&d.join("tiny.safetensors")).is_err());
    let _ = std::fs::remove_dir_all(d);
}

/// A fake hub cache: models--org--name/{refs/main, snapshots/<rev>/ with symlinks into blobs/}.
#[test]
fn hub_names_resolve_in_the_local_cache_only() {
    let root = tmp_dir("hub");
    let hub = root.join("hub");
    let repo = hub.join("models--sentence-transformers--tiny-bert");
    let (old, new) = ("0000000000000000000000000000000000000000", "1111111111111111111111111111111111111111");
    for rev in [old, new] {
        std::fs::create_dir_all(repo.join("snapshots").join(rev)).unwrap();
    }
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
        let blob = repo.join("blobs").join(format!("blob-{f}"));
        std::fs::copy(fixtures().join("models/bert").join(f), &blob).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(
            Path::new("../../blobs").join(format!("blob-{f}")),
            repo.join("snapshots").join(new).join(f),
        )
        .unwrap();
        #[cfg(not(unix))]
        std::fs::copy(&blob, repo.join("snapshots").join(new).join(f)).unwrap();
    }
    let roots = CacheRoots { roots: vec![root.join("elsewhere"), hub.clone()] };
    // Two snapshots and no refs/main: ambiguous, an error listing both.
    let e = resolve_model_path("sentence-transformers/tiny-bert", &roots).unwrap_err().to_string();
    assert!(e.contains(old) && e.contains(new) && e.contains("refs/main"), "{e}");
    std::fs::write(repo.join("refs/main"), format!("{new}\n")).unwrap();
    let dir = resolve_model_path("sentence-transformers/tiny-bert", &roots).unwrap();
    assert_eq!(dir, repo.join("snapshots").join(new));
    // Pinned revisions: a commit names its snapshot, a branch or tag its refs/ file; the old
    // snapshot is empty, so incomplete.
    assert_eq!(resolve_model_path(&format!("sentence-transformers/tiny-bert@{new}"), &roots).unwrap(), dir);
    let e = resolve_model_path(&format!("sentence-transformers/tiny-bert@{old}"), &roots).unwrap_err().to_string();
    assert!(e.contains("incomplete: no config.json") && e.contains(&format!("--revision {old}")), "{e}");
    let e = resolve_model_path("sentence-transformers/tiny-bert@v1", &roots).unwrap_err().to_string();
    assert!(e.contains("no refs/v1"), "{e}");
    std::fs::write(repo.join("refs/v1"), new).unwrap();
    assert_eq!(resolve_model_path("sentence-transformers/tiny-bert@v1", &roots).unwrap(), dir);
    let m = HfModelDir::open(&dir).unwrap();
    assert_eq!(m.config.hidden, 32);
    assert_eq!(m.tokenizer().unwrap().vocab_size(), 300);
    // refs/main naming a snapshot that is not there.
    std::fs::write(repo.join("refs/main"), "2222222222222222222222222222222222222222").unwrap();
    assert!(
        resolve_model_path("sentence-transformers/tiny-bert", &roots).unwrap_err().to_string().contains("incomplete")
    );
    // A folder path wins over the cache.
    let fixture_dir = fixtures().join("models/roberta");
    assert_eq!(resolve_model_path(fixture_dir.to_str().unwrap(), &roots).unwrap(), fixture_dir);
    // Not found: every place looked, how to get it, the builtin alternative.
    let e = resolve_model_path("bert-base-uncased", &roots).unwrap_err().to_string();
    for needle in [
        "bert-base-uncased (as a folder",
        &root.join("elsewhere/models--bert-base-uncased").display().to_string(),
        &hub.join("models--bert-base-uncased").display().to_string(),
        "huggingface-cli download bert-base-uncased",
        "--lyrics-model builtin",
        "HF_HUB_OFFLINE=1 is set",
    ] {
        assert!(e.contains(needle), "missing `{needle}` in: {e}");
    }
    // Something that cannot be a hub id is only tried as a folder.
    let e = resolve_model_path("./no/such/model", &roots).unwrap_err().to_string();
    assert!(e.contains("`./no/such/model`: no such folder") && e.contains("builtin") && !e.contains("models--"), "{e}");
    let _ = std::fs::remove_dir_all(root);
}

fn shape(t: &Tensor) -> Vec<usize> {
    t.shape.clone()
}

/// Fixture (b): every parameter's gradient in f64 and f32, the outputs, the batch; names, shapes
/// and dtypes checked against the model files so they stay usable for the encoder's tests.
#[test]
fn encoder_reference_fixtures_are_complete() {
    for fam in ["bert", "distilbert", "roberta"] {
        let (r, meta) = read_st(&fixtures().join(format!("models/{fam}_reference.safetensors")));
        let (weights, _) = read_st(&fixtures().join(format!("models/{fam}/model.safetensors")));
        let config = EncoderConfig::from_file(&fixtures().join(format!("models/{fam}/config.json"))).unwrap();
        let (b, l, h) = (3, meta["max_len"].parse::<usize>().unwrap(), config.hidden);
        assert_eq!(l, 24);
        for k in ["transformers", "torch", "tokenizers"] {
            assert!(meta.contains_key(k), "{fam}: version of {k} not recorded");
        }
        assert_eq!(shape(&r["input_ids"]), [b, l]);
        assert_eq!(r["input_ids"].dtype, Dtype::I64);
        assert_eq!(shape(&r["R"]), [b, h]);
        assert_eq!(r.contains_key("token_type_ids"), fam != "distilbert");
        for (prefix, dt) in [("f64.", Dtype::F64), ("f32.", Dtype::F32)] {
            assert_eq!(
                (r[&format!("{prefix}last_hidden_state")].dtype, shape(&r[&format!("{prefix}last_hidden_state")])),
                (dt, vec![b, l, h])
            );
            assert_eq!(shape(&r[&format!("{prefix}masked_mean")]), [b, h]);
            assert_eq!(shape(&r[&format!("{prefix}cls")]), [b, h]);
            assert_eq!(shape(&r[&format!("{prefix}loss")]), [1]);
            assert_eq!(r.contains_key(&format!("{prefix}pooler_output")), config.has_pooler, "{fam}");
            let mut n_grads = 0;
            for (name, w) in &weights {
                let g = &r[&format!("{prefix}grad.{name}")];
                assert_eq!((g.dtype, &g.shape), (dt, &w.shape), "{fam} {prefix}grad.{name}");
                n_grads += 1;
            }
            let extra = r.keys().filter(|k| k.starts_with(&format!("{prefix}grad."))).count();
            assert_eq!(extra, n_grads, "{fam}: gradients for exactly the model's parameters");
        }
        // Every weight is one the encoder plans to load.
        let model = HfModelDir::open(&fixtures().join(format!("models/{fam}"))).unwrap();
        assert_eq!(model.plan().unwrap().load.len(), weights.len());
    }
}

/// Fixture (c): MiniLM's vectors for 12 texts, 3 of them longer than 512 tokens.
#[test]
fn minilm_reference_fixture_is_complete() {
    let (r, meta) = read_st(&fixtures().join("minilm_reference.safetensors"));
    let texts: Vec<String> = serde_json::from_str(&meta["texts"]).unwrap();
    let lens: Vec<usize> = serde_json::from_str(&meta["untruncated_lengths"]).unwrap();
    assert_eq!(texts.len(), 12);
    assert_eq!(lens.iter().filter(|&&n| n > 512).count(), 3);
    for (k, dt, s) in [
        ("input_ids", Dtype::I64, vec![12, 512]),
        ("attention_mask", Dtype::I64, vec![12, 512]),
        ("cls", Dtype::F32, vec![12, 384]),
        ("masked_mean", Dtype::F32, vec![12, 384]),
    ] {
        assert_eq!((r[k].dtype, shape(&r[k])), (dt, s), "{k}");
    }
    assert!(r["cls"].f32s().iter().all(|x| x.is_finite()));
    // The committed tokenizer gives these ids (the env-gated test checks the real folder too).
    let tok = moodgrad::text::tokenize::LyricsTokenizer::from_dir(&fixtures().join("minilm")).unwrap();
    let ids = r["input_ids"].i64s();
    for (i, t) in texts.iter().enumerate() {
        assert_eq!(tok.encode(t, 512).unwrap().input_ids, ids[i * 512..(i + 1) * 512], "text {i}");
        assert_eq!(tok.token_ids(t).unwrap().len(), lens[i], "text {i} untruncated length");
    }
}
