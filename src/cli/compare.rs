//! `moodgrad compare`: the guide's before/after study. For each model, the legacy variant
//! (legacy preprocessing + legacy attention + no clipping + the shallow-copy "best" = last
//! epoch) against the fixed one, same split, K seeds each, as `compare.md` and `compare.csv`.
//!
//! Every run is an ordinary RUN folder under `OUT/<model>/<fixed|legacy>/seed<k>/`; a run whose
//! test predictions exist is reused (only if its resolved config is the one asked for), an
//! interrupted one resumed, so a killed study continues; compare.md lists which runs were which.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::train::baselines;
use crate::train::compare::{ModelRuns, build};
use crate::train::config::Config;
use crate::train::dataset;
use crate::train::predictions::read_csv;
use crate::train::run::{RunStart, train_run};
use crate::train::run_dir::RunDir;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Clone, Debug)]
pub struct CompareArgs {
    /// A MERGE folder (both caches, fixed and legacy, are built inside it).
    #[arg(long)]
    pub data: PathBuf,
    /// Where the runs and the table go.
    #[arg(long)]
    pub out: PathBuf,
    /// Presets to compare.
    #[arg(long, default_value = "model3,model4,model5", value_delimiter = ',')]
    pub models: Vec<String>,
    /// A TOML file whose keys apply on top of every model's preset (its `preset` is each model's
    /// name); it may not set what tells the models apart (`model.convs_per_block`, `lyrics.mode`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// As train's: a directory, a hub name (NAME[@REVISION], downloaded when not cached), or builtin.
    #[arg(long)]
    pub lyrics_model: Option<String>,
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Seeds per variant: each cell becomes mean ± sd, each difference gets a bootstrap interval.
    #[arg(long, default_value_t = 1)]
    pub seeds: usize,
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Spread the study's independent runs over these devices, one run per device at a time
    /// (e.g. cuda:0,cuda:1,cuda:2,cuda:3); the table is the same however they are spread.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub devices: Vec<String>,
    /// Run only share I of N of the study's runs (run k when k mod N = I, in the table's order),
    /// e.g. from a Slurm job array (`--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`); then
    /// `--collect` with the same arguments writes the table.
    #[arg(long, value_name = "I/N", value_parser = parse_shard, conflicts_with = "collect")]
    pub shard: Option<(usize, usize)>,
    /// Train nothing: write the table from the finished runs under --out (all of them must be
    /// there, trained with this study's config).
    #[arg(long)]
    pub collect: bool,
    /// Convolution math: fp32, or tf32 on tensor cores; default tf32 on cuda, fp32 on cpu and sim
    /// (PyTorch's defaults: cudnn.allow_tf32, GEMMs fp32).
    #[arg(long)]
    pub precision: Option<String>,
}

/// Keys that make a preset the model it is: MODEL_3 against MODEL_4 (convs per block), MODEL_5
/// against both (its encoder fine-tunes in its own learning-rate group). A shared `--config` may
/// not set them, or every model of the study would become the same one.
const IDENTITY_KEYS: [(&str, &str); 2] = [("model", "convs_per_block"), ("lyrics", "mode")];

