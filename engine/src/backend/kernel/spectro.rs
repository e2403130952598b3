//! The spectrogram front end: kernels/spectro.cu.

use super::{Arg, B1, DevBuf, KernelBackend, ew, f, i, p};
use crate::backend::geom::check_i32;
use crate::backend::{CropGeom, DbGeom, MelGeom, Memory, Spectro};
use crate::error::{Error, Result};

impl KernelBackend {
    /// Per-clip maximum of [clips, len] (spectro.cu's clip_max).
    fn clip_max(&self, x: &DevBuf, clips: usize, len: usize) -> Result<DevBuf> {
        let out = self.buf(clips)?;
        self.launch("clip_max", [clips.max(1) as u32, 1, 1], B1, 0, &[p(x), p(&out), i(clips)?, i(len)?])?;
        Ok(out)
    }
}

impl Spectro for KernelBackend {
    fn mel_project(&self, power: &DevBuf, fb: &DevBuf, g: &MelGeom) -> Result<DevBuf> {
        g.check("mel_project", power.len(), fb.len(), None)?;
        g.check_i32("mel_project")?;
        // Each band's non-zero bin range, so the kernel skips the zeros of the triangle filters.
        let w = self.download(fb)?;
        let (mut lo, mut hi) = (Vec::with_capacity(g.n_mels), Vec::with_capacity(g.n_mels));
        for m in 0..g.n_mels {
            let row = &w[m * g.bins..(m + 1) * g.bins];
            let first = row.iter().position(|&v| v != 0.0).unwrap_or(0);
            let last = row.iter().rposition(|&v| v != 0.0).map_or(0, |l| l + 1);
            lo.push(first as u32);
            hi.push(last.max(first) as u32);
        }
        let (lo, hi) = (self.upload_index(&lo)?, self.upload_index(&hi)?);
        let mel = self.buf(g.mel_len())?;
        let args = [p(power), p(fb), p(&lo), p(&hi), p(&mel), i(g.clips)?, i(g.bins)?, i(g.frames)?, i(g.n_mels)?];
        self.launch("mel_project", ew(g.mel_len()), B1, 0, &args)?;
        Ok(mel)
    }
    fn mel_project_backward(&self, dmel: &DevBuf, fb: &DevBuf, g: &MelGeom) -> Result<DevBuf> {
        g.check("mel_project_backward", g.power_len(), fb.len(), Some(dmel.len()))?;
        g.check_i32("mel_project_backward")?;
        let dp = self.buf(g.power_len())?;
        let args = [p(dmel), p(fb), p(&dp), i(g.clips)?, i(g.bins)?, i(g.frames)?, i(g.n_mels)?];
        self.launch("mel_project_backward", ew(g.power_len()), B1, 0, &args)?;
        Ok(dp)
    }
    fn power_to_db(&self, x: &DevBuf, g: &DbGeom) -> Result<DevBuf> {
        g.check("power_to_db", &[("x", x.len())])?;
        check_i32("power_to_db", "the input", g.total(), g.len)?;
        let y = self.buf(g.total())?;
        let refs = if g.ref_max { Some(self.clip_max(x, g.clips, g.len)?) } else { None };
        let args = [p(x), Arg::Ptr(refs.as_ref().map_or(0, |r| r.ptr())), p(&y), i(g.clips)?, i(g.len)?, f(g.amin)];
        self.launch("power_to_db_apply", ew(g.total()), B1, 0, &args)?;
        if let Some(t) = g.top_db {
            let top = self.clip_max(&y, g.clips, g.len)?;
            self.launch("db_floor", ew(g.total()), B1, 0, &[p(&y), p(&top), i(g.clips)?, i(g.len)?, f(t)])?;
        }
        Ok(y)
    }
    fn power_to_db_backward(&self, x: &DevBuf, y: &DevBuf, dy: &DevBuf, g: &DbGeom) -> Result<DevBuf> {
        g.check("power_to_db_backward", &[("x", x.len()), ("y", y.len()), ("dy", dy.len())])?;
        check_i32("power_to_db_backward", "the input", g.total(), g.len)?;
        let dx = self.buf(g.total())?;
        let top = g.top_db.map(|_| self.clip_max(y, g.clips, g.len)).transpose()?;
        let args = [
            p(x),
            p(y),
            p(dy),
            Arg::Ptr(top.as_ref().map_or(0, |t| t.ptr())),
            p(&dx),
            i(g.clips)?,
            i(g.len)?,
            f(g.amin),
            f(g.top_db.unwrap_or(0.0)),
        ];
        self.launch("power_to_db_backward", ew(g.total()), B1, 0, &args)?;
        let mut args = args.to_vec();
        args.push(Arg::I32(g.ref_max as i32));
        self.launch("power_to_db_backward_max", [g.clips.max(1) as u32, 1, 1], B1, 0, &args)?;
        Ok(dx)
    }
    fn crop_pad(&self, x: &DevBuf, in_frames: &[usize], g: &CropGeom) -> Result<DevBuf> {
        let clips = in_frames.len();
        g.check(x.len(), clips)?;
        if let Some(&n) = in_frames.iter().find(|&&n| n > g.in_stride) {
            return Err(Error::shape("crop_pad", format!("a clip claims {n} frames in rows of {}", g.in_stride)));
        }
        let total = clips * g.rows * g.frames;
        check_i32("crop_pad", "the output", total, g.rows * g.frames)?;
        check_i32("crop_pad", "the input", x.len(), g.rows * g.in_stride)?;
        let nf = in_frames.iter().map(|&n| n as u32).collect::<Vec<_>>();
        let nf = self.upload_index(&nf)?;
        let y = self.buf(total)?;
        let args = [
            p(x),
            p(&nf),
            p(&y),
            i(clips)?,
            i(g.rows)?,
            i(g.in_stride)?,
            i(g.frames)?,
            Arg::I32(g.centre as i32),
            f(g.pad),
        ];
        self.launch("crop_pad", ew(total), B1, 0, &args)?;
        Ok(y)
    }
}
