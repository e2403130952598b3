//! Data-parallel `moodgrad train` under `mpirun -n 2` on the CPU, against the single process
//! that accumulates 2 micro-batches: the same computation, so the same weights bit for bit (the
//! gradients are summed in rank order, which is micro-batch order, and f32 addition of two terms
//! has one answer). Also a rank killed mid-run and `--resume`, and the refusals: another world
//! size on resume, a rank reading other data, a half-set launcher environment.
//!
//! Needs `mpirun` and a build with `--features mpi`; without them each test says why it is
//! skipped, and `MOODGRAD_REQUIRE_MPI=1` (as CI sets) turns the skip into a failure.

#[path = "run_common/mod.rs"]
mod run_common;

use run_common::{bin, moodgrad, s, same_bits, tmp_dir};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn tmp(name: &str) -> PathBuf {
    tmp_dir("dist", name)
}

/// Whether `mpirun` can run here; else why not (a failure under MOODGRAD_REQUIRE_MPI=1).
fn mpi_ready() -> bool {
    let why = if !cfg!(feature = "mpi") {
        "this test binary was built without `--features mpi`".to_string()
    } else {
        match Command::new("mpirun").arg("--version").output() {
            Ok(o) if o.status.success() => return true,
            Ok(o) => format!("`mpirun --version` failed: {}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => format!("no mpirun on PATH ({e}); install OpenMPI (apt-get install openmpi-bin libopenmpi-dev)"),
        }
    };
    assert!(std::env::var("MOODGRAD_REQUIRE_MPI").as_deref() != Ok("1"), "MOODGRAD_REQUIRE_MPI=1 but {why}");
    eprintln!("skipped: {why}");
    false
}

/// `mpirun -n 2` (both ranks on this machine, two threads each, as the single-process reference).
fn mpirun() -> Command {
    let mut c = Command::new("mpirun");
    c.args(["-n", "2", "--oversubscribe", "--mca", "btl", "self,vader", "-x", "RAYON_NUM_THREADS=2"]);
    // OpenMPI refuses root unless told twice (CI containers run as root).
    c.env("OMPI_ALLOW_RUN_AS_ROOT", "1").env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    c.env("RAYON_NUM_THREADS", "2");
    c
}

fn output(mut c: Command) -> (bool, String) {
    let o = c.output().expect("run mpirun");
    let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&o.stderr));
    (o.status.success(), text)
}

fn synth(dir: &Path, songs: usize, seed: u64) {
    let (ok, out) = moodgrad(&["synth", "--out", s(dir), "--songs", &songs.to_string(), "--seed", &seed.to_string()]);
    assert!(ok, "synth failed:\n{out}");
}

/// The tiny preset, batch 5 (two ranks share it 3 + 2, as `accumulate = 2` cuts it; 16 training
/// songs leave a last batch of 1, which rank 1 sits out), 3 epochs, no early stop.
fn config(dir: &Path, accumulate: usize) -> PathBuf {
    let p = dir.join(format!("acc{accumulate}.toml"));
    std::fs::create_dir_all(dir).unwrap();
    let text =
        format!("preset = \"tiny\"\n[train]\nbatch_size = 5\nepochs = 3\npatience = 10\naccumulate = {accumulate}\n");
    std::fs::write(&p, text).unwrap();
    p
}

fn train_args<'a>(data: &'a Path, cfg: &'a Path, out: &'a Path) -> Vec<&'a str> {
    vec!["train", "--data", s(data), "--config", s(cfg), "--out", s(out), "--device", "cpu"]
}

