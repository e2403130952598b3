//! The spectrogram front end batched over clips on any backend: the STFT runs on the CPU (per
//! clip, in parallel), then the mel projection, power_to_db and crop/pad run as one batch on the
//! device (kernels/spectro.cu on CUDA or the host SIMT layer; their CPU twins on `cpu`).

use super::{MelSpectrogram, PreprocessParams, mel::mel_filterbank, spectrum};
use crate::backend::{Backend, CropGeom, DbGeom, MelGeom};
use crate::error::Result;
use rayon::prelude::*;

/// Mel-dB spectrograms of mono clips already at `params.sample_rate`, cropped/padded to
/// `params.frames`; the same figures as `pipeline::mel_db_from_samples`, clip for clip.
pub fn mel_db_batch<B: Backend>(be: &B, clips: &[Vec<f32>], params: &PreprocessParams) -> Result<Vec<MelSpectrogram>> {
    let bins = params.n_fft / 2 + 1;
    let counts: Vec<usize> = clips.iter().map(|y| spectrum::frame_count(y.len(), params.hop)).collect();
    let stride = counts.iter().copied().max().unwrap_or(0).max(1);
    // [clips, bins, stride] power; frames past a clip's end stay 0, which changes neither its
    // maximum (powers are ≥ 0) nor anything crop/pad keeps.
    let mut power = vec![0f32; clips.len() * bins * stride];
    power.par_chunks_mut(bins * stride).zip(clips.par_iter()).for_each(|(out, y)| {
        spectrum::for_each_power_frame(y, params.n_fft, params.hop, |t, p| {
            for (k, &v) in p.iter().enumerate() {
                out[k * stride + t] = v;
            }
        });
    });
    let fb = mel_filterbank(params.sample_rate as f64, params.n_fft, params.n_mels, params.fmin, params.fmax);
    let (n, m) = (clips.len(), params.n_mels);
    let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    let mg = MelGeom { clips: n, bins, frames: stride, n_mels: m };
    let mel = be.mel_project(&be.upload_f64(&f64s(&power))?, &be.upload_f64(&f64s(&fb))?, &mg)?;
    let dg = DbGeom { clips: n, len: m * stride, ref_max: params.ref_max, amin: params.amin, top_db: params.top_db };
    let db = be.power_to_db(&mel, &dg)?;
    let cg = CropGeom {
        rows: m,
        in_stride: stride,
        frames: params.frames,
        centre: params.centre_crop,
        pad: params.pad_value as f64,
    };
    let out = be.crop_pad(&db, &counts, &cg)?;
    let host = be.download_f64(&out)?;
    Ok(host
        .chunks(m * params.frames)
        .zip(clips.iter().zip(&counts))
        .map(|(d, (y, &c))| MelSpectrogram {
            n_mels: m,
            frames: params.frames,
            data: d.iter().map(|&v| v as f32).collect(),
            source_frames: c,
            duration_s: y.len() as f64 / params.sample_rate as f64,
            truncated: None,
        })
        .collect())
}
