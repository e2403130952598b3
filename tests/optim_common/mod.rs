//! Shared by tests/optim_golden.rs and tests/optim_state.rs: the fixtures of
//! tools/make_optim_fixtures.py (tests/fixtures/optim/) and the seed network they describe.
#![allow(dead_code)]

use moodgrad::backend::cpu::Cpu;
use moodgrad::io::{self, HostTensor, TensorFile};
use moodgrad::nn::{AttentionKind, ModelConfig, SeedNet};
use moodgrad::optim::{Adam, AdamConfig, ParamGroup};
use moodgrad::params::{ParamStore, Slot};
use moodgrad::rng::Rng;
use moodgrad::train::Batch;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub type Be = Cpu<f64>;

pub fn fixture(name: &str) -> (PathBuf, TensorFile) {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/optim").join(name);
    let f = io::read(&p).unwrap_or_else(|e| panic!("{e}"));
    (p, f)
}

/// The tensors under `prefix`, renamed without it; `keep_meta` keeps the file's metadata.
pub fn strip(f: &TensorFile, prefix: &str, keep_meta: bool) -> TensorFile {
    TensorFile {
        tensors: f
            .tensors
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|s| (s.to_string(), v.clone())))
            .collect(),
        metadata: if keep_meta { f.metadata.clone() } else { Default::default() },
    }
}

pub fn vals(f: &TensorFile, k: &str) -> Vec<f64> {
    f.tensors.get(k).unwrap_or_else(|| panic!("fixture lacks {k}")).to_f64()
}

pub fn json(f: &TensorFile, key: &str) -> Value {
    serde_json::from_str(&f.metadata[key]).unwrap()
}

/// The seed network of the fixture's `config` metadata (dropout 0), on the f64 CPU backend, with
/// the frozen parameter frozen; weights as `SeedNet::new` draws them (the caller loads the
/// fixture's).
pub fn network(f: &TensorFile) -> (SeedNet, ParamStore<Be>) {
    let c = json(f, "config");
    let n = |k: &str| c[k].as_u64().unwrap() as usize;
    let mut cfg = ModelConfig::preset(c["model"].as_str().unwrap(), AttentionKind::Se).unwrap();
    cfg.channels = c["channels"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
    cfg.lyrics_dim = n("lyrics_dim");
    cfg.audio_hidden = n("audio_hidden");
    cfg.audio_out = n("audio_out");
    cfg.head_hidden = n("head_hidden");
    cfg.dropout = 0.0;
    let mut store = ParamStore::new(Be::new());
    let net = SeedNet::new(cfg, &mut store, &mut Rng::new(0)).unwrap();
    let frozen = store.find(&f.metadata["frozen"]).expect("the frozen parameter is in the model");
    store.set_trainable(frozen, false);
    (net, store)
}

/// Adam over moodgrad `groups` JSON (the default group last: it gives AdamConfig's lr and
/// weight decay).
pub fn adam(groups: &Value, decoupled: bool) -> Adam<Be> {
    let groups = groups.as_array().unwrap();
    let (default, named) = groups.split_last().unwrap();
    assert_eq!(default["name"], "default");
    let cfg = AdamConfig {
        lr: default["initial_lr"].as_f64().unwrap(),
        weight_decay: default["weight_decay"].as_f64().unwrap(),
        decoupled,
        ..Default::default()
    };
    let named = named
        .iter()
        .map(|g| ParamGroup {
            name: g["name"].as_str().unwrap().into(),
            prefixes: g["prefixes"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().into()).collect(),
            lr: g["initial_lr"].as_f64().unwrap(),
            weight_decay: g["weight_decay"].as_f64().unwrap(),
        })
        .collect();
    Adam::with_groups(cfg, named)
}

pub fn batch(path: &Path, f: &TensorFile, prefix: &str) -> Batch<Be> {
    let be = Be::new();
    let t = |k: &str, rank| io::tensor_from_file(&be, path, f, &format!("{prefix}{k}"), rank).unwrap();
    Batch::with_vectors(t("audio", 4), t("lyrics", 2), t("target", 2))
}

/// Every state_dict entry as f64 values (counters as their value).
pub fn snapshot(store: &ParamStore<Be>) -> BTreeMap<String, Vec<f64>> {
    store
        .entries()
        .iter()
        .map(|e| {
            let v = match &e.slot {
                Slot::Param { value, .. } | Slot::Buffer { value } => value.to_f64(&store.backend).unwrap(),
                Slot::Counter(c) => vec![*c as f64],
            };
            (e.name.clone(), v)
        })
        .collect()
}

/// The state_dict in the backend's precision (F64 here), as a safetensors file.
pub fn state_dict_f64(store: &ParamStore<Be>) -> TensorFile {
    let mut f = TensorFile::default();
    for e in store.entries() {
        let t = match &e.slot {
            Slot::Param { value, .. } | Slot::Buffer { value } => {
                HostTensor::f64(value.shape(), value.to_f64(&store.backend).unwrap())
            }
            Slot::Counter(c) => HostTensor::i64(&[], vec![*c]),
        };
        f.tensors.insert(e.name.clone(), t);
    }
    f
}

pub fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// max |a − b|.
pub fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}
