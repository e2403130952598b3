//! The seed study's bimodal network, built from a configuration.
//!
//! Module tree and `state_dict` names follow the seed's PyTorch code exactly:
//! `audio_tower.features.<i>` (conv, bn, relu, pool … [SE], avgpool), then either
//! `audio_tower.classifier.{1,4}` (SE variant) or `audio_tower.{fc1,attention.attention.{0,2},fc2}`
//! (legacy), then `classifier_head.{1,4}` over concat(audio 64, lyrics T).

use super::attention::{FeatureAttention, SqueezeExcite};
use super::layers::{self, BatchNorm2d, Conv2d, Linear};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::ops;
use crate::params::ParamStore;
use crate::rng::{Rng, mix64};
use crate::tape::{Tape, Var};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionKind {
    /// SEAttention(512, r) inside `features`, then `classifier` (the guide's fix; default).
    Se,
    /// No SE; fc1 → AttentionModule(256) → fc2 (the notebooks as they stand).
    Legacy,
}

impl std::str::FromStr for AttentionKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "se" => Ok(AttentionKind::Se),
            "legacy" => Ok(AttentionKind::Legacy),
            _ => Err(Error::Invalid(format!("unknown attention `{s}`: use se or legacy"))),
        }
    }
}

/// Which inputs the network reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inputs {
    /// Audio tower and lyrics vector (the seed's models).
    Bimodal,
    /// The audio tower alone (`lyrics_dim` is 0).
    Audio,
    /// The lyrics vector alone (no audio tower).
    Lyrics,
}

/// Everything that shapes the network. `preset` gives the seed's models.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// Conv+BN+ReLU units per VGG block: 1 for MODEL_3/MODEL_5, 2 for MODEL_4.
    pub convs_per_block: usize,
    /// Output channels of each block (max-pool after every block but the last).
    pub channels: Vec<usize>,
    pub attention: AttentionKind,
    pub se_reduction: usize,
    /// The audio tower's hidden and output widths (256 and 64 in the seed).
    pub audio_hidden: usize,
    pub audio_out: usize,
    /// Width of the lyrics vector (768 for BERT-base's [CLS]).
    pub lyrics_dim: usize,
    pub head_hidden: usize,
    pub dropout: f64,
    pub inputs: Inputs,
    /// An extra head `quadrant_head` (Dropout, Linear → 4 logits) over the fused vector, trained
    /// with cross-entropy against the metadata's quadrant.
    pub quadrant_head: bool,
}

impl ModelConfig {
    /// `model3`, `model4` or `model5` (model5's audio tower is model3's; its BERT is fine-tuned).
    pub fn preset(name: &str, attention: AttentionKind) -> Result<Self> {
        let convs_per_block = match name {
            "model3" | "model5" => 1,
            "model4" => 2,
            _ => return Err(Error::Invalid(format!("unknown model `{name}`: use model3, model4 or model5"))),
        };
        Ok(ModelConfig {
            convs_per_block,
            channels: vec![64, 128, 256, 512],
            attention,
            se_reduction: 16,
            audio_hidden: 256,
            audio_out: 64,
            lyrics_dim: 768,
            head_hidden: 100,
            dropout: 0.5,
            inputs: Inputs::Bimodal,
            quadrant_head: false,
        })
    }
}

enum Feature {
    Conv(Conv2d),
    Bn(BatchNorm2d),
    Relu,
    Pool,
    Se(SqueezeExcite),
}

enum AudioHead {
    /// classifier = Dropout, Linear(C,256), ReLU, Dropout, Linear(256,64).
    Se { fc1: Linear, fc2: Linear },
    /// dropout1, fc1, relu1, dropout2, attention, fc2.
    Legacy { fc1: Linear, attention: FeatureAttention, fc2: Linear },
}

pub struct SeedNet {
    pub config: ModelConfig,
    /// None for a lyrics-only network.
    audio: Option<AudioTower>,
    head_fc1: Linear,
    head_fc2: Linear,
    quadrant: Option<Linear>,
}

struct AudioTower {
    features: Vec<Feature>,
    head: AudioHead,
    /// A final SE block and the global average pool run as one op (`ops::squeeze_excite_pool`);
    /// off: the two ops one after the other (for checks).
    fuse_se_pool: bool,
    /// Each Conv → BN → ReLU (→ max-pool) runs as one op (`ops::vgg_unit`); off: four ops.
    fuse_units: bool,
    /// SyncBatchNorm across these replicas (data parallelism); None: BatchNorm per process.
    sync_bn: Option<Arc<dyn ops::Replicas>>,
}

