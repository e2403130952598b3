//! The RUN folder (public layout):
//! `config.toml` (the resolved config), `run.json` (what the run used: data cache, lyrics encoder,
//! device, split sizes), `log.jsonl` (one line per epoch), `checkpoint/` (the latest, atomic),
//! `best.safetensors` (the weights the run ends with, PyTorch names), `predictions_<split>.csv`,
//! `report.md` and its PNG plots.

use super::config::Config;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    pub fn new(root: &Path) -> RunDir {
        RunDir { root: root.to_path_buf() }
    }
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    pub fn info(&self) -> PathBuf {
        self.root.join("run.json")
    }
    pub fn log(&self) -> PathBuf {
        self.root.join("log.jsonl")
    }
    pub fn checkpoint(&self) -> PathBuf {
        self.root.join("checkpoint")
    }
    pub fn best(&self) -> PathBuf {
        self.root.join("best.safetensors")
    }
    pub fn predictions(&self, split: &str) -> PathBuf {
        self.root.join(format!("predictions_{split}.csv"))
    }
    /// The built-in lyrics encoder's config.json and tokenizer.json.
    pub fn encoder_files(&self) -> PathBuf {
        self.root.join("lyrics_encoder")
    }
    pub fn report(&self) -> PathBuf {
        self.root.join("report.md")
    }

    /// Checks, writing nothing, that the folder can take a new run, or that `--resume` continues
    /// the same one. A new run's folder is made by `create` once everything it needs has loaded.
    pub fn check(&self, cfg: &Config, resume: bool) -> Result<()> {
        let has_run = self.config().exists() || super::checkpoint::exists(&self.checkpoint());
        match (has_run, resume) {
            (true, false) => {
                Err(Error::file(&self.root, "already holds a run; continue it with --resume, or choose another --out"))
            }
            (false, true) => Err(Error::file(&self.root, "holds no run to resume (no config.toml / checkpoint)")),
            (true, true) => self.check_config(
                cfg,
                "--resume with another config",
                "resume with the run's own settings or start a new --out",
            ),
            (false, false) => Ok(()),
        }
    }

    /// The folder of a new run, with its resolved config.
    pub fn create(&self, cfg: &Config) -> Result<()> {
        crate::data::create_dir(&self.root)?;
        cfg.write_resolved(&self.config())
    }

    /// Refuses `cfg` unless it is the run's own (`config.toml`): `what` and up to five differing
    /// lines, then `fix`.
    pub fn check_config(&self, cfg: &Config, what: &str, fix: &str) -> Result<()> {
        let saved = Config::load(&self.config())?;
        if saved == *cfg {
            return Ok(());
        }
        let (a, b) = (saved.to_toml()?, cfg.to_toml()?);
        let diff: Vec<String> = a
            .lines()
            .zip(b.lines())
            .filter(|(x, y)| x != y)
            .take(5)
            .map(|(x, y)| format!("`{x}` (run) vs `{y}` (now)"))
            .collect();
        Err(Error::file(self.config(), format!("{what}: {}; {fix}", diff.join("; "))))
    }
}
