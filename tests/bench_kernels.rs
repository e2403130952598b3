//! `moodgrad bench kernels` as a user runs it: every workload runs and reports, the JSON has the
//! shape tools/bench_compare.py joins on, and bad flags fail naming the flag.

use std::process::Command;

fn moodgrad(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_moodgrad")).args(args).output().expect("run moodgrad");
    let (so, se) = (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string());
    (out.status.success(), so, se)
}

/// Runs the command with --json and returns the workloads, checking the top-level fields.
fn workloads(args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["bench", "kernels", "--json"];
    all.extend_from_slice(args);
    let (ok, out, err) = moodgrad(&all);
    assert!(ok, "bench kernels {args:?} failed: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    assert!(v["device"].is_string(), "{v}");
    assert!(v["copy_gbps"].as_f64().unwrap() > 0.0, "{v}");
    v["workloads"].as_array().expect("workloads list").clone()
}

fn positive(w: &serde_json::Value, field: &str) -> f64 {
    let x = w[field].as_f64().unwrap_or_else(|| panic!("{field} missing in {w}"));
    assert!(x > 0.0 && x.is_finite(), "{field} = {x} in {w}");
    x
}

#[test]
fn sim_runs_every_workload() {
    // Small crops: sim is slow, and every kernel family still runs (16x32 keeps block 4 at 2x4).
    let ws = workloads(&["--device", "sim", "--op", "all", "--shape", "16x32"]);
    let ops: Vec<(&str, usize)> = ["copy", "se", "se_pool", "bn", "conv", "unit", "step"]
        .iter()
        .map(|&op| (op, ws.iter().filter(|w| w["op"] == op).count()))
        .collect();
    assert_eq!(
        ops,
        // conv: the four blocks, plus block 1's forward and weight gradient alone.
        [("copy", 1), ("se", 1), ("se_pool", 1), ("bn", 1), ("conv", 6), ("unit", 4), ("step", 1)],
        "{ws:?}"
    );
    for w in &ws {
        positive(w, "ms");
        assert!(w["shape"].is_string() && w["precision"] == "fp32", "{w}");
        match w["op"].as_str().unwrap() {
            "copy" | "se" | "se_pool" | "bn" => {
                positive(w, "gbps");
                positive(w, "fraction_of_copy");
            }
            "conv" | "unit" => {
                positive(w, "tflops");
                assert!(w["fraction_of_peak"].is_null(), "no --peak-tflops given: {w}");
            }
            _ => {
                positive(w, "samples_per_s");
                positive(w, "peak_bytes");
            }
        }
    }
    let conv_names: Vec<&str> = ws.iter().filter(|w| w["op"] == "conv").map(|w| w["name"].as_str().unwrap()).collect();
    assert!(
        conv_names.contains(&"block1_1to64_16x32_fwd") && conv_names.contains(&"block1_1to64_16x32_wgrad"),
        "{conv_names:?}"
    );
    // The shapes follow --shape and the default batch 1: block 4's map is 16/8 x 32/8.
    let se = ws.iter().find(|w| w["op"] == "se").unwrap();
    assert_eq!(se["shape"], "1x512x2x4");
    assert_eq!(ws.iter().find(|w| w["op"] == "step").unwrap()["shape"], "1x1x16x32");
    // SE fwd+bwd counts the minimum algorithm's 7 passes over its 1x512x2x4 f32 map.
    assert_eq!(se["bytes"].as_f64(), Some(7.0 * 4096.0 * 4.0));
}

#[test]
fn cpu_se_reports_both_blocks() {
    let ws = workloads(&["--device", "cpu", "--op", "se", "--runs", "2"]);
    let names: Vec<&str> = ws.iter().map(|w| w["op"].as_str().unwrap()).collect();
    assert_eq!(names, ["se", "se_pool"]);
    for w in &ws {
        positive(w, "ms");
        positive(w, "gbps");
        assert_eq!(w["shape"], "1x512x16x161", "the default 128x1292 input's block-4 map at batch 1");
    }
}

#[test]
fn table_is_the_default_output() {
    let (ok, out, err) = moodgrad(&["bench", "kernels", "--device", "sim", "--op", "bn", "--shape", "8x8"]);
    assert!(ok, "{err}");
    assert!(out.contains("copy bandwidth") && out.contains("GB/s"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("bn ") && l.contains("1x64x8x8")), "{out}");
}

#[test]
fn bad_flags_name_the_flag_and_the_choices() {
    let cases: [(&[&str], &[&str]); 7] = [
        (&["--op", "gemm"], &["--op", "gemm", "se, conv, bn, unit, step, copy"]),
        (&["--shape", "128"], &["--shape", "HxW"]),
        (&["--shape", "4x64"], &["--shape", "at least 8"]),
        (&["--config", "model5"], &["--config", "model3 or model4"]),
        (&["--device", "cpu", "--precision", "tf32"], &["--precision tf32 needs --device cuda"]),
        (&["--precision", "fp16"], &["--precision", "fp32", "tf32"]),
        (&["--device", "tpu"], &["unknown device", "cpu, cuda"]),
    ];
    for (args, wants) in cases {
        let mut all = vec!["bench", "kernels"];
        if !args.contains(&"--device") {
            all.extend(["--device", "sim"]); // fails on the flag before any device work
        }
        all.extend_from_slice(args);
        let (ok, _, err) = moodgrad(&all);
        assert!(!ok, "{args:?} should fail");
        for want in wants {
            assert!(err.contains(want), "{args:?}: `{want}` not in: {err}");
        }
    }
}

#[test]
fn cuda_without_a_gpu_says_so() {
    if moodgrad::backend::kernel::cuda::device_count() > 0 {
        return; // A GPU answers here: the command would run, not fail.
    }
    let (ok, _, err) = moodgrad(&["bench", "kernels", "--device", "cuda", "--op", "copy"]);
    assert!(!ok);
    // The device layer's own message: no driver at all, or no device behind it.
    assert!(err.contains("no CUDA driver found") || err.contains("does not exist"), "{err}");
    assert!(err.contains("--device cpu"), "the fix is named: {err}");
}
