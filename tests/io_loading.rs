//! Partial and remapped loading (`io::load_state_dict_with`, PyTorch's
//! `load_state_dict(strict=False)`), f16/bf16 conversion on reading, and the strict default.
//!
//! The model here is a small hand-built store shaped like a bimodal network's state_dict: a
//! `lyrics_tower.` (to take a BERT checkpoint's `bert.` tensors), a `classifier_head.`, a BatchNorm
//! buffer and its int64 counter. Every failing load is checked to leave every entry as it was.

use moodgrad::backend::Backend;
use moodgrad::backend::cpu::Cpu;
use moodgrad::io::{self, HostData, HostTensor, LoadOptions, LoadReport, TensorFile};
use moodgrad::params::{ParamStore, Slot};
use moodgrad::tensor::Tensor;
use std::path::Path;

const FILE: &str = "bert-base.safetensors";

fn store<B: Backend>(be: B) -> ParamStore<B> {
    let mut s = ParamStore::new(be.clone());
    let t = |shape: &[usize], fill: f64| Tensor::from_f64(&be, shape, &vec![fill; shape.iter().product()]).unwrap();
    s.add_param("lyrics_tower.embeddings.word_embeddings.weight", t(&[4, 3], 0.5));
    s.add_param("lyrics_tower.embeddings.LayerNorm.weight", t(&[3], 0.5));
    s.add_param("lyrics_tower.encoder.layer.0.output.dense.weight", t(&[3, 3], 0.5));
    s.add_param("lyrics_tower.encoder.layer.0.output.dense.bias", t(&[3], 0.5));
    s.add_param("classifier_head.1.weight", t(&[2, 3], 0.5));
    s.add_buffer("bn.running_mean", t(&[3], 0.5));
    s.add_counter("bn.num_batches_tracked");
    s
}

fn ramp(n: usize, k: f32) -> Vec<f32> {
    (0..n).map(|i| k * (i as f32 + 1.0) / 7.0).collect()
}

/// A BERT checkpoint's tensors under the names `bert.…`, plus two tensors the model lacks.
fn bert_file() -> TensorFile {
    let mut f = TensorFile::default();
    let put = |f: &mut TensorFile, k: &str, shape: &[usize], scale: f32| {
        f.tensors.insert(k.into(), HostTensor::f32(shape, ramp(shape.iter().product(), scale)));
    };
    put(&mut f, "bert.embeddings.word_embeddings.weight", &[4, 3], 1.0);
    put(&mut f, "bert.embeddings.LayerNorm.gamma", &[3], 2.0);
    put(&mut f, "bert.encoder.layer.0.output.dense.weight", &[3, 3], 3.0);
    put(&mut f, "bert.encoder.layer.0.output.dense.bias", &[3], 4.0);
    put(&mut f, "bert.pooler.dense.weight", &[3, 3], 5.0);
    put(&mut f, "cls.predictions.bias", &[4], 6.0);
    f
}

/// Every entry's values (counters as their value): what "nothing changed" compares.
fn values<B: Backend>(s: &ParamStore<B>) -> Vec<(String, Vec<f64>)> {
    s.entries()
        .iter()
        .map(|e| {
            let v = match &e.slot {
                Slot::Param { value, .. } | Slot::Buffer { value } => value.to_f64(&s.backend).unwrap(),
                Slot::Counter(c) => vec![*c as f64],
            };
            (e.name.clone(), v)
        })
        .collect()
}

fn get<B: Backend>(s: &ParamStore<B>, name: &str) -> Vec<f64> {
    s.value(s.find(name).unwrap()).to_f64(&s.backend).unwrap()
}

/// Hugging Face's old LayerNorm names (gamma/beta) → PyTorch's (weight/bias).
fn layer_norm_names(k: &str) -> Option<String> {
    Some(k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias"))
}

fn bert_options(strict: bool) -> LoadOptions<'static> {
    LoadOptions { strict, prefix_map: vec![("bert.".into(), "lyrics_tower.".into())], rename: Some(&layer_norm_names) }
}

fn load<B: Backend>(s: &mut ParamStore<B>, f: &TensorFile, o: &LoadOptions) -> moodgrad::error::Result<LoadReport> {
    io::load_state_dict_with(s, Path::new(FILE), f, o, |_| false)
}

