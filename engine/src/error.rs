//! Errors a user can act on: each names what was wrong and, where it can, the fix.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("tensor `{name}`: {message}")]
    Tensor { name: String, message: String },
    #[error("shape mismatch in {op}: {message}")]
    Shape { op: &'static str, message: String },
    #[error("non-finite values: {0}")]
    NonFinite(String),
    #[error("{0}")]
    Invalid(String),
    #[error("device: {0}")]
    Device(String),
    /// A device allocation failed even after the caching allocator returned its cached blocks.
    #[error(
        "out of memory on {device}: asked for {}, {} free of {} ({} held by this run's live buffers); \
         lower --batch, or free memory on the device",
        bytes(*.requested), bytes(*.free), bytes(*.total), bytes(*.live)
    )]
    OutOfMemory { device: String, requested: usize, free: usize, total: usize, live: usize },
}

/// `n` bytes for a person: "3.0 MiB (3145728 B)".
fn bytes(n: usize) -> String {
    let mib = n as f64 / (1u64 << 20) as f64;
    if mib >= 1024.0 { format!("{:.2} GiB ({n} B)", mib / 1024.0) } else { format!("{mib:.1} MiB ({n} B)") }
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::File { path: path.into(), message: message.into() }
    }
    pub fn tensor(name: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Tensor { name: name.into(), message: message.into() }
    }
    pub fn shape(op: &'static str, message: impl Into<String>) -> Self {
        Error::Shape { op, message: message.into() }
    }
}
