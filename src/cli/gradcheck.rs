//! `moodgrad gradcheck`: finite differences through a whole small network, on the CPU in f64.

use crate::device::{Device, DeviceChoice};
use crate::error::{Error, Result};
use crate::nn::ModelConfig;
use crate::train::gradcheck::{NetCheck, check_network};

/// Central-difference step. With weights O(0.1) and f64, h = 1e-5 keeps truncation (≈h²) and
/// rounding (≈1e-16/h) errors near 1e-10, so the pass mark below has four orders of headroom.
const H: f64 = 1e-5;
/// Relative error allowed per tensor (floored at 1e-6 absolute, see `gradcheck::rel_err`):
/// a wrong backward is off by O(1); f64 differences agree to ~1e-9.
pub const TOLERANCE: f64 = 1e-5;
/// The same check with f32 analytic gradients (a kernel device): f32 rounding through ~20 layers
/// leaves ~1e-5 relative error on well-sized gradients and up to ~1e-4 on the small ones at the
/// floor; a wrong kernel is off by O(1).
pub const TOLERANCE_F32: f64 = 1e-3;

#[derive(clap::Args, Clone, Debug)]
pub struct GradcheckArgs {
    #[command(flatten)]
    pub model: super::ModelArgs,
    /// Input BxCxHxW (C must be 1).
    #[arg(long, default_value = "2x1x16x24")]
    pub input: String,
    #[arg(long, default_value = "64,128,256,512")]
    pub channels: String,
    #[arg(long, default_value_t = 16)]
    pub lyrics_dim: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Elements checked per parameter tensor (the largest-gradient one plus random ones).
    #[arg(long, default_value_t = 3)]
    pub samples: usize,
    /// Where the analytic gradients are computed: cpu (f64), cuda[:N] or sim (f32 kernels).
    #[arg(long, default_value = "auto")]
    pub device: String,
}

pub fn run(a: &GradcheckArgs) -> Result<()> {
    let mut cfg = a.model.config()?;
    cfg.channels = super::parse_channels(&a.channels)?;
    cfg.lyrics_dim = a.lyrics_dim;
    check(cfg, super::parse_dims::<4>(&a.input)?, a.seed, a.samples, a.device.parse()?)
}

/// The check itself on a resolved network and input.
pub fn check(cfg: ModelConfig, input: [usize; 4], seed: u64, samples: usize, device: DeviceChoice) -> Result<()> {
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
    // The CPU computes the analytic side in f64; a kernel device in f32.
    let dev = match Device::open(device)? {
        Device::Cpu(_) => None,
        d => Some(d),
    };
    let tol = if dev.is_some() { TOLERANCE_F32 } else { TOLERANCE };
    let side = dev.as_ref().map_or("cpu (f64)".to_string(), |d| d.name());
    println!(
        "gradcheck: {} convs/block, channels {:?}, attention {:?}, input {:?}, lyrics width {}, seed {seed}; \
         finite differences in f64 (h = {H:e}) against gradients from {side}",
        cfg.convs_per_block, cfg.channels, cfg.attention, input, cfg.lyrics_dim
    );
    let how = NetCheck { per_tensor: samples, h: H, tolerance: tol };
    let rows = check_network(cfg, input, seed, how, dev.as_ref())?;
    let (mut worst, mut skipped, mut smaller): (f64, usize, usize) = (0.0, 0, 0);
    for r in &rows {
        let flag = if r.max_rel_err > tol { "  FAIL" } else { "" };
        let kinks = if r.skipped_kinks > 0 {
            format!("  ({} skipped: kink within ±h)", r.skipped_kinks)
        } else {
            String::new()
        };
        println!("{:<48} {:>3} checked  max rel err {:.2e}{flag}{kinks}", r.name, r.checked, r.max_rel_err);
        worst = worst.max(r.max_rel_err);
        skipped += r.skipped_kinks;
        smaller += r.smaller_step;
    }
    if worst > tol {
        return Err(Error::Invalid(format!("gradcheck failed: max relative error {worst:.2e} > {tol:e}")));
    }
    println!(
        "gradcheck passed: {} tensors, max relative error {worst:.2e} ≤ {tol:e}; near kinks of ReLU/max-pool (left and \
         right differences disagree), {smaller} element(s) judged with h/10 or h/100 and {skipped} skipped",
        rows.len()
    );
    Ok(())
}
