#!/usr/bin/env python3
"""Times the seed notebook's training loop in PyTorch, for docs/perf.md beside `moodgrad train`.

The loop is the notebooks' (with the guide's fixes): a Dataset reading each song's cached
[128, 1292] spectrogram (.npy) and its frozen lyric vector, a shuffled DataLoader of batch 16,
``model.train()``, MSE, ``loss.backward()``, ``clip_grad_norm_(…, 1.0)``, Adam 1e-3, then a
validation pass under ``torch.no_grad()`` in eval mode, StepLR(15, 0.5) per epoch. The model is
tools/seed_model.py's Seed (MODEL_3 or MODEL_4 with SE) over lyric vectors of the given width.

    moodgrad encode --model MODEL_DIR --lyrics DATA/lyrics --out vectors.safetensors
    tools/seed_epoch.py --cache DATA/moodgrad-cache/fixed --vectors vectors.safetensors \\
        --model model3 --train 64 --val 16 --epochs 2 --threads 2

Prints one JSON line per epoch: seconds, train samples/s, losses.
"""

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader, Dataset

import sys

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_model import Seed  # noqa: E402


class MERDataset(Dataset):
    """The notebooks' MER_Dataset, on moodgrad's cache and a frozen vector per lyric."""

    def __init__(self, rows, vectors):
        self.rows, self.vectors = rows, vectors

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        r = self.rows[i]
        spec = torch.from_numpy(np.load(r["spectrogram_path"])).float().unsqueeze(0)
        lyr = self.vectors[Path(r["lyrics_path"]).stem]
        target = torch.tensor([float(r["valence"]), float(r["arousal"])], dtype=torch.float32)
        return spec, lyr, target


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--vectors", type=Path, required=True)
    ap.add_argument("--model", choices=["model3", "model4"], default="model3")
    ap.add_argument("--train", type=int, required=True, help="training songs per epoch")
    ap.add_argument("--val", type=int, required=True, help="validation songs per epoch")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers (the notebooks: 0)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    with open(a.cache / "master_processed_file_list.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    if len(rows) < a.train + a.val:
        sys.exit(f"the cache has {len(rows)} songs; --train {a.train} + --val {a.val} needs more")
    vectors = load_file(str(a.vectors))
    dim = next(iter(vectors.values())).shape[0]
    train = DataLoader(MERDataset(rows[: a.train], vectors), batch_size=a.batch, shuffle=True, num_workers=a.workers)
    val = DataLoader(MERDataset(rows[a.train : a.train + a.val], vectors), batch_size=a.batch, num_workers=a.workers)
    model = Seed(a.model, "se", lyrics_dim=dim)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=15, gamma=0.5)
    loss_fn = nn.MSELoss()
    for epoch in range(1, a.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        tl = []
        for spec, lyr, target in train:
            opt.zero_grad()
            loss = loss_fn(model(spec, lyr), target)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            tl.append(loss.item())
        t_train = time.perf_counter() - t0
        model.eval()
        vl = []
        with torch.no_grad():
            for spec, lyr, target in val:
                vl.append(loss_fn(model(spec, lyr), target).item())
        sched.step()
        secs = time.perf_counter() - t0
        print(json.dumps({"framework": f"torch {torch.__version__}", "model": a.model, "epoch": epoch,
                          "seconds": secs, "train_seconds": t_train, "samples_per_s": a.train / t_train,
                          "train_loss": float(np.mean(tl)), "val_loss": float(np.mean(vl)),
                          "threads": a.threads}), flush=True)


if __name__ == "__main__":
    main()
