//! Which process of a data-parallel job this is — rank, world size, local rank — read from the
//! environment its launcher set: `mpirun` (OpenMPI), MPICH/Intel MPI's Hydra (PMI), Slurm's
//! `srun`, or `torchrun`.

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launcher {
    OpenMpi,
    Pmi,
    Torchrun,
    Slurm,
}

impl Launcher {
    pub fn name(self) -> &'static str {
        match self {
            Launcher::OpenMpi => "mpirun (OpenMPI)",
            Launcher::Pmi => "an MPI launcher (PMI)",
            Launcher::Torchrun => "torchrun",
            Launcher::Slurm => "srun (Slurm)",
        }
    }
}

/// This process's place in the job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    pub launcher: Launcher,
    pub rank: usize,
    pub world: usize,
    /// The rank among the processes on this machine (which GPU it takes).
    pub local_rank: usize,
    /// torchrun's rendezvous, `MASTER_ADDR:MASTER_PORT` (where rank 0 hands out what all need).
    pub master: Option<(String, u16)>,
}

/// One launcher's variables: rank and world size (both or neither), then the local rank's
/// (optional: a launcher that omits it runs one process per machine).
struct Scheme {
    launcher: Launcher,
    rank: &'static str,
    world: &'static [&'static str],
    local: &'static str,
}

/// Innermost launcher first: `mpirun` or `torchrun` started inside a Slurm allocation inherit the
/// allocation's `SLURM_*` variables, and their own are the ones that describe this process.
const SCHEMES: [Scheme; 4] = [
    Scheme {
        launcher: Launcher::OpenMpi,
        rank: "OMPI_COMM_WORLD_RANK",
        world: &["OMPI_COMM_WORLD_SIZE"],
        local: "OMPI_COMM_WORLD_LOCAL_RANK",
    },
    Scheme { launcher: Launcher::Pmi, rank: "PMI_RANK", world: &["PMI_SIZE"], local: "MPI_LOCALRANKID" },
    Scheme { launcher: Launcher::Torchrun, rank: "RANK", world: &["WORLD_SIZE"], local: "LOCAL_RANK" },
    // An `srun` step's own task count first; SLURM_NTASKS is the allocation's.
    Scheme {
        launcher: Launcher::Slurm,
        rank: "SLURM_PROCID",
        world: &["SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"],
        local: "SLURM_LOCALID",
    },
];

/// Reads the launcher's variables through `var`; None when no launcher set any (a plain
/// single-process run). A launcher whose variables are half set, or hold something other than
/// counts that fit together, is an error naming the variables.
pub fn detect(var: &dyn Fn(&str) -> Option<String>) -> Result<Option<Launch>> {
    for sc in &SCHEMES {
        let rank = var(sc.rank);
        let world = sc.world.iter().find_map(|w| var(w).map(|v| (*w, v)));
        let (rank, (world_name, world)) = match (rank, world) {
            (None, None) => continue,
            (Some(r), Some(w)) => (r, w),
            (Some(_), None) => return Err(half_set(sc, sc.rank, &sc.world.join(" or "))),
            (None, Some((w, _))) => return Err(half_set(sc, w, sc.rank)),
        };
        let rank = count(sc.rank, &rank)?;
        let world = count(world_name, &world)?;
        if world == 0 || rank >= world {
            return Err(Error::Invalid(format!(
                "{} = {rank} and {world_name} = {world} do not fit together (the rank must be below the world size); \
                 start moodgrad through {} unchanged, or unset both for a single-process run",
                sc.rank,
                sc.launcher.name()
            )));
        }
        let local_rank = match var(sc.local) {
            Some(v) => count(sc.local, &v)?,
            None => 0,
        };
        let master = match (var("MASTER_ADDR"), var("MASTER_PORT")) {
            (None, None) => None,
            (Some(a), Some(p)) => Some((a, p.trim().parse::<u16>().map_err(|_| bad_value("MASTER_PORT", &p))?)),
            (Some(_), None) => return Err(half_pair("MASTER_ADDR", "MASTER_PORT")),
            (None, Some(_)) => return Err(half_pair("MASTER_PORT", "MASTER_ADDR")),
        };
        if sc.launcher == Launcher::Torchrun && world > 1 && master.is_none() {
            return Err(Error::Invalid(format!(
                "RANK and WORLD_SIZE = {world} are set but MASTER_ADDR and MASTER_PORT are not: torchrun sets all \
                 four; set them (rank 0's address and a free port) or start through torchrun"
            )));
        }
        return Ok(Some(Launch { launcher: sc.launcher, rank, world, local_rank, master }));
    }
    Ok(None)
}

