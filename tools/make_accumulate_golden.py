#!/usr/bin/env python3
"""The seed's PyTorch loop with gradient accumulation, for tests/train_loop.rs's `[train] accumulate`.

The data, split, model and initial weights of make_train_loop_golden.py (its committed fixture's
model seed), batch 4 (two optimiser steps per epoch over the 8 training songs), each batch split in
order into 2 micro-batches of 2; per micro-batch a forward in train mode (BatchNorm on those 2
songs) and `(loss / 2).backward()`, then clip_grad_norm_(1.0) and Adam 1e-2; StepLR(1, 0.5);
3 epochs; validation in batches of 4. Each epoch's train loss is the mean over steps of the mean
of the micro-batches' losses. In f32 and f64.

    ~/.venvs/torch/bin/python tools/make_accumulate_golden.py [--threads 2]

writes tests/fixtures/train/accumulate_golden.safetensors: `{f32,f64}.train_loss` [3],
`.val_loss` [3], `.best_epoch` [1], `.best.<state_dict name>`; metadata `loop` (batch, accumulate,
model seed). Byte-reproducible at a given thread count.
"""

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_train_loop_golden as loop  # noqa: E402
from seed_model import save_safetensors  # noqa: E402

BATCH, ACCUMULATE, MODEL_SEED = 4, 2, 12


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.normpath(
        os.path.join(here, "..", "tests", "fixtures", "train", "accumulate_golden.safetensors")))
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True)
    spec, lyrics, target = loop.make_data()
    init = loop.initial_weights(MODEL_SEED)
    tensors = {}
    for dt, dtype in loop.DTYPES.items():
        r = loop.run_loop(init, spec, lyrics, target, BATCH, dtype, accumulate=ACCUMULATE)
        print(f"{dt}: train {r['train_loss']} val {r['val_loss']} best {r['best_epoch']}")
        tensors[f"{dt}.train_loss"] = torch.tensor(r["train_loss"], dtype=torch.float64)
        tensors[f"{dt}.val_loss"] = torch.tensor(r["val_loss"], dtype=torch.float64)
        tensors[f"{dt}.best_epoch"] = torch.tensor([r["best_epoch"]], dtype=torch.int64)
        for k, v in r["best"].items():
            tensors[f"{dt}.best.{k}"] = v
    meta = {
        "loop": json.dumps({"batch": BATCH, "accumulate": ACCUMULATE, "model_seed": MODEL_SEED, "lr": loop.LR,
                            "epochs": loop.EPOCHS, "step_size": loop.STEP_SIZE, "gamma": loop.GAMMA,
                            "clip": loop.CLIP}),
        "torch": torch.__version__,
        "made_by": "tools/make_accumulate_golden.py",
    }
    save_safetensors(tensors, a.out, meta)
    print(f"wrote {a.out} ({os.path.getsize(a.out)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
