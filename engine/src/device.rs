//! `--device auto|cpu|cuda[:N]|sim`: which backend a command computes on.

use crate::backend::cpu::Cpu;
use crate::backend::kernel::KernelBackend;
use crate::backend::kernel::cuda::{CudaDevice, device_count};
use crate::backend::kernel::sim::SimDevice;
use crate::backend::{Memory, Precision};
use crate::error::{Error, Result};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    /// CUDA device 0 when a GPU answers, else the CPU.
    Auto,
    Cpu,
    Cuda(usize),
    /// The CUDA kernels on the host SIMT layer (slow; for testing the kernels without a GPU).
    Sim,
}

impl std::str::FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "sim" => Ok(DeviceChoice::Sim),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| Error::Invalid(format!("unknown device `{s}`: use auto, cpu, cuda, cuda:N or sim"))),
        }
    }
}

/// A resolved device: the native CPU backend or a kernel-launching one.
pub enum Device {
    Cpu(Cpu<f32>),
    Kernels(KernelBackend),
}

impl Device {
    /// The device with its default convolution precision: TF32 on CUDA (PyTorch's
    /// `cudnn.allow_tf32 = True`), FP32 on the CPU and on sim.
    pub fn open(choice: DeviceChoice) -> Result<Device> {
        Self::open_with(choice, None)
    }

    /// The device with `precision` for its convolutions (`None`: the default above). TF32 on the
    /// CPU is refused: its convolutions have no TF32 path.
    pub fn open_with(choice: DeviceChoice, precision: Option<Precision>) -> Result<Device> {
        let cuda = |n: usize| -> Result<Device> {
            let b = KernelBackend::new(Arc::new(CudaDevice::new(n)?));
            Ok(Device::Kernels(b.with_precision_for_card(precision, Precision::Tf32)?))
        };
        let cpu = || -> Result<Device> {
            if precision == Some(Precision::Tf32) {
                return Err(Error::Invalid(
                    "--precision tf32 needs --device cuda (or sim, which emulates the tensor cores): the CPU \
                     backend computes convolutions in fp32 only"
                        .into(),
                ));
            }
            Ok(Device::Cpu(Cpu::new()))
        };
        match choice {
            DeviceChoice::Cpu => cpu(),
            DeviceChoice::Auto if device_count() == 0 => cpu(),
            // A driver that lists a GPU but cannot give it to us (busy, out of memory, a broken
            // install): the CPU, saying why, rather than a failed command.
            DeviceChoice::Auto => cuda(0).or_else(|e| {
                eprintln!("note: --device auto: CUDA device 0 could not be used ({e}); computing on the CPU");
                cpu()
            }),
            DeviceChoice::Cuda(n) => cuda(n),
            DeviceChoice::Sim => {
                let b = KernelBackend::new(Arc::new(SimDevice::from_env()?));
                Ok(Device::Kernels(b.with_precision_for_card(precision, Precision::Fp32)?))
            }
        }
    }

    /// The convolution precision this device computes with.
    pub fn precision(&self) -> Precision {
        match self {
            Device::Cpu(_) => Precision::Fp32,
            Device::Kernels(b) => b.conv_precision(),
        }
    }

    pub fn name(&self) -> String {
        match self {
            Device::Cpu(b) => b.name(),
            Device::Kernels(b) => b.name(),
        }
    }
}

/// The environment variable under which a CUDA device that does not open fails a test instead
/// of skipping it (set it wherever a GPU is expected: a GPU run that skips proves nothing).
pub const REQUIRE_CUDA_VAR: &str = "MOODGRAD_REQUIRE_CUDA";

/// Whether `MOODGRAD_REQUIRE_CUDA=1`.
pub fn cuda_required() -> bool {
    std::env::var(REQUIRE_CUDA_VAR).is_ok_and(|v| v == "1")
}

/// The kernel backends a test compares against the CPU, at convolution `precision` (`None`: each
/// device's default): sim, then CUDA device 0 when it opens. When it does not, the reason is
/// printed and the CUDA run skipped, or, under `MOODGRAD_REQUIRE_CUDA=1`, it is an error.
pub fn kernel_devices(precision: Option<Precision>) -> Result<Vec<(DeviceChoice, KernelBackend)>> {
    let mut out = Vec::new();
    for choice in [DeviceChoice::Sim, DeviceChoice::Cuda(0)] {
        match Device::open_with(choice, precision) {
            Ok(Device::Kernels(b)) => out.push((choice, b)),
            Ok(Device::Cpu(_)) => unreachable!("sim and cuda open kernel backends"),
            Err(e) if choice == DeviceChoice::Cuda(0) && !cuda_required() => {
                eprintln!("skipped {choice:?}: {e} (set {REQUIRE_CUDA_VAR}=1 to make this a failure)")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Runs a backend-generic computation on whichever backend `dev` is.
#[macro_export]
macro_rules! on_device {
    ($dev:expr, |$b:ident| $body:expr) => {
        match $dev {
            $crate::device::Device::Cpu($b) => $body,
            $crate::device::Device::Kernels($b) => $body,
        }
    };
}
