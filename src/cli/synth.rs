//! `moodgrad synth`: writes a small MERGE-like Bimodal dataset (see `crate::data::synth`).

use crate::data::synth::{SynthConfig, generate};
use crate::error::Result;
use std::path::Path;
use std::time::Instant;

pub fn run(out: &Path, cfg: &SynthConfig) -> Result<()> {
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
