//! The training loop: shuffled (or fixed-order) batches, dropout, clipping, the schedule, early stopping that
//! restores a deep copy of the true best epoch, one log line and one checkpoint per epoch.
//!
//! Determinism: every random choice (the shuffle, each step's dropout seed) comes from the
//! session's RNG, which the checkpoint saves; a run resumed from the checkpoint of epoch k replays
//! epoch k + 1 exactly, so after a kill at any instant `--resume` ends with the same weights as an
//! uninterrupted run, bit for bit on the CPU.

use super::checkpoint;
use super::dataset::{SongRecord, TrainData};
use super::dist::{Group, ddp};
use super::infer::predict_shared;
use super::log::{EpochRecord, GroupLr, LogWriter, SplitMetrics, read_log};
use super::metrics::MetricsAcc;
use super::run_dir::RunDir;
use super::session::Session;
use super::step::{Objective, StepOptions, train_step_accumulated, train_step_shared};
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
    fit_in(&Group::single(), s, data, songs, run, say)
}

/// `fit` as one rank of `group`, with DistributedDataParallel's semantics: every rank holds the
/// same weights and draws the same shuffle and dropout seeds; each batch of `batch_size` songs is
/// cut as one process with `accumulate = ranks × accumulate` would cut it (`loader::rank_share`),
/// each rank computing its micro-batches (BatchNorm on each alone); the gradients are summed in
/// micro-batch order (`ddp::exchange_gradients`) before the mean, the clip and Adam, so the
/// weights are those of that single process, bit for bit; rank 0's BatchNorm buffers are then
/// given to all (`broadcast_buffers`). Validation is shared batch by batch. Rank 0 alone writes
/// the log, the checkpoints and the best weights.
pub fn fit_in<B: Backend>(
    group: &Group,
    s: &mut Session<B>,
    data: &TrainData,
    songs: &Arc<Vec<SongRecord>>,
    run: &RunDir,
    say: &mut dyn FnMut(&str),
) -> Result<FitSummary> {
    let (root, dist) = (group.is_root(), group.size() > 1);
    let t_start = Instant::now();
    let epochs = s.cfg.train.epochs;
    let bs = s.cfg.train.batch_size;
    let clip = s.cfg.clip();
    // A resumed run continues the same log: drop lines of epochs the checkpoint does not cover
    // (an epoch logged just before a kill is redone, identically).
    if root && s.epochs_done > 0 && run.log().exists() {
        let kept: Vec<EpochRecord> = read_log(&run.log())?.into_iter().filter(|r| r.epoch <= s.epochs_done).collect();
        let mut text = String::new();
        for r in &kept {
            text += &serde_json::to_string(r).expect("an epoch record serialises");
            text.push('\n');
        }
        crate::io::write_atomic(&run.log(), text.as_bytes())?;
    }
    let mut log = if root { Some(LogWriter::append_to(&run.log())?) } else { None };
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
        // This rank's songs of each batch, its micro-batches among them and the first one's number.
        let shares: Vec<_> = plan
            .iter()
            .map(|b| super::loader::rank_share(b.len(), group.size(), s.cfg.train.accumulate, group.rank()))
            .collect();
        let reads = match dist {
            true => plan.iter().zip(&shares).map(|(b, (mine, _, _))| b[mine.clone()].to_vec()).collect(),
            false => plan.clone(),
        };
        let pb = bar(plan.len() as u64, epoch, epochs);
        let (mut acc, mut loss_sum, mut norms) = (MetricsAcc::default(), 0.0, Vec::new());
        // Time blocked on the loader thread (data loading that did not overlap compute), and
        // the steps' wall and CPU time (both cores busy?).
        let (mut data_wait, mut steps) = (0.0, PhaseTime::default());
        let mut loader = super::loader::Prefetch::new(songs.clone(), reads).enumerate();
        loop {
            let (next, wait) = timed(|| loader.next());
            data_wait += wait.wall_s;
            let Some((k, b)) = next else { break };
            let mut host = b?;
            if k == 0 && crate::fault::injected(&format!("kill_rank_{}_in_epoch_{epoch}", group.rank())) {
                // A rank lost at once, with no chance to say so (as a node failing): the others must
                // not wait for it for ever.
                // SAFETY: kill(2) on this process's own id.
                unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
            }
            if k == 0 && crate::fault::stall_epoch() == Some(epoch) {
                // Hold here until killed: a kill inside this epoch whatever the machine's speed.
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
            }
            let sw = Stopwatch::start();
            let seed = s.rng.next_u64();
            if epoch == 2
                && crate::fault::injected("nan_loss_epoch_2")
                && let Some(t) = host.target.first_mut()
            {
                *t = f32::NAN;
            }
            let upload = |h: &super::loader::HostBatch| h.upload(&s.store.backend, songs, s.net.config.inputs);
            let options = StepOptions { objective: Objective::of(&s.cfg.train), clip, seed };
            let step = if dist {
                let (_, parts, first) = &shares[k];
                let micro = parts.iter().map(|r| upload(&host.range(r.clone()))).collect::<Result<Vec<_>>>()?;
                let comm = group.comm.as_ref();
                let mut exchange =
                    |store: &mut crate::params::ParamStore<B>, l: &[f64]| ddp::exchange_gradients(comm, store, l);
                let (net, store, opt) = (&s.net, &mut s.store, &mut s.opt);
                train_step_shared(
                    net,
                    store,
                    opt,
                    s.lyrics.as_mut(),
                    &micro,
                    *first,
                    Some(&mut exchange),
                    &options,
                    None,
                )
            } else {
                let micro = match s.cfg.train.accumulate {
                    1 => vec![upload(&host)?],
                    k => host.split(k).iter().map(upload).collect::<Result<Vec<_>>>()?,
                };
                train_step_accumulated(&s.net, &mut s.store, &mut s.opt, s.lyrics.as_mut(), &micro, &options, None)
            };
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
            let mut pred = r.pred.to_f64(&s.store.backend)?;
            if dist {
                ddp::broadcast_buffers(group.comm.as_ref(), &mut s.store)?;
                // The whole batch's predictions, in rank order (the batch's order).
                let all = group.comm.all_gather(&super::dist::comm::f64_bytes(&pred))?;
                pred = all.iter().flat_map(|b| super::dist::comm::bytes_f64(b)).collect();
            }
            if s.sched.interval == Interval::Step {
                s.sched.step(&mut s.opt);
            }
            steps.add(sw.elapsed());
            // The loader's f32 targets, as the step saw them.
            let truth: Vec<f64> = plan[k]
                .iter()
                .flat_map(|&i| [songs[i].valence as f32 as f64, songs[i].arousal as f32 as f64])
                .collect();
            let labels: Vec<_> = plan[k].iter().map(|&i| songs[i].quadrant).collect();
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
        if dist {
            // Same code, same bits on every rank: a difference means a rank computes otherwise
            // (another binary, CPU or thread count), and going on would train N different models.
            let digest = ddp::state_digest(&s.store)?;
            let me = format!("pid {} on {}", std::process::id(), host_name());
            let fix = "run every rank with the same moodgrad binary, device and RAYON_NUM_THREADS on the same kind of                        CPU, then --resume";
            ddp::check_same(group.comm.as_ref(), &format!("the weights after epoch {epoch}"), &digest, &me, fix)?;
        }
        let (val_rows, val_loss) = predict_shared(s, songs, &data.splits.validate, bs, group)?;
        let val = super::predictions::evaluate("validate", &val_rows);
        let verdict = s.es.observe(epoch, val_loss);
        if verdict.improved && s.keeps_best() {
            let snap = s.snapshot()?;
            if root {
                io::write(&run.best(), &snap)?;
            }
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
        if let Some(log) = &mut log {
            log.append(&rec)?;
            checkpoint::save(&run.checkpoint(), &s.checkpoint()?)?;
        }
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
        _ if root => io::write(&run.best(), &s.snapshot()?)?,
        _ => {}
    }
    Ok(FitSummary {
        epochs_run,
        best: s.es.best(),
        restored_epoch: s.es.restored_epoch(),
        stopped_early,
        seconds: t_start.elapsed().as_secs_f64(),
    })
}

/// This machine's name, for messages that name a rank.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "this host".into())
}
