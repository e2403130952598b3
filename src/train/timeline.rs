//! Emotion over a whole song: the model applied to sliding windows of the song's spectrogram
//! (`predict --timeline`). Windows of `frames` frames every `hop` frames from the start; the last
//! one reaches the song's end and, when shorter, is padded as training pads a short clip
//! (`crop_or_pad`: the missing frames at the end set to the pad value). A song no longer than one
//! window gives one window. The song-level answer is the mean of the windows' predictions.

use super::dataset::SongRecord;
use super::infer::forward_windows;
use super::plot::TimelinePoint;
use super::session::Session;
use crate::audio::MelSpectrogram;
use crate::audio::mel::crop_or_pad;
use crate::backend::Backend;
use crate::error::Result;

/// Window length and hop in frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowPlan {
    pub frames: usize,
    pub hop: usize,
}

impl WindowPlan {
    /// From seconds at `frames_per_s` (sample rate / STFT hop); at least one frame each.
    pub fn from_seconds(window_s: f64, hop_s: f64, frames_per_s: f64) -> WindowPlan {
        let f = |s: f64| ((s * frames_per_s).round() as usize).max(1);
        WindowPlan { frames: f(window_s), hop: f(hop_s) }
    }

    /// The windows of a song of `total` frames: (first frame, end frame), end ≤ total.
    pub fn windows(&self, total: usize) -> Vec<(usize, usize)> {
        let count = if total <= self.frames { 1 } else { 1 + (total - self.frames).div_ceil(self.hop) };
        (0..count).map(|k| (k * self.hop, (k * self.hop + self.frames).min(total))).collect()
    }

    /// Window (start, end) of a row-major [rows, total] spectrogram as [rows, frames], padded at
    /// the end with `pad_value` when it runs past the song.
    pub fn slice(
        &self,
        data: &[f32],
        rows: usize,
        total: usize,
        (start, end): (usize, usize),
        pad_value: f32,
    ) -> Vec<f32> {
        let len = end - start;
        let mut window = Vec::with_capacity(rows * len);
        for r in 0..rows {
            window.extend_from_slice(&data[r * total + start..r * total + end]);
        }
        crop_or_pad(&window, rows, len, self.frames, false, pad_value)
    }
}

/// The model (eval mode) on every window of song `i`'s whole spectrogram `mel`, each with its
/// start and end in seconds; `pad_value` pads a last window that runs past the song.
pub fn song_timeline<B: Backend>(
    s: &mut Session<B>,
    songs: &[SongRecord],
    i: usize,
    mel: &MelSpectrogram,
    plan: &WindowPlan,
    (pad_value, frames_per_s): (f32, f64),
) -> Result<Vec<TimelinePoint>> {
    let windows = plan.windows(mel.frames);
    let inputs: Vec<(usize, Vec<f32>)> =
        windows.iter().map(|&w| (i, plan.slice(&mel.data, mel.n_mels, mel.frames, w, pad_value))).collect();
    let preds = forward_windows(s, songs, &inputs, (mel.n_mels, plan.frames))?;
    Ok(windows
        .iter()
        .zip(&preds)
        .map(|(&(start, end), &(valence, arousal))| TimelinePoint {
            start_s: start as f64 / frames_per_s,
            end_s: end as f64 / frames_per_s,
            valence,
            arousal,
        })
        .collect())
}
