//! The spectrogram front end as differentiable ops: mel projection and power_to_db.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// [clips, bins, frames] power × filterbank [n_mels, bins] → [clips, n_mels, frames]. The filterbank
/// gets no gradient (it is fixed, as librosa's).
pub fn mel_project<B: Backend>(tape: &mut Tape<B>, power: Var, fb: Var) -> Result<Var> {
    let (ps, fs) = (tape.shape(power).to_vec(), tape.shape(fb).to_vec());
    let &[clips, bins, frames] = ps.as_slice() else {
        return Err(Error::shape("mel_project", format!("power {ps:?} is not [clips, bins, frames]")));
    };
    let &[n_mels, fb_bins] = fs.as_slice() else {
        return Err(Error::shape("mel_project", format!("filterbank {fs:?} is not [n_mels, bins]")));
    };
    if fb_bins != bins {
        return Err(Error::shape("mel_project", format!("filterbank {fs:?} does not fit {bins} frequency bins")));
    }
    let y = tape.backend.mel_project(&tape.value(power).buf, &tape.value(fb).buf, clips, bins, frames, n_mels)?;
    Ok(tape.record(
        &[power, fb],
        Tensor::new(vec![clips, n_mels, frames], y),
        Box::new(move |ctx, dy| {
            let dp = ctx.backend.mel_project_backward(dy, &ctx.input(1).buf, clips, bins, frames, n_mels)?;
            Ok(vec![Some(dp), None])
        }),
    ))
}

/// librosa.power_to_db per clip (the first dimension): ref = clip max (`ref_max`) or 1.0, amin,
/// optional top_db floor. The gradient is exact: the reference (ref_max) and the floor (top_db)
/// both follow the clip's largest power, which receives their share.
pub fn power_to_db<B: Backend>(
    tape: &mut Tape<B>,
    x: Var,
    ref_max: bool,
    amin: f64,
    top_db: Option<f64>,
) -> Result<Var> {
    let shape = tape.shape(x).to_vec();
    let clips = *shape.first().ok_or_else(|| Error::shape("power_to_db", "scalar input"))?;
    let len = tape.value(x).numel() / clips.max(1);
    let y = tape.backend.power_to_db(&tape.value(x).buf, clips, len, ref_max, amin, top_db)?;
    Ok(tape.record(
        &[x],
        Tensor::new(shape, y),
        Box::new(move |ctx, dy| {
            let dx = ctx.backend.power_to_db_backward(
                &ctx.input(0).buf,
                &ctx.output().buf,
                dy,
                clips,
                len,
                ref_max,
                amin,
                top_db,
            )?;
            Ok(vec![Some(dx)])
        }),
    ))
}
