//! `moodgrad gradcheck`: finite differences through a whole small network, on the CPU in f64.

use crate::error::{Error, Result};
use crate::gradcheck::check_network;
use crate::nn::ModelConfig;

/// Central-difference step. With weights O(0.1) and f64, h = 1e-5 keeps truncation (≈h²) and
/// rounding (≈1e-16/h) errors near 1e-10, so the pass mark below has four orders of headroom.
const H: f64 = 1e-5;
/// Relative error allowed per tensor (floored at 1e-6 absolute, see `gradcheck::rel_err`):
/// a wrong backward is off by O(1); f64 differences agree to ~1e-9.
pub const TOLERANCE: f64 = 1e-5;

pub fn run(cfg: ModelConfig, input: [usize; 4], seed: u64, samples: usize) -> Result<()> {
    if input[1] != 1 {
        return Err(Error::Invalid(format!("--input must have 1 channel (a spectrogram), got {}", input[1])));
    }
    let side = 1usize << (cfg.channels.len() - 1);
    if input[2] < side || input[3] < side || input[0] * input[2] * input[3] / (side * side) < 2 {
        return Err(Error::Invalid(format!(
            "--input {input:?} is too small: H and W need ≥ {side}, and batch·H·W/{} ≥ 2 for BatchNorm",
            side * side
        )));
    }
    println!(
        "gradcheck: {} convs/block, channels {:?}, attention {:?}, input {:?}, lyrics width {}, seed {seed}, f64, h = {H:e}",
        cfg.convs_per_block, cfg.channels, cfg.attention, input, cfg.lyrics_dim
    );
    let rows = check_network(cfg, input, seed, samples, H)?;
    let mut worst: f64 = 0.0;
    for r in &rows {
        let flag = if r.max_rel_err > TOLERANCE { "  FAIL" } else { "" };
        println!("{:<48} {:>3} checked  max rel err {:.2e}{flag}", r.name, r.checked, r.max_rel_err);
        worst = worst.max(r.max_rel_err);
    }
    if worst > TOLERANCE {
        return Err(Error::Invalid(format!("gradcheck failed: max relative error {worst:.2e} > {TOLERANCE:e}")));
    }
    println!("gradcheck passed: {} tensors, max relative error {worst:.2e} ≤ {TOLERANCE:e}", rows.len());
    Ok(())
}
