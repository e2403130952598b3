//! The command line as a user runs it: exit codes and messages.

use std::path::PathBuf;
use std::process::Command;

fn moodgrad(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_moodgrad")).args(args).output().expect("run moodgrad");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("moodgrad-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn gradcheck_passes_on_every_architecture() {
    for (model, att) in [("model3", "se"), ("model4", "se"), ("model3", "legacy")] {
        let (ok, out) = moodgrad(&[
            "gradcheck",
            "--model",
            model,
            "--attention",
            att,
            "--input",
            "2x1x16x24",
            "--channels",
            "8,16,32,64",
        ]);
        assert!(ok, "{model} {att}: {out}");
        assert!(out.contains("gradcheck passed"), "{out}");
        assert!(out.contains("audio_tower.features.0.weight"), "{out}");
    }
}

#[test]
fn step_from_init_writes_everything_and_bad_files_fail_cleanly() {
    let d = tmp("step");
    let w = d.join("w.safetensors");
    let (ok, out) = moodgrad(&["init", "--channels", "4,8,8,16", "--lyrics-dim", "6", "--out", w.to_str().unwrap()]);
    assert!(ok, "{out}");
    // A batch file written with moodgrad's own writer.
    let b = d.join("b.safetensors");
    let mut f = moodgrad::io::TensorFile::default();
    let r = |n: usize| (0..n).map(|i| ((i * 7919) % 13) as f32 / 13.0 - 0.5).collect::<Vec<f32>>();
    f.tensors.insert("audio".into(), moodgrad::io::HostTensor::f32(&[2, 1, 16, 24], r(2 * 16 * 24)));
    f.tensors.insert("lyrics".into(), moodgrad::io::HostTensor::f32(&[2, 6], r(12)));
    f.tensors.insert("target".into(), moodgrad::io::HostTensor::f32(&[2, 2], vec![0.2, 0.8, 0.6, 0.3]));
    moodgrad::io::write(&b, &f).unwrap();
    let o = d.join("o.safetensors");
    let args = [
        "step",
        "--weights",
        w.to_str().unwrap(),
        "--batch",
        b.to_str().unwrap(),
        "--steps",
        "3",
        "--out",
        o.to_str().unwrap(),
    ];
    let (ok, out) = moodgrad(&args);
    assert!(ok, "{out}");
    let res = moodgrad::io::read(&o).unwrap();
    assert_eq!(res.tensors["loss"].shape, vec![3]);
    assert_eq!(res.tensors["grad_norm"].shape, vec![3]);
    assert!(res.tensors.contains_key("grad.audio_tower.features.0.weight"));
    assert!(res.tensors.contains_key("audio_tower.features.1.running_var"));
    assert_eq!(res.tensors["audio_tower.features.1.num_batches_tracked"].data, moodgrad::io::HostData::I64(vec![3]));

    // Random bytes as weights, the wrong model, a missing batch: clear errors, exit 1, no panic.
    let junk = d.join("junk.safetensors");
    std::fs::write(&junk, b"\x12\x00\x00\x00\x00\x00\x00\x00{\"a\":1}garbage").unwrap();
    let mut a2 = args;
    a2[2] = junk.to_str().unwrap();
    let (ok, out) = moodgrad(&a2);
    assert!(!ok && out.contains("junk.safetensors") && !out.contains("panicked"), "{out}");
    let (ok, out) = moodgrad(&[&args[..], &["--model", "model4"]].concat());
    assert!(!ok && out.contains("w.safetensors") && !out.contains("panicked"), "{out}");
    let (ok, out) = moodgrad(&[&args[..], &["--attention", "legacy"]].concat());
    assert!(!ok && out.contains("missing tensor") && !out.contains("panicked"), "{out}");
    let mut a3 = args;
    a3[4] = "/nonexistent/batch.safetensors";
    let (ok, out) = moodgrad(&a3);
    assert!(!ok && out.contains("/nonexistent/batch.safetensors"), "{out}");
}
