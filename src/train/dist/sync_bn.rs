//! SyncBatchNorm's cross-rank sum (`ops::Replicas`) over a data-parallel group's collectives,
//! and the check that every rank holds part of every batch (each BatchNorm layer then meets the
//! same collectives on every rank).

use super::comm::{Collective, all_reduce_sum};
use crate::error::{Error, Result};
use crate::ops::Replicas;
use std::sync::Arc;
use std::thread::ThreadId;

/// The group's fixed-order sum (rank order, as the gradients') for SyncBatchNorm.
pub struct GroupReplicas {
    comm: Arc<dyn Collective>,
    /// The training thread: the only one that runs forwards and backwards, so the only one that
    /// may use `comm`.
    owner: ThreadId,
}

impl GroupReplicas {
    /// A reducer for the calling thread (the one that trains).
    pub fn for_this_thread(comm: Arc<dyn Collective>) -> Arc<dyn Replicas> {
        Arc::new(GroupReplicas { comm, owner: std::thread::current().id() })
    }
}

// SAFETY: the tape asks its backward steps to be `Send`, which MPI's communicator handles are not.
// `comm` is touched only in `sum`, which refuses to run on any thread but `owner`, so the handles
// never leave the thread that uses them. Dropping a `GroupReplicas` only lowers the Arc's atomic
// count: the group that created it holds its own reference for longer (it finalises MPI).
unsafe impl Send for GroupReplicas {}
unsafe impl Sync for GroupReplicas {}

impl Replicas for GroupReplicas {
    fn sum(&self, partials: &mut [f64]) -> Result<()> {
        if std::thread::current().id() != self.owner {
            return Err(Error::Invalid(
                "SyncBatchNorm's cross-rank sum was called off the training thread (the collectives are bound to it)"
                    .into(),
            ));
        }
        all_reduce_sum(self.comm.as_ref(), partials, true)
    }
}

/// Refuses a run in which some rank would sit out a step: SyncBatchNorm's collectives need every
/// rank to run every micro-batch's forward and backward. A batch of `n` songs feeds all
/// `world × accumulate` micro-batches only when `n ≥ world × accumulate`; the last batch of an
/// epoch (`train_songs mod batch_size`) is the one that may not.
pub fn check_every_rank_steps(train_songs: usize, batch_size: usize, world: usize, accumulate: usize) -> Result<()> {
    let need = world * accumulate;
    let smallest = match train_songs % batch_size {
        0 => batch_size.min(train_songs),
        r => r,
    };
    if smallest >= need {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "sync_batchnorm = true needs every rank to hold part of every batch, but {train_songs} training songs in \
         batches of {batch_size} leave a batch of {smallest} song(s) for {world} ranks × accumulate {accumulate} = \
         {need} micro-batches; pick a batch_size whose last batch has at least {need} songs (or that divides \
         {train_songs}), fewer ranks, or sync_batchnorm = false"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_last_batch_smaller_than_the_micro_batches_is_refused() {
        assert!(
            check_every_rank_steps(16, 5, 2, 1).unwrap_err().to_string().contains("a batch of 1 song(s) for 2 ranks")
        );
        assert!(check_every_rank_steps(16, 6, 2, 1).is_ok());
        assert!(check_every_rank_steps(18, 6, 2, 3).is_ok());
        assert!(check_every_rank_steps(16, 6, 2, 3).unwrap_err().to_string().contains("= 6 micro-batches"));
        assert!(check_every_rank_steps(3, 8, 4, 1).is_err());
    }

    #[test]
    fn the_sum_refuses_other_threads() {
        let r = GroupReplicas::for_this_thread(Arc::new(super::super::comm::Single));
        let mut v = vec![1.0];
        r.sum(&mut v).unwrap();
        let e = std::thread::spawn(move || r.sum(&mut [1.0]).unwrap_err().to_string()).join().unwrap();
        assert!(e.contains("off the training thread"), "{e}");
    }
}
