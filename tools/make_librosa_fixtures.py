#!/usr/bin/env python3
"""Audio fixtures for tests/audio.rs: generated clips and what librosa 0.11 makes of them.

Needs librosa 0.11, soundfile, safetensors and numpy (a venv outside the repo:
  python3 -m venv /work/librosa-env && /work/librosa-env/bin/pip install 'librosa==0.11.*' soundfile safetensors
) and `lame` on PATH for the MP3s. CI does not run this; the outputs are committed:

  tests/fixtures/audio/*.wav, *.mp3      the clips (deterministic: fixed seeds)
  tests/fixtures/audio/expected.safetensors
      mel_basis                 librosa.filters.mel(sr=22050, n_fft=2048, n_mels=128)   [128, 1025]
      mel_basis_custom          librosa.filters.mel(sr=44100, n_fft=1024, n_mels=64, fmin=30, fmax=8000)
      fixed.<clip>              the seed's fixed pipeline: power_to_db(ref=1.0), centre crop/pad −80 [128, 1292]
      legacy.<clip>             ref=np.max, first 1292 frames, pad 0                           [128, 1292]
      custom.<clip>             n_fft 1024, hop 256, 64 mels, fmin 30, fmax 8000, ref 1.0, no top_db, 400 frames
      source_frames.<clip>      frames before crop/pad (f64 [1])
      samples_len.<clip>        len(librosa.load(path, sr=22050)) (f64 [1])
      native_len.<clip>         len(librosa.load(path, sr=None)) (f64 [1]): the decoder's sample count
      native_head.<clip>        librosa.load(path, sr=None, mono=True)[:4096]  (decoder check)
      resampled_head.<clip>     librosa.load(path, sr=22050)[:22050]           (resampler check)

Usage: tools/make_librosa_fixtures.py [--out tests/fixtures/audio]
"""

import argparse
import os
import subprocess
import tempfile

import librosa
import numpy as np
import scipy.signal
import soundfile as sf
from safetensors.numpy import save_file

FRAMES = 1292


def crop_pad(db, frames, centre, pad_value):
    n = db.shape[1]
    if n > frames:
        start = (n - frames) // 2 if centre else 0
        return db[:, start : start + frames]
    out = np.full((db.shape[0], frames), pad_value, dtype=np.float32)
    out[:, :n] = db
    return out


def mel_db(y, sr, ref_max, centre, pad_value, n_fft=2048, hop=512, n_mels=128, fmin=0.0, fmax=None,
           top_db=80.0, frames=FRAMES):
    S = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels,
                                       fmin=fmin, fmax=fmax, power=2.0, center=True, pad_mode="constant")
    db = librosa.power_to_db(S, ref=np.max if ref_max else 1.0, amin=1e-10, top_db=top_db)
    return crop_pad(db.astype(np.float32), frames, centre, pad_value), S.shape[1]


def envelope(n, sr, rate_hz, depth, rng):
    t = np.arange(n) / sr
    return (1.0 - depth) + depth * 0.5 * (1 + np.sin(2 * np.pi * rate_hz * t + rng.uniform(0, 6.28)))


