//! One training run end to end, as `moodgrad train`, `demo` and `compare` run it: the data
//! opened (and preprocessed if needed), the lyrics side built, the session trained by `fit`, then
//! the test split's predictions and the report.

use super::config::{Config, Modality};
use super::dataset::{self, SongRecord, TrainData};
use super::dist::{Group, ddp, sync_bn};
use super::fit::{FitSummary, fit_in};
use super::infer::predict_shared;
use super::init_weights::{self, InitWeights};
use super::lyrics::LyricsSide;
use super::lyrics_encoder::{self, LyricsPlaces};
use super::outputs::write_report;
use super::predictions::PredictionRow;
use super::report::TrainingSummary;
use super::run_dir::RunDir;
use super::session::Session;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::params::ParamStore;
use std::path::Path;
use std::sync::Arc;

/// The lyrics half for this config over `data`'s songs (see `train::lyrics_encoder`).
pub fn lyrics_side<B: Backend>(
    cfg: &Config,
    store: &mut ParamStore<B>,
    data: &TrainData,
    places: &LyricsPlaces,
    say: &mut dyn FnMut(&str),
) -> Result<Box<dyn LyricsSide<B>>> {
    if cfg.model.modality != Modality::Audio && !cfg.lyrics.vectors.is_empty() {
        return Ok(Box::new(lyrics_encoder::vectors_from_file(cfg, &data.songs)?));
    }
    // `build` gives audio-only models no lyrics side; only the others read their lyric files.
    let texts =
        if cfg.model.modality == Modality::Audio { Vec::new() } else { lyrics_encoder::read_texts(&data.songs, say)? };
    lyrics_encoder::build(cfg, store, texts, &data.splits.train, places, say)
}

/// Where a run starts: fresh (the seed's initialisation, or `init` weights) or resumed from
/// its checkpoint.
#[derive(Clone, Debug, Default)]
pub struct RunStart {
    pub resume: bool,
    pub init: Option<InitWeights>,
}

impl RunStart {
    pub fn fresh() -> Self {
        RunStart::default()
    }
    pub fn resume(resume: bool) -> Self {
        RunStart { resume, init: None }
    }
}

/// Trains `cfg` on `data_dir` into `out` (or resumes it) and evaluates the test split; returns
/// the test predictions. `say` receives the progress lines. Nothing is written to `out` until the
/// data, the lyrics side and any initial weights have loaded: a run that cannot start leaves the
/// folder as it was.
pub fn train_run<B: Backend>(
    be: B,
    cfg: Config,
    data_dir: &Path,
    out: &Path,
    start: &RunStart,
    say: &mut dyn FnMut(&str),
) -> Result<Vec<PredictionRow>> {
    train_run_in(&Group::single(), be, cfg, data_dir, out, start, say)
}

