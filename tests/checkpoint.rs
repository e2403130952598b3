//! Checkpoints: resuming in a new process gives the same weights as never stopping, bit for bit
//! (CPU, f32); a kill at any point of a save leaves one whole checkpoint; damaged checkpoints are
//! refused by name and change nothing.

use moodgrad::backend::cpu::Cpu;
use moodgrad::io::{self, TensorFile};
use moodgrad::nn::{AttentionKind, ModelConfig, SeedNet};
use moodgrad::optim::{Adam, AdamConfig, Interval, LrScheduler, ParamGroup, Schedule};
use moodgrad::params::ParamStore;
use moodgrad::rng::Rng;
use moodgrad::tensor::Tensor;
use moodgrad::train::checkpoint::{self, Checkpoint};
use moodgrad::train::lyrics::NoLyrics;
use moodgrad::train::{Batch, StepOptions, train_step};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

type B = Cpu<f32>;

const SONGS: usize = 12;
const BATCH: usize = 4;
const STEPS_PER_EPOCH: usize = SONGS / BATCH;
const EPOCHS: usize = 4;

/// A small training run with everything a resume must restore: Adam over two groups, StepLR per
/// epoch, clipping, live dropout and a shuffle, both drawn from the run's RNG.
struct Run {
    net: SeedNet,
    store: ParamStore<B>,
    opt: Adam<B>,
    sched: LrScheduler,
    rng: Rng,
    /// (audio, lyrics, target) per song.
    data: Vec<(Vec<f64>, Vec<f64>, [f64; 2])>,
    step: usize,
}

fn config() -> ModelConfig {
    let mut cfg = ModelConfig::preset("model3", AttentionKind::Se).unwrap();
    cfg.channels = vec![4, 8, 8, 16];
    cfg.lyrics_dim = 6;
    cfg
}

impl Run {
    fn new() -> Run {
        let mut store = ParamStore::new(B::new());
        let net = SeedNet::new(config(), &mut store, &mut Rng::new(11)).unwrap();
        let groups = vec![ParamGroup {
            name: "audio".into(),
            prefixes: vec!["audio_tower.".into()],
            lr: 2e-3,
            weight_decay: 0.0,
        }];
        let mut opt = Adam::with_groups(AdamConfig { lr: 1e-3, weight_decay: 1e-4, ..Default::default() }, groups);
        let sched = LrScheduler::new(Schedule::Step { step_size: 2, gamma: 0.5 }, Interval::Epoch, &mut opt).unwrap();
        let mut d = Rng::new(5);
        let data = (0..SONGS)
            .map(|_| {
                let a = (0..16 * 16).map(|_| d.normal()).collect();
                let l = (0..6).map(|_| d.normal()).collect();
                (a, l, [d.uniform(), d.uniform()])
            })
            .collect();
        Run { net, store, opt, sched, rng: Rng::new(99), data, step: 0 }
    }

    fn batch(&self, order: &[usize]) -> Batch<B> {
        let be = &self.store.backend;
        let pick = |f: &dyn Fn(usize) -> Vec<f64>| order.iter().flat_map(|&i| f(i)).collect::<Vec<f64>>();
        Batch::with_vectors(
            Tensor::from_f64(be, &[BATCH, 1, 16, 16], &pick(&|i| self.data[i].0.clone())).unwrap(),
            Tensor::from_f64(be, &[BATCH, 6], &pick(&|i| self.data[i].1.clone())).unwrap(),
            Tensor::from_f64(be, &[BATCH, 2], &pick(&|i| self.data[i].2.to_vec())).unwrap(),
        )
    }

    /// Runs until `until` steps are done (each epoch's shuffle drawn at its first step).
    fn train(&mut self, until: usize, order: &mut Vec<usize>) {
        while self.step < until {
            let k = self.step % STEPS_PER_EPOCH;
            if k == 0 {
                *order = (0..SONGS).collect();
                for i in (1..SONGS).rev() {
                    order.swap(i, self.rng.below(i + 1));
                }
            }
            let b = self.batch(&order[k * BATCH..(k + 1) * BATCH]);
            let seed = self.rng.next_u64();
            let options = StepOptions::mse(Some(1.0), seed);
            train_step(&self.net, &mut self.store, &mut self.opt, &mut NoLyrics, &b, &options, None).unwrap();
            self.step += 1;
            if self.step.is_multiple_of(STEPS_PER_EPOCH) {
                self.sched.step(&mut self.opt);
            }
        }
    }

