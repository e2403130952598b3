//! Used by moodgrad's build.rs: finds nvcc, compiles each `kernels/*.cu` to cubins for every
//! architecture of [`CUBIN_ARCHES`] it supports (the tensor-core files start at sm_80) and to PTX
//! for [`PTX_ARCH`], the newest (the driver JITs it for later cards), prints each kernel's
//! registers and spills from the sm_90 build (`-Xptxas -v`, recorded for tests by
//! [`resources::write_reports`]), and writes Rust files embedding the cubins, the PTX, the
//! sources with their includes inlined (for NVRTC when there was no nvcc), and the kernel names of
//! each file. With no nvcc it still succeeds: the tables are simply empty.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub mod occupancy;
pub mod resources;
pub mod sass;

/// The newest PTX ISA the lent GPUs' driver (580, CUDA 13.0) loads.
pub const MAX_PTX_VERSION: (u32, u32) = (9, 0);

/// The cards the cubins are built for: Turing (T4), Ampere (A100; A10/RTX 30), Ada (L4/RTX 40),
/// Hopper (H100/H200).
pub const CUBIN_ARCHES: [&str; 5] = ["sm_75", "sm_80", "sm_86", "sm_89", "sm_90"];
/// The PTX embedded beside the cubins: the newest architecture, which later cards JIT.
pub const PTX_ARCH: &str = "compute_90";

/// One kernel source file.
pub struct KernelFile {
    pub path: PathBuf,
    /// File stem, e.g. "conv".
    pub name: String,
    /// Kernel names, from its `SIM_EXPORT(<name>)` lines.
    pub kernels: Vec<String>,
    /// Uses TF32 tensor cores and cp.async (includes mma.cuh): sm_80 and later only.
    pub tensor_cores: bool,
}

impl KernelFile {
    /// The architectures of [`CUBIN_ARCHES`] this file is built for.
    pub fn arches(&self) -> Vec<&'static str> {
        CUBIN_ARCHES.into_iter().filter(|a| !self.tensor_cores || *a != "sm_75").collect()
    }
}

/// `kernels/*.cu` (not subdirectories), sorted, with their exported kernel names.
pub fn kernel_files(dir: &Path) -> std::io::Result<Vec<KernelFile>> {
    let mut files = Vec::new();
    for e in fs::read_dir(dir)? {
        let path = e?.path();
        if path.extension().is_some_and(|x| x == "cu") {
            let src = fs::read_to_string(&path)?;
            let name = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
            let tensor_cores = src.contains("\"mma.cuh\"");
            files.push(KernelFile { kernels: exported_kernels(&src), path, name, tensor_cores });
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// The names in `SIM_EXPORT(name)` lines, in order.
pub fn exported_kernels(src: &str) -> Vec<String> {
    src.lines()
        .filter_map(|l| l.trim().strip_prefix("SIM_EXPORT(")?.split(')').next().map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .collect()
}

/// nvcc from `NVCC`, then `CUDA_HOME`/`CUDA_PATH` `bin/nvcc`, then `PATH`.
pub fn find_nvcc() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NVCC").map(PathBuf::from) {
        return p.is_file().then_some(p);
    }
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(home) = std::env::var_os(var) {
            let p = Path::new(&home).join("bin/nvcc");
            if p.is_file() {
                return Some(p);
            }
        }
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("nvcc")).find(|p| p.is_file()))
}

