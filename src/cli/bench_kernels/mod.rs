//! `moodgrad bench kernels`: per-workload medians and throughput of the engine's kernels on a
//! device (copy, SE, conv, BatchNorm, the fused VGG unit, full training steps), as a table or
//! as the JSON `tools/bench_torch_gpu.py` prints for PyTorch, so `tools/bench_compare.py` can
//! join the two. The workloads and what their GB/s and TFLOP/s count: workloads.rs.

mod workloads;

use crate::backend::Backend;
use crate::device::{Device, DeviceChoice};
use crate::error::{Error, Result};
use workloads::{Kind, Record};

#[derive(clap::Args, Clone, Debug)]
pub struct KernelsArgs {
    /// cuda[:N], cpu, sim (the CUDA kernels on the host SIMT layer: slow), or auto.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// se, conv, bn, unit, step, copy or all.
    #[arg(long, default_value = "all")]
    pub op: String,
    /// The spectrogram's H×W every workload's maps derive from (block k is H/2^k × W/2^k);
    /// default 128x1292, 32x64 on sim.
    #[arg(long)]
    pub shape: Option<String>,
    /// Batch size; default 16 on cuda, 1 on cpu and sim.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Convolution math: fp32, or tf32 on tensor cores; default tf32 on cuda, fp32 on cpu and sim
    /// (PyTorch's defaults). Applies to conv, unit and step; the other workloads are fp32.
    #[arg(long)]
    pub precision: Option<String>,
    /// The network of `--op step`: model3 or model4 (with SE).
    #[arg(long, default_value = "model3")]
    pub config: String,
    /// Timed runs per workload (the median is reported); default 20 on cuda, 5 on cpu, 1 on sim.
    #[arg(long)]
    pub runs: Option<usize>,
    /// The device's FP32 peak in TFLOP/s, for conv's `fraction_of_peak` (null without it).
    #[arg(long)]
    pub peak_tflops: Option<f64>,
    /// One JSON object (the shape tools/bench_torch_gpu.py prints) instead of the table.
    #[arg(long)]
    pub json: bool,
}

const OPS: [&str; 7] = ["se", "conv", "bn", "unit", "step", "copy", "all"];

/// The resolved settings every workload reads.
pub struct Plan {
    pub batch: usize,
    /// The spectrogram's (H, W).
    pub input: (usize, usize),
    pub config: &'static str,
    pub runs: usize,
    pub warmup: usize,
}

impl Plan {
    /// (name, c_in, c_out, h, w) of MODEL_3's four VGG convs at this input.
    pub fn vgg(&self) -> Vec<(String, usize, usize, usize, usize)> {
        let (h, w) = self.input;
        [(1, 64), (64, 128), (128, 256), (256, 512)]
            .into_iter()
            .enumerate()
            .map(|(k, (ci, co))| {
                let (hk, wk) = (h >> k, w >> k);
                (format!("block{}_{ci}to{co}_{hk}x{wk}", k + 1), ci, co, hk, wk)
            })
            .collect()
    }
    /// The SE block's input: block 4's 512-channel map.
    pub fn se_shape(&self) -> [usize; 4] {
        [self.batch, 512, self.input.0 >> 3, self.input.1 >> 3]
    }
}

fn parse_op(s: &str) -> Result<Vec<&'static str>> {
    match OPS.iter().find(|&&o| o == s) {
        Some(&"all") => Ok(vec!["copy", "se", "bn", "conv", "unit", "step"]),
        Some(&o) => Ok(vec![o]),
        None => Err(Error::Invalid(format!("unknown --op `{s}`: use {}", OPS.join(", ")))),
    }
}

fn parse_shape(s: &str) -> Result<(usize, usize)> {
    let [h, w] = super::parse_dims::<2>(s).map_err(|e| Error::Invalid(format!("--shape: {e} (expected HxW)")))?;
    if h < 8 || w < 8 {
        return Err(Error::Invalid(format!(
            "--shape `{s}`: H and W must be at least 8 (three 2×2 pools leave block 4 a map)"
        )));
    }
    Ok((h, w))
}

