//! Build script of the engine crate (the kernels live in the repository's `kernels/`).
//!
//! 1. `build_sim`: every `kernels/*.cu` compiled as C++20 against the host SIMT layer
//!    (`kernels/sim/`), plus a generated registry of the `SIM_EXPORT`ed launchers, into one static
//!    library (`moodgrad_sim`) that `engine/src/backend/sim` calls. Needs only a C++20 compiler (g++ 12).
//! 2. `build_ptx`: cubins for sm_75 (all but the tensor-core files), sm_80, sm_86, sm_89 and sm_90
//!    and compute_90 PTX for the CUDA backend through the `ptx-build` crate (nvcc when found,
//!    otherwise only the sources, which the backend compiles with NVRTC).
//!
//! Environment: `MOODGRAD_SIM_ONLY=selftest,reduce` compiles only those kernel files (to work
//! around a broken in-progress file); `MOODGRAD_SIM_UCONTEXT=1` builds the portable ucontext
//! fiber switch instead of the x86-64 one; `MOODGRAD_SIM_WERROR=1` turns kernel warnings into
//! errors.

use std::collections::BTreeMap;
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    build_sim();
    // Independent of build_sim: reads the same kernels/*.cu and SIM_EXPORT names.
    let out = env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    build_ptx(&kernels_dir(), Path::new(&out));
}

/// The repository's `kernels/` (beside this crate's folder, where a newcomer looks for them).
fn kernels_dir() -> PathBuf {
    let engine = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    engine.parent().expect("engine/ has a parent").join("kernels")
}

/// One exported kernel: its name and the file that defines it.
struct Kernel {
    name: String,
    file: PathBuf,
}

/// Compiles the kernels and the SIMT runtime into `libmoodgrad_sim.a` and links it.
fn build_sim() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let kernels_dir = kernels_dir();
    println!("cargo:rerun-if-changed={}", kernels_dir.display());
    for var in ["MOODGRAD_SIM_ONLY", "MOODGRAD_SIM_UCONTEXT", "MOODGRAD_SIM_WERROR", "CXX", "CXXFLAGS"] {
        println!("cargo:rerun-if-env-changed={var}");
    }

    let only = env::var("MOODGRAD_SIM_ONLY").ok().filter(|s| !s.trim().is_empty());
    // For engine/src/backend/sim's "unknown kernel" message.
    println!("cargo:rustc-env=MOODGRAD_SIM_BUILT_ONLY={}", only.as_deref().unwrap_or(""));
    let sources = kernel_sources(&kernels_dir, only.as_deref());
    let mut kernels = Vec::new();
    for file in &sources {
        let src = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for name in exported_kernels(&src) {
            kernels.push(Kernel { name, file: file.clone() });
        }
    }
    check_unique(&kernels);

    let registry = out.join("moodgrad_sim_registry.cpp");
    fs::write(&registry, registry_source(&kernels)).unwrap_or_else(|e| panic!("{}: {e}", registry.display()));

    let mut build = cc::Build::new();
    build
        .cpp(true)
        // .cu is not a C++ extension to g++: say so for every file that follows.
        .flag("-x")
        .flag("c++")
        .std("c++20")
        .opt_level(2)
        .include(&kernels_dir)
        // Same results as without it (errno is never read); lets sqrtf be one instruction.
        .flag("-fno-math-errno")
        // No silent a*b+c fusion: host results must not depend on the compiler's mood. (nvcc does
        // fuse by default; kernels that need identical bits on both write fmaf explicitly.)
        .flag("-ffp-contract=off")
        // A misaligned dereference (e.g. a float4 load from an address that is not a multiple of
        // 16) fails the launch as the GPU faults, instead of working as x86 loads do: the checks
        // call kernels/sim/simt.cpp's __ubsan_handle_type_mismatch_v1_abort (no libubsan).
        .flag("-fsanitize=alignment")
        .flag("-fno-sanitize-recover=alignment")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(env::var("MOODGRAD_SIM_WERROR").is_ok_and(|v| v == "1"));
    if env::var("MOODGRAD_SIM_UCONTEXT").is_ok_and(|v| v == "1") {
        build.define("MOODGRAD_SIM_UCONTEXT", None);
    }
    build.file(kernels_dir.join("sim").join("simt.cpp"));
    for file in &sources {
        build.file(file);
    }
    build.file(&registry);
    build.compile("moodgrad_sim");
}

