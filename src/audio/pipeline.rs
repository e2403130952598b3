//! The whole per-clip pipeline: decode → mono → resample → STFT power → mel → dB → crop/pad.
//! One clip runs on the calling thread; batches are parallelised by the caller.

use super::mel::{SparseMel, crop_or_pad, power_to_db};
use super::{AudioError, MelSpectrogram, PreprocessParams, decode, resample, spectrum};
use std::cell::RefCell;
use std::path::Path;

/// What a filterbank depends on: (sr, n_fft, n_mels, fmin bits, fmax bits).
type MelKey = (u32, usize, usize, u64, Option<u64>);

thread_local! {
    /// The last filterbank built on this thread.
    static MEL: RefCell<Option<(MelKey, SparseMel)>> = const { RefCell::new(None) };
}

fn check(params: &PreprocessParams) -> Result<(), AudioError> {
    let bad = |why: &str| Err(AudioError::Io(format!("invalid preprocessing parameters: {why}")));
    if params.sample_rate == 0 {
        return bad("sample_rate is 0");
    }
    if params.n_fft < 2 || params.hop == 0 || params.n_mels == 0 || params.frames == 0 {
        return bad("n_fft must be ≥ 2 and hop, n_mels, frames ≥ 1");
    }
    Ok(())
}

/// Mel power spectrogram, row-major [n_mels, frames], of mono samples already at `params.sample_rate`.
pub fn mel_power(y: &[f32], params: &PreprocessParams) -> Vec<f32> {
    let key = (params.sample_rate, params.n_fft, params.n_mels, params.fmin.to_bits(), params.fmax.map(f64::to_bits));
    let frames = spectrum::frame_count(y.len(), params.hop);
    let mut out = vec![0f32; params.n_mels * frames];
    MEL.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(k, _)| *k != key) {
            let fb = SparseMel::new(params.sample_rate as f64, params.n_fft, params.n_mels, params.fmin, params.fmax);
            *slot = Some((key, fb));
        }
        let fb = &slot.as_ref().expect("filterbank just made").1;
        spectrum::for_each_power_frame(y, params.n_fft, params.hop, |t, power| {
            fb.apply(power, &mut out[t..], frames);
        });
    });
    out
}

/// Mel-dB of mono samples at `params.sample_rate`, cropped/padded to `params.frames`.
pub fn mel_db_from_samples(y: &[f32], params: &PreprocessParams) -> MelSpectrogram {
    let whole = whole_mel_db(y, params);
    let data =
        crop_or_pad(&whole.data, params.n_mels, whole.frames, params.frames, params.centre_crop, params.pad_value);
    MelSpectrogram { frames: params.frames, data, ..whole }
}

/// Mel-dB of the whole song (every frame, no crop or pad; dB against the whole song's maximum,
/// as the cropped clip's is): what a timeline slides its windows over.
fn whole_mel_db(y: &[f32], params: &PreprocessParams) -> MelSpectrogram {
    let mut s = mel_power(y, params);
    let n = spectrum::frame_count(y.len(), params.hop);
    power_to_db(&mut s, params.ref_max, params.amin, params.top_db);
    MelSpectrogram {
        n_mels: params.n_mels,
        frames: n,
        data: s,
        source_frames: n,
        duration_s: y.len() as f64 / params.sample_rate as f64,
        truncated: None,
    }
}

/// See [`super::mel_db_from_file`].
pub fn mel_db_from_file(path: &Path, params: &PreprocessParams) -> Result<MelSpectrogram, AudioError> {
    from_file(path, params, mel_db_from_samples)
}

/// The whole song's mel-dB (see `whole_mel_db`) of a file.
pub fn whole_mel_db_from_file(path: &Path, params: &PreprocessParams) -> Result<MelSpectrogram, AudioError> {
    from_file(path, params, whole_mel_db)
}

fn from_file(
    path: &Path,
    params: &PreprocessParams,
    mel: fn(&[f32], &PreprocessParams) -> MelSpectrogram,
) -> Result<MelSpectrogram, AudioError> {
    check(params)?;
    let d = decode::decode_file(path)?;
    let y = resample::resample(d.samples, d.sample_rate, params.sample_rate)?;
    if y.is_empty() {
        return Err(AudioError::Empty);
    }
    Ok(MelSpectrogram { truncated: d.truncated, ..mel(&y, params) })
}
