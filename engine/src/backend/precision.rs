//! The math mode of the convolutions: FP32 on CUDA cores, or TF32 on tensor cores (inputs rounded
//! to 10 mantissa bits, FP32 accumulation). PyTorch's default is the same split:
//! `torch.backends.cudnn.allow_tf32 = True` (convolutions in TF32 on a GPU) and
//! `torch.backends.cuda.matmul.allow_tf32 = False` (GEMMs in FP32), so moodgrad's GEMMs stay FP32.

use crate::error::{Error, Result};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    Fp32,
    Tf32,
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fp32" => Ok(Precision::Fp32),
            "tf32" => Ok(Precision::Tf32),
            _ => Err(Error::Invalid(format!(
                "unknown --precision `{s}`: use fp32 (CUDA cores) or tf32 (tensor-core convolutions)"
            ))),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
        })
    }
}

/// `--precision` as given (`None`: the device's default) parsed, with an error naming the flag.
pub fn parse_precision(s: Option<&str>) -> Result<Option<Precision>> {
    s.map(str::parse).transpose()
}