#[test]
fn prefix_map_loads_the_tower_and_reports_missing_and_unexpected() {
    let mut s = store(Cpu::<f32>::new());
    let report = load(&mut s, &bert_file(), &bert_options(false)).unwrap();
    assert_eq!(
        report.loaded,
        [
            "lyrics_tower.embeddings.word_embeddings.weight",
            "lyrics_tower.embeddings.LayerNorm.weight",
            "lyrics_tower.encoder.layer.0.output.dense.weight",
            "lyrics_tower.encoder.layer.0.output.dense.bias",
        ]
    );
    // Missing under the model's names, unexpected under the file's, as PyTorch's _IncompatibleKeys.
    assert_eq!(report.missing, ["classifier_head.1.weight", "bn.running_mean", "bn.num_batches_tracked"]);
    assert_eq!(report.unexpected, ["bert.pooler.dense.weight", "cls.predictions.bias"]);
    assert!(report.converted.is_empty());
    let want = |n: usize, k: f32| ramp(n, k).into_iter().map(f64::from).collect::<Vec<_>>();
    assert_eq!(get(&s, "lyrics_tower.embeddings.word_embeddings.weight"), want(12, 1.0));
    assert_eq!(get(&s, "lyrics_tower.embeddings.LayerNorm.weight"), want(3, 2.0));
    assert_eq!(get(&s, "lyrics_tower.encoder.layer.0.output.dense.bias"), want(3, 4.0));
    // What the file lacks is left as it was.
    assert_eq!(get(&s, "classifier_head.1.weight"), vec![0.5; 6]);
    assert_eq!(get(&s, "bn.running_mean"), vec![0.5; 3]);
}

#[test]
fn first_matching_prefix_wins_and_unmapped_names_pass_through() {
    let mut s = store(Cpu::<f32>::new());
    let mut f = TensorFile::default();
    f.tensors.insert("bert.encoder.layer.0.output.dense.bias".into(), HostTensor::f32(&[3], vec![1.0, 2.0, 3.0]));
    f.tensors.insert("bert.head.weight".into(), HostTensor::f32(&[2, 3], vec![7.0; 6]));
    f.tensors.insert("bn.running_mean".into(), HostTensor::f32(&[3], vec![9.0; 3]));
    let o = LoadOptions {
        strict: false,
        // The more specific map comes first; the general one must not take `bert.head.` first.
        prefix_map: vec![("bert.head.".into(), "classifier_head.1.".into()), ("bert.".into(), "lyrics_tower.".into())],
        rename: None,
    };
    let r = load(&mut s, &f, &o).unwrap();
    assert_eq!(
        r.loaded,
        ["lyrics_tower.encoder.layer.0.output.dense.bias", "classifier_head.1.weight", "bn.running_mean"]
    );
    assert_eq!(get(&s, "classifier_head.1.weight"), vec![7.0; 6]);
    assert_eq!(get(&s, "bn.running_mean"), vec![9.0; 3]);
}

#[test]
fn rename_returning_none_drops_a_key_as_unexpected() {
    let mut s = store(Cpu::<f32>::new());
    let drop_embeddings = |k: &str| (!k.contains("word_embeddings")).then(|| layer_norm_names(k).unwrap());
    let o = LoadOptions {
        strict: false,
        prefix_map: vec![("bert.".into(), "lyrics_tower.".into())],
        rename: Some(&drop_embeddings),
    };
    let r = load(&mut s, &bert_file(), &o).unwrap();
    assert!(r.unexpected.contains(&"bert.embeddings.word_embeddings.weight".to_string()), "{:?}", r.unexpected);
    assert!(r.missing.contains(&"lyrics_tower.embeddings.word_embeddings.weight".to_string()));
    assert_eq!(get(&s, "lyrics_tower.embeddings.word_embeddings.weight"), vec![0.5; 12]);
}

#[test]
fn shape_errors_name_both_shapes_and_both_names_and_change_nothing() {
    let mut s = store(Cpu::<f32>::new());
    let before = values(&s);
    let mut f = bert_file();
    f.tensors.insert("bert.encoder.layer.0.output.dense.weight".into(), HostTensor::f32(&[3, 4], vec![1.0; 12]));
    // Refused when not strict too (as PyTorch's size-mismatch error), and the tensors that did
    // fit (the embeddings, the bias) were not loaded either.
    let err = load(&mut s, &f, &bert_options(false)).unwrap_err().to_string();
    assert!(
        err.contains("bert-base.safetensors")
            && err.contains(
                "tensor `bert.encoder.layer.0.output.dense.weight` (the model's \
                 `lyrics_tower.encoder.layer.0.output.dense.weight`) has shape 3x4 but the model expects 3x3"
            ),
        "{err}"
    );
    assert_eq!(values(&s), before, "a failed load changed the model");
    // Under its own name the message shows it once.
    let mut g = TensorFile::default();
    g.tensors.insert("classifier_head.1.weight".into(), HostTensor::f32(&[3, 2], vec![1.0; 6]));
    let err = load(&mut s, &g, &LoadOptions::default()).unwrap_err().to_string();
    assert!(err.contains("tensor `classifier_head.1.weight` has shape 3x2 but the model expects 2x3"), "{err}");
    assert_eq!(values(&s), before);
}

