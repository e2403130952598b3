//! safetensors in and out, with PyTorch `state_dict` names and strict checking.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::params::{ParamStore, Slot};
use crate::tensor::{Tensor, numel, shape_str};
use safetensors::Dtype;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// A tensor on the host, as read from or written to a file.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: HostData,
}

#[derive(Clone, Debug, PartialEq)]
pub enum HostData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
}

impl HostTensor {
    pub fn f32(shape: &[usize], data: Vec<f32>) -> Self {
        HostTensor { shape: shape.to_vec(), data: HostData::F32(data) }
    }
    pub fn f64(shape: &[usize], data: Vec<f64>) -> Self {
        HostTensor { shape: shape.to_vec(), data: HostData::F64(data) }
    }
    pub fn dtype_name(&self) -> &'static str {
        match self.data {
            HostData::F32(_) => "F32",
            HostData::F64(_) => "F64",
            HostData::I64(_) => "I64",
        }
    }
    /// Values as f64 (exact for f32 and for integers below 2^53).
    pub fn to_f64(&self) -> Vec<f64> {
        match &self.data {
            HostData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            HostData::F64(v) => v.clone(),
            HostData::I64(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }
    fn bytes(&self) -> (Dtype, Vec<u8>) {
        match &self.data {
            HostData::F32(v) => (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            HostData::F64(v) => (Dtype::F64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            HostData::I64(v) => (Dtype::I64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        }
    }
}

/// A whole safetensors file: tensors by name and the free-form metadata.
#[derive(Default, Debug)]
pub struct TensorFile {
    pub tensors: BTreeMap<String, HostTensor>,
    pub metadata: HashMap<String, String>,
}

impl TensorFile {
    /// A named tensor, or an error naming the file, the tensor and what was expected.
    pub fn get(&self, path: &Path, name: &str) -> Result<&HostTensor> {
        self.tensors
            .get(name)
            .ok_or_else(|| Error::file(path, format!("missing tensor `{name}` (file holds: {})", self.names_preview())))
    }
    fn names_preview(&self) -> String {
        let names: Vec<&str> = self.tensors.keys().map(|s| s.as_str()).take(8).collect();
        let more = self.tensors.len().saturating_sub(8);
        if more > 0 { format!("{}, … {more} more", names.join(", ")) } else { names.join(", ") }
    }
}

pub fn read(path: &Path) -> Result<TensorFile> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::file(path, format!("not a valid safetensors file ({e})")))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::file(path, format!("not a valid safetensors file ({e})")))?;
    let mut out = TensorFile {
        metadata: meta.metadata().clone().unwrap_or_default().into_iter().collect(),
        ..Default::default()
    };
    for (name, view) in st.tensors() {
        let shape = view.shape().to_vec();
        let d = view.data();
        let data = match view.dtype() {
            Dtype::F32 => HostData::F32(d.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()),
            Dtype::F64 => HostData::F64(d.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()),
            Dtype::I64 => HostData::I64(d.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()),
            other => {
                return Err(Error::file(
                    path,
                    format!(
                        "tensor `{name}` has dtype {other:?}; moodgrad reads F32, F64 and I64 (convert with tensor.float())"
                    ),
                ));
            }
        };
        out.tensors.insert(name, HostTensor { shape, data });
    }
    Ok(out)
}

/// Writes atomically: a temporary file beside the target, then a rename, so an interrupted
/// write never leaves a truncated checkpoint under the real name.
pub fn write(path: &Path, file: &TensorFile) -> Result<()> {
    let owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = file
        .tensors
        .iter()
        .map(|(n, t)| {
            let (dt, b) = t.bytes();
            (n.clone(), dt, t.shape.clone(), b)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = owned
        .iter()
        .map(|(n, dt, s, b)| Ok((n.clone(), safetensors::tensor::TensorView::new(*dt, s.clone(), b)?)))
        .collect::<std::result::Result<_, safetensors::SafeTensorError>>()
        .map_err(|e| Error::file(path, format!("cannot encode tensors: {e}")))?;
    let meta = if file.metadata.is_empty() { None } else { Some(file.metadata.clone()) };
    let bytes = safetensors::serialize(views, meta).map_err(|e| Error::file(path, format!("cannot encode: {e}")))?;
    let tmp = path.with_extension("safetensors.tmp");
    std::fs::write(&tmp, bytes).map_err(|e| Error::file(&tmp, format!("cannot write: {e}")))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::file(path, format!("cannot move the finished file into place: {e}")))
}

/// Every state_dict entry (parameters, buffers, counters) as host tensors under its name.
pub fn state_dict<B: Backend>(store: &ParamStore<B>) -> Result<BTreeMap<String, HostTensor>> {
    let be = &store.backend;
    let mut out = BTreeMap::new();
    for e in store.entries() {
        let t = match &e.slot {
            Slot::Param { value, .. } | Slot::Buffer { value } => host_f32(be, value)?,
            Slot::Counter(c) => HostTensor { shape: vec![], data: HostData::I64(vec![*c]) },
        };
        out.insert(e.name.clone(), t);
    }
    Ok(out)
}

/// A device tensor as host f32 (the dtype of PyTorch checkpoints).
pub fn host_f32<B: Backend>(be: &B, t: &Tensor<B>) -> Result<HostTensor> {
    Ok(HostTensor::f32(&t.shape, t.to_f64(be)?.into_iter().map(|x| x as f32).collect()))
}

/// Loads every entry of `store` from `tensors` (strict, as `load_state_dict(strict=True)`):
/// a missing, extra, mis-shaped or mis-typed tensor is refused, naming it and both shapes.
/// Keys starting with one of `ignore_prefixes` are allowed to be extra.
pub fn load_state_dict<B: Backend>(
    store: &mut ParamStore<B>,
    path: &Path,
    file: &TensorFile,
    ignore_prefixes: &[&str],
) -> Result<()> {
    let be = store.backend.clone();
    let expected: Vec<String> = store.entries().iter().map(|e| e.name.clone()).collect();
    // Check everything before changing anything.
    for e in store.entries() {
        let t = file.tensors.get(&e.name).ok_or_else(|| {
            let want = match &e.slot {
                Slot::Counter(_) => "I64 scalar".to_string(),
                Slot::Param { value, .. } | Slot::Buffer { value } => format!("F32 {}", shape_str(&value.shape)),
            };
            Error::file(path, format!("missing tensor `{}` (expected {want}; wrong --model or --attention?)", e.name))
        })?;
        let (want_shape, want_dtype) = match &e.slot {
            Slot::Counter(_) => (vec![], "I64"),
            Slot::Param { value, .. } | Slot::Buffer { value } => (value.shape.clone(), "F32"),
        };
        if t.shape != want_shape {
            return Err(Error::file(
                path,
                format!(
                    "tensor `{}` has shape {} but the model expects {}",
                    e.name,
                    shape_str(&t.shape),
                    shape_str(&want_shape)
                ),
            ));
        }
        if t.dtype_name() != want_dtype {
            return Err(Error::file(
                path,
                format!("tensor `{}` has dtype {} but the model expects {want_dtype}", e.name, t.dtype_name()),
            ));
        }
        if numel(&t.shape) != t.to_f64().len() {
            return Err(Error::file(path, format!("tensor `{}` holds the wrong number of bytes", e.name)));
        }
    }
    let extra: Vec<&String> = file
        .tensors
        .keys()
        .filter(|k| !expected.contains(k) && !ignore_prefixes.iter().any(|p| k.starts_with(p)))
        .collect();
    if !extra.is_empty() {
        let list: Vec<&str> = extra.iter().take(5).map(|s| s.as_str()).collect();
        return Err(Error::file(
            path,
            format!(
                "{} unexpected tensor(s) not in this model: {} (wrong --model or --attention?)",
                extra.len(),
                list.join(", ")
            ),
        ));
    }
    for e in store.entries_mut() {
        let t = &file.tensors[&e.name];
        match &mut e.slot {
            Slot::Counter(c) => {
                if let HostData::I64(v) = &t.data {
                    *c = v[0];
                }
            }
            Slot::Param { value, .. } | Slot::Buffer { value } => {
                value.buf = be.upload_f64(&t.to_f64())?;
            }
        }
    }
    Ok(())
}

/// A float tensor from a file onto the device, checking its rank and dtype.
pub fn tensor_from_file<B: Backend>(
    be: &B,
    path: &Path,
    file: &TensorFile,
    name: &str,
    rank: usize,
) -> Result<Tensor<B>> {
    let t = file.get(path, name)?;
    if t.shape.len() != rank {
        return Err(Error::file(
            path,
            format!("tensor `{name}` has shape {} but needs {rank} dimensions", shape_str(&t.shape)),
        ));
    }
    if !matches!(t.data, HostData::F32(_) | HostData::F64(_)) {
        return Err(Error::file(path, format!("tensor `{name}` has dtype {}; expected F32", t.dtype_name())));
    }
    let v = t.to_f64();
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::file(
            path,
            format!("tensor `{name}` holds a non-finite value ({}) at flat index {i}", v[i]),
        ));
    }
    Tensor::from_f64(be, &t.shape, &v)
}