def music_like(seconds, sr, channels, seed):
    """Chords, a chirp, noise bursts and silence: dynamics over ~60 dB so the top_db floor bites."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    out = np.zeros((n, channels))
    for c in range(channels):
        y = np.zeros(n)
        for f0 in (110.0, 220.0 * 2 ** (4 / 12), 220.0 * 2 ** (7 / 12), 440.0):
            for h in range(1, 6):
                if f0 * h < sr / 2:
                    y += 0.08 / h * np.sin(2 * np.pi * f0 * h * t * (1 + 0.002 * c) + rng.uniform(0, 6.28))
        y *= envelope(n, sr, 0.5, 0.8, rng)
        # Exponential chirp 50 Hz → 0.45·sr over the clip.
        f1 = 0.45 * sr
        k = np.log(f1 / 50.0) / seconds
        y += 0.05 * np.sin(2 * np.pi * 50.0 * (np.exp(k * t) - 1) / k)
        # Noise bursts (filtered by a 1-pole low-pass) and a quiet floor.
        noise = rng.standard_normal(n)
        lp = scipy.signal.lfilter([0.1], [1.0, -0.9], noise)
        gate = (np.sin(2 * np.pi * 0.7 * t + c) > 0.6).astype(float)
        y += 0.3 * lp * gate + 1e-3 * noise
        # A half-second of near-silence in the middle.
        mid = n // 2
        y[mid : mid + sr // 2] *= 1e-3
        out[:, c] = y
    return np.clip(out, -0.99, 0.99)


def tones(seconds, sr, channels, seed):
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    out = np.zeros((n, channels))
    for c in range(channels):
        f = 440.0 * (1 + 0.5 * c)
        y = 0.5 * np.sin(2 * np.pi * f * t) + 0.1 * np.sin(2 * np.pi * 3 * f * t + 1.0)
        # Linear chirp 100 Hz → 0.4·sr.
        y += 0.2 * np.sin(2 * np.pi * (100 * t + (0.4 * sr - 100) / (2 * seconds) * t * t))
        y += 0.01 * rng.standard_normal(n)
        out[:, c] = y * np.minimum(1.0, t / 0.05)
    return np.clip(out, -0.99, 0.99)


CLIPS = [
    # name, generator, seconds, sr, channels, format
    ("tones_44k_stereo_5s.wav", tones, 5.0, 44100, 2, "wav"),
    ("music_22k_mono_31s.wav", music_like, 31.0, 22050, 1, "wav"),
    ("music_44k_stereo_31s.mp3", music_like, 31.0, 44100, 2, "mp3"),
    ("tones_22k_mono_5s.mp3", tones, 5.0, 22050, 1, "mp3"),
    # A ratio that is not 2:1 (libsoxr's general path rather than its half-band stage).
    ("music_48k_mono_3s.wav", music_like, 3.0, 48000, 1, "wav"),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "audio"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    assert librosa.__version__.startswith("0.11"), librosa.__version__

    tensors = {
        "mel_basis": librosa.filters.mel(sr=22050, n_fft=2048, n_mels=128),
        "mel_basis_custom": librosa.filters.mel(sr=44100, n_fft=1024, n_mels=64, fmin=30.0, fmax=8000.0),
    }
    for i, (name, gen, seconds, sr, ch, fmt) in enumerate(CLIPS):
        path = os.path.join(args.out, name)
        data = gen(seconds, sr, ch, seed=100 + i)
        if fmt == "wav":
            sf.write(path, data, sr, subtype="PCM_16")
        else:
            with tempfile.TemporaryDirectory() as tmp:
                wav = os.path.join(tmp, "in.wav")
                sf.write(wav, data, sr, subtype="PCM_16")
                kbps = "128" if sr == 44100 else "64"
                subprocess.run(["lame", "--quiet", "-b", kbps, "--cbr", wav, path], check=True)
        key = name
        native, _ = librosa.load(path, sr=None, mono=True)
        y, sr22 = librosa.load(path, sr=22050, mono=True)
        assert sr22 == 22050
        fixed, n = mel_db(y, 22050, ref_max=False, centre=True, pad_value=-80.0)
        tensors[f"fixed.{key}"] = fixed
        tensors[f"source_frames.{key}"] = np.array([n], dtype=np.float64)
        tensors[f"samples_len.{key}"] = np.array([len(y)], dtype=np.float64)
        tensors[f"native_len.{key}"] = np.array([len(native)], dtype=np.float64)
        tensors[f"native_head.{key}"] = native[:4096].astype(np.float32)
        tensors[f"resampled_head.{key}"] = y[:22050].astype(np.float32)
        if name in ("tones_44k_stereo_5s.wav", "music_22k_mono_31s.wav"):
            legacy, _ = mel_db(y, 22050, ref_max=True, centre=False, pad_value=0.0)
            tensors[f"legacy.{key}"] = legacy
        if name == "tones_44k_stereo_5s.wav":
            custom, _ = mel_db(y, 22050, ref_max=False, centre=True, pad_value=-100.0, n_fft=1024, hop=256,
                               n_mels=64, fmin=30.0, fmax=8000.0, top_db=None, frames=400)
            tensors[f"custom.{key}"] = custom
        print(f"{name}: native {len(native)} samples, {len(y)} at 22050, {n} frames")
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    save_file(tensors, os.path.join(args.out, "expected.safetensors"))


if __name__ == "__main__":
    main()
