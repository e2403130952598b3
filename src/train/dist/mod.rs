//! Data-parallel training: the process group a launcher started (`launcher`), the collectives
//! between its processes (`comm`; MPI in `mpi` behind the `mpi` cargo feature for `cpu`, NCCL in
//! `nccl` for `cuda`, its id handed out over MPI or `rendezvous`), what the training loop
//! exchanges through them (`ddp`), and SyncBatchNorm's sum (`sync_bn`).

pub mod comm;
pub mod ddp;
pub mod launcher;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod nccl;
pub mod rendezvous;
pub mod sync_bn;

use crate::error::{Error, Result};
use comm::{Collective, Single};
use launcher::{Launch, Launcher};
use std::sync::Arc;

/// A collective shared between the group and SyncBatchNorm's reducer. MPI's and NCCL's handles are
/// neither `Send` nor `Sync`; the Arc is only for sharing on the training thread, and the one
/// holder that claims `Send` (`sync_bn::GroupReplicas`) refuses to use it from any other thread.
#[allow(clippy::arc_with_non_send_sync)]
fn shared(c: impl Collective + 'static) -> Arc<dyn Collective> {
    Arc::new(c)
}

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

    /// The group for training on `device`: NCCL between GPUs (`cuda`), else `from_env`'s MPI.
    pub fn from_env_for(device: &str) -> Result<Group> {
        if !device.starts_with("cuda") {
            return Self::from_env();
        }
        let launch = launcher::from_env()?;
        let Some(l) = launch.clone().filter(|l| l.world > 1) else {
            return Ok(Group { comm: Arc::new(Single), launch });
        };
        let gpu = Self::gpu(&l, device)?;
        let id = Self::nccl_id(&l)?;
        let comm = nccl::Nccl::join(gpu, l.rank, l.world, id)?;
        Ok(Group { comm: shared(comm), launch: Some(l) })
    }

    /// The GPU of this rank: `cuda:LOCAL_RANK` for a plain `cuda`, else the one named.
    fn gpu(l: &Launch, device: &str) -> Result<usize> {
        match device.strip_prefix("cuda:") {
            None => Ok(l.local_rank),
            Some(n) => n.parse().map_err(|_| Error::Invalid(format!("--device {device}: expected cuda or cuda:N"))),
        }
    }

    /// The device string this rank trains on (`cuda` becomes `cuda:LOCAL_RANK` in a job).
    pub fn device(&self, requested: &str) -> String {
        match &self.launch {
            Some(l) if l.world > 1 && requested == "cuda" => format!("cuda:{}", l.local_rank),
            _ => requested.to_string(),
        }
    }

    /// NCCL's unique id, made by rank 0 and given to all: over MPI where an MPI launcher started
    /// the job (and this build has MPI), else from rank 0 at MASTER_ADDR (torchrun).
    fn nccl_id(l: &Launch) -> Result<[u8; 128]> {
        #[cfg(feature = "mpi")]
        if l.launcher != Launcher::Torchrun {
            let m = Self::mpi(l.clone())?;
            let mut id = match m.is_root() {
                true => nccl::new_id()?.to_vec(),
                false => Vec::new(),
            };
            m.comm.broadcast(0, &mut id)?;
            // MPI is finalised when `m` drops here: NCCL carries everything from now on.
            return id.try_into().map_err(|_| Error::Invalid("rank 0 sent an NCCL id that is not 128 bytes".into()));
        }
        let Some((addr, port)) = &l.master else {
            return Err(Error::Invalid(format!(
                "{} started {} GPU processes, but this moodgrad was built without MPI to pass NCCL's id, and                  MASTER_ADDR/MASTER_PORT are not set: rebuild with `--features mpi`, or set both (rank 0's address                  and a free port)",
                l.launcher.name(),
                l.world
            )));
        };
        let agent = std::env::var("TORCHELASTIC_USE_AGENT_STORE").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
        let port = rendezvous::port(*port, agent)?;
        if l.rank == 0 {
            let id = nccl::new_id()?;
            rendezvous::serve(port, l.world, &id)?;
            Ok(id)
        } else {
            rendezvous::fetch(addr, port)
        }
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
                "torchrun started {} processes, but on the CPU data-parallel training runs over MPI (torchrun \
                 starts no MPI job): launch with `mpirun -n {}` or `srun -n {}` instead, or train on GPUs \
                 (`--device cuda`, over NCCL)",
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
        Ok(Group { comm: shared(m), launch: Some(l) })
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
