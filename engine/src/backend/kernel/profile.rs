//! What a card allows, as the kernel backend chooses kernels and tiles by it: compute capability
//! (tensor-core TF32 needs sm_80), SM count (split-K targets), and shared memory (the per-block
//! opt-in limit bounds the tensor-core tiles: 227 KiB on sm_90, 163 KiB on sm_80, 99 KiB on
//! sm_86/sm_89, 64 KiB on sm_75).
//!
//! A CUDA device reads its own; `--device sim` emulates one of the cards below
//! (`MOODGRAD_SIM_ARCH=sm_75|sm_80|sm_86|sm_89|sm_90`, default sm_90), reporting and enforcing its
//! limits, so each card's choices run in the tests without that card.

use crate::error::{Error, Result};

/// The environment variable naming the card `--device sim` emulates.
pub const SIM_ARCH_VAR: &str = "MOODGRAD_SIM_ARCH";

/// The architectures the kernels are built for, oldest first.
pub const ARCHES: [&str; 5] = ["sm_75", "sm_80", "sm_86", "sm_89", "sm_90"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceProfile {
    /// The card, for messages ("NVIDIA H100 80GB HBM3", or the emulated card's name).
    pub name: String,
    /// Compute capability major·10 + minor (75, 80, 86, 89, 90, …).
    pub arch: u32,
    pub sm_count: u32,
    /// The most dynamic shared memory one block may opt in to
    /// (CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN).
    pub shared_per_block_optin: u32,
    /// Shared memory per SM (CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR).
    pub shared_per_sm: u32,
}

impl DeviceProfile {
    /// One of [`ARCHES`] as a typical card of it: the T4 (sm_75), A100 (sm_80), A10 (sm_86), L4
    /// (sm_89), H100 SXM (sm_90), with the limits NVIDIA's tuning guides give for that
    /// architecture.
    pub fn emulated(arch: &str) -> Result<DeviceProfile> {
        let (name, cc, sms, optin_kib, per_sm_kib) = match arch {
            "sm_75" => ("Tesla T4", 75, 40, 64, 64),
            "sm_80" => ("A100", 80, 108, 163, 164),
            "sm_86" => ("A10", 86, 72, 99, 100),
            "sm_89" => ("L4", 89, 58, 99, 100),
            "sm_90" => ("H100 SXM", 90, 132, 227, 228),
            _ => {
                return Err(Error::Invalid(format!(
                    "{SIM_ARCH_VAR}={arch}: the sim emulates {} (default sm_90)",
                    ARCHES.join(", ")
                )));
            }
        };
        Ok(DeviceProfile {
            name: format!("{name} ({arch}, emulated)"),
            arch: cc,
            sm_count: sms,
            shared_per_block_optin: optin_kib * 1024,
            shared_per_sm: per_sm_kib * 1024,
        })
    }

    /// The card `MOODGRAD_SIM_ARCH` names (sm_90 when unset).
    pub fn emulated_from_env() -> Result<DeviceProfile> {
        match std::env::var(SIM_ARCH_VAR) {
            Ok(v) if !v.trim().is_empty() => DeviceProfile::emulated(v.trim()),
            _ => DeviceProfile::emulated("sm_90"),
        }
    }

    /// `sm_86` for compute capability 8.6.
    pub fn arch_name(&self) -> String {
        format!("sm_{}", self.arch)
    }

    /// Whether the card has TF32 tensor cores (mma.sync .tf32, cp.async): Ampere (sm_80) on.
    pub fn has_tf32(&self) -> bool {
        self.arch >= 80
    }

    /// The blocks a grid should have to fill the card: two resident per SM, as the tensor-core
    /// kernels' registers and shared memory allow.
    pub fn target_blocks(&self) -> usize {
        2 * self.sm_count.max(1) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_architecture_has_a_profile_and_others_are_refused() {
        for a in ARCHES {
            let p = DeviceProfile::emulated(a).unwrap();
            assert_eq!(p.arch_name(), a);
            assert!(p.shared_per_block_optin <= p.shared_per_sm);
        }
        assert!(!DeviceProfile::emulated("sm_75").unwrap().has_tf32());
        assert!(DeviceProfile::emulated("sm_86").unwrap().has_tf32());
        let e = DeviceProfile::emulated("sm_61").unwrap_err().to_string();
        assert!(e.contains(SIM_ARCH_VAR) && e.contains("sm_75"), "{e}");
    }
}
