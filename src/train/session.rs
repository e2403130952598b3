//! A training session: the model, its parameters, the optimiser, the schedule, early stopping
//! and the run's random stream, built from a config, saved to and restored from a checkpoint.

use super::checkpoint::Checkpoint;
use super::config::{Config, Restore};
use super::early_stop::EarlyStopping;
use super::lyrics::LyricsSide;
use super::schedule::schedule_for;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::io::{self, TensorFile};
use crate::nn::SeedNet;
use crate::optim::{Adam, AdamConfig, LrScheduler, ParamGroup};
use crate::params::ParamStore;
use crate::rng::{Rng, mix64};
use serde_json::json;
use std::path::Path;

/// Parameter-name prefixes of each of the config's learning-rate groups.
fn group_prefixes(name: &str) -> Vec<String> {
    match name {
        "audio" => vec!["audio_tower.".into()],
        "lyrics" => vec!["lyrics_tower.".into()],
        _ => vec!["classifier_head.".into(), "quadrant_head.".into()],
    }
}

pub struct Session<B: Backend> {
    pub cfg: Config,
    pub net: SeedNet,
    pub store: ParamStore<B>,
    pub opt: Adam<B>,
    pub sched: LrScheduler,
    pub es: EarlyStopping,
    /// Shuffles and dropout seeds, in the order the loop draws them.
    pub rng: Rng,
    pub epochs_done: usize,
    pub steps_per_epoch: usize,
    pub lyrics: Box<dyn LyricsSide<B>>,
    /// A deep copy of the best epoch's weights (`Restore::Best`), on the host.
    pub best: Option<TensorFile>,
}

impl<B: Backend> Session<B> {
    /// A fresh session: weights initialised from the config's seed (PyTorch's init), Adam over the
    /// config's groups, the schedule, and patience. `store` may already hold the lyrics tower's
    /// parameters (`lyrics_tower.…`, registered by `lyrics`).
    pub fn new(
        cfg: Config,
        mut store: ParamStore<B>,
        lyrics: Box<dyn LyricsSide<B>>,
        train_songs: usize,
    ) -> Result<Self> {
        cfg.validate()?;
        let net = SeedNet::new(cfg.model_config(lyrics.dim()), &mut store, &mut Rng::new(cfg.train.seed))?;
        if cfg.lyrics.mode.is_frozen() {
            for id in store.param_ids() {
                if store.name(id).starts_with("lyrics_tower.") {
                    store.set_trainable(id, false);
                }
            }
        }
        let groups = cfg
            .lr_groups()
            .iter()
            .map(|g| ParamGroup { name: g.name.into(), prefixes: group_prefixes(g.name), lr: g.lr, weight_decay: 0.0 })
            .collect();
        let mut opt = Adam::with_groups(AdamConfig { lr: cfg.train.lr, ..Default::default() }, groups);
        let steps_per_epoch = train_songs.div_ceil(cfg.train.batch_size).max(1);
        let (schedule, interval) = schedule_for(&cfg.train, steps_per_epoch);
        let sched = LrScheduler::new(schedule, interval, &mut opt)?;
        let es = EarlyStopping::new(cfg.train.patience, cfg.train.restore);
        let rng = Rng::new(mix64(cfg.train.seed ^ 0x7261_696e));
        Ok(Session { cfg, net, store, opt, sched, es, rng, epochs_done: 0, steps_per_epoch, lyrics, best: None })
    }

    /// Trained weights from a safetensors file (a run's best.safetensors, or weights converted from
    /// the seed's PyTorch model), strictly: every parameter must be there with its shape. A frozen
    /// lyrics encoder whose vectors were computed apart is not in the model, so its tensors in the
    /// file (a PyTorch state_dict holds them) are ignored.
    pub fn load_weights(&mut self, path: &Path) -> Result<()> {
        let file = io::read(path)?;
        let lyrics_in_model = self.store.entries().iter().any(|e| e.name.starts_with("lyrics_tower."));
        let extra: &[&str] = if lyrics_in_model { &[] } else { &["lyrics_tower."] };
        io::load_state_dict(&mut self.store, path, &file, extra)
    }

    /// Whether the run keeps deep copies of improving epochs (the fixed behaviour).
    pub fn keeps_best(&self) -> bool {
        self.cfg.train.restore == Restore::Best
    }

    /// The weights as a host snapshot (a deep copy: later steps do not change it).
    pub fn snapshot(&self) -> Result<TensorFile> {
        Ok(TensorFile { tensors: io::state_dict(&self.store)?, metadata: Default::default() })
    }

    /// Everything needed to continue exactly where the run stands.
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        Ok(Checkpoint {
            model: self.snapshot()?,
            optimizer: self.opt.export_state(&self.store)?,
            scheduler: self.sched.to_json(&self.opt),
            rng: json!({"train": self.rng.state()}),
            user: json!({
                "epochs_done": self.epochs_done,
                "early_stopping": serde_json::to_value(&self.es).expect("early stopping serialises"),
            }),
        })
    }

    /// Continues from a checkpoint written by `checkpoint` (the best snapshot comes from
    /// `best_file` when the run had one). Nothing changes unless everything loads.
    pub fn restore(&mut self, dir: &Path, ck: &Checkpoint, best_file: Option<&Path>) -> Result<()> {
        let bad = |what: &str| Error::file(dir, format!("checkpoint state: {what}"));
        let epochs_done = ck.user["epochs_done"].as_u64().ok_or_else(|| bad("no epochs_done"))? as usize;
        let es: EarlyStopping = serde_json::from_value(ck.user["early_stopping"].clone())
            .map_err(|e| bad(&format!("early stopping state: {e}")))?;
        let rng = ck.rng["train"].as_u64().ok_or_else(|| bad("no RNG state"))?;
        let sched = LrScheduler::state_from_json(&ck.scheduler)?;
        let best = match (es.best(), best_file) {
            (Some(_), Some(p)) if self.keeps_best() && p.exists() => Some(io::read(p)?),
            // Going on without it would end the run with the last weights under the best's name.
            (Some((epoch, _)), Some(p)) if self.keeps_best() => {
                return Err(Error::file(
                    p,
                    format!(
                        "missing: the checkpoint records epoch {epoch} as the best, but its weights are gone; put \
                         the file back (a copy of this run's best.safetensors), or start the run again in a new --out"
                    ),
                ));
            }
            _ => None,
        };
        io::load_state_dict(&mut self.store, dir, &ck.model, &[])?;
        self.opt.load_state(&self.store, dir, &ck.optimizer)?;
        self.sched.restore(&sched, &mut self.opt)?;
        self.es = es;
        self.rng = Rng::new(rng);
        self.epochs_done = epochs_done;
        self.best = best;
        Ok(())
    }
}
