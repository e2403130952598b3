//! Running the `moodgrad` binary from a test, shared by the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The binary, on two threads (the bit-identity claims are stated for CPU, 2 threads).
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_moodgrad"));
    c.env("RAYON_NUM_THREADS", "2");
    c
}

/// Runs `moodgrad args…`; (success, stdout + stderr).
pub fn moodgrad(args: &[&str]) -> (bool, String) {
    let o = bin().args(args).output().expect("run moodgrad");
    let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&o.stderr));
    (o.status.success(), text)
}

/// A fresh temporary folder `moodgrad-<suite>-<pid>-<name>` (removed first if it exists).
pub fn tmp_dir(suite: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("moodgrad-{suite}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// Two safetensors files hold the same tensors, bit for bit.
pub fn same_bits(a: &Path, b: &Path) {
    let (x, y) = (moodgrad::io::read(a).unwrap(), moodgrad::io::read(b).unwrap());
    assert_eq!(x.tensors.keys().collect::<Vec<_>>(), y.tensors.keys().collect::<Vec<_>>(), "{a:?} vs {b:?}");
    for (k, t) in &x.tensors {
        assert_eq!(t.data, y.tensors[k].data, "{k} differs between {} and {}", a.display(), b.display());
    }
}
