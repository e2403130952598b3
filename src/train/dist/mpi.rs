//! The collectives over MPI (the `mpi` crate on the system's MPI, OpenMPI in CI): what `mpirun`
//! and `srun` start. Variable-length exchanges send their lengths first.

use super::comm::Collective;
use crate::error::{Error, Result};
use mpi::collective::{CommunicatorCollectives, Root};
use mpi::datatype::PartitionMut;
use mpi::topology::{Communicator, SimpleCommunicator};

pub struct Mpi {
    // Dropping the universe finalises MPI, so it lives as long as the group.
    _universe: mpi::environment::Universe,
    world: SimpleCommunicator,
}

impl Mpi {
    /// Initialises MPI (once per process).
    pub fn init() -> Result<Mpi> {
        let universe = mpi::initialize().ok_or_else(|| {
            Error::Invalid("MPI was already initialised in this process (a second data-parallel group?)".into())
        })?;
        let world = universe.world();
        Ok(Mpi { _universe: universe, world })
    }
}

/// An empty slice's pointer is dangling (1 for bytes), which OpenMPI reads as `MPI_IN_PLACE`
/// (`(void *) 1`): empty messages are sent from, and received into, real memory.
static EMPTY: [u8; 1] = [0];

fn real(b: &[u8]) -> &[u8] {
    if b.is_empty() { &EMPTY[..0] } else { b }
}

fn displs(counts: &[i32]) -> Vec<i32> {
    counts
        .iter()
        .scan(0i32, |acc, &c| {
            let d = *acc;
            *acc += c;
            Some(d)
        })
        .collect()
}

fn len_i32(n: usize) -> Result<i32> {
    i32::try_from(n).map_err(|_| Error::Invalid(format!("a message of {n} bytes is over MPI's 2 GiB count limit")))
}

fn split(all: Vec<u8>, counts: &[i32]) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(counts.len());
    let mut at = 0;
    for &c in counts {
        out.push(all[at..at + c as usize].to_vec());
        at += c as usize;
    }
    out
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }
    fn size(&self) -> usize {
        self.world.size() as usize
    }
    fn barrier(&self) -> Result<()> {
        self.world.barrier();
        Ok(())
    }
    fn all_gather(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
        let n = len_i32(mine.len())?;
        let mut counts = vec![0i32; self.size()];
        self.world.all_gather_into(&n, &mut counts[..]);
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        // One byte more than needed: see `EMPTY`.
        let mut all = vec![0u8; total + 1];
        let d = displs(&counts);
        {
            let mut part = PartitionMut::new(&mut all[..], &counts[..], &d[..]);
            self.world.all_gather_varcount_into(real(mine), &mut part);
        }
        Ok(split(all, &counts))
    }
    fn gather(&self, root: usize, mine: &[u8]) -> Result<Option<Vec<Vec<u8>>>> {
        let n = len_i32(mine.len())?;
        let p = self.world.process_at_rank(root as i32);
        if self.rank() != root {
            p.gather_into(&n);
            p.gather_varcount_into(real(mine));
            return Ok(None);
        }
        let mut counts = vec![0i32; self.size()];
        p.gather_into_root(&n, &mut counts[..]);
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        let mut all = vec![0u8; total + 1];
        let d = displs(&counts);
        {
            let mut part = PartitionMut::new(&mut all[..], &counts[..], &d[..]);
            p.gather_varcount_into_root(real(mine), &mut part);
        }
        Ok(Some(split(all, &counts)))
    }
    fn broadcast(&self, root: usize, buf: &mut Vec<u8>) -> Result<()> {
        let p = self.world.process_at_rank(root as i32);
        let mut n = len_i32(buf.len())? as u64;
        p.broadcast_into(&mut n);
        buf.resize(n as usize, 0);
        if n > 0 {
            p.broadcast_into(&mut buf[..]);
        }
        Ok(())
    }
    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}
