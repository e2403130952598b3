//! Data-parallel training: the process group a launcher started (`launcher`), the collectives
//! between its processes (`comm`; MPI in `mpi` behind the `mpi` cargo feature), and what the
//! training loop exchanges through them (`ddp`).

pub mod comm;
pub mod ddp;
pub mod launcher;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod sync_bn;

use crate::error::{Error, Result};
use comm::{Collective, Single};
use launcher::{Launch, Launcher};
use std::sync::Arc;

/// This process's group: one process alone, or one rank of a data-parallel job.
pub struct Group {
    pub comm: Arc<dyn Collective>,
    pub launch: Option<Launch>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Group(rank {} of {})", self.rank(), self.size())
    }
}

impl Group {
    pub fn single() -> Group {
        Group { comm: Arc::new(Single), launch: None }
    }

    /// The group the launcher's environment describes: alone when no launcher (or one process),
    /// else this rank of an MPI job, checked against what MPI itself reports.
    pub fn from_env() -> Result<Group> {
        let launch = launcher::from_env()?;
        let Some(l) = launch.clone().filter(|l| l.world > 1) else {
            return Ok(Group { comm: Arc::new(Single), launch });
        };
        if l.launcher == Launcher::Torchrun {
            return Err(Error::Invalid(format!(
                "torchrun started {} processes, but on this build data-parallel training runs over MPI only (torchrun \
                 starts no MPI job): launch with `mpirun -n {}` or `srun -n {}` instead",
                l.world, l.world, l.world
            )));
        }
        Self::mpi(l)
    }

    #[cfg(feature = "mpi")]
    fn mpi(l: Launch) -> Result<Group> {
        let m = mpi::Mpi::init()?;
        if m.size() != l.world || m.rank() != l.rank {
            return Err(Error::Invalid(format!(
                "{} says rank {} of {}, but MPI sees rank {} of {}: start moodgrad directly under the launcher (inside \
                 a Slurm batch script, through srun), or unset its variables for a single-process run",
                l.launcher.name(),
                l.rank,
                l.world,
                m.rank(),
                m.size()
            )));
        }
        Ok(Group { comm: Arc::new(m), launch: Some(l) })
    }

    #[cfg(not(feature = "mpi"))]
    fn mpi(l: Launch) -> Result<Group> {
        Err(Error::Invalid(format!(
            "{} started {} processes, but this moodgrad was built without MPI: rebuild with `cargo build --release \
             --features mpi` (needs OpenMPI's mpicc and libclang: `apt-get install openmpi-bin libopenmpi-dev \
             libclang-dev`), or run one process",
            l.launcher.name(),
            l.world
        )))
    }

    pub fn rank(&self) -> usize {
        self.comm.rank()
    }
    pub fn size(&self) -> usize {
        self.comm.size()
    }
    pub fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// Runs `f` on rank 0 first, then on the others (work that fills a shared cache:
    /// preprocessing, lyric vectors), so no two ranks write the same file at once. When rank 0
    /// fails the others stop too, without running `f`.
    pub fn root_first<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        if self.size() == 1 {
            return f();
        }
        if self.is_root() {
            let r = f();
            self.comm.broadcast(0, &mut vec![u8::from(r.is_ok())])?;
            return r;
        }
        let mut flag = Vec::new();
        self.comm.broadcast(0, &mut flag)?;
        if flag != [1] {
            return Err(Error::Invalid(
                "rank 0 stopped before this rank could start (rank 0's message says why)".into(),
            ));
        }
        f()
    }
}
