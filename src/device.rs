//! `--device auto|cpu|cuda[:N]|sim`: which backend a command computes on.

use crate::backend::Memory;
use crate::backend::cpu::Cpu;
use crate::backend::kernel::cuda::{CudaDevice, device_count};
use crate::backend::kernel::sim::SimDevice;
use crate::backend::kernel::{KernelBackend, RawDevice};
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
    pub fn open(choice: DeviceChoice) -> Result<Device> {
        Ok(match choice {
            DeviceChoice::Cpu => Device::Cpu(Cpu::new()),
            DeviceChoice::Auto if device_count() == 0 => Device::Cpu(Cpu::new()),
            DeviceChoice::Auto => Device::Kernels(kernels(Arc::new(CudaDevice::new(0)?))),
            DeviceChoice::Cuda(n) => Device::Kernels(kernels(Arc::new(CudaDevice::new(n)?))),
            DeviceChoice::Sim => Device::Kernels(kernels(Arc::new(SimDevice::from_env()?))),
        })
    }

    pub fn name(&self) -> String {
        match self {
            Device::Cpu(b) => b.name(),
            Device::Kernels(b) => b.name(),
        }
    }
}

fn kernels(dev: Arc<dyn RawDevice>) -> KernelBackend {
    KernelBackend::new(dev)
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
