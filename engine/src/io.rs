//! safetensors in and out, with PyTorch `state_dict` names: the strict loader (the default, as
//! `load_state_dict(strict=True)`) and the partial, remapped one (`strict=False`).

use crate::backend::{Backend, Memory};
use crate::error::{Error, Result};
use crate::params::{ParamStore, Slot};
use crate::tensor::{Tensor, numel, shape_str};
use safetensors::Dtype;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A tensor on the host, as read from or written to a file.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: HostData,
    /// The file's dtype when it was converted on reading (F16/BF16 → F32).
    pub converted_from: Option<&'static str>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum HostData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
}

impl HostTensor {
    pub fn f32(shape: &[usize], data: Vec<f32>) -> Self {
        HostTensor { shape: shape.to_vec(), data: HostData::F32(data), converted_from: None }
    }
    pub fn f64(shape: &[usize], data: Vec<f64>) -> Self {
        HostTensor { shape: shape.to_vec(), data: HostData::F64(data), converted_from: None }
    }
    pub fn i64(shape: &[usize], data: Vec<i64>) -> Self {
        HostTensor { shape: shape.to_vec(), data: HostData::I64(data), converted_from: None }
    }
    pub fn dtype_name(&self) -> &'static str {
        match self.data {
            HostData::F32(_) => "F32",
            HostData::F64(_) => "F64",
            HostData::I64(_) => "I64",
        }
    }
    pub fn len(&self) -> usize {
        match &self.data {
            HostData::F32(v) => v.len(),
            HostData::F64(v) => v.len(),
            HostData::I64(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn is_float(&self) -> bool {
        !matches!(self.data, HostData::I64(_))
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
#[derive(Default, Debug, Clone)]
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

fn le_chunks<const N: usize, T>(d: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
    d.chunks_exact(N).map(|c| f(c.try_into().expect("chunks_exact yields N bytes"))).collect()
}

pub fn read(path: &Path) -> Result<TensorFile> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    parse(path, &bytes)
}

/// Parses safetensors bytes; F16 and BF16 tensors are converted to F32 (and marked so).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<TensorFile> {
    let invalid = |e: safetensors::SafeTensorError| {
        Error::file(path, format!("not a valid safetensors file ({e}); a truncated or partly written file?"))
    };
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(invalid)?;
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(invalid)?;
    let mut out = TensorFile {
        metadata: meta.metadata().clone().unwrap_or_default().into_iter().collect(),
        ..Default::default()
    };
    for (name, view) in st.tensors() {
        let shape = view.shape().to_vec();
        let d = view.data();
        let (data, converted_from) = match view.dtype() {
            Dtype::F32 => (HostData::F32(le_chunks(d, f32::from_le_bytes)), None),
            Dtype::F64 => (HostData::F64(le_chunks(d, f64::from_le_bytes)), None),
            Dtype::I64 => (HostData::I64(le_chunks(d, i64::from_le_bytes)), None),
            Dtype::F16 => (HostData::F32(le_chunks(d, |b| half::f16::from_le_bytes(b).to_f32())), Some("F16")),
            Dtype::BF16 => (HostData::F32(le_chunks(d, |b| half::bf16::from_le_bytes(b).to_f32())), Some("BF16")),
            other => {
                return Err(Error::file(
                    path,
                    format!(
                        "tensor `{name}` has dtype {other:?}; moodgrad reads F32, F64, F16, BF16 and I64 \
                         (convert with tensor.float())"
                    ),
                ));
            }
        };
        out.tensors.insert(name, HostTensor { shape, data, converted_from });
    }
    Ok(out)
}

/// Encodes a file to safetensors bytes.
pub fn encode(path: &Path, file: &TensorFile) -> Result<Vec<u8>> {
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
    safetensors::serialize(views, meta).map_err(|e| Error::file(path, format!("cannot encode: {e}")))
}

/// Writes a tensor file atomically and durably (see `write_atomic`).
pub fn write(path: &Path, file: &TensorFile) -> Result<()> {
    write_atomic(path, &encode(path, file)?)
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary name beside `path` (same folder, so the rename is atomic), unique per process and
/// call so that concurrent writers never share one: `.<name>.tmp-<pid>-<n>`.
pub fn temp_beside(path: &Path) -> PathBuf {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// The one file writer: `bytes` to a temporary file beside `path`, flushed to disk, renamed over
/// `path`, then the folder synced, so a reader, a crash or a kill sees the old file or the whole
/// new one, never a truncated one. The temporary file is removed on failure.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = temp_beside(path);
    let written = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::file(path, format!("cannot write: {e} (is the folder writable and the disk not full?)")));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::file(path, format!("cannot move the finished temporary file into place: {e}"))
    })?;
    // The rename itself reaches the disk with the folder's entry.
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(folder)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::file(folder, format!("cannot sync the folder after writing {}: {e}", path.display())))
}

