//! Batches of spectrograms read ahead on a background thread, so the device never waits on disk:
//! while the step computes batch k, the thread reads batch k + 1 (and one more).

use super::dataset::SongRecord;
use super::step::{Batch, BatchLyrics};
use crate::backend::Backend;
use crate::data::npy;
use crate::error::{Error, Result};
use crate::nn::Inputs;
use crate::tensor::Tensor;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

/// One batch on the host, as the loader thread reads it: song indices, [B, 1, 128, T]
/// spectrograms, [B, 2] targets. `upload` makes it the step's `Batch` on a device.
pub struct HostBatch {
    pub songs: Vec<usize>,
    pub audio: Vec<f32>,
    pub n_mels: usize,
    pub frames: usize,
    pub target: Vec<f32>,
}

impl HostBatch {
    /// The batch on `be` for a network taking `inputs`: spectrograms unless it is lyrics-only,
    /// the songs' lyrics through the run's lyrics side, targets and quadrants when the batch has
    /// targets.
    pub fn upload<B: Backend>(&self, be: &B, songs: &[SongRecord], inputs: Inputs) -> Result<Batch<B>> {
        let n = self.songs.len();
        let audio = match inputs {
            Inputs::Lyrics => None,
            _ => Some(Tensor::new(vec![n, 1, self.n_mels, self.frames], be.upload_f32(&self.audio)?)?),
        };
        let target =
            if self.target.is_empty() { None } else { Some(Tensor::new(vec![n, 2], be.upload_f32(&self.target)?)?) };
        let quadrant = self.songs.iter().map(|&i| songs[i].quadrant.index() as u32).collect();
        Ok(Batch { audio, lyrics: BatchLyrics::Songs(self.songs.clone()), target, quadrant })
    }
}

impl HostBatch {
    /// The batch as `parts` micro-batches in order (`[train] accumulate`; copies), sizes
    /// differing by at most one (the first ones larger), none empty.
    pub fn split(&self, parts: usize) -> Vec<HostBatch> {
        part_ranges(self.songs.len(), parts.clamp(1, self.songs.len().max(1)))
            .into_iter()
            .map(|r| self.range(r))
            .collect()
    }

    /// Songs `r` of the batch (a copy).
    pub fn range(&self, r: std::ops::Range<usize>) -> HostBatch {
        let per_song = self.n_mels * self.frames;
        HostBatch {
            songs: self.songs[r.clone()].to_vec(),
            audio: self.audio[r.start * per_song..r.end * per_song].to_vec(),
            n_mels: self.n_mels,
            frames: self.frames,
            target: if self.target.is_empty() { Vec::new() } else { self.target[2 * r.start..2 * r.end].to_vec() },
        }
    }
}

/// Rank `rank`'s share of a batch of `n` songs in a job of `world` ranks each accumulating
/// `accumulate` micro-batches: the batch is cut as one process with `accumulate = world ×
/// accumulate` cuts it (`HostBatch::split`), and the rank takes micro-batches `rank × accumulate`
/// onwards. Returns its songs (a range of the batch), its micro-batches (ranges of those songs)
/// and the number of its first micro-batch; with fewer songs than micro-batches a rank may get none.
pub fn rank_share(
    n: usize,
    world: usize,
    accumulate: usize,
    rank: usize,
) -> (std::ops::Range<usize>, Vec<std::ops::Range<usize>>, usize) {
    let all = part_ranges(n, (world * accumulate).clamp(1, n.max(1)));
    let first = (rank * accumulate).min(all.len());
    let mine = &all[first..((rank + 1) * accumulate).min(all.len())];
    let lo = mine.first().map_or(n, |r| r.start);
    let hi = mine.last().map_or(n, |r| r.end);
    (lo..hi, mine.iter().map(|r| r.start - lo..r.end - lo).collect(), first)
}

/// `n` items cut in order into `parts` runs whose lengths differ by at most one, the first ones
/// longer (with `parts` > `n` the last ones are empty): how a batch becomes micro-batches, and how
/// its songs are shared between the ranks of a data-parallel job.
pub fn part_ranges(n: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let parts = parts.max(1);
    let mut start = 0;
    (0..parts)
        .map(|k| {
            let end = start + n / parts + usize::from(k < n % parts);
            let r = start..end;
            start = end;
            r
        })
        .collect()
}

