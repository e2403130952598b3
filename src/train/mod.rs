//! The application's training: configs, the data a run reads, the one training step (`step`),
//! the loop (`fit`) with its session, schedule, early stopping and checkpoints, evaluation,
//! metrics, reports and the multi-run `compare`.

pub mod baselines;
pub mod batch_input;
pub mod batch_output;
pub mod batch_predict;
pub mod bootstrap;
pub mod checkpoint;
pub mod compare;
pub mod config;
pub mod dataset;
pub mod dist;
pub mod early_stop;
pub mod explain;
pub mod explain_means;
pub mod fit;
pub mod gradcheck;
pub mod infer;
pub mod init_weights;
pub mod loader;
pub mod log;
pub mod lyrics;
pub mod lyrics_encoder;
pub mod metrics;
pub mod outputs;
pub mod plot;
pub mod plot_explain;
pub mod predictions;
pub mod report;
pub mod report_explain;
pub mod run;
pub mod run_dir;
pub mod schedule;
pub mod se_quadrants;
pub mod session;
pub mod step;
pub mod timeline;

pub use step::{
    Batch, BatchLyrics, Exchange, Forward, GradHook, Objective, StepOptions, StepPhases, StepReport, mse_objective,
    record_forward, train_step, train_step_accumulated, train_step_shared,
};