/// Every state_dict entry (parameters, buffers, counters) as host tensors under its name, in the
/// backend's precision: F32 (PyTorch's checkpoints), or F64 from the f64 CPU backend, whose
/// weights a file must hold exactly (its best-epoch copy, checkpoints, goldens).
pub fn state_dict<B: Backend>(store: &ParamStore<B>) -> Result<BTreeMap<String, HostTensor>> {
    let be = &store.backend;
    let f64_store = <B::Elem as crate::float::Float>::NAME == "f64";
    let mut out = BTreeMap::new();
    for e in store.entries() {
        let t = match &e.slot {
            Slot::Param { value, .. } | Slot::Buffer { value } if f64_store => {
                HostTensor::f64(value.shape(), value.to_f64(be)?)
            }
            Slot::Param { value, .. } | Slot::Buffer { value } => host_f32(be, value)?,
            Slot::Counter(c) => HostTensor::i64(&[], vec![*c]),
        };
        out.insert(e.name.clone(), t);
    }
    Ok(out)
}

/// A device tensor as host f32 (the dtype of PyTorch checkpoints).
pub fn host_f32<B: Memory>(be: &B, t: &Tensor<B>) -> Result<HostTensor> {
    Ok(HostTensor::f32(t.shape(), t.to_f64(be)?.into_iter().map(|x| x as f32).collect()))
}

/// A device buffer as a host tensor of `shape` in the backend's own precision (f32, or f64 on
/// the f64 CPU backend), so exported state round-trips bit for bit.
pub fn host_tensor<B: Memory>(be: &B, shape: &[usize], buf: &B::Buf) -> Result<HostTensor> {
    let v = be.download_f64(buf)?;
    Ok(if <B::Elem as crate::float::Float>::NAME == "f64" {
        HostTensor::f64(shape, v)
    } else {
        HostTensor::f32(shape, v.into_iter().map(|x| x as f32).collect())
    })
}

/// A float host tensor onto the device, refusing integers and non-finite values by name.
pub fn upload_host<B: Memory>(be: &B, path: &Path, name: &str, t: &HostTensor) -> Result<B::Buf> {
    if !t.is_float() {
        return Err(Error::file(
            path,
            format!("tensor `{name}` has dtype {}; expected a float tensor", t.dtype_name()),
        ));
    }
    let v = t.to_f64();
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::file(
            path,
            format!("tensor `{name}` holds a non-finite value ({}) at flat index {i}", v[i]),
        ));
    }
    be.upload_f64(&v)
}

/// What `load_state_dict_with` did, as PyTorch's `_IncompatibleKeys` plus the conversions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadReport {
    /// Model entries that were loaded, under the model's names.
    pub loaded: Vec<String>,
    /// Model entries the file did not provide (left as they were).
    pub missing: Vec<String>,
    /// File tensors no model entry took (under the file's names).
    pub unexpected: Vec<String>,
    /// (model name, file dtype) of tensors converted from F16/BF16.
    pub converted: Vec<(String, &'static str)>,
}

/// A file key (after the prefix map) → the model's key, or None to leave it unused.
pub type KeyRename = dyn Fn(&str) -> Option<String>;

/// How a file's names map onto the model's.
#[derive(Default)]
pub struct LoadOptions<'a> {
    /// false: missing and unexpected keys are reported instead of refused (`strict=False`).
    pub strict: bool,
    /// (file prefix, model prefix) pairs, e.g. ("bert.", "lyrics_tower."); the first that
    /// matches a file key rewrites it.
    pub prefix_map: Vec<(String, String)>,
    /// A further rename applied after the prefix map (e.g. Hugging Face's LayerNorm.gamma →
    /// .weight); None drops the key (reported as unexpected).
    pub rename: Option<&'a KeyRename>,
}

impl LoadOptions<'_> {
    fn model_key(&self, file_key: &str) -> Option<String> {
        let mapped = self
            .prefix_map
            .iter()
            .find_map(|(from, to)| file_key.strip_prefix(from.as_str()).map(|rest| format!("{to}{rest}")))
            .unwrap_or_else(|| file_key.to_string());
        match self.rename {
            Some(f) => f(&mapped),
            None => Some(mapped),
        }
    }
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
    let report = load_state_dict_with(store, path, file, &LoadOptions { strict: true, ..Default::default() }, |k| {
        ignore_prefixes.iter().any(|p| k.starts_with(p))
    })?;
    debug_assert!(report.missing.is_empty());
    Ok(())
}

