//! Audio preprocessing on one core: decode + resample + mel + dB of a generated 31 s 44.1 kHz
//! stereo MP3 (tests/fixtures/audio/music_44k_stereo_31s.mp3, made by
//! tools/make_librosa_fixtures.py with lame), and each stage alone. Criterion runs on the calling
//! thread, so these are per-core numbers; `tools/bench_librosa.py` times librosa on the same file.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use moodgrad::audio::{PreprocessParams, decode, mel_db_from_file, pipeline, resample};
use std::hint::black_box;
use std::path::Path;

fn bench(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/music_44k_stereo_31s.mp3");
    let params = PreprocessParams::default();
    let mut g = c.benchmark_group("audio");
    g.sample_size(20);
    g.throughput(Throughput::Elements(1));
    g.bench_function("mel_db_from_file mp3 31s 44.1k stereo", |b| {
        b.iter(|| black_box(mel_db_from_file(black_box(&path), &params).unwrap()))
    });
    g.bench_function("decode mp3", |b| b.iter(|| black_box(decode::decode_file(&path).unwrap())));
    let d = decode::decode_file(&path).unwrap();
    g.bench_function("resample 44.1k->22.05k", |b| {
        b.iter(|| black_box(resample::resample(d.samples.clone(), d.sample_rate, 22050).unwrap()))
    });
    let y = resample::resample(d.samples.clone(), d.sample_rate, 22050).unwrap();
    g.bench_function("stft+mel+dB", |b| b.iter(|| black_box(pipeline::mel_db_from_samples(&y, &params))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
