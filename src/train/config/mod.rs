//! The training configuration (`RUN/config.toml`): a preset, then sections that override it.
//!
//! ```toml
//! preset = "model3"          # model3 | model4 | model5 | tiny
//! [model]                    # convs_per_block channels attention se_reduction audio_hidden
//!                            # audio_out head_hidden dropout modality
//! [lyrics]                   # model mode layers lr max_len pool vectors
//! [train]                    # epochs batch_size lr clip patience scheduler step_size gamma
//!                            # warmup_epochs seed loss quadrant_loss restore shuffle accumulate
//!                            # sync_batchnorm
//! [data]                     # preprocessing split
//! ```
//! Every section and key is optional; anything left out keeps the preset's value. Unknown keys and
//! wrong types are errors naming the key and the file (`Config::load`). `Config::to_toml` writes
//! the resolved config with every value spelled out; loading that text gives the same config back.
//!
//! Presets (the seed's models with the guide's fixes, FACTS.md): MSE on raw targets, Adam 1e-3,
//! StepLR(15, 0.5) per epoch, 50 epochs, batch 16, global clip 1.0, patience 10, the best epoch's
//! weights restored as a deep copy, fixed preprocessing, SE attention, tvt_70_15_15.
//! - `model3`: one conv per block, frozen `bert-base-uncased`, [CLS] vector.
//! - `model4`: model3 with two convs per block.
//! - `model5`: model3's tower with BERT fine-tuned at 1e-5 (audio and head stay at 1e-3), patience 25.
//! - `tiny`: for tests and demos on synthetic data: blocks of 8 and 16 channels, widths 16/8/16,
//!   the built-in lyrics encoder trained with the model at 1e-3 (`lyrics.model = "builtin"`,
//!   mode finetune, max_len 64), 3 epochs of batch 4,
//!   patience 3, random split. It trains in seconds on a CPU; its numbers mean nothing.
//!
//! `Config::legacy` gives a config's notebook counterpart for `moodgrad compare`.

mod choices;
mod load;
mod validate;

pub use choices::{Attention, Loss, LyricsMode, Modality, Pool, Preprocessing, Restore, Scheduler, SplitName};

use crate::error::{Error, Result};
use crate::nn::{AttentionKind, ModelConfig};
use serde::Serialize;
use std::path::Path;

/// The preset names `preset = "…"` accepts.
pub const PRESETS: [&str; 4] = ["model3", "model4", "model5", "tiny"];

/// `[lyrics] model` naming the small built-in encoder.
pub const BUILTIN: &str = "builtin";

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Config {
    pub preset: String,
    pub model: ModelSection,
    pub lyrics: LyricsSection,
    pub train: TrainSection,
    pub data: DataSection,
}

/// `[model]`: the network's shape (maps onto `nn::ModelConfig`, see `Config::model_config`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelSection {
    /// Conv+BN+ReLU units per VGG block (1: MODEL_3/5, 2: MODEL_4).
    pub convs_per_block: usize,
    /// Output channels of each block.
    pub channels: Vec<usize>,
    pub attention: Attention,
    /// SE bottleneck = last channels / se_reduction.
    pub se_reduction: usize,
    pub audio_hidden: usize,
    pub audio_out: usize,
    pub head_hidden: usize,
    /// Probability of every dropout layer.
    pub dropout: f64,
    pub modality: Modality,
}

impl ModelSection {
    /// The section that describes `network` (the inverse of `Config::model_config`).
    pub fn of(network: &ModelConfig) -> ModelSection {
        ModelSection {
            convs_per_block: network.convs_per_block,
            channels: network.channels.clone(),
            attention: match network.attention {
                AttentionKind::Se => Attention::Se,
                AttentionKind::Legacy => Attention::Legacy,
            },
            se_reduction: network.se_reduction,
            audio_hidden: network.audio_hidden,
            audio_out: network.audio_out,
            head_hidden: network.head_hidden,
            dropout: network.dropout,
            modality: match network.inputs {
                crate::nn::Inputs::Bimodal => Modality::Bimodal,
                crate::nn::Inputs::Audio => Modality::Audio,
                crate::nn::Inputs::Lyrics => Modality::Lyrics,
            },
        }
    }
}

