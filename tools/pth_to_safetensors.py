#!/usr/bin/env python3
"""Converts the seed notebooks' PyTorch weights (.pth) to safetensors for `moodgrad evaluate --weights`.

moodgrad never unpickles; this script does, in PyTorch, on a file you trust. It accepts a
state_dict (``torch.save(model.state_dict(), …)``), a whole pickled model (``torch.save(model, …)``,
needs the notebook's classes importable — pass ``--weights-only false``), or a checkpoint dict
holding one under ``model_state_dict`` / ``state_dict``. Names are kept as PyTorch's (a
``module.`` prefix from DataParallel is dropped); non-persistent buffers such as BERT's
``embeddings.position_ids`` are dropped (moodgrad computes them). Every tensor is written as
float32 (integer buffers such as ``num_batches_tracked`` as int64), contiguous.

    tools/pth_to_safetensors.py best_model_3.pth model3.safetensors
    moodgrad evaluate --weights model3.safetensors --config model3 --data MERGE_DIR

A frozen BERT's weights in the file are ignored by moodgrad (it encodes the lyrics with the
Hugging Face folder the config names); a fine-tuned one (MODEL_5) is loaded.
"""

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file


def state_dict_of(obj):
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    if isinstance(obj, dict):
        for k in ("model_state_dict", "state_dict", "model"):
            if k in obj and isinstance(obj[k], (dict, torch.nn.Module)):
                return state_dict_of(obj[k])
        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    sys.exit(f"not a state_dict, a model or a checkpoint dict holding one (got {type(obj).__name__})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pth", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--weights-only", choices=["true", "false"], default="true",
                    help="torch.load(weights_only=…): false only for whole pickled models you trust")
    a = ap.parse_args()
    obj = torch.load(a.pth, map_location="cpu", weights_only=a.weights_only == "true")
    sd = state_dict_of(obj)
    out, dropped = {}, []
    for k, v in sd.items():
        name = k[len("module."):] if k.startswith("module.") else k
        if name.endswith("position_ids"):
            dropped.append(name)
            continue
        v = v.detach().contiguous()
        out[name] = v.to(torch.int64) if not v.is_floating_point() else v.to(torch.float32)
    save_file(out, str(a.out))
    print(f"{a.out}: {len(out)} tensors" + (f"; dropped {', '.join(dropped)}" if dropped else ""))


if __name__ == "__main__":
    main()