/// Textually inlines `#include "x"` of files in `dir` (once each), so NVRTC needs no include path.
pub fn inline_includes(src: &str, dir: &Path, seen: &mut Vec<String>) -> std::io::Result<String> {
    let mut out = String::new();
    for line in src.lines() {
        let inc = line.trim().strip_prefix("#include \"").and_then(|r| r.strip_suffix('"'));
        match inc {
            Some(name) if dir.join(name).is_file() => {
                if !seen.iter().any(|s| s == name) {
                    seen.push(name.to_string());
                    let body = fs::read_to_string(dir.join(name))?;
                    out.push_str(&inline_includes(&body, dir, seen)?);
                }
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// The `.version X.Y` of a PTX text.
pub fn ptx_version(ptx: &str) -> Option<(u32, u32)> {
    let v = ptx.lines().find_map(|l| l.trim().strip_prefix(".version "))?;
    let (a, b) = v.trim().split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn run(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{what}: cannot run nvcc: {e}"))?;
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("{what} failed:\n{text}"));
    }
    Ok(text)
}

/// Compiles one file to PTX for `arch` (e.g. "compute_80"); warnings are errors.
pub fn compile_ptx(nvcc: &Path, file: &KernelFile, include: &Path, arch: &str, out: &Path) -> Result<String, String> {
    let log = run(
        Command::new(nvcc)
            .args(["-ptx", &format!("-arch={arch}"), "-O3", "-std=c++17", "--Werror", "all-warnings"])
            .arg("-I")
            .arg(include)
            .arg(&file.path)
            .arg("-o")
            .arg(out),
        &format!("nvcc -ptx {} ({arch})", file.path.display()),
    )?;
    if !log.trim().is_empty() {
        return Err(format!("nvcc printed output for {} ({arch}):\n{log}", file.path.display()));
    }
    let ptx = fs::read_to_string(out).map_err(|e| format!("reading {}: {e}", out.display()))?;
    match ptx_version(&ptx) {
        Some(v) if v <= MAX_PTX_VERSION => Ok(ptx),
        v => Err(format!(
            "{}: PTX .version {v:?} is newer than {MAX_PTX_VERSION:?}, which driver 580 cannot load; \
             install the pinned nvcc 13.0 (scripts/install-nvcc.sh)",
            out.display()
        )),
    }
}

/// The lines of a ptxas `-v` report that name an entry or give its registers, spills and shared
/// memory.
pub fn resource_lines(log: &str) -> String {
    // "Compiling entry function 'x'", then its stack/spill line and its register line.
    let keep = |l: &&str| l.contains("entry function") || l.contains("spill") || l.contains("Used ");
    log.lines().filter(keep).map(str::trim).collect::<Vec<_>>().join("\n")
}

/// Compiles one file to a cubin for `sm` (e.g. "sm_90"); returns nvcc's whole output, which is
/// the ptxas `-v` report (see [`resources::parse_ptxas_report`]). Warnings are errors.
pub fn compile_cubin(nvcc: &Path, file: &KernelFile, include: &Path, sm: &str, out: &Path) -> Result<String, String> {
    run(
        Command::new(nvcc)
            .args(["-cubin", &format!("-arch={sm}"), "-O3", "-std=c++17", "-Xptxas", "-v", "--Werror", "all-warnings"])
            .arg("-I")
            .arg(include)
            .arg(&file.path)
            .arg("-o")
            .arg(out),
        &format!("nvcc -cubin {} ({sm})", file.path.display()),
    )
}

/// nvcc's release, e.g. "13.0.88" (from `nvcc --version`).
pub fn nvcc_release(nvcc: &Path) -> Result<String, String> {
    let text = run(Command::new(nvcc).arg("--version"), "nvcc --version")?;
    resources::nvcc_version(&text).ok_or_else(|| format!("nvcc --version: no release in:\n{text}"))
}

/// Writes `out_rs`: `PTX: &[(&str, &str)]` (file, PTX; empty without nvcc), `SOURCES` (file,
/// source with includes inlined) and `KERNELS: &[(&str, &[&str])]`.
pub fn write_embedded(
    out_rs: &Path,
    files: &[KernelFile],
    ptx: &[(String, String)],
    dir: &Path,
) -> std::io::Result<()> {
    let mut s = String::from("// Generated by ptx-build. Do not edit.\n");
    s.push_str("pub const PTX: &[(&str, &str)] = &[\n");
    for (f, p) in ptx {
        let _ = writeln!(s, "    ({f:?}, {p:?}),");
    }
    s.push_str("];\npub const SOURCES: &[(&str, &str)] = &[\n");
    for f in files {
        let src = inline_includes(&fs::read_to_string(&f.path)?, dir, &mut Vec::new())?;
        let _ = writeln!(s, "    ({:?}, {:?}),", f.name, src);
    }
    s.push_str("];\npub const KERNELS: &[(&str, &[&str])] = &[\n");
    for f in files {
        let _ = writeln!(s, "    ({:?}, &{:?}),", f.name, f.kernels);
    }
    s.push_str("];\n");
    fs::write(out_rs, s)
}

/// Writes `out_rs`: `CUBINS: &[(&str, u32, &[u8])]`, each (file, compute capability ·10, cubin)
/// embedded with `include_bytes!`.
pub fn write_cubins(out_rs: &Path, cubins: &[(String, String, PathBuf)]) -> std::io::Result<()> {
    let mut s = String::from("// Generated by ptx-build. Do not edit.\npub const CUBINS: &[(&str, u32, &[u8])] = &[\n");
    for (f, arch, path) in cubins {
        let abs = fs::canonicalize(path)?;
        let cc: u32 =
            arch.trim_start_matches("sm_").parse().map_err(|_| std::io::Error::other(format!("arch {arch}")))?;
        let _ = writeln!(s, "    ({f:?}, {cc}, include_bytes!({:?})),", abs.to_string_lossy());
    }
    s.push_str("];\n");
    fs::write(out_rs, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ptx_versions_and_exports() {
        assert_eq!(ptx_version("//\n.version 9.0\n.target sm_80\n"), Some((9, 0)));
        assert!(ptx_version(".version 9.5\n").unwrap() > MAX_PTX_VERSION);
        assert_eq!(
            exported_kernels("x\nSIM_EXPORT(relu_forward)\n  SIM_EXPORT( add_f32 )\n"),
            ["relu_forward", "add_f32"]
        );
    }
}