/// What one forward pass produces.
pub struct Outputs<B: Backend> {
    /// The audio tower's 64-d vector (None without an audio tower).
    pub audio: Option<Var<B>>,
    /// [B, 2]: valence, arousal.
    pub pred: Var<B>,
    /// [B, 4] quadrant logits, with `quadrant_head`.
    pub quadrant: Option<Var<B>>,
}

impl SeedNet {
    /// Whether a final SE block and the global average pool run as one op (the default) or as
    /// two (the unfused path, for checks); the results agree up to rounding.
    pub fn set_fused_se_pool(&mut self, on: bool) {
        if let Some(a) = self.audio.as_mut() {
            a.fuse_se_pool = on;
        }
    }

    /// Whether each conv → BatchNorm → ReLU (→ max-pool) unit runs as one op (the default) or
    /// as the four ops of the seed's module list (for checks); the results agree up to rounding,
    /// except that the fused op gives the conv biases their exact training gradient, 0.
    pub fn set_fused_units(&mut self, on: bool) {
        if let Some(a) = self.audio.as_mut() {
            a.fuse_units = on;
        }
    }

    /// Makes every BatchNorm layer a SyncBatchNorm over `replicas` in training (None: back to
    /// per-process statistics). The fused conv → BatchNorm → ReLU unit computes its statistics
    /// inside one op, so while this is set the units run unfused (four ops each).
    pub fn set_sync_batchnorm(&mut self, replicas: Option<Arc<dyn ops::Replicas>>) {
        if let Some(a) = self.audio.as_mut() {
            a.sync_bn = replicas;
        }
    }

    /// Registers every parameter in `store` under its PyTorch name, initialised as PyTorch does.
    pub fn new<B: Backend>(config: ModelConfig, store: &mut ParamStore<B>, rng: &mut Rng) -> Result<Self> {
        let audio = match config.inputs {
            Inputs::Lyrics => None,
            _ => Some(AudioTower::new(&config, store, rng)?),
        };
        let lyrics_dim = if config.inputs == Inputs::Audio { 0 } else { config.lyrics_dim };
        if config.inputs == Inputs::Lyrics && lyrics_dim == 0 {
            return Err(Error::Invalid("a lyrics-only network needs a lyrics vector (lyrics_dim > 0)".into()));
        }
        let fused = audio.as_ref().map_or(0, |_| config.audio_out) + lyrics_dim;
        let head_fc1 = Linear::new(store, rng, "classifier_head.1", fused, config.head_hidden, true)?;
        let head_fc2 = Linear::new(store, rng, "classifier_head.4", config.head_hidden, 2, true)?;
        let quadrant =
            if config.quadrant_head { Some(Linear::new(store, rng, "quadrant_head.1", fused, 4, true)?) } else { None };
        Ok(SeedNet { config, audio, head_fc1, head_fc2, quadrant })
    }