/// `[lyrics]`: the lyrics encoder.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LyricsSection {
    /// A directory (config.json + weights + tokenizer), a hub name from the Hugging Face cache or
    /// downloaded into it (e.g. `bert-base-uncased`, `name@revision`), or `builtin` (moodgrad's
    /// small built-in encoder).
    pub model: String,
    pub mode: LyricsMode,
    /// With `mode = "top-k"`: how many of the encoder's top layers train (ignored otherwise).
    pub layers: usize,
    /// The encoder's learning rate when it trains (its own parameter group).
    pub lr: f64,
    /// Tokens per lyric (padding and truncation length).
    pub max_len: usize,
    pub pool: Pool,
    /// Lyric vectors given as data: a safetensors file with one F32 [dim] vector per song id (what
    /// `moodgrad encode` writes), used as they are instead of running `model` (mode "frozen"
    /// only). Empty: vectors come from `model`.
    pub vectors: String,
}

/// `[train]`: optimisation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainSection {
    pub epochs: usize,
    pub batch_size: usize,
    /// Adam's learning rate for the audio tower and the head(s).
    pub lr: f64,
    /// Max global gradient norm; 0 turns clipping off.
    pub clip: f64,
    /// Epochs without a better validation loss before stopping.
    pub patience: usize,
    pub scheduler: Scheduler,
    /// StepLR: epochs between decays.
    pub step_size: usize,
    /// StepLR: the decay factor.
    pub gamma: f64,
    /// warmup-linear: epochs of linear warm-up before the linear decay.
    pub warmup_epochs: usize,
    pub seed: u64,
    pub loss: Loss,
    /// Weight of the cross-entropy of the extra head `quadrant_head` (4 logits) against the
    /// metadata's Quadrant; 0 leaves the head out.
    pub quadrant_loss: f64,
    pub restore: Restore,
    /// Shuffle the training songs every epoch (PyTorch's `DataLoader(shuffle=True)`); false keeps
    /// the split's order, as `shuffle=False` does.
    pub shuffle: bool,
    /// Micro-batches per optimiser step: each batch of `batch_size` songs is split in order into
    /// this many (sizes differing by at most one), each forward and backward on its own (BatchNorm
    /// per micro-batch), their gradients averaged before the clip and the update.
    pub accumulate: usize,
    /// Data-parallel runs: BatchNorm's training statistics over the whole global batch (every
    /// rank's songs, PyTorch's SyncBatchNorm) instead of each rank's own part. No effect on one
    /// process (the batch is already whole there).
    pub sync_batchnorm: bool,
}

/// `[data]`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DataSection {
    pub preprocessing: Preprocessing,
    pub split: SplitName,
}

/// One Adam parameter group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LrGroup {
    /// `audio`, `lyrics` or `head` (the head group includes `quadrant_head`).
    pub name: &'static str,
    pub lr: f64,
}

impl Config {
    /// A preset by name (see the module docs).
    pub fn preset(name: &str) -> Result<Config> {
        if !PRESETS.contains(&name) {
            return Err(Error::Invalid(format!("unknown preset `{name}`: use {}", PRESETS.join(", "))));
        }
        // The network of each preset is the seed's, from the one table in nn (tiny shrinks
        // MODEL_3's below).
        let network = ModelConfig::preset(if name == "tiny" { "model3" } else { name }, AttentionKind::Se)?;
        let mut c = Config {
            preset: name.to_string(),
            model: ModelSection::of(&network),
            lyrics: LyricsSection {
                model: "bert-base-uncased".into(),
                mode: LyricsMode::Frozen,
                layers: 2,
                lr: 1e-5,
                max_len: 512,
                pool: Pool::Cls,
                vectors: String::new(),
            },
            train: TrainSection {
                epochs: 50,
                batch_size: 16,
                lr: 1e-3,
                clip: 1.0,
                patience: 10,
                scheduler: Scheduler::Step,
                step_size: 15,
                gamma: 0.5,
                warmup_epochs: 0,
                seed: 42,
                loss: Loss::Mse,
                quadrant_loss: 0.0,
                restore: Restore::Best,
                shuffle: true,
                accumulate: 1,
                sync_batchnorm: false,
            },
            data: DataSection { preprocessing: Preprocessing::Fixed, split: SplitName::Tvt70 },
        };
        match name {
            "model5" => {
                c.lyrics.mode = LyricsMode::Finetune;
                c.train.patience = 25;
            }
            "tiny" => {
                c.model.channels = vec![8, 16];
                c.model.se_reduction = 4;
                c.model.audio_hidden = 16;
                c.model.audio_out = 8;
                c.model.head_hidden = 16;
                c.lyrics.model = BUILTIN.into();
                c.lyrics.mode = LyricsMode::Finetune;
                c.lyrics.lr = 1e-3;
                c.lyrics.max_len = 64;
                c.train.epochs = 3;
                c.train.batch_size = 4;
                c.train.patience = 3;
                c.data.split = SplitName::Random;
            }
            _ => {}
        }
        Ok(c)
    }

