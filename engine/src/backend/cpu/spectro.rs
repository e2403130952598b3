//! Batched spectrogram ops (the CPU twins of kernels/spectro.cu): mel projection, power_to_db
//! and crop/pad, with the backward passes of the first two.

use super::HostBuf;
use crate::backend::{CropGeom, DbGeom, MelGeom};
use crate::error::{Error, Result};
use crate::float::Float;
use rayon::prelude::*;

/// 10/ln 10: dB = this · ln(power).
const TEN_OVER_LN10: f64 = 4.342944819032518;

fn db_of<T: Float>(v: T, amin: f64) -> T {
    T::from_f64(TEN_OVER_LN10 * v.to_f64().max(amin).ln())
}

/// mel[c, m, t] = Σ_k fb[m, k]·power[c, k, t] (products in T, sums in f64).
pub fn mel_project<T: Float>(power: &[T], fb: &[T], bins: usize, frames: usize, n_mels: usize) -> Vec<T> {
    let mut mel = vec![T::ZERO; power.len() / bins * n_mels];
    mel.par_chunks_mut(frames).enumerate().for_each(|(row, out)| {
        let (c, m) = (row / n_mels, row % n_mels);
        let p = &power[c * bins * frames..(c + 1) * bins * frames];
        let w = &fb[m * bins..(m + 1) * bins];
        // The band's non-zero bins, found once rather than per frame.
        let lo = w.iter().position(|&v| v != T::ZERO).unwrap_or(bins);
        let hi = w.iter().rposition(|&v| v != T::ZERO).map_or(lo, |h| h + 1);
        for (t, o) in out.iter_mut().enumerate() {
            let s: f64 = (lo..hi).map(|k| (w[k] * p[k * frames + t]).to_f64()).sum();
            *o = T::from_f64(s);
        }
    });
    mel
}

/// dpower[c, k, t] = Σ_m fb[m, k]·dmel[c, m, t].
pub fn mel_project_backward<T: Float>(dmel: &[T], fb: &[T], bins: usize, frames: usize, n_mels: usize) -> Vec<T> {
    let mut dp = vec![T::ZERO; dmel.len() / n_mels * bins];
    dp.par_chunks_mut(frames).enumerate().for_each(|(row, out)| {
        let (c, k) = (row / bins, row % bins);
        let d = &dmel[c * n_mels * frames..(c + 1) * n_mels * frames];
        for (t, o) in out.iter_mut().enumerate() {
            *o = T::from_f64((0..n_mels).map(|m| (fb[m * bins + k] * d[m * frames + t]).to_f64()).sum());
        }
    });
    dp
}

fn clip_max<T: Float>(x: &[T]) -> T {
    x.iter().copied().fold(T::from_f64(f64::NEG_INFINITY), |m, v| if v > m { v } else { m })
}

/// librosa.power_to_db per clip of `len` values: ref = the clip's max (`ref_max`) or 1.0, then the
/// floor at (clip max − top_db).
pub fn power_to_db<T: Float>(x: &[T], len: usize, ref_max: bool, amin: f64, top_db: Option<f64>) -> Vec<T> {
    let mut y = vec![T::ZERO; x.len()];
    y.par_chunks_mut(len).zip(x.par_chunks(len)).for_each(|(yc, xc)| {
        let ref_db = if ref_max { db_of(clip_max(xc).abs(), amin) } else { T::ZERO };
        for (o, &v) in yc.iter_mut().zip(xc) {
            *o = db_of(v, amin) - ref_db;
        }
        if let Some(top_db) = top_db {
            let floor = clip_max(yc) - T::from_f64(top_db);
            yc.iter_mut().for_each(|v| *v = if *v > floor { *v } else { floor });
        }
    });
    y
}

