//! `moodgrad bench preprocess --files N`: clips per second of decode + resample + mel + dB over
//! N copies of a 31 s 44.1 kHz stereo MP3, on one core and on all cores. Put
//! `tools/bench_librosa.py` beside it for librosa on the same file in the same run.

use crate::audio::{PreprocessParams, batch::mel_db_batch, decode, mel_db_from_file, resample};
use crate::device::{Device, DeviceChoice};
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::path::PathBuf;
use std::time::Instant;

/// The MP3 of the audio fixtures (made by tools/make_librosa_fixtures.py with lame).
const CLIP: &[u8] = include_bytes!("../../tests/fixtures/audio/music_44k_stereo_31s.mp3");

fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Invalid(format!("thread pool: {e}")))
}

fn clips_per_second(files: &[PathBuf], threads: usize, params: &PreprocessParams) -> Result<f64> {
    let pool = pool(threads)?;
    let start = Instant::now();
    pool.install(|| files.par_iter().try_for_each(|f| mel_db_from_file(f, params).map(|_| ())))
        .map_err(|e| Error::Invalid(format!("benchmark clip failed: {e}")))?;
    Ok(files.len() as f64 / start.elapsed().as_secs_f64())
}

/// The batched path: decode + resample on the CPU cores, then `audio::batch::mel_db_batch`.
fn batched_clips_per_second(files: &[PathBuf], cores: usize, params: &PreprocessParams, dev: &Device) -> Result<f64> {
    let pool = pool(cores)?;
    let start = Instant::now();
    let clips: Vec<Vec<f32>> = pool
        .install(|| {
            files
                .par_iter()
                .map(|f| {
                    let d = decode::decode_file(f)?;
                    resample::resample(d.samples, d.sample_rate, params.sample_rate)
                })
                .collect::<std::result::Result<_, _>>()
        })
        .map_err(|e| Error::Invalid(format!("benchmark clip failed: {e}")))?;
    pool.install(|| crate::on_device!(dev, |b| mel_db_batch(b, &clips, params)))?;
    Ok(files.len() as f64 / start.elapsed().as_secs_f64())
}

#[derive(clap::Args, Clone, Debug)]
pub struct PreprocessBenchArgs {
    #[arg(long, default_value_t = 16)]
    pub files: usize,
    /// The notebooks' preprocessing (ref = max, first frames, pad 0).
    #[arg(long)]
    pub legacy: bool,
    /// Also time the batched front end (mel + dB + crop/pad as one batch) on this device:
    /// cpu, cuda[:N], sim, or auto (CUDA when a GPU answers).
    #[arg(long)]
    pub device: Option<String>,
}

pub fn run(a: &PreprocessBenchArgs) -> Result<()> {
    preprocess(a.files, a.legacy, a.device.as_deref().map(str::parse).transpose()?)
}

/// `device`: also time the batched front end there (`sim` is for correctness, not speed).
pub fn preprocess(files: usize, legacy: bool, device: Option<DeviceChoice>) -> Result<()> {
    let device = device.map(Device::open).transpose()?;
    let device = device.as_ref();
    if files == 0 {
        return Err(Error::Invalid("--files must be at least 1".into()));
    }
    let dir = std::env::temp_dir().join(format!("moodgrad-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::file(&dir, format!("cannot create: {e}")))?;
    let paths: Vec<PathBuf> = (0..files).map(|i| dir.join(format!("clip{i:04}.mp3"))).collect();
    for p in &paths {
        std::fs::write(p, CLIP).map_err(|e| Error::file(p, format!("cannot write: {e}")))?;
    }
    let params = if legacy { PreprocessParams::legacy() } else { PreprocessParams::default() };
    // Warm-up: page cache, filterbank and FFT plans.
    mel_db_from_file(&paths[0], &params).map_err(|e| Error::file(&paths[0], e.to_string()))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let one = clips_per_second(&paths, 1, &params)?;
    let all = clips_per_second(&paths, cores, &params)?;
    println!("decode + resample + mel + dB of {files} × 31 s 44.1 kHz stereo MP3:");
    println!("  1 core:   {one:.2} clips/s ({:.1} ms per clip)", 1e3 / one);
    println!("  {cores} cores:  {all:.2} clips/s");
    if let Some(dev) = device {
        let batched = batched_clips_per_second(&paths, cores, &params, dev)?;
        println!("  batched front end on {}: {batched:.2} clips/s", dev.name());
        println!(
            "    (decode + resample + STFT on {cores} CPU cores, then mel + dB + crop/pad per batch on the device)"
        );
    }
    println!("librosa on the same file: python tools/bench_librosa.py (per clip, warm, one process)");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
