use clap::{Parser, Subcommand};
use moodgrad::cli;
use moodgrad::error::Result;
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

/// Every subcommand is one variant holding its module's `clap::Args` struct, run by that
/// module's `run`.
#[derive(Subcommand)]
enum Cmd {
    /// Train the tiny preset (MODEL_3's design cut to two narrow blocks) on built-in synthetic data,
    /// then evaluate and report.
    Demo(cli::demo::DemoArgs),
    /// Write a freshly initialised network's weights (PyTorch's default init distributions).
    Init(cli::init::InitArgs),
    /// Finite differences through a whole small network (CPU, f64); non-zero exit above tolerance.
    Gradcheck(cli::gradcheck::GradcheckArgs),
    /// N training steps (train mode, dropout off) from given weights on a given batch.
    Step(cli::step::StepArgs),
    /// Turn a MERGE folder into a spectrogram cache (.npy per clip) and the seed's master list.
    Preprocess(cli::preprocess::PreprocessArgs),
    /// Encode lyrics with a Hugging Face encoder: one vector per lyric file, keyed by file stem.
    Encode(cli::encode::EncodeArgs),
    /// Write a small synthetic dataset in the MERGE Bimodal layout (WAV audio, lyrics, CSVs, splits).
    Synth(cli::synth::SynthArgs),
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
    #[command(subcommand)]
    Bench(BenchCmd),
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Clips/s of decode + resample + mel + dB over N copies of a 31 s stereo MP3, 1 core and all.
    Preprocess(cli::bench::PreprocessBenchArgs),
    /// Per-kernel medians and GB/s or TFLOP/s on a device (copy, SE, conv, BN, unit, step).
    Kernels(cli::bench_kernels::KernelsArgs),
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Demo(a) => cli::demo::run(&a),
        Cmd::Init(a) => cli::init::run(&a),
        Cmd::Gradcheck(a) => cli::gradcheck::run(&a),
        Cmd::Step(a) => cli::step::run(&a),
        Cmd::Preprocess(a) => cli::preprocess::run(&a),
        Cmd::Encode(a) => cli::encode::run(&a),
        Cmd::Synth(a) => cli::synth::run(&a),
        Cmd::Train(a) => cli::train::run(&a),
        Cmd::Evaluate(a) => cli::evaluate::run(&a),
        Cmd::Predict(a) => cli::predict::run(&a),
        Cmd::Compare(a) => cli::compare::run(&a),
        Cmd::Bench(BenchCmd::Preprocess(a)) => cli::bench::run(&a),
        Cmd::Bench(BenchCmd::Kernels(a)) => cli::bench_kernels::run(&a),
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