fn parse_config(s: &str) -> Result<&'static str> {
    match s {
        "model3" => Ok("model3"),
        "model4" => Ok("model4"),
        _ => Err(Error::Invalid(format!("unknown --config `{s}`: use model3 or model4"))),
    }
}

/// The process's peak resident set so far (Linux getrusage; None where it fails).
pub fn peak_rss_bytes() -> Option<u64> {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes only into the struct it is given.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    (rc == 0).then_some(ru.ru_maxrss as u64 * 1024)
}

pub fn run(a: &KernelsArgs) -> Result<()> {
    // Flags first, so a typo fails before a device opens.
    let ops = parse_op(&a.op)?;
    let precision = crate::backend::precision::parse_precision(a.precision.as_deref())?;
    let config = parse_config(&a.config)?;
    let shape = a.shape.as_deref().map(parse_shape).transpose()?;
    if a.batch == Some(0) || a.runs == Some(0) {
        return Err(Error::Invalid("--batch and --runs must be at least 1".into()));
    }
    let choice: DeviceChoice = a.device.parse()?;
    let dev = Device::open_with(choice, precision)?;
    let (cuda, sim) = (matches!(dev, Device::Kernels(_)) && choice != DeviceChoice::Sim, choice == DeviceChoice::Sim);
    let plan = Plan {
        batch: a.batch.unwrap_or(if cuda { 16 } else { 1 }),
        input: shape.unwrap_or(if sim { (32, 64) } else { (128, 1292) }),
        config,
        runs: a.runs.unwrap_or(if cuda {
            20
        } else if sim {
            1
        } else {
            5
        }),
        // Sim's kernels are compiled into the binary (no JIT, no caches worth warming) and slow.
        warmup: if cuda {
            3
        } else if sim {
            0
        } else {
            1
        },
    };
    // The yardstick: ≥ 256 MB on a GPU and the CPU; the host-simulated device is not a speed target.
    let copy_bytes: usize = if sim { 32 << 20 } else { 256 << 20 };
    let (name, precision) = (dev.name(), dev.precision());
    let (copy_gbps, records) = crate::on_device!(dev, |b| measure(&b, &plan, &ops, copy_bytes, !cuda))?;
    let report = Report {
        device: &name,
        cpu: !cuda && !sim,
        gpu: cuda,
        copy_gbps,
        copy_bytes,
        plan: &plan,
        peak: a.peak_tflops,
        precision,
    };
    if a.json {
        println!("{}", report.json(&records));
    } else {
        report.table(&records);
    }
    Ok(())
}

/// `host`: the device's buffers live in host memory (cpu, sim), so the yardstick is a memcpy.
fn measure<B: Backend>(be: &B, p: &Plan, ops: &[&str], bytes: usize, host: bool) -> Result<(f64, Vec<Record>)> {
    let copy_gbps = if host { workloads::host_copy_gbps(be, p, bytes)? } else { workloads::copy_gbps(be, p, bytes)? };
    let mut out = Vec::new();
    for &op in ops {
        out.extend(match op {
            "copy" => workloads::copy(be, p)?,
            "se" => workloads::se(be, p)?,
            "conv" => workloads::conv(be, p)?,
            "bn" => workloads::bn(be, p)?,
            "unit" => workloads::unit(be, p)?,
            _ => workloads::step(be, p)?,
        });
    }
    Ok((copy_gbps, out))
}

/// Three significant digits (sim's and the CPU's figures span 1e-3 to 1e3).
fn sig3(x: f64) -> String {
    let digits = if x <= 0.0 { 0 } else { (2 - x.log10().floor() as i64).clamp(0, 6) as usize };
    format!("{x:.digits$}")
}

struct Report<'a> {
    device: &'a str,
    cpu: bool,
    gpu: bool,
    copy_gbps: f64,
    copy_bytes: usize,
    plan: &'a Plan,
    peak: Option<f64>,
    /// The convolutions' math.
    precision: crate::backend::Precision,
}

