#!/usr/bin/env python3
"""librosa 0.11 on the clip benches/audio.rs uses: load (libsndfile/mpg123) + soxr_hq resample to
22050 Hz mono + mel (2048/512/128) + power_to_db, warm (after one untimed run, which also pays
numba's compile), on one core (BLAS and numba threads pinned to 1), clips/s.

Usage: OMP_NUM_THREADS=1 tools/bench_librosa.py [--runs 20] [FILE ...]
"""

import argparse
import os
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import librosa  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(HERE, "..", "tests", "fixtures", "audio", "music_44k_stereo_31s.mp3")


def clip(path):
    y, sr = librosa.load(path, sr=22050, mono=True)
    S = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=2048, hop_length=512, n_mels=128)
    return librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=80.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("files", nargs="*", default=[DEFAULT])
    args = ap.parse_args()
    for f in args.files:
        clip(f)  # warm-up
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            clip(f)
            times.append(time.perf_counter() - t0)
        med = float(np.median(times))
        print(f"librosa {librosa.__version__} {os.path.basename(f)}: median {med * 1e3:.1f} ms/clip, "
              f"{1 / med:.2f} clips/s (min {min(times) * 1e3:.1f} ms, {args.runs} runs)")


if __name__ == "__main__":
    main()
