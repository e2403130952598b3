//! The training loop: shuffled (or fixed-order) batches, dropout, clipping, the schedule, early stopping that
//! restores a deep copy of the true best epoch, one log line and one checkpoint per epoch.
//!
//! Determinism: every random choice (the shuffle, each step's dropout seed) comes from the
//! session's RNG, which the checkpoint saves; a run resumed from the checkpoint of epoch k replays
//! epoch k + 1 exactly, so after a kill at any instant `--resume` ends with the same weights as an
//! uninterrupted run, bit for bit on the CPU.

use super::checkpoint;
use super::dataset::{SongRecord, TrainData};
use super::infer::predict;
use super::log::{EpochRecord, GroupLr, LogWriter, SplitMetrics, read_log};
use super::metrics::MetricsAcc;
use super::run_dir::RunDir;
use super::session::Session;
use super::step::{Objective, StepOptions, train_step_accumulated};
use crate::backend::Backend;
use crate::cputime::{PhaseTime, Stopwatch, timed};
use crate::error::{Error, Result};
use crate::io;
use crate::optim::Interval;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Instant;

/// How a fit ended.
#[derive(Clone, Debug)]
pub struct FitSummary {
    pub epochs_run: usize,
    /// (epoch, validation loss) of the lowest validation loss.
    pub best: Option<(usize, f64)>,
    /// The epoch whose weights the run ends with.
    pub restored_epoch: Option<usize>,
    pub stopped_early: bool,
    pub seconds: f64,
}

fn bar(len: u64, epoch: usize, epochs: usize) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg}")
        .expect("a valid template")
        .progress_chars("=> ");
    pb.set_style(style);
    pb.set_prefix(format!("{epoch}/{epochs}"));
    pb
}