/// `train_run` as one rank of `group` (data-parallel: see `fit::fit_in`). Rank 0 prepares the
/// shared caches first and alone writes `out`; every rank checks that the others read the same
/// split and start from the same weights. A resumed run continues at the world size it started
/// with (`run.json`'s `world_size`).
pub fn train_run_in<B: Backend>(
    group: &Group,
    be: B,
    cfg: Config,
    data_dir: &Path,
    out: &Path,
    start: &RunStart,
    say: &mut dyn FnMut(&str),
) -> Result<Vec<PredictionRow>> {
    let resume = start.resume;
    if resume && start.init.is_some() {
        return Err(Error::Invalid(
            "--init-weights starts a new run, --resume continues one from its checkpoint: give one of them".into(),
        ));
    }
    let root = group.is_root();
    let mut quiet = |_: &str| {};
    // The other ranks would repeat rank 0's lines word for word.
    let say: &mut dyn FnMut(&str) = if root { say } else { &mut quiet };
    let run = RunDir::new(out);
    say(&format!("moodgrad train: preset {} → {} on {}", cfg.preset, out.display(), be.name()));
    if group.size() > 1 {
        say(&format!(
            "  data-parallel over {} ranks: each batch of {} songs shared as {} micro-batch(es) of ~{} songs",
            group.size(),
            cfg.train.batch_size,
            group.size() * cfg.train.accumulate,
            cfg.train.batch_size.div_ceil(group.size() * cfg.train.accumulate)
        ));
    }
    if resume {
        check_world_size(&run, group.size())?;
    }
    // Before any work: a lyrics model that cannot be found stops the run here.
    lyrics_encoder::check_model(&cfg)?;
    // Preprocessing fills the data's cache: rank 0 alone, then the others find it done.
    let data = group.root_first(|| dataset::open(data_dir, cfg.data.preprocessing, cfg.data.split))?;
    for n in &data.notes {
        say(&format!("  {n}"));
    }
    let here = format!("--data {} on {}", data_dir.display(), super::fit::host_name());
    ddp::check_same(
        group.comm.as_ref(),
        "the data (songs, targets and spectrogram files of the train/validate/test split)",
        &split_digest(&data),
        &here,
        "give every rank the same --data folder (a shared file system, or identical copies)",
    )?;
    let cfg_text = cfg.to_toml()?;
    ddp::check_same(
        group.comm.as_ref(),
        "the resolved config",
        cfg_text.as_bytes(),
        &here,
        "start every rank with the same command line",
    )?;
    let sync_bn = cfg.train.sync_batchnorm && group.size() > 1;
    if sync_bn {
        sync_bn::check_every_rank_steps(
            data.splits.train.len(),
            cfg.train.batch_size,
            group.size(),
            cfg.train.accumulate,
        )?;
    }
    if root {
        run.check(&cfg, resume)?;
    }
    let songs = Arc::new(data.songs.clone());
    let mut store = ParamStore::new(be);
    let files = run.encoder_files();
    let places = LyricsPlaces { cache: Some(&data.cache), encoder_files: &files, learn: !resume };
    // The lyric vector cache is shared too.
    let lyrics = group.root_first(|| lyrics_side(&cfg, &mut store, &data, &places, say))?;
    // Rank 0 writes the run folder next, the built-in encoder's learned vocabulary included: no
    // rank may still be building its lyrics side then, or it would find those files and load
    // them instead of learning the vocabulary as rank 0 did (other starting weights).
    group.comm.barrier()?;
    let mut s = Session::new(cfg.clone(), store, lyrics, data.splits.train.len())?;
    let init = match &start.init {
        Some(w) => {
            let record = init_weights::apply(&mut s, w)?;
            for l in &record.lines {
                say(&format!("  {l}"));
            }
            Some(record.json)
        }
        None => None,
    };
    if root {
        if !resume {
            run.create(&cfg)?;
            s.lyrics.save_learned(&files)?;
        }
        write_info(&run, data_dir, &data, &s, init, group.size())?;
    }
    if resume {
        let ck = super::checkpoint::load(&run.checkpoint())?;
        s.restore(&run.checkpoint(), &ck, Some(&run.best()))?;
        say(&format!("  resumed after epoch {}", s.epochs_done));
    }
    if group.size() > 1 {
        let mut digest = ddp::state_digest(&s.store)?;
        digest.extend(s.rng.state().to_le_bytes());
        digest.extend((s.epochs_done as u64).to_le_bytes());
        ddp::check_same(
            group.comm.as_ref(),
            "the starting weights (and the run's random state)",
            &digest,
            &here,
            "every rank must read the same --init-weights file or checkpoint (a shared file system for --out)",
        )?;
    }
    say(&format!(
        "  {} parameters; songs: train {} / validate {} / test {}; lyrics: {}",
        s.store.num_params(),
        data.splits.train.len(),
        data.splits.validate.len(),
        data.splits.test.len(),
        s.lyrics.describe()
    ));
    if sync_bn {
        s.net.set_sync_batchnorm(Some(sync_bn::GroupReplicas::for_this_thread(group.comm.clone())));
        say("  SyncBatchNorm: batch statistics over every rank's songs (the conv → BatchNorm units run unfused)");
    }
    let summary = fit_in(group, &mut s, &data, &songs, &run, say)?;
    finish(group, &run, &mut s, &data, &songs, &summary, say)
}

/// Refuses to resume at another world size than the run's (`run.json`; runs before it was
/// recorded ran one process): the batches would be cut otherwise and the resumed run would not
/// be the one that started.
fn check_world_size(run: &RunDir, now: usize) -> Result<()> {
    let Ok(bytes) = std::fs::read(run.info()) else { return Ok(()) };
    let was = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("world_size").and_then(|w| w.as_u64()))
        .unwrap_or(1) as usize;
    if was == now {
        return Ok(());
    }
    Err(Error::file(
        run.info(),
        format!(
            "the run was trained by {was} process(es) (world_size = {was}) and this --resume has {now}: resume it with              {was} (e.g. `mpirun -n {was} moodgrad train … --resume`), or start a new --out"
        ),
    ))
}

