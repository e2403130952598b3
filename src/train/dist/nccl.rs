//! The collectives over NCCL, for ranks that train on `cuda` (one GPU each, `cuda:LOCAL_RANK`).
//! libnccl is loaded at run time, as the CUDA driver is: a build needs no NCCL, and a machine
//! without it gets an error naming the library, not a link failure.
//!
//! The `Collective` methods move host bytes (what the training loop exchanges: gradients and
//! statistics already on the host), so each one stages through the GPU: copy up, one NCCL
//! all-gather or broadcast, copy down. Sums are built on them by `comm::all_reduce_sum` (gather,
//! sum in rank order, broadcast), not by NCCL's all-reduce, whose ring or tree order depends on
//! the topology: so a job is reproducible at a given world size, and sums the same bits as MPI.

use super::comm::Collective;
use crate::error::{Error, Result};
use cudarc::driver::{CudaContext, CudaStream};
use cudarc::nccl::{Comm, Id};
use std::sync::Arc;

/// Where libnccl is looked for, and how to provide it.
const MISSING: &str = "libnccl.so.2 (NCCL, the GPU collectives library) was not found on the library path: \
install it (`apt-get install libnccl2`, or `pip install nvidia-nccl-cu13` and add its `lib` folder to \
LD_LIBRARY_PATH), or train data-parallel on the CPU with `--device cpu` under mpirun";

/// Refuses, naming the library and the fix, when libnccl cannot be loaded.
pub fn require_library() -> Result<()> {
    // SAFETY: only tries to dlopen the library (its initialisers run; NCCL's have no side effects).
    if unsafe { cudarc::nccl::sys::is_culib_present() } { Ok(()) } else { Err(Error::Invalid(MISSING.into())) }
}

/// NCCL's 128-byte unique id, as rank 0 hands it out.
pub fn new_id() -> Result<[u8; 128]> {
    require_library()?;
    let id = Id::new().map_err(|e| Error::Invalid(format!("ncclGetUniqueId failed: {e:?}")))?;
    Ok(id.internal().map(|c| c as u8))
}

pub struct Nccl {
    comm: Comm,
    stream: Arc<CudaStream>,
}

fn cuda(what: &str, e: impl std::fmt::Debug) -> Error {
    Error::Invalid(format!("{what} failed: {e:?}"))
}

impl Nccl {
    /// Joins the job as `rank` of `world` on GPU `device`, with rank 0's `id`.
    pub fn join(device: usize, rank: usize, world: usize, id: [u8; 128]) -> Result<Nccl> {
        require_library()?;
        let ctx = CudaContext::new(device).map_err(|e| cuda(&format!("opening cuda:{device}"), e))?;
        let stream = ctx.new_stream().map_err(|e| cuda("a CUDA stream for NCCL", e))?;
        let id = Id::uninit(id.map(|b| b as std::ffi::c_char));
        let comm = Comm::from_rank(stream.clone(), rank, world, id)
            .map_err(|e| cuda(&format!("ncclCommInitRank (rank {rank} of {world} on cuda:{device})"), e))?;
        Ok(Nccl { comm, stream })
    }

    /// Every rank's `len`-byte buffer, concatenated in rank order.
    fn gather_equal(&self, mine: &[u8]) -> Result<Vec<u8>> {
        let s = &self.stream;
        let src = s.clone_htod(mine).map_err(|e| cuda("a copy to the GPU", e))?;
        let mut dst = s.alloc_zeros::<u8>(mine.len() * self.size()).map_err(|e| cuda("a GPU allocation", e))?;
        self.comm.all_gather(&src, &mut dst).map_err(|e| cuda("ncclAllGather", e))?;
        s.clone_dtoh(&dst).map_err(|e| cuda("a copy from the GPU", e))
    }
}

impl Collective for Nccl {
    fn rank(&self) -> usize {
        self.comm.rank()
    }
    fn size(&self) -> usize {
        self.comm.world_size()
    }
    fn barrier(&self) -> Result<()> {
        self.gather_equal(&[0]).map(|_| ())
    }
    fn all_gather(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
        let lens = self.gather_equal(&(mine.len() as u64).to_le_bytes())?;
        let lens: Vec<usize> =
            lens.chunks_exact(8).map(|b| u64::from_le_bytes(b.try_into().expect("8")) as usize).collect();
        // NCCL gathers equal parts: each rank pads to the longest (at least one byte).
        let width = lens.iter().copied().max().unwrap_or(0).max(1);
        let mut padded = mine.to_vec();
        padded.resize(width, 0);
        let all = self.gather_equal(&padded)?;
        Ok(lens.iter().enumerate().map(|(r, &n)| all[r * width..r * width + n].to_vec()).collect())
    }
    fn gather(&self, root: usize, mine: &[u8]) -> Result<Option<Vec<Vec<u8>>>> {
        let all = self.all_gather(mine)?;
        Ok((self.rank() == root).then_some(all))
    }
    fn broadcast(&self, root: usize, buf: &mut Vec<u8>) -> Result<()> {
        let s = &self.stream;
        let mut n = s.clone_htod(&[buf.len() as u64]).map_err(|e| cuda("a copy to the GPU", e))?;
        self.comm.broadcast_in_place(&mut n, root as i32).map_err(|e| cuda("ncclBroadcast", e))?;
        let n = s.clone_dtoh(&n).map_err(|e| cuda("a copy from the GPU", e))?[0] as usize;
        buf.resize(n, 0);
        if n > 0 {
            let mut d = s.clone_htod(&buf[..]).map_err(|e| cuda("a copy to the GPU", e))?;
            self.comm.broadcast_in_place(&mut d, root as i32).map_err(|e| cuda("ncclBroadcast", e))?;
            *buf = s.clone_dtoh(&d).map_err(|e| cuda("a copy from the GPU", e))?;
        }
        Ok(())
    }
    fn abort(&self, code: i32) -> ! {
        // Exiting runs the communicator's drop, ncclCommAbort; torchrun (or mpirun) then ends the
        // other ranks when this one exits with an error.
        std::process::exit(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where this machine has no libnccl (CI, this container), the error names it and the fix.
    /// Where it has one, there is nothing to check here.
    #[test]
    fn a_missing_libnccl_is_a_clear_error() {
        match require_library() {
            Ok(()) => eprintln!("libnccl is present here: the missing-library message is not exercised"),
            Err(e) => {
                let e = e.to_string();
                assert!(
                    e.contains("libnccl.so.2") && e.contains("LD_LIBRARY_PATH") && e.contains("--device cpu"),
                    "{e}"
                );
                assert!(new_id().unwrap_err().to_string().contains("libnccl.so.2"));
            }
        }
    }
}