/// The launcher of this process, from its environment.
pub fn from_env() -> Result<Option<Launch>> {
    detect(&|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

fn count(name: &str, v: &str) -> Result<usize> {
    v.trim().parse::<usize>().map_err(|_| bad_value(name, v))
}

fn bad_value(name: &str, v: &str) -> Error {
    Error::Invalid(format!("{name} = {v:?} is not a count; the launcher sets it to a non-negative integer"))
}

fn half_set(sc: &Scheme, set: &str, missing: &str) -> Error {
    Error::Invalid(format!(
        "{set} is set but {missing} is not: {} sets both, so this environment is half set; start moodgrad through \
         the launcher, set both, or unset {set} for a single-process run",
        sc.launcher.name()
    ))
}

fn half_pair(set: &str, missing: &str) -> Error {
    Error::Invalid(format!(
        "{set} is set but {missing} is not: the rendezvous needs both (rank 0's address and a port); set both or neither"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<Option<Launch>> {
        let map: std::collections::HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        detect(&move |k| map.get(k).cloned())
    }

    fn launch(pairs: &[(&str, &str)]) -> Launch {
        env(pairs).unwrap().unwrap()
    }

    #[test]
    fn no_launcher_is_a_single_process() {
        assert_eq!(env(&[("HOME", "/root")]).unwrap(), None);
    }

    #[test]
    fn each_launcher_is_read() {
        let l = launch(&[
            ("OMPI_COMM_WORLD_RANK", "1"),
            ("OMPI_COMM_WORLD_SIZE", "4"),
            ("OMPI_COMM_WORLD_LOCAL_RANK", "1"),
        ]);
        assert_eq!((l.launcher, l.rank, l.world, l.local_rank, l.master), (Launcher::OpenMpi, 1, 4, 1, None));
        let l = launch(&[("PMI_RANK", "2"), ("PMI_SIZE", "3")]);
        assert_eq!((l.launcher, l.rank, l.world, l.local_rank), (Launcher::Pmi, 2, 3, 0));
        let l = launch(&[("SLURM_PROCID", "5"), ("SLURM_NTASKS", "8"), ("SLURM_LOCALID", "1")]);
        assert_eq!((l.launcher, l.rank, l.world, l.local_rank), (Launcher::Slurm, 5, 8, 1));
        let l = launch(&[
            ("RANK", "3"),
            ("WORLD_SIZE", "4"),
            ("LOCAL_RANK", "3"),
            ("MASTER_ADDR", "10.0.0.1"),
            ("MASTER_PORT", "29500"),
        ]);
        assert_eq!((l.launcher, l.rank, l.world, l.local_rank), (Launcher::Torchrun, 3, 4, 3));
        assert_eq!(l.master, Some(("10.0.0.1".to_string(), 29500)));
    }

    #[test]
    fn the_innermost_launcher_wins() {
        // mpirun inside a Slurm allocation: the batch step's SLURM_* describe the allocation.
        let l = launch(&[
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "8"),
            ("OMPI_COMM_WORLD_RANK", "3"),
            ("OMPI_COMM_WORLD_SIZE", "4"),
        ]);
        assert_eq!((l.launcher, l.rank, l.world), (Launcher::OpenMpi, 3, 4));
        // An srun step counts its own tasks.
        let l = launch(&[("SLURM_PROCID", "1"), ("SLURM_NTASKS", "8"), ("SLURM_STEP_NUM_TASKS", "2")]);
        assert_eq!((l.rank, l.world), (1, 2));
    }

    fn error(pairs: &[(&str, &str)]) -> String {
        env(pairs).unwrap_err().to_string()
    }

    #[test]
    fn a_half_set_environment_names_the_variables() {
        let e = error(&[("RANK", "0")]);
        assert!(e.contains("RANK is set but WORLD_SIZE is not") && e.contains("torchrun"), "{e}");
        let e = error(&[("WORLD_SIZE", "2")]);
        assert!(e.contains("WORLD_SIZE is set but RANK is not"), "{e}");
        let e = error(&[("OMPI_COMM_WORLD_RANK", "0")]);
        assert!(e.contains("OMPI_COMM_WORLD_SIZE"), "{e}");
        let e = error(&[("SLURM_PROCID", "0")]);
        assert!(e.contains("SLURM_STEP_NUM_TASKS or SLURM_NTASKS"), "{e}");
        let e = error(&[("RANK", "0"), ("WORLD_SIZE", "2")]);
        assert!(e.contains("MASTER_ADDR and MASTER_PORT are not"), "{e}");
        let e = error(&[("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "h")]);
        assert!(e.contains("MASTER_ADDR is set but MASTER_PORT is not"), "{e}");
    }

    #[test]
    fn values_that_do_not_fit_are_refused() {
        let e = error(&[("PMI_RANK", "2"), ("PMI_SIZE", "2")]);
        assert!(e.contains("PMI_RANK = 2 and PMI_SIZE = 2 do not fit"), "{e}");
        let e = error(&[("PMI_RANK", "x"), ("PMI_SIZE", "2")]);
        assert!(e.contains("PMI_RANK = \"x\" is not a count"), "{e}");
        let e = error(&[("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "h"), ("MASTER_PORT", "99999")]);
        assert!(e.contains("MASTER_PORT"), "{e}");
        // One process from any launcher is a plain run.
        assert_eq!(launch(&[("RANK", "0"), ("WORLD_SIZE", "1")]).world, 1);
    }
}
