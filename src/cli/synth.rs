//! `moodgrad synth`: writes a small MERGE-like Bimodal dataset (see `crate::data::synth`).

use crate::data::synth::{SynthConfig, generate};
use crate::error::Result;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args, Clone, Debug)]
pub struct SynthArgs {
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 40)]
    pub songs: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// 22050 or 44100.
    #[arg(long, default_value_t = 22050)]
    pub sample_rate: u32,
    /// Scale clip lengths so the longest possible is this many seconds (MERGE: 30.8).
    #[arg(long, default_value_t = 30.8)]
    pub max_seconds: f64,
}

pub fn run(a: &SynthArgs) -> Result<()> {
    let cfg = SynthConfig { songs: a.songs, seed: a.seed, sample_rate: a.sample_rate, max_seconds: a.max_seconds };
    write(&a.out, &cfg)
}

/// Writes the dataset and prints what it holds.
pub fn write(out: &Path, cfg: &SynthConfig) -> Result<()> {
    let t0 = Instant::now();
    let songs = generate(out, cfg)?;
    let mut q = [0usize; 4];
    let mut split = [0usize; 3];
    for s in &songs {
        q[s.quadrant[1..].parse::<usize>().unwrap_or(1) - 1] += 1;
        split[["train", "validate", "test"].iter().position(|x| *x == s.split).unwrap_or(0)] += 1;
    }
    let seconds: f64 = songs.iter().map(|s| s.seconds).sum();
    let (lo, hi) = songs.iter().fold((f64::MAX, 0f64), |(l, h), s| (l.min(s.seconds), h.max(s.seconds)));
    println!(
        "synth: {} songs in {} ({:.1} min of {} Hz 16-bit WAV, clips {:.1}-{:.1} s) in {:.2} s",
        songs.len(),
        out.display(),
        seconds / 60.0,
        cfg.sample_rate,
        lo,
        hi,
        t0.elapsed().as_secs_f64()
    );
    println!("  quadrants: Q1 {} | Q2 {} | Q3 {} | Q4 {}", q[0], q[1], q[2], q[3]);
    println!("  tvt_70_15_15: train {} | validate {} | test {}", split[0], split[1], split[2]);
    println!("  next: moodgrad preprocess --data {}", out.display());
    Ok(())
}