/// The general loader. Nothing changes unless every check passes: shapes (named with both
/// shapes) and dtypes always; with `strict`, missing keys and unexpected keys (except those
/// `may_be_extra` accepts) too.
pub fn load_state_dict_with<B: Backend>(
    store: &mut ParamStore<B>,
    path: &Path,
    file: &TensorFile,
    opts: &LoadOptions,
    may_be_extra: impl Fn(&str) -> bool,
) -> Result<LoadReport> {
    let be = store.backend.clone();
    // model name → file key
    let mut by_model: BTreeMap<String, &str> = BTreeMap::new();
    let mut report = LoadReport::default();
    for k in file.tensors.keys() {
        match opts.model_key(k) {
            Some(m) if store.find(&m).is_some() => {
                if let Some(prev) = by_model.insert(m.clone(), k) {
                    return Err(Error::file(path, format!("`{prev}` and `{k}` both map to the model's `{m}`")));
                }
            }
            _ => report.unexpected.push(k.clone()),
        }
    }
    for e in store.entries() {
        let Some(&fk) = by_model.get(&e.name) else {
            report.missing.push(e.name.clone());
            continue;
        };
        let t = &file.tensors[fk];
        let (want_shape, want_float) = match &e.slot {
            Slot::Counter(_) => (vec![], false),
            Slot::Param { value, .. } | Slot::Buffer { value } => (value.shape().to_vec(), true),
        };
        let shown = if fk == e.name { format!("`{fk}`") } else { format!("`{fk}` (the model's `{}`)", e.name) };
        if t.shape != want_shape {
            return Err(Error::file(
                path,
                format!(
                    "tensor {shown} has shape {} but the model expects {}",
                    shape_str(&t.shape),
                    shape_str(&want_shape)
                ),
            ));
        }
        // Checkpoints are F32 (F16/BF16 were converted to F32 on reading); F64 is refused rather
        // than silently rounded, except by the f64 backend, which holds it exactly.
        let f64_store = <B::Elem as crate::float::Float>::NAME == "f64";
        let want = if !want_float {
            "I64"
        } else if f64_store && t.dtype_name() == "F64" {
            "F64"
        } else {
            "F32"
        };
        if t.dtype_name() != want {
            return Err(Error::file(
                path,
                format!("tensor {shown} has dtype {} but the model expects {want}", t.dtype_name()),
            ));
        }
        if numel(&t.shape) != t.len() {
            return Err(Error::file(path, format!("tensor {shown} holds the wrong number of values")));
        }
        if let Some(d) = t.converted_from {
            report.converted.push((e.name.clone(), d));
        }
    }
    report.unexpected.retain(|k| !may_be_extra(k));
    if opts.strict && !report.missing.is_empty() {
        let want = |name: &str| -> String {
            let e = &store.entries()[store.find(name).expect("a model entry").0];
            match &e.slot {
                Slot::Counter(_) => "I64 scalar".into(),
                Slot::Param { value, .. } | Slot::Buffer { value } => format!("F32 {}", shape_str(value.shape())),
            }
        };
        let first = &report.missing[0];
        return Err(Error::file(
            path,
            format!(
                "missing tensor `{first}` (expected {}; {} missing in all; wrong --model or --attention?)",
                want(first),
                report.missing.len()
            ),
        ));
    }
    if opts.strict && !report.unexpected.is_empty() {
        let list: Vec<&str> = report.unexpected.iter().take(5).map(|s| s.as_str()).collect();
        return Err(Error::file(
            path,
            format!(
                "{} unexpected tensor(s) not in this model: {} (wrong --model or --attention?)",
                report.unexpected.len(),
                list.join(", ")
            ),
        ));
    }
    // Upload everything first, then swap in: a failed upload changes no weight.
    let mut staged = Vec::new();
    for (i, e) in store.entries().iter().enumerate() {
        let Some(&fk) = by_model.get(&e.name) else { continue };
        let t = &file.tensors[fk];
        let v = match (&e.slot, &t.data) {
            (Slot::Counter(_), HostData::I64(v)) => Staged::<B>::Counter(v[0]),
            _ => Staged::Buf(be.upload_f64(&t.to_f64())?),
        };
        staged.push((i, v));
        report.loaded.push(e.name.clone());
    }
    for (i, v) in staged {
        match (&mut store.entries_mut()[i].slot, v) {
            (Slot::Counter(c), Staged::Counter(x)) => *c = x,
            (Slot::Param { value, .. } | Slot::Buffer { value }, Staged::Buf(b)) => value.set_buf(b)?,
            _ => unreachable!("staged by slot kind above"),
        }
    }
    Ok(report)
}

enum Staged<B: Memory> {
    Buf(B::Buf),
    Counter(i64),
}

/// A float tensor from a file onto the device, checking its rank and dtype.
pub fn tensor_from_file<B: Memory>(
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
    Tensor::new(t.shape.clone(), upload_host(be, path, name, t)?)
}