#[test]
fn the_strict_loader_is_the_default_and_refuses_missing_and_unexpected_keys() {
    assert!(!LoadOptions::default().strict, "LoadOptions::default() is the explicit non-strict form");
    let mut s = store(Cpu::<f32>::new());
    let before = values(&s);
    // io::load_state_dict (what training and the CLI use) is strict.
    let mut f = io::state_dict(&s).unwrap();
    let full = TensorFile { tensors: f.clone(), metadata: Default::default() };
    f.remove("bn.running_mean");
    let missing = TensorFile { tensors: f, metadata: Default::default() };
    let err = io::load_state_dict(&mut s, Path::new(FILE), &missing, &[]).unwrap_err().to_string();
    assert!(err.contains("missing tensor `bn.running_mean` (expected F32 3; 1 missing in all"), "{err}");
    let mut extra = full.clone();
    extra.tensors.insert("cls.predictions.bias".into(), HostTensor::f32(&[4], vec![0.0; 4]));
    let err = io::load_state_dict(&mut s, Path::new(FILE), &extra, &[]).unwrap_err().to_string();
    assert!(err.contains("1 unexpected tensor(s) not in this model: cls.predictions.bias"), "{err}");
    assert_eq!(values(&s), before);
    // Extra keys under an ignored prefix are allowed, and with strict + prefix map a complete
    // file loads with nothing missing.
    io::load_state_dict(&mut s, Path::new(FILE), &extra, &["cls."]).unwrap();
    let mut o = bert_options(true);
    o.prefix_map.push(("head.".into(), "classifier_head.".into()));
    let mut f = bert_file();
    f.tensors.insert("head.1.weight".into(), HostTensor::f32(&[2, 3], vec![3.0; 6]));
    f.tensors.insert("bn.running_mean".into(), HostTensor::f32(&[3], vec![1.0; 3]));
    f.tensors.insert("bn.num_batches_tracked".into(), HostTensor::i64(&[], vec![42]));
    let r =
        io::load_state_dict_with(&mut s, Path::new(FILE), &f, &o, |k| k.starts_with("cls.") || k.contains("pooler"))
            .unwrap();
    assert!(r.missing.is_empty() && r.unexpected.is_empty(), "{r:?}");
    assert_eq!(s.counter(s.find("bn.num_batches_tracked").unwrap()), Some(42));
    assert_eq!(get(&s, "classifier_head.1.weight"), vec![3.0; 6]);
}

#[test]
fn two_file_keys_for_one_model_entry_are_refused() {
    let mut s = store(Cpu::<f32>::new());
    let mut f = bert_file();
    f.tensors.insert("lyrics_tower.embeddings.LayerNorm.weight".into(), HostTensor::f32(&[3], vec![1.0; 3]));
    let before = values(&s);
    let err = load(&mut s, &f, &bert_options(false)).unwrap_err().to_string();
    assert!(
        err.contains("`bert.embeddings.LayerNorm.gamma` and `lyrics_tower.embeddings.LayerNorm.weight` both map to the model's `lyrics_tower.embeddings.LayerNorm.weight`"),
        "{err}"
    );
    assert_eq!(values(&s), before);
}

#[test]
fn dtype_mismatches_are_refused_by_name() {
    let mut s = store(Cpu::<f32>::new());
    let before = values(&s);
    let o = LoadOptions::default();
    let cases = [
        (
            "classifier_head.1.weight",
            HostTensor::i64(&[2, 3], vec![1; 6]),
            "tensor `classifier_head.1.weight` has dtype I64 but the model expects F32",
        ),
        (
            "bn.num_batches_tracked",
            HostTensor::f32(&[], vec![3.0]),
            "tensor `bn.num_batches_tracked` has dtype F32 but the model expects I64",
        ),
        // An f32 model would have to round F64: refused rather than silently rounded.
        (
            "bn.running_mean",
            HostTensor::f64(&[3], vec![0.1; 3]),
            "tensor `bn.running_mean` has dtype F64 but the model expects F32",
        ),
    ];
    for (k, t, msg) in cases {
        let mut f = TensorFile::default();
        f.tensors.insert(k.into(), t);
        f.tensors.insert("lyrics_tower.embeddings.LayerNorm.weight".into(), HostTensor::f32(&[3], vec![9.0; 3]));
        let err = load(&mut s, &f, &o).unwrap_err().to_string();
        assert!(err.contains(msg), "{err}");
        assert_eq!(values(&s), before, "{k}: a failed load changed the model");
    }
}

