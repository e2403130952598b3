#!/usr/bin/env python3
"""PyTorch CPU times of the three conv passes, per production shape and batch (float32).

For each production convolution of the seed's models (MODEL_3's four VGG convs, MODEL_4's
second convs: 3x3, pad 1, stride 1, bias) and each batch size, the median wall time of
  fwd          F.conv2d(x, w, b)
  bwd_input    aten.convolution_backward(..., output_mask=[True, False, False])
  bwd_weight   aten.convolution_backward(..., output_mask=[False, True, True])
(the calls autograd makes; oneDNN on x86), after warm-up, with torch.set_num_threads(--threads).
Compare with `cargo run --release --example convalgo -- <batch>` (moodgrad's passes); both
need an otherwise idle machine, so run them alternately and report the spread.

Prints one JSON object per line: shape, batch, pass, median_ms, min_ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

SHAPES = [  # (name, cin, cout, h, w)
    ("b1_1to64", 1, 64, 128, 1292),
    ("b2_64to128", 64, 128, 64, 646),
    ("b3_128to256", 128, 256, 32, 323),
    ("b4_256to512", 256, 512, 16, 161),
    ("m4_64to64", 64, 64, 128, 1292),
    ("m4_128to128", 128, 128, 64, 646),
    ("m4_256to256", 256, 256, 32, 323),
    ("m4_512to512", 512, 512, 16, 161),
]


def timed(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ts), min(ts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[1])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--shape", default="", help="substring selecting shapes")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    for n in args.batch:
        for name, ci, co, h, w in SHAPES:
            if args.shape not in name:
                continue
            x = torch.randn(n, ci, h, w)
            wt = torch.randn(co, ci, 3, 3) / (9 * ci) ** 0.5
            b = torch.randn(co)
            dy = torch.randn(n, co, h, w)
            conv_bwd = torch.ops.aten.convolution_backward

            def bwd(mask):
                return conv_bwd(dy, x, wt, [co], [1, 1], [1, 1], [1, 1], False, [0, 0], 1, mask)

            with torch.no_grad():
                passes = {
                    "fwd": lambda: F.conv2d(x, wt, b, padding=1),
                    "bwd_input": lambda: bwd([True, False, False]),
                    "bwd_weight": lambda: bwd([False, True, True]),
                }
                for pname, fn in passes.items():
                    med, mn = timed(fn, args.warmup, args.repeats)
                    print(json.dumps(dict(shape=name, batch=n, threads=args.threads, **{"pass": pname},
                                          median_ms=round(med, 2), min_ms=round(mn, 2))), flush=True)


if __name__ == "__main__":
    main()