/// The fixed config of one model: its preset, then the keys the shared `--config` file sets
/// (its `preset` is each model's name), then `--epochs` and `--lyrics-model`. The built-in lyrics
/// encoder trains with every model (a frozen random encoder would feed the head noise).
pub fn model_config(a: &CompareArgs, model: &str) -> Result<Config> {
    let mut cfg = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| Error::file(p, format!("cannot read: {e}")))?;
            let mut table: toml::Table =
                text.parse().map_err(|e: toml::de::Error| Error::file(p, format!("not valid TOML: {e}")))?;
            for (section, key) in IDENTITY_KEYS {
                if table.get(section).and_then(|t| t.get(key)).is_some() {
                    return Err(Error::file(
                        p,
                        format!(
                            "`{section}.{key}` is what tells the compared models apart; compare keeps each preset's                              own value, so remove it from this file (train a single variant with `moodgrad train                              --config`)"
                        ),
                    ));
                }
            }
            table.insert("preset".into(), toml::Value::String(model.into()));
            let lyrics_model = table.get("lyrics").and_then(|t| t.get("model")).and_then(|m| m.as_str());
            let builtin = lyrics_model == Some(crate::train::config::BUILTIN);
            let mut cfg = Config::parse(&without_builtin_model(&table, builtin), p)?;
            if builtin {
                let _ = super::train::set_lyrics_model(&mut cfg, crate::train::config::BUILTIN);
                // The file's own encoder rate, if it gives one, over the model's that went with it.
                if let Some(lr) = table.get("lyrics").and_then(|t| t.get("lr")) {
                    cfg.lyrics.lr = lr.as_float().or(lr.as_integer().map(|i| i as f64)).unwrap_or(cfg.lyrics.lr);
                }
            }
            cfg
        }
        None => Config::preset(model)?,
    };
    if let Some(e) = a.epochs {
        cfg.train.epochs = e;
    }
    if let Some(m) = &a.lyrics_model {
        let _ = super::train::set_lyrics_model(&mut cfg, m);
    }
    cfg.validate()?;
    Ok(cfg)
}

/// The table as TOML text, with `[lyrics] model = "builtin"` left out when `builtin` (set after
/// parsing, with the mode that goes with it, by `set_lyrics_model`).
fn without_builtin_model(table: &toml::Table, builtin: bool) -> String {
    let mut t = table.clone();
    if builtin && let Some(toml::Value::Table(l)) = t.get_mut("lyrics") {
        l.remove("model");
    }
    t.to_string()
}