    /// One forward pass of a bimodal network (see `forward_inputs` for the others).
    pub fn forward<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        store: &mut ParamStore<B>,
        audio: &Var<B>,
        lyrics: &Var<B>,
        train: bool,
        seed: u64,
    ) -> Result<Outputs<B>> {
        self.forward_inputs(tape, store, Some(audio), Some(lyrics), train, seed)
    }

    /// One forward pass. `train` selects batch statistics and live dropout; `seed` draws the
    /// dropout masks (each dropout layer mixes its own index into it). `audio` is needed unless
    /// the network is lyrics-only, `lyrics` unless it is audio-only.
    pub fn forward_inputs<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        store: &mut ParamStore<B>,
        audio: Option<&Var<B>>,
        lyrics: Option<&Var<B>>,
        train: bool,
        seed: u64,
    ) -> Result<Outputs<B>> {
        let drop_seed = |k: u64| mix64(seed ^ k.wrapping_mul(0x9e37_79b9));
        let audio_vec = match (&self.audio, audio) {
            (Some(tower), Some(a)) => Some(tower.forward(&self.config, tape, store, a, train, &drop_seed)?),
            (Some(_), None) => {
                return Err(Error::Invalid("this network reads audio, but no spectrogram was given".into()));
            }
            (None, _) => None,
        };
        let lyrics = match (self.config.inputs, lyrics) {
            (Inputs::Audio, _) => None,
            (_, Some(l)) => Some(l),
            (_, None) => {
                return Err(Error::Invalid("this network reads lyrics, but no lyrics vector was given".into()));
            }
        };
        self.head(tape, store, audio_vec, lyrics, train, seed)
    }

    /// The fusion head on given embeddings: the audio tower's vector (None for a lyrics-only
    /// network) and the lyrics vector (None for an audio-only one). `forward_inputs` ends here;
    /// explanations call it with one embedding replaced by its training mean.
    pub fn head<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        store: &mut ParamStore<B>,
        audio_vec: Option<Var<B>>,
        lyrics: Option<&Var<B>>,
        train: bool,
        seed: u64,
    ) -> Result<Outputs<B>> {
        let p = self.config.dropout;
        let drop_seed = |k: u64| mix64(seed ^ k.wrapping_mul(0x9e37_79b9));
        let rows = audio_vec.as_ref().or(lyrics).map(|v| v.shape()[0]).unwrap_or(0);
        if let Some(l) = lyrics
            && l.shape() != [rows, self.config.lyrics_dim]
        {
            return Err(Error::shape(
                "classifier_head",
                format!("lyrics vector {:?}, expected [{rows}, {}]", l.shape(), self.config.lyrics_dim),
            ));
        }
        let fused = match (&audio_vec, lyrics) {
            (Some(a), Some(l)) => ops::concat_cols(tape, a, l)?,
            (Some(a), None) => a.clone(),
            (None, Some(l)) => l.clone(),
            (None, None) => unreachable!("a network reads audio or lyrics"),
        };
        let z = ops::dropout(tape, &fused, p, train, drop_seed(3))?;
        let quadrant = self.quadrant.as_ref().map(|q| q.forward(tape, store, &z)).transpose()?;
        let z = self.head_fc1.forward(tape, store, &z)?;
        let z = ops::relu(tape, &z)?;
        let z = ops::dropout(tape, &z, p, train, drop_seed(4))?;
        let pred = self.head_fc2.forward(tape, store, &z)?;
        Ok(Outputs { audio: audio_vec, pred, quadrant })
    }
}

impl SeedNet {
    /// The gate values of the audio tower's last SE block, [B, C] in (0, 1), in eval mode: the
    /// weight the block gives each channel for each song. None without such a block.
    pub fn se_gates<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        store: &mut ParamStore<B>,
        audio: &Var<B>,
    ) -> Result<Option<Var<B>>> {
        let Some(tower) = &self.audio else { return Ok(None) };
        let Some((Feature::Se(se), body)) = tower.features.split_last() else { return Ok(None) };
        let x = tower.body(body, tape, store, audio, false)?;
        // SEAttention's excitation: mean over H×W → fc1 → ReLU → fc2 → sigmoid.
        let pooled = ops::global_avgpool(tape, &x)?;
        let (n, c) = (pooled.shape()[0], pooled.shape()[1]);
        let m = ops::reshape(tape, &pooled, &[n, c])?;
        let h = se.fc1.forward(tape, store, &m)?;
        let h = ops::relu(tape, &h)?;
        let g = se.fc2.forward(tape, store, &h)?;
        ops::sigmoid(tape, &g).map(Some)
    }
}

impl AudioTower {
    /// `features` (a prefix of the tower's) applied to `x`, fusing each conv → BN → ReLU (→ pool)
    /// unit when `fuse_units` is on.
    fn body<B: Backend>(
        &self,
        features: &[Feature],
        tape: &mut Tape<B>,
        store: &mut ParamStore<B>,
        audio: &Var<B>,
        train: bool,
    ) -> Result<Var<B>> {
        let mut x = audio.clone();
        let mut i = 0;
        while i < features.len() {
            if self.fuse_units
                && self.sync_bn.is_none()
                && let [Feature::Conv(c), Feature::Bn(bn), Feature::Relu, rest @ ..] = &features[i..]
            {
                let pool = matches!(rest.first(), Some(Feature::Pool));
                x = layers::vgg_unit_forward(c, bn, pool, tape, store, &x, train)?;
                i += 3 + pool as usize;
                continue;
            }
            x = match &features[i] {
                Feature::Conv(c) => c.forward(tape, store, &x)?,
                Feature::Bn(bn) => match &self.sync_bn {
                    Some(r) => bn.forward_sync(tape, store, &x, train, r)?,
                    None => bn.forward(tape, store, &x, train)?,
                },
                Feature::Relu => ops::relu(tape, &x)?,
                Feature::Pool => ops::maxpool2d(tape, &x, 2, 2)?,
                Feature::Se(se) => se.forward(tape, store, &x)?,
            };
            i += 1;
        }
        Ok(x)
    }

