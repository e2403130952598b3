#!/usr/bin/env python3
"""The seed's prediction path on a folder of songs, for docs/perf.md's batch-prediction comparison:
librosa (load + 22050 Hz mono + mel 2048/512/128 + power_to_db, as tools/bench_librosa.py) then the
seed's PyTorch MODEL_3 + SE audio tower and head (tools/seed_model.py, eval mode, untrained weights:
they cost what trained ones do), one song after another as the seed's notebook predicts, the
middle 1292 frames (zero-padded when shorter). Prints songs/s from the model's construction to the
last prediction, and the same without the first song (librosa's numba compile).

Usage: tools/bench_predict_torch.py DIR [--threads 2] [--batch 1]   (the torch venv + librosa)
"""

import argparse
import os
import sys
import time
from pathlib import Path

import librosa
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_model import Seed  # noqa: E402

FRAMES = 1292
AUDIO = (".wav", ".mp3", ".flac", ".ogg")


def spectrogram(path):
    y, sr = librosa.load(path, sr=22050, mono=True)
    s = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=2048, hop_length=512, n_mels=128)
    db = librosa.power_to_db(s, ref=np.max, amin=1e-10, top_db=80.0)
    if db.shape[1] >= FRAMES:
        start = (db.shape[1] - FRAMES) // 2
        return db[:, start:start + FRAMES]
    return np.pad(db, ((0, 0), (0, FRAMES - db.shape[1])))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    files = sorted(str(p) for p in Path(args.dir).rglob("*") if p.suffix.lower() in AUDIO)
    t0 = time.perf_counter()
    model = Seed("model3", "se", lyrics_dim=0).eval()
    first = None
    with torch.no_grad():
        for k in range(0, len(files), args.batch):
            x = np.stack([spectrogram(f) for f in files[k:k + args.batch]])[:, None].astype(np.float32)
            model(torch.from_numpy(x), torch.zeros(len(x), 0))
            if first is None:
                first = time.perf_counter()
    t1 = time.perf_counter()
    n = len(files)
    print(f"torch {torch.__version__} librosa {librosa.__version__}, {args.threads} threads, batch {args.batch}: "
          f"{n} songs in {t1 - t0:.2f} s = {n / (t1 - t0):.2f} songs/s; after the first: "
          f"{(n - args.batch) / (t1 - first):.2f} songs/s")


if __name__ == "__main__":
    main()