    /// Reads a config file: TOML syntax, unknown keys, wrong types and invalid values are errors
    /// naming the file and the key.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, format!("cannot read config: {e}")))?;
        Config::parse(&text, path)
    }

    /// `load` on text already read; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let c = load::parse(text).map_err(|e| Error::file(path, e))?;
        c.check().map_err(|e| Error::file(path, e))?;
        Ok(c)
    }

    /// Checks every value's range (`load` already does; call it after changing a config in code).
    pub fn validate(&self) -> Result<()> {
        self.check().map_err(|e| Error::Invalid(format!("config (preset {}): {e}", self.preset)))
    }

    fn check(&self) -> std::result::Result<(), String> {
        validate::check(self).map_err(|(key, why)| format!("`{key}` {why}"))
    }

    /// The resolved config as TOML, every value written out, preceded by a comment.
    pub fn to_toml(&self) -> Result<String> {
        let body =
            toml::to_string(self).map_err(|e| Error::Invalid(format!("cannot write the config as TOML: {e}")))?;
        Ok(format!("# moodgrad resolved config: every value, defaults included. Load it back with --config.\n{body}"))
    }

    /// Writes `to_toml` to `path` atomically (`RUN/config.toml`).
    pub fn write_resolved(&self, path: &Path) -> Result<()> {
        crate::io::write_atomic(path, self.to_toml()?.as_bytes())
    }

    /// The notebook ("legacy") counterpart of this config, as `moodgrad compare` trains it: legacy
    /// preprocessing, legacy attention, no gradient clipping, and the last epoch's weights kept
    /// (the seed's shallow-copy "best"). Everything else, seed included, stays the same, so the
    /// pair differs only in the guide's fixes.
    pub fn legacy(&self) -> Config {
        let mut c = self.clone();
        c.data.preprocessing = Preprocessing::Legacy;
        c.model.attention = Attention::Legacy;
        c.train.clip = 0.0;
        c.train.restore = Restore::Last;
        c
    }

    /// The clip norm for `train_step` (None when `clip = 0`).
    pub fn clip(&self) -> Option<f64> {
        (self.train.clip > 0.0).then_some(self.train.clip)
    }

    /// Whether the lyrics encoder has trainable weights.
    pub fn lyrics_trains(&self) -> bool {
        self.model.modality != Modality::Audio && !self.lyrics.mode.is_frozen()
    }

    /// Whether the lyrics encoder is the small built-in one (trained with the model).
    pub fn builtin_lyrics(&self) -> bool {
        self.lyrics.model == BUILTIN
    }

    /// Adam's parameter groups with their base learning rates (before the schedule).
    pub fn lr_groups(&self) -> Vec<LrGroup> {
        let mut g = Vec::new();
        if self.model.modality != Modality::Lyrics {
            g.push(LrGroup { name: "audio", lr: self.train.lr });
        }
        if self.lyrics_trains() {
            g.push(LrGroup { name: "lyrics", lr: self.lyrics.lr });
        }
        g.push(LrGroup { name: "head", lr: self.train.lr });
        g
    }

    /// The network shape for `nn::SeedNet`. `lyrics_dim` is the lyrics vector's width, which only
    /// the loaded encoder knows (768 for BERT-base; pass 0 when `modality = "audio"`).
    pub fn model_config(&self, lyrics_dim: usize) -> ModelConfig {
        let m = &self.model;
        ModelConfig {
            convs_per_block: m.convs_per_block,
            channels: m.channels.clone(),
            attention: match m.attention {
                Attention::Se => AttentionKind::Se,
                Attention::Legacy => AttentionKind::Legacy,
            },
            se_reduction: m.se_reduction,
            audio_hidden: m.audio_hidden,
            audio_out: m.audio_out,
            lyrics_dim,
            head_hidden: m.head_hidden,
            dropout: m.dropout,
            inputs: match m.modality {
                Modality::Bimodal => crate::nn::Inputs::Bimodal,
                Modality::Audio => crate::nn::Inputs::Audio,
                Modality::Lyrics => crate::nn::Inputs::Lyrics,
            },
            quadrant_head: self.train.quadrant_loss > 0.0,
        }
    }
}
