#!/usr/bin/env python3
"""PyTorch (cuDNN, eager) timings of benches/device.rs's workloads on the same GPU, for the ratios
in docs/perf.md. Medians of CUDA-event-timed runs after warm-up; prints JSON.

  copy        torch.clone of a 32x512x16x161 f32 tensor (GB/s counts read + write)
  se          SEAttention(512, 16) forward + backward at 32x512x16x161 (input and weight grads)
  conv2d      Conv2d(3x3, pad 1, no bias) forward + input grad + weight grad, batch 16, the four
              VGG shapes of a 128x1292 spectrogram (TFLOP/s = 3 * 2*N*K*OH*OW*C*9 / time)
  adam_clip   clip_grad_norm_(1.0) + Adam.step over 10 M parameters in 20 tensors
Usage: python tools/bench_torch_gpu.py [--out F.json]
"""

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from seed_model import SEAttention  # noqa: E402

VGG = [("block1_1to64_128x1292", 1, 64, 128, 1292), ("block2_64to128_64x646", 64, 128, 64, 646),
       ("block3_128to256_32x323", 128, 256, 32, 323), ("block4_256to512_16x161", 256, 512, 16, 161)]


def time_ms(fn, warmup=3, runs=20):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(runs):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    args = ap.parse_args()
    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    res = {"torch": torch.__version__, "device": torch.cuda.get_device_name(), "cudnn": torch.backends.cudnn.version()}
    n, c, h, w = 32, 512, 16, 161
    x = torch.randn(n, c, h, w, device=dev)
    nbytes = x.numel() * 4
    ms = time_ms(lambda: x.clone())
    res["copy"] = {"ms": ms, "GBps": 2 * nbytes / ms / 1e6}
    se = SEAttention(c, 16).to(dev)
    xg = x.clone().requires_grad_(True)
    dy = torch.randn_like(x)

    def se_step():
        y = se(xg)
        y.backward(dy)

    ms = time_ms(se_step)
    res["se_fwd_bwd"] = {"ms": ms, "GBps_at_7_passes": 7 * nbytes / ms / 1e6}
    res["conv2d"] = []
    # cuDNN uses TF32 tensor cores for FP32 convolutions by default; moodgrad's kernels are plain
    # FP32, so both are recorded: tf32 False is the like-for-like comparison.
    for tf32 in (False, True):
        torch.backends.cudnn.allow_tf32 = tf32
        for name, ci, co, hh, ww in VGG:
            conv = torch.nn.Conv2d(ci, co, 3, padding=1, bias=False).to(dev)
            xi = torch.randn(16, ci, hh, ww, device=dev, requires_grad=True)
            g = torch.randn(16, co, hh, ww, device=dev)

            def step():
                conv(xi).backward(g)

            ms = time_ms(step)
            flops = 3 * 2 * 16 * co * hh * ww * ci * 9
            res["conv2d"].append({"name": name, "tf32": tf32, "ms": ms, "TFLOPs": flops / ms / 1e9})
    params = [torch.nn.Parameter(torch.randn(500_000, device=dev)) for _ in range(20)]
    for p in params:
        p.grad = torch.randn_like(p)
    opt = torch.optim.Adam(params, lr=1e-3)

    def adam():
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    res["adam_clip_10M"] = {"ms": time_ms(adam)}
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