/// Reads one song's [n_mels, frames] spectrogram, refusing non-finite values by song and file.
pub fn read_spectrogram(song: &SongRecord) -> Result<(Vec<usize>, Vec<f32>)> {
    let p = &song.spectrogram;
    let (shape, data) = if p.extension().is_some_and(|e| e == "safetensors") {
        let f = crate::io::read(p)?;
        let t = f.get(p, &song.id)?;
        let v: Vec<f32> = t.to_f64().iter().map(|&x| x as f32).collect();
        (t.shape.clone(), v)
    } else {
        npy::read_f32(p).map_err(|e| missing(p, &song.id, e))?
    };
    if shape.len() != 2 {
        return Err(Error::file(
            p,
            format!("song {}: spectrogram of shape {shape:?}, expected [n_mels, frames]", song.id),
        ));
    }
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(Error::file(
            p,
            format!(
                "song {}: the spectrogram holds {} at row {}, frame {}; delete the file and rerun `moodgrad preprocess` \
                 (or drop the song from the split)",
                song.id,
                data[i],
                i / shape[1],
                i % shape[1]
            ),
        ));
    }
    Ok((shape, data))
}

fn missing(p: &Path, song: &str, e: Error) -> Error {
    if p.exists() {
        e
    } else {
        Error::file(p, format!("song {song}: the cache entry is missing; rerun `moodgrad preprocess` to rebuild it"))
    }
}

/// Assembles the batch of `songs` (all spectrograms must share one shape).
pub fn load_batch(all: &[SongRecord], songs: &[usize]) -> Result<HostBatch> {
    let mut audio = Vec::new();
    let mut target = Vec::with_capacity(2 * songs.len());
    let mut shape: Option<Vec<usize>> = None;
    for &i in songs {
        let s = &all[i];
        let (sh, data) = read_spectrogram(s)?;
        match &shape {
            None => shape = Some(sh),
            Some(want) if *want != sh => {
                return Err(Error::file(
                    &s.spectrogram,
                    format!(
                        "song {}: spectrogram {sh:?} differs from the batch's {want:?} (a cache of mixed settings?)",
                        s.id
                    ),
                ));
            }
            _ => {}
        }
        audio.extend(data);
        target.extend([s.valence as f32, s.arousal as f32]);
    }
    let shape = shape.unwrap_or_else(|| vec![0, 0]);
    Ok(HostBatch { songs: songs.to_vec(), audio, n_mels: shape[0], frames: shape[1], target })
}

/// Batches of a fixed order, read `DEPTH` ahead on their own thread.
pub struct Prefetch {
    rx: Option<Receiver<Result<HostBatch>>>,
    worker: Option<JoinHandle<()>>,
}

/// How many batches the reader may be ahead of the step.
const DEPTH: usize = 2;

impl Prefetch {
    pub fn new(songs: Arc<Vec<SongRecord>>, batches: Vec<Vec<usize>>) -> Prefetch {
        let (tx, rx) = sync_channel(DEPTH);
        let worker = std::thread::spawn(move || {
            for b in batches {
                // A dropped receiver (the step stopped reading) ends the thread.
                if tx.send(load_batch(&songs, &b)).is_err() {
                    return;
                }
            }
        });
        Prefetch { rx: Some(rx), worker: Some(worker) }
    }
}

impl Iterator for Prefetch {
    type Item = Result<HostBatch>;
    fn next(&mut self) -> Option<Self::Item> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        // Closing the channel makes a blocked send fail, so the worker returns and can be joined.
        drop(self.rx.take());
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// Cuts `order` into batches of `size` (the last may be shorter, as PyTorch's DataLoader).
pub fn batches(order: &[usize], size: usize) -> Vec<Vec<usize>> {
    order.chunks(size.max(1)).map(|c| c.to_vec()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // One micro-batch per rank is a Vec of one range here, not a range of values.
    #[allow(clippy::single_range_in_vec_init)]
    #[test]
    fn ranks_share_a_batch_as_accumulate_cuts_it() {
        // 5 songs over 2 ranks: 3 + 2, as `accumulate = 2` cuts them.
        assert_eq!(rank_share(5, 2, 1, 0), (0..3, vec![0..3], 0));
        assert_eq!(rank_share(5, 2, 1, 1), (3..5, vec![0..2], 1));
        // 10 songs, 2 ranks × 2 micro-batches: the single process's 3, 3, 2, 2.
        assert_eq!(rank_share(10, 2, 2, 0), (0..6, vec![0..3, 3..6], 0));
        assert_eq!(rank_share(10, 2, 2, 1), (6..10, vec![0..2, 2..4], 2));
        // One song left for two ranks: rank 1 has nothing to compute.
        assert_eq!(rank_share(1, 2, 1, 0), (0..1, vec![0..1], 0));
        assert_eq!(rank_share(1, 2, 1, 1), (1..1, vec![], 1));
        assert_eq!(part_ranges(7, 3), vec![0..3, 3..5, 5..7]);
    }
}
