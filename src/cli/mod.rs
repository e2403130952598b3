//! The `moodgrad` command line: each subcommand in its own file.

pub mod bench;
pub mod bench_kernels;
pub mod compare;
pub mod demo;
pub mod encode;
pub mod evaluate;
pub mod explain;
pub mod gradcheck;
pub mod init;
pub mod predict;
pub mod predict_batch;
pub mod preprocess;
pub mod step;
pub mod synth;
pub mod timeline;
pub mod train;

use crate::error::{Error, Result};
use crate::io::TensorFile;
use crate::nn::{AttentionKind, ModelConfig};
use std::path::Path;

/// The network's shape: a seed preset and its attention variant (flattened into the commands
/// that build a network).
#[derive(clap::Args, Clone, Debug)]
pub struct ModelArgs {
    /// model3 (one conv per block), model4 (two) or model5.
    #[arg(long, default_value = "model3")]
    pub model: String,
    /// se (the guide's fix) or legacy (the notebooks' feature attention).
    #[arg(long, default_value = "se")]
    pub attention: String,
}

impl ModelArgs {
    /// The preset's network with this attention.
    pub fn config(&self) -> Result<ModelConfig> {
        ModelConfig::preset(&self.model, self.attention.parse()?)
    }
    pub fn attention(&self) -> Result<AttentionKind> {
        self.attention.parse()
    }
}

/// "3x1x40x72" -> [3, 1, 40, 72].
/// `--device` and `--precision` (None: the device's default) opened, flags checked first.
pub fn open_device(device: &str, precision: Option<&str>) -> Result<crate::device::Device> {
    let choice: crate::device::DeviceChoice = device.parse()?;
    let precision = crate::backend::precision::parse_precision(precision)?;
    crate::device::Device::open_with(choice, precision)
}

pub fn parse_dims<const N: usize>(s: &str) -> Result<[usize; N]> {
    let v: Vec<usize> = s
        .split(['x', 'X', ','])
        .map(|p| p.trim().parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::Invalid(format!("`{s}` is not a list of {N} sizes like 2x1x16x24")))?;
    v.try_into().map_err(|_| Error::Invalid(format!("`{s}` needs exactly {N} sizes")))
}

pub fn parse_channels(s: &str) -> Result<Vec<usize>> {
    let v: Vec<usize> = s
        .split(',')
        .map(|p| p.trim().parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::Invalid(format!("--channels `{s}`: expected a list like 64,128,256,512")))?;
    if v.is_empty() || v.contains(&0) {
        return Err(Error::Invalid(format!("--channels `{s}`: need at least one positive width")));
    }
    Ok(v)
}

/// The preset, with the audio tower's widths read off a weights file's conv weights when the
/// file has them (so narrow test networks need no extra flag).
pub fn config_for_weights(
    model: &str,
    attention: AttentionKind,
    file: &TensorFile,
    path: &Path,
) -> Result<ModelConfig> {
    let mut cfg = ModelConfig::preset(model, attention)?;
    let mut convs: Vec<(usize, usize)> = file
        .tensors
        .iter()
        .filter_map(|(k, t)| {
            let idx = k.strip_prefix("audio_tower.features.")?.strip_suffix(".weight")?;
            (t.shape.len() == 4).then(|| idx.parse::<usize>().ok().map(|i| (i, t.shape[0])))?
        })
        .collect();
    convs.sort();
    if convs.is_empty() {
        return Err(Error::file(
            path,
            "no audio_tower.features.<i>.weight conv tensors: is this a moodgrad/seed checkpoint?",
        ));
    }
    let per = cfg.convs_per_block;
    // The k-th conv of the seed's layout sits at features.(block·(3·per + 1) + 3·j): conv, bn, relu
    // per conv, a pool after each block. Every conv position up to the last features.<i> tensor of
    // the file (a bias, a BatchNorm) must have its weight: an absent one would shift or shorten
    // the widths inferred below, and the load would then fail on a neighbour's shape instead.
    let last = file
        .tensors
        .keys()
        .filter_map(|k| k.strip_prefix("audio_tower.features.")?.split('.').next()?.parse::<usize>().ok())
        .max()
        .unwrap_or(0);
    let found: Vec<usize> = convs.iter().map(|c| c.0).collect();
    let conv_at = |k: usize| k / per * (3 * per + 1) + 3 * (k % per);
    if let Some(want) = (0..).map(conv_at).take_while(|&p| p <= last).find(|p| !found.contains(p)) {
        let present: Vec<String> = found.iter().map(|i| i.to_string()).collect();
        return Err(Error::file(
            path,
            format!(
                "tensor `audio_tower.features.{want}.weight` is missing: inferred from the file's conv weights (at \
                 features {}) and its other audio_tower.features tensors (up to features.{last}), with {per} conv(s) \
                 per block for --model {model}, a conv weight belongs there; is the file complete, and the --model \
                 right?",
                present.join(", ")
            ),
        ));
    }
    if !convs.len().is_multiple_of(per) {
        return Err(Error::file(
            path,
            format!("{} conv layers do not make whole blocks of {per} (wrong --model?)", convs.len()),
        ));
    }
    cfg.channels = convs.iter().skip(per - 1).step_by(per).map(|c| c.1).collect();
    if let Some(t) = file.tensors.get("classifier_head.1.weight")
        && t.shape.len() == 2
        && t.shape[1] > cfg.audio_out
    {
        cfg.lyrics_dim = t.shape[1] - cfg.audio_out;
    }
    Ok(cfg)
}