    fn new<B: Backend>(config: &ModelConfig, store: &mut ParamStore<B>, rng: &mut Rng) -> Result<Self> {
        if config.channels.is_empty() || config.convs_per_block == 0 {
            return Err(Error::Invalid("the audio tower needs at least one block of one conv".into()));
        }
        let mut features = Vec::new();
        let mut c_in = 1;
        let last = config.channels.len() - 1;
        for (bi, &c) in config.channels.iter().enumerate() {
            for _ in 0..config.convs_per_block {
                let i = features.len();
                let name = format!("audio_tower.features.{i}");
                features.push(Feature::Conv(Conv2d::new(store, rng, &name, c_in, c, 3, 1, 1)?));
                features.push(Feature::Bn(BatchNorm2d::new(store, &format!("audio_tower.features.{}", i + 1), c)?));
                features.push(Feature::Relu);
                c_in = c;
            }
            if bi != last {
                features.push(Feature::Pool);
            }
        }
        let c_last = c_in;
        let (h, o) = (config.audio_hidden, config.audio_out);
        let head = match config.attention {
            AttentionKind::Se => {
                let i = features.len();
                let se =
                    SqueezeExcite::new(store, rng, &format!("audio_tower.features.{i}"), c_last, config.se_reduction)?;
                features.push(Feature::Se(se));
                AudioHead::Se {
                    fc1: Linear::new(store, rng, "audio_tower.classifier.1", c_last, h, true)?,
                    fc2: Linear::new(store, rng, "audio_tower.classifier.4", h, o, true)?,
                }
            }
            AttentionKind::Legacy => AudioHead::Legacy {
                fc1: Linear::new(store, rng, "audio_tower.fc1", c_last, h, true)?,
                attention: FeatureAttention::new(store, rng, "audio_tower.attention", h)?,
                fc2: Linear::new(store, rng, "audio_tower.fc2", h, o, true)?,
            },
        };
        Ok(AudioTower { features, head, fuse_se_pool: true, fuse_units: true, sync_bn: None })
    }

    fn forward<B: Backend>(
        &self,
        config: &ModelConfig,
        tape: &mut Tape<B>,
        store: &mut ParamStore<B>,
        audio: &Var<B>,
        train: bool,
        drop_seed: &dyn Fn(u64) -> u64,
    ) -> Result<Var<B>> {
        let s = audio.shape().to_vec();
        if s.len() != 4 || s[1] != 1 {
            return Err(Error::shape("audio tower", format!("expected audio [B, 1, H, W], got {s:?}")));
        }
        let side = 1 << (config.channels.len() - 1);
        if s[2] < side || s[3] < side {
            return Err(Error::shape("audio tower", format!("input {s:?} is smaller than {side}x{side}")));
        }
        let p = config.dropout;
        let fold = match self.features.last() {
            Some(Feature::Se(se)) if self.fuse_se_pool => Some(se),
            _ => None,
        };
        let body = &self.features[..self.features.len() - fold.is_some() as usize];
        let x = self.body(body, tape, store, audio, train)?;
        let pooled = match fold {
            Some(se) => se.forward_pooled(tape, store, &x)?,
            None => ops::global_avgpool(tape, &x)?,
        };
        drop(x);
        let (n, c) = (s[0], pooled.shape()[1]);
        let mut a = ops::reshape(tape, &pooled, &[n, c])?;
        a = ops::dropout(tape, &a, p, train, drop_seed(1))?;
        match &self.head {
            AudioHead::Se { fc1, fc2 } => {
                let h = fc1.forward(tape, store, &a)?;
                let h = ops::relu(tape, &h)?;
                let h = ops::dropout(tape, &h, p, train, drop_seed(2))?;
                fc2.forward(tape, store, &h)
            }
            AudioHead::Legacy { fc1, attention, fc2 } => {
                let h = fc1.forward(tape, store, &a)?;
                let h = ops::relu(tape, &h)?;
                let h = ops::dropout(tape, &h, p, train, drop_seed(2))?;
                let h = attention.forward(tape, store, &h)?;
                fc2.forward(tape, store, &h)
            }
        }
    }
}