#[test]
fn the_f64_backend_takes_f64_tensors_exactly() {
    let mut s = store(Cpu::<f64>::new());
    let v = vec![0.1, 1.0 / 3.0, std::f64::consts::PI];
    let mut f = TensorFile::default();
    f.tensors.insert("bn.running_mean".into(), HostTensor::f64(&[3], v.clone()));
    f.tensors.insert("lyrics_tower.embeddings.LayerNorm.weight".into(), HostTensor::f32(&[3], vec![0.1; 3]));
    load(&mut s, &f, &LoadOptions::default()).unwrap();
    assert_eq!(get(&s, "bn.running_mean"), v, "F64 should load bit for bit");
    assert_eq!(get(&s, "lyrics_tower.embeddings.LayerNorm.weight"), vec![0.1f32 as f64; 3]);
}

/// A real safetensors file with F16 and BF16 tensors (as Hugging Face ships many checkpoints):
/// read converts them to F32 exactly (every f16/bf16 value is an f32 value), the load reports
/// each conversion under the model's name.
#[test]
fn f16_and_bf16_tensors_convert_on_load_and_are_reported() {
    let x: Vec<f32> = (0..12).map(|i| (i as f32 - 5.5) * 0.3137).collect();
    let h: Vec<u8> = x.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect();
    let b: Vec<u8> = x[..3].iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()).collect();
    use safetensors::tensor::TensorView;
    let views = vec![
        (
            "bert.embeddings.word_embeddings.weight".to_string(),
            TensorView::new(safetensors::Dtype::F16, vec![4, 3], &h).unwrap(),
        ),
        (
            "bert.encoder.layer.0.output.dense.bias".to_string(),
            TensorView::new(safetensors::Dtype::BF16, vec![3], &b).unwrap(),
        ),
    ];
    let bytes = safetensors::serialize(views, None).unwrap();
    let dir = std::env::temp_dir().join(format!("moodgrad-io-loading-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("half.safetensors");
    std::fs::write(&path, &bytes).unwrap();
    let f = io::read(&path).unwrap();
    let t = &f.tensors["bert.embeddings.word_embeddings.weight"];
    assert_eq!((t.dtype_name(), t.converted_from), ("F32", Some("F16")));
    assert_eq!(f.tensors["bert.encoder.layer.0.output.dense.bias"].converted_from, Some("BF16"));

    let mut s = store(Cpu::<f32>::new());
    let r = io::load_state_dict_with(&mut s, &path, &f, &bert_options(false), |_| false).unwrap();
    assert_eq!(
        r.converted,
        [
            ("lyrics_tower.embeddings.word_embeddings.weight".to_string(), "F16"),
            ("lyrics_tower.encoder.layer.0.output.dense.bias".to_string(), "BF16"),
        ]
    );
    let want_h: Vec<f64> = x.iter().map(|&v| half::f16::from_f32(v).to_f32() as f64).collect();
    let want_b: Vec<f64> = x[..3].iter().map(|&v| half::bf16::from_f32(v).to_f32() as f64).collect();
    assert_eq!(get(&s, "lyrics_tower.embeddings.word_embeddings.weight"), want_h);
    assert_eq!(get(&s, "lyrics_tower.encoder.layer.0.output.dense.bias"), want_b);
    // The conversion is real rounding: f16 holds ~3 decimal digits.
    assert!(want_h.iter().zip(&x).any(|(a, &b)| *a != b as f64));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn truncated_and_garbage_files_are_refused_naming_the_file() {
    let s = store(Cpu::<f32>::new());
    let full = TensorFile { tensors: io::state_dict(&s).unwrap(), metadata: Default::default() };
    let path = Path::new("model.safetensors");
    let bytes = io::encode(path, &full).unwrap();
    for cut in [&bytes[..5], &bytes[..bytes.len() - 3], b"not a safetensors file at all".as_slice()] {
        let err = io::parse(path, cut).unwrap_err().to_string();
        assert!(err.starts_with("model.safetensors: not a valid safetensors file"), "{err}");
    }
    // And a whole file round-trips.
    let back = io::parse(path, &bytes).unwrap();
    assert_eq!(back.tensors, full.tensors);
    assert!(matches!(back.tensors["bn.num_batches_tracked"].data, HostData::I64(_)));
}
