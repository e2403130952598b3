//! The collectives data-parallel training needs, behind one small trait so the loop does not care
//! which engine carries them (MPI between CPU processes; one process alone), and the sum built on
//! them in a fixed order.

use crate::error::{Error, Result};
use crate::float::Float;

/// A process group. Every rank calls each method in the same order with matching arguments (as
/// MPI's collectives); a rank that fails must `abort`, never leave the others waiting.
pub trait Collective {
    fn rank(&self) -> usize;
    fn size(&self) -> usize;
    fn barrier(&self) -> Result<()>;
    /// Every rank's bytes (any length, lengths may differ), in rank order, on every rank.
    fn all_gather(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>>;
    /// Every rank's bytes on `root` (None on the others).
    fn gather(&self, root: usize, mine: &[u8]) -> Result<Option<Vec<Vec<u8>>>>;
    /// `root`'s bytes on every rank (`buf` is overwritten, any length).
    fn broadcast(&self, root: usize, buf: &mut Vec<u8>) -> Result<()>;
    /// Ends every process of the job now (after a rank's error, so nobody waits forever).
    fn abort(&self, code: i32) -> !;
}

/// One process alone: every collective is the identity.
pub struct Single;

impl Collective for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
    fn all_gather(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
        Ok(vec![mine.to_vec()])
    }
    fn gather(&self, _root: usize, mine: &[u8]) -> Result<Option<Vec<Vec<u8>>>> {
        Ok(Some(vec![mine.to_vec()]))
    }
    fn broadcast(&self, _root: usize, _buf: &mut Vec<u8>) -> Result<()> {
        Ok(())
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// Elements summed per round, so the root holds at most `size` × this many at once (16 MiB of f32
/// per rank) whatever the model's size.
const CHUNK: usize = 1 << 22;

/// Sums `buf` over the ranks whose `contributes` is true, in rank order — ((b0 + b1) + b2) + …,
/// starting from the first contributor's values, as `ParamStore::accumulate_grad` sums
/// micro-batches — and leaves the sum in `buf` on every rank. The order is fixed, so a job's
/// result does not depend on message timing, and at N ranks it is exactly the single process's
/// sum of N micro-batches. Every rank must pass the same length; at least one must contribute.
pub fn all_reduce_sum<F: Float>(c: &dyn Collective, buf: &mut [F], contributes: bool) -> Result<()> {
    if c.size() == 1 {
        return Ok(());
    }
    let width = std::mem::size_of::<F>();
    let mut start = 0;
    loop {
        let end = (start + CHUNK).min(buf.len());
        let part = &mut buf[start..end];
        let mut bytes = Vec::new();
        if contributes {
            bytes.reserve(std::mem::size_of_val(part));
            for &x in part.iter() {
                x.extend_le_bytes(&mut bytes);
            }
        }
        let summed = c.gather(0, &bytes)?.map(|all| sum_in_rank_order::<F>(&all, part.len()));
        // The root answers even when it cannot sum (an empty buffer), so no rank waits for ever.
        let mut sum = match &summed {
            Some(Ok(s)) => s.clone(),
            _ => Vec::new(),
        };
        c.broadcast(0, &mut sum)?;
        if let Some(Err(e)) = summed {
            return Err(e);
        }
        if sum.len() != std::mem::size_of_val(part) {
            return Err(Error::Invalid(format!(
                "rank 0 sent back {} summed values for {} (the ranks hold different models; see rank 0's message)",
                sum.len() / width,
                part.len()
            )));
        }
        for (x, b) in part.iter_mut().zip(sum.chunks_exact(width)) {
            *x = F::from_le_bytes(b);
        }
        if end == buf.len() {
            return Ok(());
        }
        start = end;
    }
}

/// The contributors' buffers (the non-empty ones) summed in rank order, as bytes.
fn sum_in_rank_order<F: Float>(all: &[Vec<u8>], len: usize) -> Result<Vec<u8>> {
    let width = std::mem::size_of::<F>();
    let mut acc: Option<Vec<F>> = None;
    for (r, b) in all.iter().enumerate().filter(|(_, b)| !b.is_empty()) {
        if b.len() != len * width {
            return Err(Error::Invalid(format!(
                "rank {r} sent {} values to sum where rank 0 has {len}: the ranks hold different models",
                b.len() / width
            )));
        }
        let vals = b.chunks_exact(width).map(F::from_le_bytes);
        match &mut acc {
            None => acc = Some(vals.collect()),
            Some(a) => a.iter_mut().zip(vals).for_each(|(x, y)| *x += y),
        }
    }
    let acc = acc.ok_or_else(|| Error::Invalid("a sum over ranks with no contributor".into()))?;
    let mut out = Vec::with_capacity(len * width);
    for x in acc {
        x.extend_le_bytes(&mut out);
    }
    Ok(out)
}

/// f64 values as bytes and back (losses, predictions, counts between ranks).
pub fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn bytes_f64(b: &[u8]) -> Vec<f64> {
    b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier, Mutex};

    /// N threads as N ranks over shared slots: enough to test the fixed-order sum's logic.
    struct Threads {
        rank: usize,
        size: usize,
        slots: Arc<Mutex<Vec<Vec<u8>>>>,
        bar: Arc<Barrier>,
    }

    impl Collective for Threads {
        fn rank(&self) -> usize {
            self.rank
        }
        fn size(&self) -> usize {
            self.size
        }
        fn barrier(&self) -> Result<()> {
            self.bar.wait();
            Ok(())
        }
        fn all_gather(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
            self.slots.lock().unwrap()[self.rank] = mine.to_vec();
            self.bar.wait();
            let all = self.slots.lock().unwrap().clone();
            self.bar.wait();
            Ok(all)
        }
        fn gather(&self, root: usize, mine: &[u8]) -> Result<Option<Vec<Vec<u8>>>> {
            let all = self.all_gather(mine)?;
            Ok((self.rank == root).then_some(all))
        }
        fn broadcast(&self, root: usize, buf: &mut Vec<u8>) -> Result<()> {
            let all = self.all_gather(buf)?;
            *buf = all[root].clone();
            Ok(())
        }
        fn abort(&self, _code: i32) -> ! {
            panic!("abort")
        }
    }

    fn run<T: Send + 'static>(size: usize, f: impl Fn(&dyn Collective) -> T + Send + Sync + 'static) -> Vec<T> {
        let slots = Arc::new(Mutex::new(vec![Vec::new(); size]));
        let bar = Arc::new(Barrier::new(size));
        let f = Arc::new(f);
        let hs: Vec<_> = (0..size)
            .map(|rank| {
                let c = Threads { rank, size, slots: slots.clone(), bar: bar.clone() };
                let f = f.clone();
                std::thread::spawn(move || f(&c))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    }

    #[test]
    fn the_sum_is_taken_in_rank_order_from_the_first_contributor() {
        // 1 + 1e-8 + 1e-8 … in f32: the order decides the bits, so only rank order passes.
        let out = run(3, |c| {
            let mut v = vec![[1.0f32, 1e-8, -0.0][c.rank()]; 5];
            all_reduce_sum(c, &mut v, true).unwrap();
            v
        });
        let want = (1.0f32 + 1e-8) + -0.0;
        for v in &out {
            assert!(v.iter().all(|x| x.to_bits() == want.to_bits()), "{v:?}");
        }
        // A rank with nothing to add leaves the others' sum as it is, bit for bit (-0.0 stays
        // -0.0, as a single process's gradient of one micro-batch would).
        let out = run(2, |c| {
            let mut v = vec![-0.0f64, 3.5];
            all_reduce_sum(c, &mut v, c.rank() == 0).unwrap();
            v
        });
        assert_eq!(out[1][0].to_bits(), (-0.0f64).to_bits());
        assert_eq!(out[1][1], 3.5);
    }

    #[test]
    fn buffers_longer_than_a_chunk_are_summed_whole() {
        let n = CHUNK + 3;
        let out = run(2, move |c| {
            let mut v: Vec<f32> = (0..n).map(|i| (i % 7) as f32 + c.rank() as f32).collect();
            all_reduce_sum(c, &mut v, true).unwrap();
            v
        });
        assert_eq!(out[0], out[1]);
        assert_eq!(out[0][n - 1], 2.0 * ((n - 1) % 7) as f32 + 1.0);
    }

    #[test]
    fn ranks_holding_different_lengths_are_refused() {
        let out = run(2, |c| {
            let mut v = vec![1.0f32; 3 + c.rank()];
            all_reduce_sum(c, &mut v, true).map_err(|e| e.to_string())
        });
        assert!(out[0].as_ref().unwrap_err().contains("rank 1 sent 4 values to sum where rank 0 has 3"), "{out:?}");
        assert!(out[1].as_ref().unwrap_err().contains("see rank 0's message"), "{out:?}");
    }
}
