//! The spectrogram front end as differentiable ops: mel projection and power_to_db.

use crate::backend::{Backend, DbGeom, MelGeom};
use crate::error::{Error, Result};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// [clips, bins, frames] power × filterbank [n_mels, bins] → [clips, n_mels, frames]. The filterbank
/// gets no gradient (it is fixed, as librosa's).
pub fn mel_project<B: Backend>(tape: &mut Tape<B>, power: &Var<B>, fb: &Var<B>) -> Result<Var<B>> {
    let (ps, fs) = (power.shape(), fb.shape());
    let &[clips, bins, frames] = ps else {
        return Err(Error::shape("mel_project", format!("power {ps:?} is not [clips, bins, frames]")));
    };
    let &[n_mels, fb_bins] = fs else {
        return Err(Error::shape("mel_project", format!("filterbank {fs:?} is not [n_mels, bins]")));
    };
    if fb_bins != bins {
        return Err(Error::shape("mel_project", format!("filterbank {fs:?} does not fit {bins} frequency bins")));
    }
    let g = MelGeom { clips, bins, frames, n_mels };
    let y = tape.backend.mel_project(power.buf(), fb.buf(), &g)?;
    let fbs = fb.buf().clone();
    Ok(tape.record("mel_project", &[power, fb], Tensor::new(vec![clips, n_mels, frames], y)?, move |be, dy| {
        Ok(vec![Some(be.mel_project_backward(&dy, &fbs, &g)?), None])
    }))
}

/// librosa.power_to_db per clip (the first dimension): ref = clip max (`ref_max`) or 1.0, amin,
/// optional top_db floor. The gradient is exact: the reference (ref_max) and the floor (top_db)
/// both follow the clip's largest power, which receives their share.
pub fn power_to_db<B: Backend>(
    tape: &mut Tape<B>,
    x: &Var<B>,
    ref_max: bool,
    amin: f64,
    top_db: Option<f64>,
) -> Result<Var<B>> {
    let clips = *x.shape().first().ok_or_else(|| Error::shape("power_to_db", "scalar input"))?;
    let g = DbGeom { clips, len: x.value().numel() / clips.max(1), ref_max, amin, top_db };
    let y: Tensor<B> = Tensor::new(x.shape(), tape.backend.power_to_db(x.buf(), &g)?)?;
    let (xs, ys) = (x.buf().clone(), y.buf().clone());
    Ok(tape.record("power_to_db", &[x], y, move |be, dy| Ok(vec![Some(be.power_to_db_backward(&xs, &ys, &dy, &g)?)])))
}
