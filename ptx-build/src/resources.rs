//! Per-function resources from ptxas's `-v` report (the sm_90 cubin build): registers, barriers,
//! static shared memory, stack frame and spill bytes. build.rs records each file's report in
//! `$OUT_DIR/kernels_ptxas.rs` (see [`write_reports`]); tests/sass.rs parses it with
//! [`parse_ptxas_report`] to check for spills and to regenerate docs/kernel-abi.md's table.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

/// One function of a ptxas report. `entry` = a `__global__` kernel ("Compiling entry
/// function"); a non-inlined device function has only its stack and spill figures.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KernelResources {
    pub name: String,
    pub entry: bool,
    pub registers: u32,
    pub barriers: u32,
    /// Static `__shared__` bytes (ptxas "bytes smem"); dynamic shared memory is the launcher's.
    pub static_shared: u32,
    pub stack_frame: u32,
    pub spill_stores: u32,
    pub spill_loads: u32,
}

/// The leading unsigned number of `s` (after spaces).
fn leading_number(s: &str) -> Option<u32> {
    let s = s.trim_start();
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end].parse().ok()
}

/// The number just before `unit` in a comma-separated list such as
/// "Used 28 registers, used 1 barriers, 256 bytes smem".
fn figure(items: &str, unit: &str) -> Option<u32> {
    items.split(',').find_map(|item| {
        let item = item.trim();
        let num = item.strip_suffix(unit)?.trim_end();
        let num = num.strip_prefix("Used ").or_else(|| num.strip_prefix("used ")).unwrap_or(num);
        num.trim().parse().ok()
    })
}