/// `I/N` of `--shard`.
fn parse_shard(s: &str) -> std::result::Result<(usize, usize), String> {
    let bad = || format!("`{s}`: expected I/N with 0 ≤ I < N, e.g. 0/4");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

/// One run of the study, in the table's order.
struct Job {
    model: usize,
    variant: &'static str,
    cfg: Config,
    dir: PathBuf,
}

/// Every run of the study, in order (model, seed, fixed before legacy), and each model's config.
fn plan(a: &CompareArgs) -> Result<(Vec<Job>, Vec<Config>)> {
    let mut jobs = Vec::new();
    let mut fixed = Vec::new();
    for (m, model) in a.models.iter().enumerate() {
        let fixed_cfg = model_config(a, model)?;
        for k in 0..a.seeds {
            for (variant, base) in [("fixed", fixed_cfg.clone()), ("legacy", fixed_cfg.legacy())] {
                let mut cfg = base;
                cfg.train.seed = fixed_cfg.train.seed + k as u64;
                let dir = a.out.join(model).join(variant).join(format!("seed{}", cfg.train.seed));
                jobs.push(Job { model: m, variant, cfg, dir });
            }
        }
        fixed.push(fixed_cfg);
    }
    Ok((jobs, fixed))
}

type RunResult = (Vec<crate::train::predictions::PredictionRow>, RunStatus);

pub fn run(a: &CompareArgs) -> Result<()> {
    // Under mpirun or srun each rank takes every N-th run (`--shard rank/N`); once all have
    // finished, rank 0 writes the table from the finished runs (`--collect`).
    let group = crate::train::dist::Group::from_env()?;
    if group.size() == 1 {
        return run_alone(a);
    }
    let (rank, n) = (group.rank(), group.size());
    if a.shard.is_some() || a.collect {
        return Err(Error::Invalid(format!(
            "compare under a launcher of {n} processes shares the runs itself (rank r takes --shard r/{n}, then rank 0              collects): drop --shard and --collect"
        )));
    }
    let shard = CompareArgs { shard: Some((rank, n)), ..a.clone() };
    // Rank 0 fills the data's caches (each preprocessing the study uses) before the others read them.
    let prepared = group.root_first(|| {
        let (jobs, _) = plan(a)?;
        let mut seen = Vec::new();
        for j in &jobs {
            let key = (j.cfg.data.preprocessing, j.cfg.data.split);
            if !seen.contains(&key) {
                dataset::open(&a.data, key.0, key.1)?;
                seen.push(key);
            }
        }
        Ok(())
    });
    if let Err(e) = prepared.and_then(|_| run_alone(&shard)) {
        eprintln!("error: rank {rank} of {n}: {e}");
        group.comm.abort(1);
    }
    group.comm.barrier()?;
    if rank == 0 {
        return run_alone(&CompareArgs { shard: None, collect: true, ..a.clone() });
    }
    Ok(())
}

fn run_alone(a: &CompareArgs) -> Result<()> {
    if a.seeds == 0 {
        return Err(Error::Invalid("--seeds must be at least 1".into()));
    }
    let (jobs, fixed) = plan(a)?;
    crate::data::create_dir(&a.out)?;
    let mine: Vec<usize> = match a.shard {
        Some((i, n)) => (0..jobs.len()).filter(|k| k % n == i).collect(),
        None => (0..jobs.len()).collect(),
    };
    let results: Vec<Option<RunResult>> = if a.collect {
        jobs.iter().map(|j| collect_one(j).map(Some)).collect::<Result<_>>()?
    } else {
        let devices = if a.devices.is_empty() { vec![a.device.clone()] } else { a.devices.clone() };
        run_jobs(a, &jobs, &mine, &devices)?
    };
    if let (Some((i, n)), false) = (a.shard, a.collect) {
        println!(
            "compare: shard {i}/{n} finished its {} of {} runs; when every shard has, run the same command with \
             --collect instead of --shard to write the table",
            mine.len(),
            jobs.len()
        );
        return Ok(());
    }
    let results: Vec<RunResult> = results.into_iter().map(|r| r.expect("every run ran or was collected")).collect();
    write_table(a, &jobs, &fixed, results)
}

/// A finished run of the study, for `--collect`; an error naming it when it is missing.
fn collect_one(job: &Job) -> Result<RunResult> {
    let rows = finished(&job.cfg, &job.dir)?.ok_or_else(|| {
        Error::file(
            &job.dir,
            "not finished: --collect needs every run of the study (run the missing shard, or compare without --collect)",
        )
    })?;
    Ok((rows, RunStatus::Reused))
}

/// The test predictions of the finished run in `dir` (None when it has not finished), refusing
/// one trained with another config than `cfg`: a stale run is never reported as this study's.
fn finished(cfg: &Config, dir: &Path) -> Result<Option<Vec<crate::train::predictions::PredictionRow>>> {
    let run = RunDir::new(dir);
    let done = run.predictions("test");
    if !(done.is_file() && run.best().is_file()) {
        return Ok(None);
    }
    run.check_config(
        cfg,
        "a finished run here was trained with another config",
        "give the study another --out (or delete this run folder to retrain it)",
    )?;
    read_csv(&done).map(Some)
}

/// Runs `mine` (indices into `jobs`) over `devices`, one run per device at a time, each device's
/// thread taking the next run in order; the results by job index (None: not this shard's).
fn run_jobs(a: &CompareArgs, jobs: &[Job], mine: &[usize], devices: &[String]) -> Result<Vec<Option<RunResult>>> {
    let results = std::sync::Mutex::new((0..jobs.len()).map(|_| None).collect::<Vec<Option<RunResult>>>());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let work = |device: &str| -> Result<()> {
        let dev = super::open_device(device, a.precision.as_deref())?;
        crate::on_device!(dev, |b| {
            loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(&j) = mine.get(k) else { break Ok(()) };
                if failed.load(std::sync::atomic::Ordering::SeqCst) {
                    break Ok(());
                }
                let job = &jobs[j];
                println!("compare: {} {} seed {} on {device}", a.models[job.model], job.variant, job.cfg.train.seed);
                match run_one(b.clone(), job.cfg.clone(), &a.data, &job.dir) {
                    Ok(r) => results.lock().unwrap_or_else(|p| p.into_inner())[j] = Some(r),
                    Err(e) => {
                        failed.store(true, std::sync::atomic::Ordering::SeqCst);
                        break Err(e);
                    }
                }
            }
        })
    };
    if devices.len() == 1 {
        work(&devices[0])?;
    } else {
        let outcomes: Vec<Result<()>> = std::thread::scope(|s| {
            let handles: Vec<_> = devices.iter().map(|d| s.spawn(|| work(d))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(Error::Invalid("a run panicked".into()))))
                .collect()
        });
        outcomes.into_iter().collect::<Result<Vec<()>>>()?;
    }
    Ok(results.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// compare.md and compare.csv from every run's test predictions, in the study's order.
fn write_table(a: &CompareArgs, jobs: &[Job], fixed: &[Config], results: Vec<RunResult>) -> Result<()> {
    let mut models: Vec<ModelRuns> =
        a.models.iter().map(|m| ModelRuns { name: m.clone(), fixed: Vec::new(), legacy: Vec::new() }).collect();
    let mut statuses = Vec::new();
    for (job, (rows, status)) in jobs.iter().zip(results) {
        statuses.push((job.dir.strip_prefix(&a.out).unwrap_or(&job.dir).display().to_string(), status));
        let runs = &mut models[job.model];
        if job.variant == "fixed" { runs.fixed.push(rows) } else { runs.legacy.push(rows) }
    }
    let first = fixed.first().ok_or_else(|| Error::Invalid("--models names no model".into()))?;
    let d = dataset::open(&a.data, first.data.preprocessing, first.data.split)?;
    let test = models.first().and_then(|m| m.fixed.first()).cloned().unwrap_or_default();
    let base = baselines::compute(&baselines::train_labels(&d), &test, "test", 0);
    let table = build(&models, &base, "test", crate::train::bootstrap::DEFAULT_RESAMPLES, 0)?;
    let (md, csv): (PathBuf, PathBuf) = (a.out.join("compare.md"), a.out.join("compare.csv"));
    let text = format!("{}{}", table.to_markdown(), runs_section(&statuses));
    crate::io::write_atomic(&md, text.as_bytes())?;
    crate::io::write_atomic(&csv, table.to_csv().as_bytes())?;
    println!("{text}");
    println!("wrote {} and {}", md.display(), csv.display());
    Ok(())
}

/// How a run of the study came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RunStatus {
    Trained,
    Resumed,
    Reused,
}

