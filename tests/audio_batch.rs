//! The batched device front end (STFT on the CPU, then mel/dB/crop-pad as one batch through the
//! backend) against the per-clip CPU pipeline on the librosa fixtures, fixed and legacy
//! parameters, clips of different lengths in one batch: on `cpu`, on `sim` always, on `cuda` too
//! when a GPU answers.

use moodgrad::audio::{PreprocessParams, batch::mel_db_batch, decode, pipeline, resample};
use moodgrad::backend::cpu::Cpu;
use moodgrad::backend::{Backend, Precision};
use moodgrad::device::kernel_devices;
use std::path::Path;

fn clip(name: &str) -> Vec<f32> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio").join(name);
    let d = decode::decode_file(&p).unwrap();
    resample::resample(d.samples, d.sample_rate, 22050).unwrap()
}

fn check<B: Backend>(be: &B, clips: &[Vec<f32>], params: &PreprocessParams) {
    let got = mel_db_batch(be, clips, params).unwrap();
    for (i, (g, y)) in got.iter().zip(clips).enumerate() {
        let want = pipeline::mel_db_from_samples(y, params);
        assert_eq!((g.frames, g.source_frames), (want.frames, want.source_frames));
        let worst = g.data.iter().zip(&want.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        // Same f32 STFT, the mel sums in f64 on both sides, then one log each (ln·10/ln10 vs
        // log10, both in f64 before rounding): the dB values agree to a few f32 ulps of ~100.
        assert!(worst <= 1e-4, "{} clip {i}: max {worst} dB from the per-clip pipeline", be.name());
    }
}

#[test]
fn batched_front_end_matches_the_per_clip_pipeline() {
    // 31 s (centre-cropped) and 5 s (padded) clips in one batch.
    let clips = vec![clip("music_44k_stereo_31s.mp3"), clip("tones_22k_mono_5s.mp3"), clip("tones_44k_stereo_5s.wav")];
    for params in [PreprocessParams::default(), PreprocessParams::legacy()] {
        check(&Cpu::<f32>::new(), &clips, &params);
        // No convolution here: FP32 names the precision.
        for (_, b) in kernel_devices(Some(Precision::Fp32)).unwrap() {
            check(&b, &clips, &params);
        }
    }
}
