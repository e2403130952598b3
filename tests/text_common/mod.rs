//! Helpers shared by the tests/text_*.rs files: fixture paths, temp folders, safetensors reading
//! straight through the safetensors crate (independent of the engine's own io).
#![allow(dead_code)]

use safetensors::Dtype;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/text")
}

/// A fresh, empty folder for one test.
pub fn tmp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("moodgrad-text-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub struct Tensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl Tensor {
    pub fn i64s(&self) -> Vec<i64> {
        assert_eq!(self.dtype, Dtype::I64);
        self.bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
    }
    pub fn f32s(&self) -> Vec<f32> {
        assert_eq!(self.dtype, Dtype::F32);
        self.bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
    }
}

/// All tensors and the metadata of a safetensors file.
pub fn read_st(path: &Path) -> (BTreeMap<String, Tensor>, HashMap<String, String>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, Tensor { dtype: v.dtype(), shape: v.shape().to_vec(), bytes: v.data().to_vec() }))
        .collect();
    (tensors, meta.metadata().clone().unwrap_or_default())
}

pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// MiniLM's vocab.txt, rebuilt from the committed tokenizer.json (the fixture script asserts the
/// real vocab.txt is exactly this), in a folder of its own.
pub fn minilm_vocab_only_dir(tag: &str) -> PathBuf {
    let tj = read_json(&fixtures().join("minilm/tokenizer.json"));
    let vocab = tj["model"]["vocab"].as_object().unwrap();
    let mut by_id: Vec<(u64, &str)> = vocab.iter().map(|(k, v)| (v.as_u64().unwrap(), k.as_str())).collect();
    by_id.sort();
    assert!(by_id.iter().enumerate().all(|(i, (id, _))| i as u64 == *id));
    let d = tmp_dir(tag);
    let text: String = by_id.iter().map(|(_, w)| format!("{w}\n")).collect();
    std::fs::write(d.join("vocab.txt"), text).unwrap();
    d
}
