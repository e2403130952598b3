//! `moodgrad train`: the arguments and the resolved config; the run itself is
//! `train::run::train_run` (preprocessing if needed, training with early stopping, then the test
//! split's predictions and the report).

use crate::backend::Backend;
use crate::error::Result;
use crate::train::config::{Config, LyricsMode};
use crate::train::dist::Group;
use crate::train::init_weights::{self, InitWeights};
use crate::train::run::{RunStart, train_run_in};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Clone, Debug)]
pub struct TrainArgs {
    /// A MERGE folder (any variant; preprocessed into DATA/moodgrad-cache/<fixed|legacy> when needed)
    /// or a cache folder.
    #[arg(long)]
    pub data: PathBuf,
    /// model3, model4, model5, tiny, or a TOML file (`preset = "model3"` then overrides).
    /// Default: model3, or with --resume the run's own config.toml.
    #[arg(long)]
    pub config: Option<String>,
    /// The RUN folder.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub batch: Option<usize>,
    /// A directory, a hub name such as bert-base-uncased (taken from the Hugging Face cache or
    /// downloaded into it as from_pretrained does; HF_HUB_OFFLINE=1 never downloads; NAME@REVISION
    /// pins a branch, tag or commit), or `builtin`.
    #[arg(long)]
    pub lyrics_model: Option<String>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Start from these weights (safetensors under PyTorch's names, e.g. a converted state_dict or
    /// another run's best.safetensors) instead of the seed's initialisation. Strict: every tensor
    /// with its shape, nothing extra. Recorded in run.json.
    #[arg(long, value_name = "FILE")]
    pub init_weights: Option<PathBuf>,
    /// With --init-weights: rename file keys starting with FROM to start with TO first (e.g.
    /// `model.=` for a wrapper's state_dict); repeatable, the first match applies.
    #[arg(long, value_name = "FROM=TO", value_parser = init_weights::parse_prefix, requires = "init_weights")]
    pub init_prefix: Vec<(String, String)>,
    /// With --init-weights: load the tensors that match and report the missing and unused ones
    /// (PyTorch's strict=False) instead of refusing.
    #[arg(long, requires = "init_weights")]
    pub init_partial: bool,
    /// auto (CUDA if a GPU answers, else CPU), cpu, cuda[:N], or sim (CUDA kernels on the host).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Convolution math: fp32, or tf32 on tensor cores; default tf32 on cuda, fp32 on cpu and sim
    /// (PyTorch's defaults: cudnn.allow_tf32, GEMMs fp32).
    #[arg(long)]
    pub precision: Option<String>,
}

/// The config named by `--config` (with `--resume` and no `--config`, the run's own), with the
/// command line's overrides applied. `--lyrics-model builtin` on a preset whose encoder is frozen
/// switches it to training with the model (a frozen random encoder would feed the head noise);
/// the returned notes say so.
pub fn resolve_config(a: &TrainArgs) -> Result<(Config, Vec<String>)> {
    let saved = a.out.join("config.toml");
    let mut cfg = match a.config.as_deref() {
        None if a.resume && saved.is_file() => Config::load(&saved)?,
        None => Config::preset("model3")?,
        Some(c) if c.ends_with(".toml") || Path::new(c).is_file() => Config::load(Path::new(c))?,
        Some(c) => Config::preset(c)?,
    };
    let mut notes = Vec::new();
    if let Some(e) = a.epochs {
        cfg.train.epochs = e;
    }
    if let Some(b) = a.batch {
        cfg.train.batch_size = b;
    }
    if let Some(s) = a.seed {
        cfg.train.seed = s;
    }
    if let Some(m) = &a.lyrics_model {
        notes.extend(set_lyrics_model(&mut cfg, m));
    }
    cfg.validate()?;
    Ok((cfg, notes))
}

/// `--lyrics-model M`; with `builtin` on a frozen-encoder preset the encoder is switched to train
/// with the model at the model's learning rate (returned as a note).
pub fn set_lyrics_model(cfg: &mut Config, model: &str) -> Option<String> {
    cfg.lyrics.model = model.to_string();
    if !(cfg.builtin_lyrics() && cfg.lyrics.mode.is_frozen()) {
        return None;
    }
    cfg.lyrics.mode = LyricsMode::Finetune;
    cfg.lyrics.lr = cfg.train.lr;
    Some(format!(
        "the built-in lyrics encoder trains with the model: [lyrics] mode = \"finetune\", lr = {}",
        cfg.lyrics.lr
    ))
}

pub fn run(a: &TrainArgs) -> Result<()> {
    // Started by a launcher (mpirun, srun), this process is one rank of a data-parallel job.
    // On GPUs the ranks talk over NCCL, each on its own card (cuda:LOCAL_RANK).
    let group = Group::from_env_for(&a.device)?;
    let result = run_in(&group, a);
    if let Err(e) = &result
        && group.size() > 1
    {
        // The other ranks may be waiting for this one inside a collective: end them all, so
        // none waits for ever (the launcher reports which rank ended the job).
        eprintln!("error: rank {} of {}: {e}", group.rank(), group.size());
        group.comm.abort(1);
    }
    result
}

fn run_in(group: &Group, a: &TrainArgs) -> Result<()> {
    let (cfg, notes) = resolve_config(a)?;
    for n in notes {
        if group.is_root() {
            println!("note: {n}");
        }
    }
    let dev = super::open_device(&group.device(&a.device), a.precision.as_deref())?;
    crate::on_device!(dev, |b| run_on(group, b.clone(), a, cfg))
}

fn run_on<B: Backend>(group: &Group, be: B, a: &TrainArgs, cfg: Config) -> Result<()> {
    let init = a.init_weights.as_ref().map(|path| InitWeights {
        path: path.clone(),
        prefix_map: a.init_prefix.clone(),
        partial: a.init_partial,
    });
    let start = RunStart { resume: a.resume, init };
    train_run_in(group, be, cfg, &a.data, &a.out, &start, &mut |line| println!("{line}")).map(|_| ())
}
