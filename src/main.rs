use clap::{Parser, Subcommand};
use moodgrad::cli;
use moodgrad::error::Result;
use moodgrad::nn::{AttentionKind, ModelConfig};
use moodgrad::optim::AdamConfig;
use std::path::PathBuf;
use std::process::ExitCode;

/// Large buffers on transparent huge pages (see moodgrad::hugepages).
#[global_allocator]
static ALLOC: moodgrad::hugepages::HugePageAlloc = moodgrad::hugepages::HugePageAlloc;

/// moodgrad: trains bimodal (audio + lyrics) music-emotion models without libtorch.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// The network's shape: a seed preset, its attention variant, optional narrower widths.
#[derive(clap::Args, Clone)]
struct ModelArgs {
    /// model3 (one conv per block), model4 (two) or model5.
    #[arg(long, default_value = "model3")]
    model: String,
    /// se (the guide's fix) or legacy (the notebooks' feature attention).
    #[arg(long, default_value = "se")]
    attention: String,
}

impl ModelArgs {
    fn config(&self) -> Result<ModelConfig> {
        ModelConfig::preset(&self.model, self.attention.parse()?)
    }
    fn attention(&self) -> Result<AttentionKind> {
        self.attention.parse()
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Train MODEL_3 on built-in synthetic data and report the validation loss as it falls.
    Demo(cli::demo::DemoArgs),
    /// Write a freshly initialised network's weights (PyTorch's default init distributions).
    Init {
        #[command(flatten)]
        model: ModelArgs,
        /// Block widths, e.g. 8,16,32,64 for a small test network.
        #[arg(long, default_value = "64,128,256,512")]
        channels: String,
        #[arg(long, default_value_t = 768)]
        lyrics_dim: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Finite differences through a whole small network (CPU, f64); non-zero exit above tolerance.
    Gradcheck {
        #[command(flatten)]
        model: ModelArgs,
        /// Input BxCxHxW (C must be 1).
        #[arg(long, default_value = "2x1x16x24")]
        input: String,
        #[arg(long, default_value = "64,128,256,512")]
        channels: String,
        #[arg(long, default_value_t = 16)]
        lyrics_dim: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Elements checked per parameter tensor (the largest-gradient one plus random ones).
        #[arg(long, default_value_t = 3)]
        samples: usize,
        /// Where the analytic gradients are computed: cpu (f64), cuda[:N] or sim (f32 kernels).
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// N training steps (train mode, dropout off) from given weights on a given batch.
    Step {
        #[command(flatten)]
        model: ModelArgs,
        /// state_dict as safetensors (block widths are read from it).
        #[arg(long)]
        weights: PathBuf,
        /// safetensors with `audio` [B,1,H,W], `lyrics` [B,T], `target` [B,2].
        #[arg(long)]
        batch: PathBuf,
        #[arg(long, default_value_t = 1)]
        steps: usize,
        #[arg(long, default_value_t = 1e-3)]
        lr: f64,
        /// Max global gradient norm; 0 turns clipping off.
        #[arg(long, default_value_t = 1.0)]
        clip: f64,
        #[arg(long, default_value_t = 0.9)]
        beta1: f64,
        #[arg(long, default_value_t = 0.999)]
        beta2: f64,
        #[arg(long, default_value_t = 1e-8)]
        eps: f64,
        #[arg(long, default_value_t = 0.0)]
        weight_decay: f64,
        /// AdamW (decoupled weight decay) instead of Adam.
        #[arg(long)]
        adamw: bool,
        #[arg(long)]
        out: PathBuf,
        /// auto (CUDA if a GPU answers, else CPU), cpu, cuda[:N], or sim (CUDA kernels on the host).
        #[arg(long, default_value = "auto")]
        device: String,
        /// Convolution math: fp32, or tf32 on tensor cores; default tf32 on cuda, fp32 on cpu and
        /// sim (PyTorch's defaults).
        #[arg(long)]
        precision: Option<String>,
    },
    /// Turn a MERGE folder into a spectrogram cache (.npy per clip) and the seed's master list.
    Preprocess {
        /// The MERGE folder (Bimodal, Audio-only or Lyrics-only; Complete or Balanced).
        #[arg(long)]
        data: PathBuf,
        /// Cache folder (default: DATA/moodgrad-cache/fixed, or …/legacy with --legacy).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Parallel clips (default: all cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// The notebooks' preprocessing: ref = the clip's max, the first 1292 frames, pad with 0.
        #[arg(long)]
        legacy: bool,
        /// npy (one <Audio_Song>.npy per clip, the seed's format) or safetensors (shards keyed by Audio_Song).
        #[arg(long, default_value = "npy")]
        format: String,
        /// Also tokenize each lyric with this tokenizer (a Hugging Face folder, or a hub name in the
        /// local cache) into processed_lyrics/<Audio_Song>.pt, as the seed's notebooks did, and point
        /// lyrics_path at it; without it lyrics_path names the .txt.
        #[arg(long)]
        tokenizer: Option<String>,
        /// Tokens per lyric with --tokenizer (padded and truncated to exactly this many).
        #[arg(long, default_value_t = 512)]
        max_len: usize,
    },
    /// Encode lyrics with a Hugging Face encoder: one vector per lyric file, keyed by file stem.
    Encode {
        /// A Hugging Face model folder (config.json, model.safetensors, tokenizer files), or a hub name
        /// found in the local Hugging Face cache (never downloaded).
        #[arg(long)]
        model: String,
        /// A lyric file, or a folder searched recursively for *.txt.
        #[arg(long)]
        lyrics: PathBuf,
        /// cls (the [CLS] hidden state, the seed's choice), pooler (tanh(dense([CLS]))) or mean
        /// (masked mean, sentence-transformers').
        #[arg(long, default_value = "cls")]
        pool: String,
        #[arg(long, default_value_t = 512)]
        max_len: usize,
        /// Lyrics per forward pass.
        #[arg(long, default_value_t = 16)]
        batch: usize,
        /// Output safetensors: one F32 [hidden] tensor per lyric, named by its file stem.
        #[arg(long)]
        out: PathBuf,
        /// auto (CUDA if a GPU answers, else CPU), cpu, cuda[:N], or sim (CUDA kernels on the host).
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// Write a small synthetic dataset in the MERGE Bimodal layout (WAV audio, lyrics, CSVs, splits).
    Synth {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 40)]
        songs: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// 22050 or 44100.
        #[arg(long, default_value_t = 22050)]
        sample_rate: u32,
        /// Scale clip lengths so the longest possible is this many seconds (MERGE: 30.8).
        #[arg(long, default_value_t = 30.8)]
        max_seconds: f64,
    },
    /// Train a model on a MERGE folder (or a cache) into a RUN folder: log, checkpoints, best
    /// weights, test predictions and a report.
    Train(cli::train::TrainArgs),
    /// Score a run (or weights trained elsewhere) on a split of its data or another dataset.
    Evaluate(cli::evaluate::EvaluateArgs),
    /// Valence, arousal and quadrant of new songs (audio files, and lyrics for a bimodal run).
    Predict(cli::predict::PredictArgs),
    /// The before/after study: legacy against fixed for each model, K seeds, with baselines.
    Compare(cli::compare::CompareArgs),
    /// Throughput benchmarks a user can run (criterion benches are in benches/).
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Clips/s of decode + resample + mel + dB over N copies of a 31 s stereo MP3, 1 core and all.
    Preprocess {
        #[arg(long, default_value_t = 16)]
        files: usize,
        /// The notebooks' preprocessing (ref = max, first frames, pad 0).
        #[arg(long)]
        legacy: bool,
        /// Also time the batched front end (mel + dB + crop/pad as one batch) on this device:
        /// cpu, cuda[:N], sim, or auto (CUDA when a GPU answers).
        #[arg(long)]
        device: Option<String>,
    },
    /// Per-kernel medians and GB/s or TFLOP/s on a device (copy, SE, conv, BN, unit, step).
    Kernels(cli::bench_kernels::KernelsArgs),
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Demo(a) => cli::demo::run(&a),
        Cmd::Init { model, channels, lyrics_dim, seed, out } => {
            let mut cfg = model.config()?;
            cfg.channels = cli::parse_channels(&channels)?;
            cfg.lyrics_dim = lyrics_dim;
            cli::init::run(cfg, seed, &out)
        }
        Cmd::Gradcheck { model, input, channels, lyrics_dim, seed, samples, device } => {
            let mut cfg = model.config()?;
            cfg.channels = cli::parse_channels(&channels)?;
            cfg.lyrics_dim = lyrics_dim;
            cli::gradcheck::run(cfg, cli::parse_dims::<4>(&input)?, seed, samples, device.parse()?)
        }
        Cmd::Step {
            model,
            weights,
            batch,
            steps,
            lr,
            clip,
            beta1,
            beta2,
            eps,
            weight_decay,
            adamw,
            out,
            device,
            precision,
        } => {
            let adam = AdamConfig { lr, beta1, beta2, eps, weight_decay, decoupled: adamw };
            cli::step::run(&cli::step::StepArgs {
                model: &model.model,
                attention: model.attention()?,
                weights: &weights,
                batch: &batch,
                steps,
                adam,
                clip: (clip > 0.0).then_some(clip),
                out: &out,
                device: device.parse()?,
                precision: moodgrad::backend::precision::parse_precision(precision.as_deref())?,
            })
        }
        Cmd::Preprocess { data, out, jobs, legacy, format, tokenizer, max_len } => {
            cli::preprocess::run(&cli::preprocess::PreprocessArgs {
                data: &data,
                out: out.as_deref(),
                jobs,
                legacy,
                format: format.parse()?,
                tokenizer: tokenizer.as_deref(),
                max_len,
            })
        }
        Cmd::Encode { model, lyrics, pool, max_len, batch, out, device } => {
            cli::encode::run(&cli::encode::EncodeArgs {
                model: &model,
                lyrics: &lyrics,
                pooling: pool.parse()?,
                max_len,
                batch,
                out: &out,
                device: device.parse()?,
            })
        }
        Cmd::Synth { out, songs, seed, sample_rate, max_seconds } => {
            cli::synth::run(&out, &moodgrad::data::synth::SynthConfig { songs, seed, sample_rate, max_seconds })
        }
        Cmd::Train(a) => cli::train::run(&a),
        Cmd::Evaluate(a) => cli::evaluate::run(&a),
        Cmd::Predict(a) => cli::predict::run(&a),
        Cmd::Compare(a) => cli::compare::run(&a),
        Cmd::Bench { what: BenchCmd::Preprocess { files, legacy, device } } => {
            cli::bench::preprocess(files, legacy, device.map(|d| d.parse()).transpose()?)
        }
        Cmd::Bench { what: BenchCmd::Kernels(a) } => cli::bench_kernels::run(&a),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