/// `kernels/*.cu` (not subdirectories), sorted; `only` = comma-separated file stems to keep.
fn kernel_sources(dir: &Path, only: Option<&str>) -> Vec<PathBuf> {
    let keep: Option<Vec<&str>> = only.map(|s| s.split(',').map(str::trim).filter(|s| !s.is_empty()).collect());
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap_or_else(|e| panic!("{}: {e}", dir.display())).path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "cu"))
        .filter(|p| {
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            keep.as_ref().is_none_or(|k| k.contains(&stem))
        })
        .collect();
    files.sort();
    if let Some(k) = &keep {
        println!(
            "cargo:warning=MOODGRAD_SIM_ONLY={}: host SIMT build of {} kernel file(s) only",
            k.join(","),
            files.len()
        );
    }
    files
}

/// The names in `SIM_EXPORT(name)` invocations, in order; comments and preprocessor lines
/// (the macro's own `#define`) are skipped.
fn exported_kernels(src: &str) -> Vec<String> {
    const KEY: &str = "SIM_EXPORT";
    let code = strip_comments(src);
    let mut names = Vec::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let mut rest = line;
        while let Some(at) = rest.find(KEY) {
            let before = rest[..at].chars().next_back();
            let after = rest[at + KEY.len()..].trim_start();
            rest = &rest[at + KEY.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let Some(args) = after.strip_prefix('(') else { continue };
            let Some(end) = args.find(')') else { continue };
            let name = args[..end].trim();
            let ident = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            assert!(ident, "SIM_EXPORT({name}): not a kernel name");
            names.push(name.to_string());
        }
    }
    names
}