/// The exact gradient of `power_to_db`. Elementwise, dy·10/(ln10·x) where the output follows x
/// (x > amin, not floored). The clip's largest power m (first maximum) also carries what depends
/// on it: every floored value (floor = max − top_db, and the max is m's dB) adds its dy, and with
/// `ref_max` every live value subtracts its dy (ref = m's power).
pub fn power_to_db_backward<T: Float>(
    x: &[T],
    y: &[T],
    dy: &[T],
    len: usize,
    ref_max: bool,
    amin: f64,
    top_db: Option<f64>,
) -> Vec<T> {
    let mut dx = vec![T::ZERO; x.len()];
    dx.par_chunks_mut(len).enumerate().for_each(|(c, out)| {
        let r = c * len..(c + 1) * len;
        let (xc, yc, dc) = (&x[r.clone()], &y[r.clone()], &dy[r]);
        let floor = top_db.map(|t| clip_max(yc) - T::from_f64(t));
        let (mut s_floored, mut s_live) = (0.0, 0.0);
        for i in 0..len {
            let floored = floor.is_some_and(|f| yc[i] <= f);
            let live = xc[i].to_f64() > amin && !floored;
            if floored {
                s_floored += dc[i].to_f64();
            } else if live {
                s_live += dc[i].to_f64();
            }
            out[i] = if live { T::from_f64(dc[i].to_f64() * TEN_OVER_LN10 / xc[i].to_f64()) } else { T::ZERO };
        }
        let m = (0..len).fold(0, |m, i| if xc[i] > xc[m] { i } else { m });
        let share = if ref_max { -s_live } else { s_floored };
        if len > 0 && xc[m].to_f64() > amin && share != 0.0 {
            out[m] += T::from_f64(share * TEN_OVER_LN10 / xc[m].to_f64());
        }
    });
    dx
}

/// [clips, rows, in_stride] (clip c holding in_frames[c] valid frames) → [clips, rows, frames]:
/// centre crop (or the first frames) when longer, padded with `pad` at the end when shorter.
#[allow(clippy::too_many_arguments)]
pub fn crop_pad<T: Float>(
    x: &[T],
    in_frames: &[usize],
    rows: usize,
    in_stride: usize,
    frames: usize,
    centre: bool,
    pad: f64,
) -> Vec<T> {
    let mut out = vec![T::from_f64(pad); in_frames.len() * rows * frames];
    out.par_chunks_mut(frames).enumerate().for_each(|(row, o)| {
        let c = row / rows;
        let n = in_frames[c];
        let start = if centre && n > frames { (n - frames) / 2 } else { 0 };
        let keep = frames.min(n);
        o[..keep].copy_from_slice(&x[row * in_stride + start..row * in_stride + start + keep]);
    });
    out
}

impl<T: Float> crate::backend::Spectro for super::Cpu<T> {
    fn mel_project(&self, power: &HostBuf<T>, fb: &HostBuf<T>, g: &MelGeom) -> Result<HostBuf<T>> {
        g.check("mel_project", power.len(), fb.len(), None)?;
        Ok(self.wrap(mel_project(power, fb, g.bins, g.frames, g.n_mels)))
    }
    fn mel_project_backward(&self, dmel: &HostBuf<T>, fb: &HostBuf<T>, g: &MelGeom) -> Result<HostBuf<T>> {
        g.check("mel_project_backward", g.power_len(), fb.len(), Some(dmel.len()))?;
        Ok(self.wrap(mel_project_backward(dmel, fb, g.bins, g.frames, g.n_mels)))
    }
    fn power_to_db(&self, x: &HostBuf<T>, g: &DbGeom) -> Result<HostBuf<T>> {
        g.check("power_to_db", &[("x", x.len())])?;
        Ok(self.wrap(power_to_db(x, g.len, g.ref_max, g.amin, g.top_db)))
    }
    fn power_to_db_backward(&self, x: &HostBuf<T>, y: &HostBuf<T>, dy: &HostBuf<T>, g: &DbGeom) -> Result<HostBuf<T>> {
        g.check("power_to_db_backward", &[("x", x.len()), ("y", y.len()), ("dy", dy.len())])?;
        Ok(self.wrap(power_to_db_backward(x, y, dy, g.len, g.ref_max, g.amin, g.top_db)))
    }
    fn crop_pad(&self, x: &HostBuf<T>, in_frames: &[usize], g: &CropGeom) -> Result<HostBuf<T>> {
        g.check(x.len(), in_frames.len())?;
        if let Some(&n) = in_frames.iter().find(|&&n| n > g.in_stride) {
            return Err(Error::shape("crop_pad", format!("a clip claims {n} frames in rows of {}", g.in_stride)));
        }
        Ok(self.wrap(crop_pad(x, in_frames, g.rows, g.in_stride, g.frames, g.centre, g.pad)))
    }
}
