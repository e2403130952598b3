//! `moodgrad init`: a freshly initialised network's state_dict (PyTorch's init distributions).

use crate::backend::cpu::Cpu;
use crate::error::Result;
use crate::io::{self, TensorFile};
use crate::nn::{AttentionKind, ModelConfig, SeedNet};
use crate::params::ParamStore;
use crate::rng::Rng;
use std::path::Path;

pub fn run(cfg: ModelConfig, seed: u64, out: &Path) -> Result<()> {
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