impl RunStatus {
    fn describe(self) -> &'static str {
        match self {
            RunStatus::Trained => "trained",
            RunStatus::Resumed => "resumed from its checkpoint",
            RunStatus::Reused => "reused (finished earlier with the same resolved config)",
        }
    }
}

fn run_one<B: Backend>(
    be: B,
    cfg: Config,
    data: &Path,
    dir: &Path,
) -> Result<(Vec<crate::train::predictions::PredictionRow>, RunStatus)> {
    if let Some(rows) = finished(&cfg, dir)? {
        println!("  reusing {}", dir.display());
        return Ok((rows, RunStatus::Reused));
    }
    let run = RunDir::new(dir);
    let resume = crate::train::checkpoint::exists(&run.checkpoint());
    let mut last = String::new();
    let rows = train_run(be, cfg, data, dir, &RunStart::resume(resume), &mut |line| {
        if line.starts_with("epoch") || line.starts_with("test:") {
            last = line.to_string();
        }
    })?;
    println!("  {} — {last}", dir.display());
    Ok((rows, if resume { RunStatus::Resumed } else { RunStatus::Trained }))
}

/// compare.md's list of the study's runs and how each came to be in this call.
fn runs_section(statuses: &[(String, RunStatus)]) -> String {
    let mut s = String::from("\nRuns (this call):\n\n");
    for (dir, status) in statuses {
        s += &format!("- `{dir}`: {}\n", status.describe());
    }
    s
}