/// `src` with `//` and `/* */` comments replaced by spaces (newlines kept); string and character
/// literals are copied verbatim.
fn strip_comments(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    if b[i] == b'\n' {
                        out.push(b'\n');
                    }
                    i += 1;
                }
                i += 2;
                out.push(b' ');
            }
            q @ (b'"' | b'\'') => {
                out.push(q);
                i += 1;
                while i < b.len() && b[i] != q && b[i] != b'\n' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        out.push(b[i]);
                        i += 1;
                    }
                    out.push(b[i]);
                    i += 1;
                }
                if i < b.len() {
                    out.push(b[i]);
                    i += 1;
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn check_unique(kernels: &[Kernel]) {
    let mut seen: BTreeMap<&str, &Path> = BTreeMap::new();
    for k in kernels {
        if let Some(first) = seen.insert(&k.name, &k.file) {
            panic!("kernel `{}` is exported twice: {} and {}", k.name, first.display(), k.file.display());
        }
    }
}

/// The C++ registry: name → launcher and type info, read by engine/src/backend/sim/ffi.rs.
fn registry_source(kernels: &[Kernel]) -> String {
    let mut s = String::from(
        "// Generated by build.rs from the SIM_EXPORT lines of kernels/*.cu. Do not edit.\n\
         extern \"C\" {\n\
         struct MoodgradSimKernel {\n\
         \x20   const char* name;\n\
         \x20   int (*launch)(const unsigned* grid, const unsigned* block, unsigned shared_bytes, void** args);\n\
         \x20   unsigned (*info)(const unsigned char** codes);\n\
         };\n",
    );
    for k in kernels {
        let n = &k.name;
        let _ = writeln!(s, "int moodgrad_sim_launch_{n}(const unsigned*, const unsigned*, unsigned, void**);");
        let _ = writeln!(s, "unsigned moodgrad_sim_info_{n}(const unsigned char**);");
    }
    s.push_str("extern const MoodgradSimKernel moodgrad_sim_kernels[] = {\n");
    for k in kernels {
        let n = &k.name;
        let _ =
            writeln!(s, "    {{\"{n}\", moodgrad_sim_launch_{n}, moodgrad_sim_info_{n}}},  // {}", k.file.display());
    }
    if kernels.is_empty() {
        s.push_str("    {nullptr, nullptr, nullptr},  // no kernels: C++ has no empty arrays\n");
    }
    let _ = writeln!(s, "}};\nextern const unsigned moodgrad_sim_kernel_count = {};\n}}", kernels.len());
    s
}

/// Images for the CUDA backend: nvcc when found (a cubin per file and architecture, compute_90
/// PTX for later cards; the sm_90 builds also print the ptxas resource report), otherwise only
/// the sources, which the backend compiles with NVRTC. The nvcc runs are spread over the cores.
fn build_ptx(kernels: &Path, out_dir: &Path) {
    println!("cargo:rerun-if-env-changed=NVCC");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    let files = ptx_build::kernel_files(kernels).expect("read kernels/");
    let mut ptx = Vec::new();
    let mut cubins = Vec::new();
    let mut reports = Vec::new();
    let mut arch_reports = Vec::new();
    let mut nvcc_version = String::new();
    match ptx_build::find_nvcc() {
        Some(nvcc) => {
            nvcc_version = ptx_build::nvcc_release(&nvcc).unwrap_or_else(|e| panic!("{e}"));
            // One job per (file, image): None = the PTX, Some(arch) = a cubin.
            let jobs: Vec<(&ptx_build::KernelFile, Option<&str>)> = files
                .iter()
                .flat_map(|f| std::iter::once((f, None)).chain(f.arches().into_iter().map(move |a| (f, Some(a)))))
                .collect();
            let outputs = run_parallel(&jobs, |&(f, arch)| match arch {
                None => {
                    let p = out_dir.join(format!("{}.ptx", f.name));
                    ptx_build::compile_ptx(&nvcc, f, kernels, ptx_build::PTX_ARCH, &p).map(|text| (p, text))
                }
                Some(a) => {
                    let cubin = out_dir.join(format!("{}.{a}.cubin", f.name));
                    ptx_build::compile_cubin(&nvcc, f, kernels, a, &cubin).map(|log| (cubin, log))
                }
            });
            for (&(f, arch), out) in jobs.iter().zip(outputs) {
                let (path, text) = out.unwrap_or_else(|e| panic!("{e}"));
                match arch {
                    None => {
                        println!("{}: PTX {:?}", f.name, ptx_build::ptx_version(&text));
                        ptx.push((f.name.clone(), text));
                    }
                    Some(a) => {
                        if a == "sm_90" {
                            check_report(f, &text);
                            println!("{}: sm_90\n{}", f.name, ptx_build::resource_lines(&text));
                            reports.push((f.name.clone(), text.clone()));
                        }
                        arch_reports.push((a.to_string(), f.name.clone(), text));
                        cubins.push((f.name.clone(), a.to_string(), path));
                    }
                }
            }
            println!("cargo:rustc-env=MOODGRAD_PTX_BUILT=1");
        }
        None => {
            println!(
                "cargo:warning=no nvcc found: the CUDA backend will compile kernels with NVRTC at run time (scripts/install-nvcc.sh installs the pinned nvcc; set NVCC)"
            );
            println!("cargo:rustc-env=MOODGRAD_PTX_BUILT=0");
        }
    }
    ptx_build::write_embedded(&out_dir.join("kernels_embedded.rs"), &files, &ptx, kernels)
        .expect("write kernels_embedded.rs");
    ptx_build::write_cubins(&out_dir.join("kernels_cubin.rs"), &cubins).expect("write kernels_cubin.rs");
    // Read by tests/sass.rs (spill check, docs/kernel-abi.md's resource table), not by the crate.
    ptx_build::resources::write_reports(
        &out_dir.join("kernels_ptxas.rs"),
        &nvcc_version,
        "sm_90",
        &reports,
        &arch_reports,
    )
    .expect("write kernels_ptxas.rs");
    println!("cargo:rustc-cfg=moodgrad_embedded");
}

/// `work` over `jobs` on as many threads as the machine has cores; results in job order.
fn run_parallel<J: Sync, R: Send>(jobs: &[J], work: impl Fn(&J) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(jobs.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<R>> = (0..jobs.len()).map(|_| None).collect();
    let done = std::sync::Mutex::new(&mut results);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let r = work(job);
                    done.lock().expect("no worker panics while holding the lock")[i] = Some(r);
                }
            });
        }
    });
    results.into_iter().map(|r| r.expect("every job ran")).collect()
}

/// The ptxas report of `f` must give figures for each of its exported kernels (else the report
/// format changed and tests/sass.rs would check nothing).
fn check_report(f: &ptx_build::KernelFile, log: &str) {
    let found = ptx_build::resources::parse_ptxas_report(log).unwrap_or_else(|e| panic!("{}: {e}", f.path.display()));
    for k in &f.kernels {
        assert!(
            found.iter().any(|r| r.entry && &r.name == k),
            "{}: the ptxas report has no figures for kernel {k}:\n{log}",
            f.path.display()
        );
    }
}
