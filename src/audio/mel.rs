//! Slaney mel filterbank (`librosa.filters.mel(htk=False, norm="slaney")`), its sparse product
//! with a power spectrum, `librosa.power_to_db`, and the crop/pad to a fixed frame count.

/// Slaney's mel scale (librosa.hz_to_mel, htk=False): linear below 1 kHz, logarithmic above.
pub fn hz_to_mel(f: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if f >= min_log_hz { min_log_mel + (f / min_log_hz).ln() / logstep } else { f / f_sp }
}

/// Inverse of [`hz_to_mel`] (librosa.mel_to_hz, htk=False).
pub fn mel_to_hz(m: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if m >= min_log_mel { min_log_hz * (logstep * (m - min_log_mel)).exp() } else { f_sp * m }
}

/// numpy.linspace(a, b, n) (endpoint included, last element exactly b).
fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![a];
    }
    let step = (b - a) / (n - 1) as f64;
    let mut v: Vec<f64> = (0..n).map(|i| i as f64 * step + a).collect();
    v[n - 1] = b;
    v
}

/// The filterbank as librosa computes it (in f64), row-major [n_mels, n_fft/2 + 1].
pub fn mel_filterbank_f64(sr: f64, n_fft: usize, n_mels: usize, fmin: f64, fmax: Option<f64>) -> Vec<f64> {
    let fmax = fmax.unwrap_or(sr / 2.0);
    let n_bins = n_fft / 2 + 1;
    // np.fft.rfftfreq(n_fft, d=1/sr): k · (1 / (n_fft · (1/sr))).
    let val = 1.0 / (n_fft as f64 * (1.0 / sr));
    let fftfreqs: Vec<f64> = (0..n_bins).map(|k| k as f64 * val).collect();
    let mel_f: Vec<f64> = linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2).into_iter().map(mel_to_hz).collect();
    let mut w = vec![0f64; n_mels * n_bins];
    for i in 0..n_mels {
        let (fd0, fd1) = (mel_f[i + 1] - mel_f[i], mel_f[i + 2] - mel_f[i + 1]);
        let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
        for (k, &f) in fftfreqs.iter().enumerate() {
            let lower = -(mel_f[i] - f) / fd0;
            let upper = (mel_f[i + 2] - f) / fd1;
            w[i * n_bins + k] = 0f64.max(lower.min(upper)) * enorm;
        }
    }
    w
}

/// The filterbank as librosa returns it (dtype float32), row-major [n_mels, n_fft/2 + 1].
pub fn mel_filterbank(sr: f64, n_fft: usize, n_mels: usize, fmin: f64, fmax: Option<f64>) -> Vec<f32> {
    mel_filterbank_f64(sr, n_fft, n_mels, fmin, fmax).into_iter().map(|x| x as f32).collect()
}

/// The filterbank with only each band's non-zero bin range kept.
#[derive(Clone, Debug, PartialEq)]
pub struct SparseMel {
    pub n_mels: usize,
    pub n_bins: usize,
    /// (first bin, weights) per band.
    pub bands: Vec<(usize, Vec<f32>)>,
}

impl SparseMel {
    pub fn new(sr: f64, n_fft: usize, n_mels: usize, fmin: f64, fmax: Option<f64>) -> SparseMel {
        let n_bins = n_fft / 2 + 1;
        let dense = mel_filterbank(sr, n_fft, n_mels, fmin, fmax);
        let bands = dense
            .chunks(n_bins)
            .map(|row| match row.iter().position(|&x| x != 0.0) {
                None => (0, Vec::new()),
                Some(lo) => {
                    let hi = row.iter().rposition(|&x| x != 0.0).expect("a non-zero exists") + 1;
                    (lo, row[lo..hi].to_vec())
                }
            })
            .collect();
        SparseMel { n_mels, n_bins, bands }
    }

    /// out[m · stride] = Σ_k basis[m, k] · power[k] for every band m.
    #[inline]
    pub fn apply(&self, power: &[f32], out: &mut [f32], stride: usize) {
        debug_assert_eq!(power.len(), self.n_bins);
        for (m, (lo, w)) in self.bands.iter().enumerate() {
            let p = &power[*lo..*lo + w.len()];
            // f32 as numpy's float32 einsum (BLAS sgemm); only the summation order differs.
            out[m * stride] = w.iter().zip(p).map(|(&a, &b)| a * b).sum();
        }
    }
}

/// librosa.power_to_db in place on float32: 10·log10(max(amin, S)) − 10·log10(max(amin, ref)),
/// then floored at (max − top_db). `ref_max`: ref = max(S) (librosa's `ref=np.max`), else 1.0.
pub fn power_to_db(s: &mut [f32], ref_max: bool, amin: f64, top_db: Option<f64>) {
    // All in f32 as numpy does it for a float32 S: log10f, then × 10 and − ref in f32.
    let amin32 = amin as f32;
    let ref_value = if ref_max { s.iter().copied().fold(f32::NEG_INFINITY, f32::max) } else { 1.0 };
    let ref_db = 10.0 * amin32.max(ref_value.abs()).log10();
    let mut top = f32::NEG_INFINITY;
    for x in s.iter_mut() {
        *x = 10.0 * amin32.max(*x).log10() - ref_db;
        top = top.max(*x);
    }
    if let Some(top_db) = top_db {
        let floor = top - top_db as f32;
        for x in s.iter_mut() {
            *x = x.max(floor);
        }
    }
}

/// Crops or pads row-major [rows, n] to [rows, frames]: longer → start (n − frames) / 2 when
/// `centre`, else 0; shorter → the missing frames at the end set to `pad_value`.
pub fn crop_or_pad(data: &[f32], rows: usize, n: usize, frames: usize, centre: bool, pad_value: f32) -> Vec<f32> {
    assert_eq!(data.len(), rows * n, "data is not rows × n");
    let mut out = vec![pad_value; rows * frames];
    let start = if n > frames && centre { (n - frames) / 2 } else { 0 };
    let keep = frames.min(n);
    for r in 0..rows {
        out[r * frames..r * frames + keep].copy_from_slice(&data[r * n + start..r * n + start + keep]);
    }
    out
}
