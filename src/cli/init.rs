//! `moodgrad init`: a freshly initialised network's state_dict (PyTorch's init distributions).

use crate::backend::cpu::Cpu;
use crate::error::Result;
use crate::io::{self, TensorFile};
use crate::nn::{AttentionKind, ModelConfig, SeedNet};
use crate::params::ParamStore;
use crate::rng::Rng;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Clone, Debug)]
pub struct InitArgs {
    #[command(flatten)]
    pub model: super::ModelArgs,
    /// Block widths, e.g. 8,16,32,64 for a small test network.
    #[arg(long, default_value = "64,128,256,512")]
    pub channels: String,
    #[arg(long, default_value_t = 768)]
    pub lyrics_dim: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: &InitArgs) -> Result<()> {
    let mut cfg = a.model.config()?;
    cfg.channels = super::parse_channels(&a.channels)?;
    cfg.lyrics_dim = a.lyrics_dim;
    write_init(cfg, a.seed, &a.out)
}

/// Writes `cfg`'s network, initialised from `seed`, to `out`.
pub fn write_init(cfg: ModelConfig, seed: u64, out: &Path) -> Result<()> {
    let mut store = ParamStore::new(Cpu::<f32>::new());
    SeedNet::new(cfg.clone(), &mut store, &mut Rng::new(seed))?;
    let file = TensorFile { tensors: io::state_dict(&store)?, metadata: Default::default() };
    io::write(out, &file)?;
    let kind = if cfg.attention == AttentionKind::Se { "se" } else { "legacy" };
    println!(
        "wrote {} ({} tensors, {} parameters; channels {:?}, attention {kind}, lyrics width {})",
        out.display(),
        file.tensors.len(),
        store.num_params(),
        cfg.channels,
        cfg.lyrics_dim
    );
    Ok(())
}
