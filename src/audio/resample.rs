//! Resampling as `librosa.resample(res_type="soxr_hq")` does it: libsoxr (built from source by
//! the `soxr-sys` crate, no system package), float32 in and out, quality recipe SOXR_HQ (= SOXR_20_BITQ), driven
//! like python-soxr's `resample()` (48000-output-sample chunks, then a flush), then librosa's
//! `fix_length` to ceil(n · out/in) samples (zero-padded or trimmed at the end).

use super::AudioError;
use soxr_sys as sys;

/// Output length librosa asks for: ceil(n · target / source).
pub fn output_len(n: usize, source_rate: u32, target_rate: u32) -> usize {
    let ratio = target_rate as f64 / source_rate as f64;
    (n as f64 * ratio).ceil() as usize
}

/// Resamples mono `x` from `source_rate` to `target_rate`; returns `x` unchanged when they agree.
pub fn resample(x: Vec<f32>, source_rate: u32, target_rate: u32) -> Result<Vec<f32>, AudioError> {
    if source_rate == target_rate {
        return Ok(x);
    }
    if source_rate == 0 || target_rate == 0 {
        return Err(AudioError::Undecodable("zero sample rate".into()));
    }
    let (in_rate, out_rate) = (source_rate as f64, target_rate as f64);
    let want = output_len(x.len(), source_rate, target_rate);
    // python-soxr: olen = ilen·out/in + 1 slots, input fed in chunks of max(1000, 48000·in/out).
    let olen = (x.len() as f64 * out_rate / in_rate) as usize + 1;
    let div_len = (48000.0 * in_rate / out_rate).max(1000.0) as usize;
    let mut y = vec![0f32; olen.max(want)];
    let mut err: sys::soxr_error_t = std::ptr::null();
    let mut out_pos = 0usize;
    // SAFETY: the soxr handle is created, used with in-bounds buffers whose lengths are passed
    // alongside, and deleted on every path; the io spec says f32 interleaved (1 channel).
    unsafe {
        let io = sys::soxr_io_spec(sys::soxr_datatype_t_SOXR_FLOAT32_I, sys::soxr_datatype_t_SOXR_FLOAT32_I);
        let q = sys::soxr_quality_spec(sys::SOXR_20_BITQ as _, 0);
        let h = sys::soxr_create(in_rate, out_rate, 1, &mut err, &io, &q, std::ptr::null());
        if !err.is_null() || h.is_null() {
            return Err(AudioError::Undecodable(format!("resampler: {}", cstr(err))));
        }
        let mut idx = 0usize;
        while idx < x.len() && err.is_null() {
            let take = div_len.min(x.len() - idx);
            let mut odone = 0usize;
            err = sys::soxr_process(
                h,
                x.as_ptr().add(idx) as sys::soxr_in_t,
                take,
                std::ptr::null_mut(),
                y.as_mut_ptr().add(out_pos) as sys::soxr_out_t,
                olen - out_pos,
                &mut odone,
            );
            out_pos += odone;
            idx += take;
        }
        if err.is_null() {
            let mut odone = 0usize;
            err = sys::soxr_process(
                h,
                std::ptr::null(),
                0,
                std::ptr::null_mut(),
                y.as_mut_ptr().add(out_pos) as sys::soxr_out_t,
                olen - out_pos,
                &mut odone,
            );
            out_pos += odone;
        }
        sys::soxr_delete(h);
    }
    if !err.is_null() {
        return Err(AudioError::Undecodable(format!("resampler: {}", cstr(err))));
    }
    // fix_length: the slots past out_pos are already zero.
    let _ = out_pos;
    y.truncate(want);
    y.resize(want, 0.0);
    Ok(y)
}

fn cstr(p: sys::soxr_error_t) -> String {
    if p.is_null() {
        return "unknown error".into();
    }
    // SAFETY: libsoxr's error values are static NUL-terminated strings.
    unsafe { std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned() }
}