impl Report<'_> {
    fn json(&self, records: &[Record]) -> String {
        use serde_json::{Value, json};
        let workloads: Vec<Value> = records
            .iter()
            .map(|r| {
                // Only the convolutions have a TF32 path; the other workloads are FP32 throughout.
                let precision =
                    if matches!(r.op, "conv" | "unit" | "step") { self.precision.to_string() } else { "fp32".into() };
                let mut o = json!({"op": r.op, "name": r.name, "shape": r.shape, "ms": r.ms, "precision": precision});
                let s = r.ms / 1e3;
                match r.kind {
                    Kind::Bytes(b) => {
                        let gbps = b / s / 1e9;
                        o["bytes"] = json!(b);
                        o["gbps"] = json!(gbps);
                        o["fraction_of_copy"] = json!(gbps / self.copy_gbps);
                    }
                    Kind::Flops(f) => {
                        let tflops = f / s / 1e12;
                        o["flops"] = json!(f);
                        o["tflops"] = json!(tflops);
                        o["fraction_of_peak"] = json!(self.peak.map(|p| tflops / p));
                    }
                    Kind::Step { samples, peak_bytes, peak_rss_bytes } => {
                        o["samples_per_s"] = json!(samples as f64 / s);
                        o["peak_bytes"] = json!(peak_bytes);
                        o["peak_rss_bytes"] = json!(peak_rss_bytes);
                    }
                }
                o
            })
            .collect();
        let (h, w) = self.plan.input;
        serde_json::to_string_pretty(&json!({
            "tool": format!("moodgrad {}", env!("CARGO_PKG_VERSION")),
            "device": self.device,
            "precision": self.precision.to_string(),
            "batch": self.plan.batch,
            "input": format!("{h}x{w}"),
            "runs": self.plan.runs,
            "copy_bytes": self.copy_bytes,
            "copy_gbps": self.copy_gbps,
            "workloads": workloads,
        }))
        .unwrap_or_default()
    }

    fn table(&self, records: &[Record]) {
        let (h, w) = self.plan.input;
        println!(
            "{}: {} convolutions, batch {}, input {h}x{w}, median of {} run(s); copy bandwidth {:.1} GB/s ({} MiB, \
             read + write{})",
            self.device,
            self.precision,
            self.plan.batch,
            self.plan.runs,
            self.copy_gbps,
            self.copy_bytes >> 20,
            if self.gpu { ", Memory::copy" } else { ", host memcpy" }
        );
        println!("{:<8} {:<26} {:<22} {:>10}  {:>16}  {:>10}", "op", "name", "shape", "ms", "throughput", "fraction");
        for r in records {
            let s = r.ms / 1e3;
            let (thr, frac) = match r.kind {
                Kind::Bytes(b) => {
                    let g = b / s / 1e9;
                    (format!("{} GB/s", sig3(g)), format!("{:.3} copy", g / self.copy_gbps))
                }
                // GFLOP/s off the GPU, where TFLOP/s would read 0.00.
                Kind::Flops(f) if !self.gpu => (format!("{} GFLOP/s", sig3(f / s / 1e9)), String::new()),
                Kind::Flops(f) => {
                    let t = f / s / 1e12;
                    (
                        format!("{} TFLOP/s", sig3(t)),
                        self.peak.map(|p| format!("{:.2} peak", t / p)).unwrap_or_default(),
                    )
                }
                Kind::Step { samples, peak_bytes, peak_rss_bytes } => {
                    let rss = peak_rss_bytes.filter(|_| self.cpu).map(|b| format!(", RSS {} MiB", b >> 20));
                    (
                        format!("{} samples/s", sig3(samples as f64 / s)),
                        format!("peak {} MiB{}", peak_bytes >> 20, rss.unwrap_or_default()),
                    )
                }
            };
            println!("{:<8} {:<26} {:<22} {:>10.3}  {:>16}  {:>10}", r.op, r.name, r.shape, r.ms, thr, frac);
        }
    }
}