/// Trains until the configured epochs or early stopping, from wherever `s` stands (a fresh
/// session or one restored from `run`'s checkpoint). `say` receives one line per epoch.
pub fn fit<B: Backend>(
    s: &mut Session<B>,
    data: &TrainData,
    songs: &Arc<Vec<SongRecord>>,
    run: &RunDir,
    say: &mut dyn FnMut(&str),
) -> Result<FitSummary> {
    let t_start = Instant::now();
    let epochs = s.cfg.train.epochs;
    let bs = s.cfg.train.batch_size;
    let clip = s.cfg.clip();
    // A resumed run continues the same log: drop lines of epochs the checkpoint does not cover
    // (an epoch logged just before a kill is redone, identically).
    if s.epochs_done > 0 && run.log().exists() {
        let kept: Vec<EpochRecord> = read_log(&run.log())?.into_iter().filter(|r| r.epoch <= s.epochs_done).collect();
        let mut text = String::new();
        for r in &kept {
            text += &serde_json::to_string(r).expect("an epoch record serialises");
            text.push('\n');
        }
        crate::io::write_atomic(&run.log(), text.as_bytes())?;
    }
    let mut log = LogWriter::append_to(&run.log())?;
    let mut epochs_run = 0;
    // A run resumed after early stopping had already stopped: it does not train further.
    let already_stopped = s.epochs_done > 0 && s.es.bad_epochs() >= s.es.patience;
    let mut stopped_early = already_stopped && s.epochs_done < epochs;
    while s.epochs_done < epochs && !already_stopped {
        let epoch = s.epochs_done + 1;
        let t0 = Instant::now();
        let mut order = data.splits.train.clone();
        if s.cfg.train.shuffle {
            for i in (1..order.len()).rev() {
                order.swap(i, s.rng.below(i + 1));
            }
        }
        let plan = super::loader::batches(&order, bs);
        let pb = bar(plan.len() as u64, epoch, epochs);
        let (mut acc, mut loss_sum, mut norms) = (MetricsAcc::default(), 0.0, Vec::new());
        // Time blocked on the loader thread (data loading that did not overlap compute), and
        // the steps' wall and CPU time (both cores busy?).
        let (mut data_wait, mut steps) = (0.0, PhaseTime::default());
        let mut loader = super::loader::Prefetch::new(songs.clone(), plan.clone()).enumerate();
        loop {
            let (next, wait) = timed(|| loader.next());
            data_wait += wait.wall_s;
            let Some((k, b)) = next else { break };
            let mut host = b?;
            if k == 0 && crate::fault::stall_epoch() == Some(epoch) {
                // Hold here until killed: a kill inside this epoch whatever the machine's speed.
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
            }
            let sw = Stopwatch::start();
            let seed = s.rng.next_u64();
            if epoch == 2 && crate::fault::injected("nan_loss_epoch_2") {
                host.target[0] = f32::NAN;
            }
            let upload = |h: &super::loader::HostBatch| h.upload(&s.store.backend, songs, s.net.config.inputs);
            let micro = match s.cfg.train.accumulate {
                1 => vec![upload(&host)?],
                k => host.split(k).iter().map(upload).collect::<Result<Vec<_>>>()?,
            };
            let options = StepOptions { objective: Objective::of(&s.cfg.train), clip, seed };
            let step =
                train_step_accumulated(&s.net, &mut s.store, &mut s.opt, s.lyrics.as_mut(), &micro, &options, None);
            let r = step.map_err(|e| match e {
                Error::NonFinite(why) => {
                    let ids: Vec<&str> = host.songs.iter().map(|&i| songs[i].id.as_str()).collect();
                    Error::NonFinite(format!(
                        "epoch {epoch}, step {}: {why}; songs {}; training stopped and the last good checkpoint \
                         ({}, epoch {}) is kept: lower the learning rate, or check those songs' spectrograms",
                        k + 1,
                        ids.join(", "),
                        run.checkpoint().display(),
                        s.epochs_done
                    ))
                }
                e => e,
            })?;
            let (lv, norm) = (r.loss, r.grad_norm);
            let pred = r.pred.to_f64(&s.store.backend)?;
            if s.sched.interval == Interval::Step {
                s.sched.step(&mut s.opt);
            }
            steps.add(sw.elapsed());
            let truth: Vec<f64> = host.target.iter().map(|&x| x as f64).collect();
            let labels: Vec<_> = host.songs.iter().map(|&i| songs[i].quadrant).collect();
            acc.push_batch(&truth, &pred, &labels)?;
            loss_sum += lv;
            norms.push(norm);
            pb.inc(1);
            pb.set_message(format!(
                "loss {:.4}  {:.1} samples/s",
                loss_sum / norms.len() as f64,
                acc.n() as f64 / steps.wall_s
            ));
        }
        pb.finish_and_clear();
        let (val_rows, val_loss) = predict(s, songs, &data.splits.validate, bs)?;
        let val = super::predictions::evaluate("validate", &val_rows);
        let verdict = s.es.observe(epoch, val_loss);
        if verdict.improved && s.keeps_best() {
            let snap = s.snapshot()?;
            io::write(&run.best(), &snap)?;
            s.best = Some(snap);
        }
        // The rates this epoch trained with, before the epoch-end schedule step, of the groups
        // that hold a trainable parameter (not the optimiser's empty fallback group).
        let used: std::collections::BTreeSet<usize> = s
            .store
            .param_ids()
            .into_iter()
            .filter(|&id| s.store.trainable(id))
            .map(|id| s.opt.group_of(s.store.name(id)))
            .collect();
        let lr: Vec<GroupLr> = s
            .opt
            .lrs()
            .into_iter()
            .enumerate()
            .filter(|(i, _)| used.contains(i))
            .map(|(_, (group, lr))| GroupLr { group, lr })
            .collect();
        if s.sched.interval == Interval::Epoch {
            s.sched.step(&mut s.opt);
        }
        s.epochs_done = epoch;
        epochs_run += 1;
        let n_steps = norms.len().max(1) as f64;
        let rec = EpochRecord {
            epoch,
            train: SplitMetrics::new(loss_sum / n_steps, &acc.finish("train")),
            val: SplitMetrics::new(val_loss, &val),
            grad_norm_mean: norms.iter().sum::<f64>() / n_steps,
            grad_norm_max: norms.iter().copied().fold(0.0, f64::max),
            lr,
            samples_per_s: acc.n() as f64 / steps.wall_s.max(1e-9),
            seconds: t0.elapsed().as_secs_f64(),
            data_wait_s: data_wait,
            train_cpu_per_wall: steps.busy_cores(),
            best: verdict.improved,
        };
        log.append(&rec)?;
        checkpoint::save(&run.checkpoint(), &s.checkpoint()?)?;
        say(&format!(
            "epoch {epoch:>3}/{epochs}  train loss {:.5}  val loss {val_loss:.5}  val MAE v {:.4} a {:.4}  {:.1} samples/s  \
             {:.1} s{}",
            rec.train.loss,
            val.valence.mae,
            val.arousal.mae,
            rec.samples_per_s,
            rec.seconds,
            if verdict.improved { "  (best so far)" } else { "" }
        ));
        if verdict.stop {
            stopped_early = s.epochs_done < epochs;
            if stopped_early {
                say(&format!("early stopping: {} epochs without a better validation loss", s.es.patience));
            }
            break;
        }
    }
    // The weights the run ends with: a deep copy of the best epoch (fixed), or the last epoch's
    // (legacy: what the seed's shallow `state_dict().copy()` really kept).
    match (&s.best, s.keeps_best()) {
        (Some(best), true) => io::load_state_dict(&mut s.store, &run.best(), best, &[])?,
        _ => io::write(&run.best(), &s.snapshot()?)?,
    }
    Ok(FitSummary {
        epochs_run,
        best: s.es.best(),
        restored_epoch: s.es.restored_epoch(),
        stopped_early,
        seconds: t_start.elapsed().as_secs_f64(),
    })
}