    fn save(&self, dir: &Path, order: &[usize]) {
        let ck = Checkpoint {
            model: TensorFile { tensors: io::state_dict(&self.store).unwrap(), metadata: Default::default() },
            optimizer: self.opt.export_state(&self.store).unwrap(),
            scheduler: self.sched.to_json(&self.opt),
            rng: json!({"train": self.rng.state()}),
            user: json!({"step": self.step, "order": order}),
        };
        checkpoint::save(dir, &ck).unwrap();
    }

    fn resume(dir: &Path) -> (Run, Vec<usize>) {
        let ck = checkpoint::load(dir).unwrap();
        let mut r = Run::new();
        io::load_state_dict(&mut r.store, dir, &ck.model, &[]).unwrap();
        r.opt.load_state(&r.store, dir, &ck.optimizer).unwrap();
        let st = LrScheduler::state_from_json(&ck.scheduler).unwrap();
        r.sched.restore(&st, &mut r.opt).unwrap();
        r.rng = Rng::new(ck.rng["train"].as_u64().unwrap());
        r.step = ck.user["step"].as_u64().unwrap() as usize;
        let order = ck.user["order"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        (r, order)
    }

    /// Every float of the state_dict as raw bits.
    fn bits(&self) -> BTreeMap<String, Vec<u64>> {
        io::state_dict(&self.store)
            .unwrap()
            .into_iter()
            .map(|(k, t)| (k, t.to_f64().iter().map(|x| x.to_bits()).collect()))
            .collect()
    }
}

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("moodgrad-ckpt-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The child half of the resume test: runs only when the parent sets MOODGRAD_RESUME_DIR.
#[test]
fn resume_child() {
    let Ok(dir) = std::env::var("MOODGRAD_RESUME_DIR") else { return };
    let dir = PathBuf::from(dir);
    let (mut r, mut order) = Run::resume(&dir.join("checkpoint"));
    r.train(EPOCHS * STEPS_PER_EPOCH, &mut order);
    let file = TensorFile { tensors: io::state_dict(&r.store).unwrap(), metadata: Default::default() };
    io::write(&dir.join("resumed.safetensors"), &file).unwrap();
}

#[test]
fn resuming_in_a_new_process_matches_an_uninterrupted_run_bit_for_bit() {
    let total = EPOCHS * STEPS_PER_EPOCH;
    // First: the run is deterministic at all (two uninterrupted runs agree to the bit).
    let mut a = Run::new();
    a.train(total, &mut Vec::new());
    let mut b = Run::new();
    b.train(total, &mut Vec::new());
    assert_eq!(a.bits(), b.bits(), "two uninterrupted runs differ: nothing else can be tested");

    // Stop mid-epoch (step 5 of 12, after one scheduler step), checkpoint, resume elsewhere.
    let dir = tmp("resume");
    let mut c = Run::new();
    let mut order = Vec::new();
    c.train(5, &mut order);
    c.save(&dir.join("checkpoint"), &order);
    drop(c);
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "resume_child", "--nocapture", "--test-threads", "1"])
        .env("MOODGRAD_RESUME_DIR", &dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "child failed: {}", String::from_utf8_lossy(&out.stderr));
    let resumed = io::read(&dir.join("resumed.safetensors")).unwrap();
    let want = a.bits();
    assert_eq!(resumed.tensors.len(), want.len());
    for (k, t) in &resumed.tensors {
        let got: Vec<u64> = t.to_f64().iter().map(|x| x.to_bits()).collect();
        assert_eq!(&got, &want[k], "{k} differs after resuming");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn a_kill_at_any_point_of_a_save_leaves_one_whole_checkpoint() {
    let dir = tmp("kill");
    let ck = dir.join("checkpoint");
    let (tmpd, prev) = (dir.join("checkpoint.tmp"), dir.join("checkpoint.prev"));
    // Two complete checkpoints to stage the states a save passes through: at steps 2 and 4.
    let mut r = Run::new();
    let mut order = Vec::new();
    r.train(2, &mut order);
    r.save(&dir.join("old"), &order);
    r.train(4, &mut order);
    r.save(&dir.join("new"), &order);
    let step_of = |d: &Path| checkpoint::load(d).unwrap().user["step"].as_u64().unwrap();

    // Killed while writing the new one (no manifest yet): the old one is read.
    copy_dir(&dir.join("old"), &ck);
    copy_dir(&dir.join("new"), &tmpd);
    std::fs::remove_file(tmpd.join("MANIFEST.json")).unwrap();
    assert_eq!(step_of(&ck), 2, "a partial new checkpoint hid the old one");
    // Killed after the new one was complete but before the first rename: the newer is read.
    std::fs::copy(dir.join("new/MANIFEST.json"), tmpd.join("MANIFEST.json")).unwrap();
    assert_eq!(step_of(&ck), 4);
    // Killed between the two renames: only .prev and .tmp, both whole; the newer is read.
    std::fs::rename(&ck, &prev).unwrap();
    assert_eq!(step_of(&ck), 4);
    // Killed after the second rename, before .prev was removed: the new one is in place.
    std::fs::rename(&tmpd, &ck).unwrap();
    assert_eq!(step_of(&ck), 4);
    // With only .prev left (the new one lost), it is read.
    std::fs::remove_dir_all(&ck).unwrap();
    assert_eq!(step_of(&ck), 2);
    // The next save puts the names back in order and replaces it.
    r.train(5, &mut order);
    r.save(&ck, &order);
    assert_eq!(step_of(&ck), 5);
    assert!(!prev.exists() && !tmpd.exists());
}

#[test]
fn damaged_checkpoints_are_refused_by_name_and_change_nothing() {
    let dir = tmp("damaged");
    let ck = dir.join("checkpoint");
    let mut r = Run::new();
    let mut order = Vec::new();
    r.train(3, &mut order);
    r.save(&ck, &order);
    // Truncated model file: the manifest's length and hash catch it, naming the file.
    let model = ck.join("model.safetensors");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
    let e = checkpoint::load(&ck).unwrap_err().to_string();
    assert!(e.contains("model.safetensors") && e.contains("truncated"), "{e}");
    std::fs::write(&model, &bytes).unwrap();
    // No checkpoint at all.
    let e = checkpoint::load(&dir.join("absent")).unwrap_err().to_string();
    assert!(e.contains("absent") && e.contains("no checkpoint"), "{e}");

    // A missing optimiser entry and a model file of another network: errors, nothing changed.
    let good = checkpoint::load(&ck).unwrap();
    let mut fresh = Run::new();
    let before = fresh.bits();
    let mut opt_bad = good.optimizer.clone();
    let key = opt_bad.tensors.keys().find(|k| k.ends_with(".exp_avg_sq")).unwrap().clone();
    opt_bad.tensors.remove(&key);
    let e = fresh.opt.load_state(&fresh.store, &ck, &opt_bad).unwrap_err().to_string();
    assert!(e.contains("missing optimiser entry") && e.contains(&key), "{e}");
    let mut model_bad = good.model.clone();
    let w = model_bad.tensors.get_mut("classifier_head.4.weight").unwrap();
    *w = io::HostTensor::f32(&[3, 100], vec![0.0; 300]);
    let e = io::load_state_dict(&mut fresh.store, &ck, &model_bad, &[]).unwrap_err().to_string();
    assert!(e.contains("classifier_head.4.weight") && e.contains("3x100") && e.contains("2x100"), "{e}");
    assert_eq!(fresh.bits(), before, "a refused load changed weights");
    assert_eq!(fresh.opt.step_count(fresh.store.find("classifier_head.4.weight").unwrap()), None);
}