/// A digest of what a run reads from its data: each split's songs in order with their targets,
/// quadrants and spectrogram files (name and size).
fn split_digest(data: &TrainData) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (name, split) in
        [("train", &data.splits.train), ("validate", &data.splits.validate), ("test", &data.splits.test)]
    {
        h.update(format!("{name}:{}\n", split.len()).as_bytes());
        for &i in split.iter() {
            let s = &data.songs[i];
            let size = std::fs::metadata(&s.spectrogram).map(|m| m.len()).unwrap_or(0);
            let file = s.spectrogram.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
            h.update(format!("{}|{}|{}|{}|{file}|{size}\n", s.id, s.valence, s.arousal, s.quadrant.index()).as_bytes());
        }
    }
    h.finalize().to_vec()
}

/// `run.json`: what a later `evaluate`/`predict` needs to find again.
/// A resumed run keeps the initial weights its first start recorded.
fn write_info<B: Backend>(
    run: &RunDir,
    data_arg: &Path,
    data: &TrainData,
    s: &Session<B>,
    init: Option<serde_json::Value>,
    world_size: usize,
) -> Result<()> {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()).display().to_string();
    let init = match init {
        Some(v) => v,
        None => std::fs::read(run.info())
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("init_weights").cloned())
            .unwrap_or(serde_json::Value::Null),
    };
    let info = serde_json::json!({
        "moodgrad": env!("CARGO_PKG_VERSION"),
        "data": abs(data_arg),
        "cache": abs(&data.cache),
        "lyrics": s.lyrics.describe(),
        "lyrics_dim": s.lyrics.dim(),
        "device": s.store.backend.name(),
        "songs": {"train": data.splits.train.len(), "validate": data.splits.validate.len(), "test": data.splits.test.len()},
        "init_weights": init,
        "world_size": world_size,
    });
    crate::io::write_atomic(&run.info(), serde_json::to_string_pretty(&info).expect("JSON").as_bytes())
}

fn finish<B: Backend>(
    group: &Group,
    run: &RunDir,
    s: &mut Session<B>,
    data: &TrainData,
    songs: &Arc<Vec<SongRecord>>,
    f: &FitSummary,
    say: &mut dyn FnMut(&str),
) -> Result<Vec<PredictionRow>> {
    match f.best {
        Some((e, l)) => say(&format!(
            "best epoch {e} (validation loss {l:.5}); the run ends with the weights of epoch {} ({})",
            f.restored_epoch.unwrap_or(e),
            if s.keeps_best() {
                "a deep copy of the best epoch"
            } else {
                "legacy: the last epoch, the seed's shallow copy"
            }
        )),
        None => say("no epoch had a finite validation loss"),
    }
    let bs = s.cfg.train.batch_size;
    let (rows, _) = predict_shared(s, songs, &data.splits.test, bs, group)?;
    if !group.is_root() {
        return Ok(rows);
    }
    let report = super::predictions::evaluate("test", &rows);
    let training = TrainingSummary {
        epochs_run: s.epochs_done,
        max_epochs: s.cfg.train.epochs,
        best: f.best,
        restored_epoch: f.restored_epoch,
        stopped_early: f.stopped_early,
        seconds: f.seconds,
        samples_per_s: mean_samples_per_s(run),
    };
    let model = describe(&s.cfg);
    let path = write_report(run, &model, "test", data, &rows, training, s.cfg.train.seed)?;
    say(&format!(
        "test: valence MAE {:.4} R² {:.3} | arousal MAE {:.4} R² {:.3} | quadrant accuracy {:.3}",
        report.valence.mae, report.valence.r2, report.arousal.mae, report.arousal.r2, report.quadrant.accuracy
    ));
    say(&format!("report: {}", path.display()));
    Ok(rows)
}

/// One line naming what was trained, for reports.
pub fn describe(cfg: &Config) -> String {
    format!(
        "preset {}, {} conv(s) per block, channels {:?}, {} attention, {} preprocessing, modality {}, lyrics {} ({})",
        cfg.preset,
        cfg.model.convs_per_block,
        cfg.model.channels,
        cfg.model.attention.name(),
        cfg.data.preprocessing.name(),
        cfg.model.modality.name(),
        cfg.lyrics.model,
        cfg.lyrics.mode.name()
    )
}

/// Mean training throughput over the run's logged epochs.
fn mean_samples_per_s(run: &RunDir) -> f64 {
    let recs = super::log::read_log(&run.log()).unwrap_or_default();
    if recs.is_empty() { 0.0 } else { recs.iter().map(|r| r.samples_per_s).sum::<f64>() / recs.len() as f64 }
}