/// A line of a ptxas report that carries figures, for the function it belongs to.
enum Line<'a> {
    Entry,
    Properties(&'a str),
    Used(&'a str),
}

/// Parses ptxas `-v` output (as printed by `nvcc -Xptxas -v`). Lines look like
///
/// ```text
/// ptxas info    : Compiling entry function 'sum_rows' for 'sm_90'
/// ptxas info    : Function properties for sum_rows
///     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
/// ptxas info    : Used 32 registers, used 0 barriers, 256 bytes smem
/// ```
///
/// Every entry must have its properties line and its "Used" line, else the report format has
/// changed and this parser must be taught it (an error, not a silent zero).
pub fn parse_ptxas_report(log: &str) -> Result<Vec<KernelResources>, String> {
    // Per function: its figures and whether its properties line and its "Used" line were seen.
    let mut out: Vec<(KernelResources, bool, bool)> = Vec::new();
    let mut index = |name: &str| -> usize {
        out.iter().position(|(k, ..)| k.name == name).unwrap_or_else(|| {
            out.push((KernelResources { name: name.to_string(), ..Default::default() }, false, false));
            out.len() - 1
        })
    };
    let mut entry: Option<usize> = None;
    let mut props_for: Option<usize> = None;
    let mut updates: Vec<(usize, Line)> = Vec::new();
    for line in log.lines() {
        let text = line.split_once("info    :").map_or(line, |(_, r)| r).trim();
        if let Some(rest) = text.strip_prefix("Compiling entry function '") {
            let i = index(rest.split('\'').next().unwrap_or_default());
            updates.push((i, Line::Entry));
            entry = Some(i);
        } else if let Some(name) = text.strip_prefix("Function properties for ") {
            props_for = Some(index(name.trim()));
        } else if text.contains("bytes stack frame") {
            let i = props_for.take().ok_or_else(|| format!("ptxas report: stack line without a function: {line}"))?;
            updates.push((i, Line::Properties(text)));
        } else if text.starts_with("Used ") {
            let i = entry.ok_or_else(|| format!("ptxas report: \"Used\" line outside an entry: {line}"))?;
            updates.push((i, Line::Used(text)));
        }
    }
    for (i, line) in updates {
        let (k, props, used) = &mut out[i];
        let name = k.name.clone();
        let bad = |text: &str| format!("ptxas report: unreadable line for `{name}`: {text}");
        match line {
            Line::Entry => k.entry = true,
            Line::Properties(text) => {
                k.stack_frame = leading_number(text).ok_or_else(|| bad(text))?;
                k.spill_stores = figure(text, "bytes spill stores").ok_or_else(|| bad(text))?;
                k.spill_loads = figure(text, "bytes spill loads").ok_or_else(|| bad(text))?;
                *props = true;
            }
            Line::Used(text) => {
                k.registers = figure(text, "registers").ok_or_else(|| bad(text))?;
                k.barriers = figure(text, "barriers").unwrap_or(0);
                k.static_shared = figure(text, "bytes smem").unwrap_or(0);
                *used = true;
            }
        }
    }
    let mut kernels = Vec::with_capacity(out.len());
    for (k, props, used) in out {
        if !props || (k.entry && !used) {
            return Err(format!(
                "ptxas report: incomplete figures for `{}` (properties line: {props}, \"Used\" line: {used})",
                k.name
            ));
        }
        kernels.push(k);
    }
    Ok(kernels)
}

/// Writes `out_rs`: `NVCC_VERSION` (e.g. "13.0.88"; empty without nvcc), `PTXAS_ARCH` and
/// `PTXAS_REPORTS: &[(&str, &str)]` (file, its full ptxas `-v` output).
pub fn write_reports(
    out_rs: &Path,
    nvcc_version: &str,
    arch: &str,
    reports: &[(String, String)],
    other_arches: &[(String, String, String)],
) -> std::io::Result<()> {
    let mut s = String::from("// Generated by ptx-build. Do not edit.\n");
    let _ = writeln!(s, "pub const NVCC_VERSION: &str = {nvcc_version:?};");
    let _ = writeln!(s, "pub const PTXAS_ARCH: &str = {arch:?};");
    s.push_str("pub const PTXAS_REPORTS: &[(&str, &str)] = &[\n");
    for (f, log) in reports {
        let _ = writeln!(s, "    ({f:?}, {log:?}),");
    }
    s.push_str("];\n");
    // (arch, file, report) of every cubin, for the per-card table.
    s.push_str("pub const PTXAS_REPORTS_BY_ARCH: &[(&str, &str, &str)] = &[\n");
    for (a, f, log) in other_arches {
        let _ = writeln!(s, "    ({a:?}, {f:?}, {log:?}),");
    }
    s.push_str("];\n");
    fs::write(out_rs, s)
}

/// "13.0.88" from `nvcc --version` output ("Cuda compilation tools, release 13.0, V13.0.88").
pub fn nvcc_version(version_output: &str) -> Option<String> {
    let line = version_output.lines().find(|l| l.contains("compilation tools"))?;
    let v = line.rsplit(", V").next()?.trim();
    (v.chars().next()?.is_ascii_digit()).then(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Verbatim ptxas 13.0.88 output (kernels/reduce.cu, kernels/selftest.cu's st_big_stack), with
    // a device function in the form ptxas prints for a non-inlined callee.
    const REPORT: &str = "ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'sum_squares_multi' for 'sm_90'
ptxas info    : Function properties for sum_squares_multi
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 28 registers, used 1 barriers, 256 bytes smem
ptxas info    : Compile time = 14.790 ms
ptxas info    : Function properties for helper
    8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads
ptxas info    : Compiling entry function 'st_big_stack' for 'sm_90'
ptxas info    : Function properties for st_big_stack
    32768 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 30 registers, used 1 barriers, 32768 bytes cumulative stack size
";

    #[test]
    fn reads_every_figure_of_entries_and_device_functions() {
        let r = parse_ptxas_report(REPORT).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[0],
            KernelResources {
                name: "sum_squares_multi".into(),
                entry: true,
                registers: 28,
                barriers: 1,
                static_shared: 256,
                stack_frame: 0,
                spill_stores: 0,
                spill_loads: 0
            }
        );
        assert_eq!((r[1].entry, r[1].stack_frame, r[1].spill_stores, r[1].spill_loads), (false, 8, 4, 12));
        assert_eq!((r[2].registers, r[2].static_shared, r[2].stack_frame), (30, 0, 32768));
    }

    #[test]
    fn refuses_an_entry_without_its_register_line() {
        let cut = REPORT.replace("ptxas info    : Used 28 registers, used 1 barriers, 256 bytes smem\n", "");
        let e = parse_ptxas_report(&cut).unwrap_err();
        assert!(e.contains("sum_squares_multi"), "{e}");
    }

    #[test]
    fn reads_the_nvcc_version() {
        let out = "nvcc: NVIDIA (R) Cuda compiler driver\nCuda compilation tools, release 13.0, V13.0.88\nBuild x\n";
        assert_eq!(nvcc_version(out).as_deref(), Some("13.0.88"));
        assert_eq!(nvcc_version("garbage"), None);
    }
}
