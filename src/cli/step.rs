//! `moodgrad step`: N training steps from given weights on a given batch, writing everything a
//! user needs to hold moodgrad against PyTorch (see tools/torch_step.py for the other side).

use super::config_for_weights;
use crate::backend::{Backend, Precision};
use crate::device::{Device, DeviceChoice};
use crate::error::{Error, Result};
use crate::io::{self, HostTensor, TensorFile};
use crate::nn::{AttentionKind, SeedNet};
use crate::optim::{Adam, AdamConfig};
use crate::params::ParamStore;
use crate::rng::Rng;
use crate::train::lyrics::NoLyrics;
use crate::train::{Batch, Objective, StepOptions, train_step};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Clone, Debug)]
pub struct StepArgs {
    #[command(flatten)]
    pub model: super::ModelArgs,
    /// state_dict as safetensors (block widths are read from it).
    #[arg(long)]
    pub weights: PathBuf,
    /// safetensors with `audio` [B,1,H,W], `lyrics` [B,T], `target` [B,2].
    #[arg(long)]
    pub batch: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub steps: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Max global gradient norm; 0 turns clipping off.
    #[arg(long, default_value_t = 1.0)]
    pub clip: f64,
    #[arg(long, default_value_t = 0.9)]
    pub beta1: f64,
    #[arg(long, default_value_t = 0.999)]
    pub beta2: f64,
    #[arg(long, default_value_t = 1e-8)]
    pub eps: f64,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// AdamW (decoupled weight decay) instead of Adam.
    #[arg(long)]
    pub adamw: bool,
    #[arg(long)]
    pub out: PathBuf,
    /// auto (CUDA if a GPU answers, else CPU), cpu, cuda[:N], or sim (CUDA kernels on the host).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Convolution math: fp32, or tf32 on tensor cores; default tf32 on cuda, fp32 on cpu and
    /// sim (PyTorch's defaults).
    #[arg(long)]
    pub precision: Option<String>,
}

/// The arguments resolved.
pub struct StepPlan<'a> {
    pub model: &'a str,
    pub attention: AttentionKind,
    pub weights: &'a Path,
    pub batch: &'a Path,
    pub steps: usize,
    pub adam: AdamConfig,
    pub clip: Option<f64>,
    pub out: &'a Path,
    pub device: DeviceChoice,
    /// The convolutions' math (None: the device's default).
    pub precision: Option<Precision>,
}

pub fn run(a: &StepArgs) -> Result<()> {
    let (beta1, beta2, eps, weight_decay) = (a.beta1, a.beta2, a.eps, a.weight_decay);
    let adam = AdamConfig { lr: a.lr, beta1, beta2, eps, weight_decay, decoupled: a.adamw };
    run_plan(&StepPlan {
        model: &a.model.model,
        attention: a.model.attention()?,
        weights: &a.weights,
        batch: &a.batch,
        steps: a.steps,
        adam,
        clip: (a.clip > 0.0).then_some(a.clip),
        out: &a.out,
        device: a.device.parse()?,
        precision: crate::backend::precision::parse_precision(a.precision.as_deref())?,
    })
}

pub fn run_plan(a: &StepPlan) -> Result<()> {
    let dev = Device::open_with(a.device, a.precision)?;
    println!("device: {} ({} convolutions)", dev.name(), dev.precision());
    crate::on_device!(dev, |b| run_on(b, a))
}

/// The same on any backend (the CUDA issue adds `--device`).
pub fn run_on<B: Backend>(be: B, a: &StepPlan) -> Result<()> {
    if a.steps == 0 {
        return Err(Error::Invalid("--steps must be at least 1".into()));
    }
    let wfile = io::read(a.weights)?;
    let mut cfg = config_for_weights(a.model, a.attention, &wfile, a.weights)?;
    let batch = Batch::from_file(&be, a.batch, &cfg)?;
    // Training mode with every dropout off, as PyTorch's model.train() with p = 0.
    cfg.dropout = 0.0;
    let mut store = ParamStore::new(be.clone());
    let net = SeedNet::new(cfg, &mut store, &mut Rng::new(0))?;
    io::load_state_dict(&mut store, a.weights, &wfile, &[])?;
    let mut opt = Adam::new(a.adam);
    let mut out = TensorFile::default();
    let (mut losses, mut norms) = (Vec::new(), Vec::new());
    let (start, mut last) = (std::time::Instant::now(), 0.0);
    for s in 0..a.steps {
        let options = StepOptions { objective: Objective::MSE, clip: a.clip, seed: s as u64 };
        // The first step's gradients, as backward left them (before clipping and the update).
        let mut keep_grads = |store: &ParamStore<B>, _norm: f64| -> Result<()> {
            if s == 0 {
                for id in store.param_ids() {
                    if let Some(g) = store.grad(id) {
                        let shape = store.value(id).shape().to_vec();
                        let v: Vec<f32> = be.download_f64(g)?.into_iter().map(|x| x as f32).collect();
                        out.tensors.insert(format!("grad.{}", store.name(id)), HostTensor::f32(&shape, v));
                    }
                }
            }
            Ok(())
        };
        let r = train_step(&net, &mut store, &mut opt, &mut NoLyrics, &batch, &options, Some(&mut keep_grads))?;
        let t0 = start.elapsed().as_secs_f64();
        println!(
            "step {:>3}  loss {:.6}  grad_norm {:.6}  {:.3} s  peak {:.1} MiB (counting allocator)",
            s + 1,
            r.loss,
            r.grad_norm,
            t0 - last,
            r.peak_bytes as f64 / (1 << 20) as f64
        );
        // CPU ÷ wall per phase: how many cores were busy (on a kernel device the host only
        // queues launches, so these say little there).
        let p = &r.phases;
        println!(
            "          forward {:.3} s (cpu/wall {:.2})  backward {:.3} s ({:.2})  optimizer {:.3} s ({:.2})",
            p.forward.wall_s,
            p.forward.busy_cores(),
            p.backward.wall_s,
            p.backward.busy_cores(),
            p.optimizer.wall_s,
            p.optimizer.busy_cores()
        );
        last = t0;
        losses.push(r.loss as f32);
        norms.push(r.grad_norm as f32);
    }
    out.tensors.insert("loss".into(), HostTensor::f32(&[a.steps], losses));
    out.tensors.insert("grad_norm".into(), HostTensor::f32(&[a.steps], norms));
    out.tensors.extend(io::state_dict(&store)?);
    io::write(a.out, &out)?;
    println!("wrote {}", a.out.display());
    Ok(())
}