fn log(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("log.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The trainable tensors (not BatchNorm's running statistics and counters) of two files are the
/// same bits; returns how many were compared.
fn same_weights(a: &Path, b: &Path) -> usize {
    let (x, y) = (moodgrad::io::read(a).unwrap(), moodgrad::io::read(b).unwrap());
    let mut n = 0;
    for (k, t) in &x.tensors {
        if k.contains("running_") || k.ends_with("num_batches_tracked") {
            continue;
        }
        assert_eq!(t.data, y.tensors[k].data, "{k} differs between {} and {}", a.display(), b.display());
        n += 1;
    }
    n
}

#[test]
fn two_ranks_train_as_one_process_accumulating_two_and_a_killed_rank_resumes() {
    if !mpi_ready() {
        return;
    }
    let root = tmp("equal");
    let data = root.join("data");
    synth(&data, 21, 41);
    let (acc2, acc1) = (config(&root, 2), config(&root, 1));

    let single = root.join("single");
    let (ok, out) = moodgrad(&train_args(&data, &acc2, &single));
    assert!(ok, "single process failed:\n{out}");

    let dp = root.join("dp");
    let t = Instant::now();
    let mut c = mpirun();
    c.arg(env!("CARGO_BIN_EXE_moodgrad")).args(train_args(&data, &acc1, &dp));
    let (ok, out) = output(c);
    assert!(ok, "mpirun -n 2 failed:\n{out}");
    eprintln!("mpirun -n 2: {:.1} s", t.elapsed().as_secs_f64());
    assert!(out.contains("data-parallel over 2 ranks"), "{out}");
    // Rank 0 alone speaks.
    assert_eq!(out.matches("moodgrad train: preset").count(), 1, "{out}");

    // The same steps: each epoch's training loss, gradient norms and training metrics (from the
    // predictions of the training forward passes), to the last bit of their JSON.
    let (a, b) = (log(&single), log(&dp));
    assert_eq!(a.len(), 3);
    assert_eq!(b.len(), 3);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x["train"], y["train"], "epoch {}", x["epoch"]);
        assert_eq!(x["grad_norm_mean"], y["grad_norm_mean"], "epoch {}", x["epoch"]);
        assert_eq!(x["grad_norm_max"], y["grad_norm_max"], "epoch {}", x["epoch"]);
    }
    let n = same_weights(&single.join("checkpoint/model.safetensors"), &dp.join("checkpoint/model.safetensors"));
    assert!(n > 20, "only {n} tensors compared");
    let info: serde_json::Value = serde_json::from_slice(&std::fs::read(dp.join("run.json")).unwrap()).unwrap();
    assert_eq!(info["world_size"], 2);
    for f in ["report.md", "best.safetensors", "predictions_test.csv"] {
        assert!(dp.join(f).exists(), "rank 0 did not write {f}");
    }

    // Rank 1 dies at the start of epoch 2 (SIGKILL, as a lost node): the job ends, not hangs.
    let killed = root.join("killed");
    let mut c = mpirun();
    c.args(["-x", "MOODGRAD_INJECT_FAULT=kill_rank_1_in_epoch_2"]);
    c.arg(env!("CARGO_BIN_EXE_moodgrad")).args(train_args(&data, &acc1, &killed));
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > Duration::from_secs(240) {
            child.kill().unwrap();
            panic!("the job still ran 240 s after rank 1 was killed: a rank waits for ever");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let o = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(!status.success(), "the job succeeded though rank 1 was killed:\n{text}");
    assert!(text.contains("signal 9") || text.contains("Killed"), "mpirun did not say why:\n{text}");
    assert_eq!(log(&killed).len(), 1, "epoch 1 should be the last whole one");
    eprintln!("killed job ended {:.1} s after start", start.elapsed().as_secs_f64());

    // Resuming at another world size is refused, naming both.
    let mut resume = train_args(&data, &acc1, &killed);
    resume.push("--resume");
    let (ok, out) = moodgrad(&resume);
    assert!(!ok && out.contains("trained by 2 process(es)") && out.contains("this --resume has 1"), "{out}");

    let mut c = mpirun();
    c.arg(env!("CARGO_BIN_EXE_moodgrad")).args(&resume);
    let (ok, out) = output(c);
    assert!(ok, "mpirun --resume failed:\n{out}");
    assert!(out.contains("resumed after epoch 1"), "{out}");
    assert_eq!(log(&killed).len(), 3);
    same_bits(&dp.join("checkpoint/model.safetensors"), &killed.join("checkpoint/model.safetensors"));
    same_bits(&dp.join("best.safetensors"), &killed.join("best.safetensors"));
}

#[test]
fn a_rank_reading_other_data_is_refused_naming_it() {
    if !mpi_ready() {
        return;
    }
    let root = tmp("otherdata");
    let (d0, d1) = (root.join("d0"), root.join("d1"));
    synth(&d0, 12, 3);
    synth(&d1, 12, 4);
    let cfg = config(&root, 1);
    let out_dir = root.join("run");
    let bin = env!("CARGO_BIN_EXE_moodgrad");
    // Two single-rank programs joined by `:` (MPMD), one data folder each.
    let mut c = Command::new("mpirun");
    c.args(["--oversubscribe", "--mca", "btl", "self,vader", "-x", "RAYON_NUM_THREADS=2", "-n", "1", bin]);
    c.args(train_args(&d0, &cfg, &out_dir)).args([":", "-n", "1", bin]).args(train_args(&d1, &cfg, &out_dir));
    c.env("OMPI_ALLOW_RUN_AS_ROOT", "1").env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    let (ok, out) = output(c);
    assert!(!ok, "ranks with different data trained:\n{out}");
    assert!(out.contains("the data") && out.contains("differs between ranks: rank 1 (--data"), "{out}");
    assert!(out.contains(s(&d1)), "the message should name rank 1's folder:\n{out}");
    assert!(!out_dir.join("config.toml").exists(), "a refused job wrote its run folder");
}

#[test]
fn a_half_set_launcher_environment_is_refused() {
    let root = tmp("halfset");
    let cfg = config(&root, 1);
    let o = bin()
        .args(train_args(&root.join("nodata"), &cfg, &root.join("run")))
        .env("RANK", "1")
        .env_remove("WORLD_SIZE")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(text.contains("RANK is set but WORLD_SIZE is not"), "{text}");
}

/// `compare` under `mpirun -n 2`: each rank trains every other run, rank 0 writes the table,
/// the same table as one process's.
#[test]
fn a_sweep_over_two_ranks_gives_the_single_process_table() {
    if !mpi_ready() {
        return;
    }
    let root = tmp("sweep");
    let data = root.join("data");
    synth(&data, 12, 29);
    // compare applies a file's keys over each model's preset: the tiny network, spelled out.
    let cfg = root.join("small.toml");
    std::fs::write(
        &cfg,
        "[model]\nchannels = [8, 16]\nse_reduction = 4\naudio_hidden = 16\naudio_out = 8\nhead_hidden = 16\n\
         [lyrics]\nmodel = \"builtin\"\nlr = 1e-3\nmax_len = 64\n[train]\nbatch_size = 4\npatience = 3\n\
         [data]\nsplit = \"random\"\n",
    )
    .unwrap();
    let args = |out: &Path| -> Vec<String> {
        ["compare", "--data", s(&data), "--out", s(out), "--models", "model3", "--config", s(&cfg)]
            .iter()
            .chain(&["--epochs", "1", "--seeds", "2", "--device", "cpu"])
            .map(|x| x.to_string())
            .collect()
    };
    let table = |out: &Path| -> String {
        let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
        md.split_once("Runs (this call):").unwrap().0.to_string()
    };
    let one = root.join("one");
    let a = args(&one);
    let (ok, text) = moodgrad(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{text}");
    let two = root.join("two");
    let mut c = mpirun();
    c.arg(env!("CARGO_BIN_EXE_moodgrad")).args(args(&two));
    let (ok, text) = output(c);
    assert!(ok, "{text}");
    assert!(text.contains("shard 0/2 finished its 2 of 4 runs") && text.contains("shard 1/2 finished"), "{text}");
    assert_eq!(table(&two), table(&one), "two ranks");
}

/// The tiny preset with SyncBatchNorm, batch 6 (two ranks hold 3 + 3, and the 16 training songs
/// leave a last batch of 4 = 2 + 2: equal halves, so the mean of the two ranks' mean losses is the
/// whole batch's mean loss), the audio network alone with no dropout (masks are drawn per
/// micro-batch, so with dropout, which the built-in lyrics encoder always has, the two runs would
/// agree in distribution only).
fn sync_config(dir: &Path, sync: bool) -> PathBuf {
    let p = dir.join(format!("sync_{sync}.toml"));
    std::fs::create_dir_all(dir).unwrap();
    let text = format!(
        "preset = \"tiny\"\n[model]\ndropout = 0.0\nmodality = \"audio\"\n[train]\nbatch_size = 6\nepochs = 3\npatience = 10\n\
         sync_batchnorm = {sync}\n"
    );
    std::fs::write(&p, text).unwrap();
    p
}

/// Largest |a − b| over a tensor, relative to the tensor's largest |a| (at least 1e-3, so a
/// tensor of near-zeros is judged on the scale of its neighbours, not its own).
fn rel_diff(a: &[f64], b: &[f64]) -> f64 {
    let scale = a.iter().fold(1e-3f64, |m, x| m.max(x.abs()));
    a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// SyncBatchNorm under `mpirun -n 2` against one process at the whole batch (accumulate = 1).
/// The same computation in exact arithmetic, but not in f32: the single process's BatchNorm sums
/// each channel in one pass over the whole batch, the synced one sums each rank's half and adds the
/// two, and normalises with statistics computed in f64 on the host; each rounding is ~6e-8 of a
/// value, and 9 steps of Adam (whose update is a ratio of gradient moments, so it passes a
/// gradient's relative error on nearly unchanged) let those grow to 7e-6 of a tensor's scale (measured). The bound,
/// 1e-4 of each tensor's scale, leaves 15× headroom and is still 100× below one step's change
/// (Adam moves a weight by ~lr = 1e-3). Excluded: the conv biases in front of BatchNorm (their
/// gradient is exactly 0 in exact arithmetic and rounding noise in f32, which Adam turns into
/// steps of ±lr; they do not change what the network computes) and the running means that carry
/// them.
#[test]
fn sync_batchnorm_over_two_ranks_equals_one_process_at_the_whole_batch() {
    if !mpi_ready() {
        return;
    }
    let root = tmp("syncbn");
    let data = root.join("data");
    synth(&data, 21, 41);
    let (on, off) = (sync_config(&root, true), sync_config(&root, false));

    let single = root.join("single");
    let (ok, out) = moodgrad(&train_args(&data, &off, &single));
    assert!(ok, "single process failed:\n{out}");
    // One process: the batch is already whole, so the key changes nothing, bit for bit.
    let single_on = root.join("single_on");
    let (ok, out) = moodgrad(&train_args(&data, &on, &single_on));
    assert!(ok, "single process with sync_batchnorm failed:\n{out}");
    same_bits(&single.join("checkpoint/model.safetensors"), &single_on.join("checkpoint/model.safetensors"));

    let dp = root.join("dp");
    let mut c = mpirun();
    c.arg(env!("CARGO_BIN_EXE_moodgrad")).args(train_args(&data, &on, &dp));
    let (ok, out) = output(c);
    assert!(ok, "mpirun -n 2 with sync_batchnorm failed:\n{out}");
    assert!(out.contains("SyncBatchNorm: batch statistics over every rank's songs"), "{out}");

    let a = moodgrad::io::read(&single.join("checkpoint/model.safetensors")).unwrap();
    let b = moodgrad::io::read(&dp.join("checkpoint/model.safetensors")).unwrap();
    let (mut n, mut worst, mut bn) = (0, (0.0f64, String::new()), 0);
    for (k, t) in &a.tensors {
        let conv_bias = k.starts_with("audio_tower.features.") && k.ends_with(".bias") && {
            // The layer after this one is a BatchNorm when it has running statistics.
            let idx: usize = k.split('.').nth(2).unwrap().parse().unwrap();
            a.tensors.contains_key(&format!("audio_tower.features.{}.running_mean", idx + 1))
        };
        if conv_bias || k.ends_with("running_mean") || k.ends_with("num_batches_tracked") {
            continue;
        }
        let d = rel_diff(&t.to_f64(), &b.tensors[k].to_f64());
        if d > worst.0 {
            worst = (d, k.clone());
        }
        bn += usize::from(k.ends_with("running_var"));
        n += 1;
    }
    eprintln!("SyncBatchNorm vs one process: worst {:.2e} ({}), {n} tensors", worst.0, worst.1);
    assert!(n >= 15 && bn >= 2, "only {n} tensors ({bn} running variances) compared");
    assert!(worst.0 < 1e-4, "{} differs by {:.2e} of its scale", worst.1, worst.0);
    // Per-rank BatchNorm (the default) at these settings is a different computation: the bound
    // above must be able to tell the two apart.
    let per_rank = root.join("per_rank");
    let mut c = mpirun();
    c.arg(env!("CARGO_BIN_EXE_moodgrad")).args(train_args(&data, &off, &per_rank));
    let (ok, out) = output(c);
    assert!(ok, "{out}");
    let p = moodgrad::io::read(&per_rank.join("checkpoint/model.safetensors")).unwrap();
    let far = a
        .tensors
        .iter()
        .filter(|(k, _)| k.ends_with("running_var"))
        .map(|(k, t)| rel_diff(&t.to_f64(), &p.tensors[k].to_f64()))
        .fold(0.0, f64::max);
    eprintln!("per-rank BatchNorm vs one process: running variances differ by {far:.2e}");
    assert!(
        far > 1e-3,
        "per-rank BatchNorm came within {far:.2e} of the whole batch's: the test cannot tell them apart"
    );
}
