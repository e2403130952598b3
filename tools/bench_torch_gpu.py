#!/usr/bin/env python3
"""PyTorch (cuDNN, eager) timings of `moodgrad bench kernels`'s workloads on the same device, in
the same JSON shape, so tools/bench_compare.py can join the two. Medians after warm-up (CUDA
events on a GPU, perf_counter on the CPU). Runs on the CPU too (`--device cpu`, torch without
CUDA is enough), for checking the join.

  copy_gbps   the yardstick: dst.copy_(src) of a 256 MB f32 buffer (GB/s counts read + write)
  copy        x.clone() of the SE block's map [B, 512, H/8, W/8]           bytes 2·|x|
  se          SEAttention(512, 16) forward + backward at that map          bytes 7·|x|
  se_pool     the same, then the global average pool (as the SE models)    bytes 2·|x|
  bn          BatchNorm2d(64) train forward + backward at block 1's map     bytes 5·|x|
  conv        Conv2d(3x3, pad 1, no bias) forward + input grad + weight grad, the four VGG
              blocks' maps (FLOPs = 3 * 2*N*C_out*OH*OW*C_in*9); on a GPU also with TF32
              (precision "tf32"; moodgrad's kernels are plain FP32, so fp32 is like-for-like);
              block 1 also forward alone and weight grad alone (<name>_fwd, <name>_wgrad)
  unit        Conv2d -> BatchNorm2d -> ReLU (-> MaxPool2d(2)) train forward + backward, input
              grad included, each block (FLOPs: the conv's only)
  step        the SE seed network's training step (MSE, clip 1.0, Adam): samples/s, peak bytes
              (CUDA allocator peak; on the CPU the process peak RSS)
  adam        clip_grad_norm_(1.0) + Adam.step over 10 M parameters in 20 tensors
Bytes count each large tensor once per pass that must read or write it (see
src/cli/bench_kernels/workloads.rs). Record shape:
  {"device", "copy_gbps", "workloads": [{"op", "name", "shape", "precision", "ms",
   "gbps" + "fraction_of_copy" | "tflops" + "fraction_of_peak" | "samples_per_s" + "peak_bytes"}]}
Usage: python tools/bench_torch_gpu.py [--device cuda|cpu] [--op all|se|conv|bn|unit|step|copy|adam]
       [--shape 128x1292] [--batch N] [--config model3|model4] [--runs R] [--peak-tflops F] [--out F.json]
"""

import argparse
import json
import os
import platform
import resource
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from seed_model import Seed, SEAttention  # noqa: E402

OPS = ["se", "conv", "bn", "unit", "step", "copy", "adam", "all"]


class Timer:
    def __init__(self, dev, warmup, runs):
        self.dev, self.warmup, self.runs = dev, warmup, runs

    def sync(self):
        if self.dev.type == "cuda":
            torch.cuda.synchronize()

    def ms(self, fn):
        for _ in range(self.warmup):
            fn()
        self.sync()
        ts = []
        for _ in range(self.runs):
            if self.dev.type == "cuda":
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                fn()
                b.record()
                torch.cuda.synchronize()
                ts.append(a.elapsed_time(b))
            else:
                t = time.perf_counter()
                fn()
                ts.append((time.perf_counter() - t) * 1e3)
        ts.sort()
        return ts[len(ts) // 2]


def shape_str(s):
    return "x".join(str(d) for d in s)


def vgg(h, w):
    return [(f"block{k + 1}_{ci}to{co}_{h >> k}x{w >> k}", ci, co, h >> k, w >> k)
            for k, (ci, co) in enumerate([(1, 64), (64, 128), (128, 256), (256, 512)])]


def mem_record(op, shape, ms, nbytes, copy_gbps):
    gbps = nbytes / ms / 1e6
    return {"op": op, "name": op, "shape": shape_str(shape), "precision": "fp32", "ms": ms,
            "bytes": float(nbytes), "gbps": gbps, "fraction_of_copy": gbps / copy_gbps}


def flop_record(op, name, shape, co, precision, ms, flops, peak):
    tflops = flops / ms / 1e9
    return {"op": op, "name": name, "shape": f"{shape_str(shape)}->{co}", "precision": precision, "ms": ms,
            "flops": float(flops), "tflops": tflops, "fraction_of_peak": tflops / peak if peak else None}


def bench_copy_gbps(t, dev):
    src = torch.ones(64 << 20, device=dev)
    dst = torch.zeros_like(src)
    return 2 * src.numel() * 4 / t.ms(lambda: dst.copy_(src)) / 1e6, src.numel() * 4


def bench_copy(t, dev, se_shape, copy_gbps):
    x = torch.randn(*se_shape, device=dev)
    return [mem_record("copy", se_shape, t.ms(lambda: x.clone()), 2 * x.numel() * 4, copy_gbps)]


def bench_se(t, dev, se_shape, copy_gbps):
    torch.manual_seed(0)
    se = SEAttention(se_shape[1], 16).to(dev)
    x = torch.randn(*se_shape, device=dev, requires_grad=True)
    dy = torch.randn_like(x)
    dp = torch.randn(se_shape[0], se_shape[1], device=dev)

    def grads_off():
        x.grad = None
        for p in se.parameters():
            p.grad = None

    def fwd_bwd():
        grads_off()
        se(x).backward(dy)

    def pooled():
        grads_off()
        se(x).mean(dim=(2, 3)).backward(dp)

    n = x.numel() * 4
    return [mem_record("se", se_shape, t.ms(fwd_bwd), 7 * n, copy_gbps),
            mem_record("se_pool", se_shape, t.ms(pooled), 2 * n, copy_gbps)]


def bench_bn(t, dev, batch, h, w, copy_gbps):
    bn = nn.BatchNorm2d(64).to(dev).train()
    x = torch.randn(batch, 64, h, w, device=dev, requires_grad=True)
    dy = torch.randn_like(x)

    def fwd_bwd():
        x.grad = None
        for p in bn.parameters():
            p.grad = None
        bn(x).backward(dy)

    return [mem_record("bn", list(x.shape), t.ms(fwd_bwd), 5 * x.numel() * 4, copy_gbps)]


def bench_conv(t, dev, batch, h, w, peak):
    out = []
    precisions = ["fp32", "tf32"] if dev.type == "cuda" else ["fp32"]
    for precision in precisions:
        torch.backends.cudnn.allow_tf32 = precision == "tf32"
        for name, ci, co, hh, ww in vgg(h, w):
            conv = nn.Conv2d(ci, co, 3, padding=1, bias=False).to(dev)
            xi = torch.randn(batch, ci, hh, ww, device=dev, requires_grad=True)
            g = torch.randn(batch, co, hh, ww, device=dev)

            def step():
                xi.grad = None
                conv.weight.grad = None
                conv(xi).backward(g)

            flops = 3 * 2 * batch * co * hh * ww * ci * 9
            out.append(flop_record("conv", name, [batch, ci, hh, ww], co, precision, t.ms(step), flops, peak))
            if ci == 1:
                # The spectrogram layer needs no input grad: its forward and weight grad alone,
                # as moodgrad reports them (<name>_fwd, <name>_wgrad; FLOPs of one pass each).
                x0, w0 = xi.detach(), conv.weight.detach()
                with torch.no_grad():
                    fwd = t.ms(lambda: torch.nn.functional.conv2d(x0, w0, padding=1))
                    wgrad = t.ms(lambda: torch.ops.aten.convolution_backward(
                        g, x0, w0, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [False, True, False]))
                for suffix, ms in (("fwd", fwd), ("wgrad", wgrad)):
                    out.append(flop_record("conv", f"{name}_{suffix}", [batch, ci, hh, ww], co, precision, ms,
                                           flops / 3, peak))
    torch.backends.cudnn.allow_tf32 = False
    return out


def bench_unit(t, dev, batch, h, w, peak):
    out = []
    for k, (name, ci, co, hh, ww) in enumerate(vgg(h, w)):
        torch.manual_seed(0)
        layers = [nn.Conv2d(ci, co, 3, padding=1), nn.BatchNorm2d(co), nn.ReLU()]
        unit = nn.Sequential(*(layers + ([nn.MaxPool2d(2, 2)] if k < 3 else []))).to(dev).train()
        x = torch.randn(batch, ci, hh, ww, device=dev, requires_grad=True)
        gy = torch.randn_like(unit(x).detach())

        def fwd_bwd():
            x.grad = None
            for p in unit.parameters():
                p.grad = None
            unit(x).backward(gy)

        flops = 3 * 2 * batch * co * hh * ww * ci * 9
        out.append(flop_record("unit", name, [batch, ci, hh, ww], co, "fp32", t.ms(fwd_bwd), flops, peak))
    return out


def bench_step(t, dev, batch, h, w, config):
    torch.manual_seed(0)
    model = Seed(config, "se", (64, 128, 256, 512), 768, dropout=0.5).to(dev).train()
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    audio = torch.randn(batch, 1, h, w, device=dev)
    lyrics = torch.randn(batch, 768, device=dev)
    target = torch.rand(batch, 2, device=dev)

    def step():
        opt.zero_grad(set_to_none=True)
        nn.functional.mse_loss(model(audio, lyrics), target).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    ms = t.ms(step)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak = torch.cuda.max_memory_allocated() if dev.type == "cuda" else None
    return [{"op": "step", "name": f"{config}_se", "shape": shape_str([batch, 1, h, w]), "precision": "fp32",
             "ms": ms, "samples_per_s": batch / ms * 1e3, "peak_bytes": peak, "peak_rss_bytes": rss}]


def bench_adam(t, dev):
    params = [nn.Parameter(torch.randn(500_000, device=dev)) for _ in range(20)]
    for p in params:
        p.grad = torch.randn_like(p)
    opt = torch.optim.Adam(params, lr=1e-3)

    def adam():
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    return [{"op": "adam", "name": "adam_clip_10M", "shape": "20x500000", "precision": "fp32", "ms": t.ms(adam)}]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--op", default="all", help=", ".join(OPS))
    ap.add_argument("--shape", default="128x1292", help="the spectrogram's HxW")
    ap.add_argument("--batch", type=int, help="default 16 on cuda, 1 on cpu")
    ap.add_argument("--config", choices=["model3", "model4"], default="model3")
    ap.add_argument("--runs", type=int, help="default 20 on cuda, 5 on cpu")
    ap.add_argument("--peak-tflops", type=float, help="the device's FP32 peak, for fraction_of_peak")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    if args.op not in OPS:
        ap.error(f"unknown --op {args.op!r}: use {', '.join(OPS)}")
    try:
        h, w = (int(v) for v in args.shape.lower().split("x"))
    except ValueError:
        ap.error(f"--shape {args.shape!r}: expected HxW like 128x1292")
    if h < 8 or w < 8:
        ap.error(f"--shape {args.shape!r}: H and W must be at least 8")
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    if cuda and not torch.cuda.is_available():
        ap.error("--device cuda: this torch sees no GPU; use --device cpu")
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    batch = args.batch or (16 if cuda else 1)
    t = Timer(dev, 3 if cuda else 1, args.runs or (20 if cuda else 5))
    copy_gbps, copy_bytes = bench_copy_gbps(t, dev)
    se_shape = [batch, 512, h >> 3, w >> 3]
    ops = ["copy", "se", "bn", "conv", "unit", "step", "adam"] if args.op == "all" else [args.op]
    workloads = []
    for op in ops:
        workloads += {
            "copy": lambda: bench_copy(t, dev, se_shape, copy_gbps),
            "se": lambda: bench_se(t, dev, se_shape, copy_gbps),
            "bn": lambda: bench_bn(t, dev, batch, h, w, copy_gbps),
            "conv": lambda: bench_conv(t, dev, batch, h, w, args.peak_tflops),
            "unit": lambda: bench_unit(t, dev, batch, h, w, args.peak_tflops),
            "step": lambda: bench_step(t, dev, batch, h, w, args.config),
            "adam": lambda: bench_adam(t, dev),
        }[op]()
    res = {"tool": f"torch {torch.__version__}",
           "device": torch.cuda.get_device_name() if cuda else f"cpu ({platform.processor() or platform.machine()}, "
                                                               f"{torch.get_num_threads()} threads)",
           "cudnn": torch.backends.cudnn.version() if cuda else None, "precision": "fp32", "batch": batch,
           "input": f"{h}x{w}", "runs": t.runs, "copy_bytes": copy_bytes, "copy_gbps": copy_gbps,
           "workloads": workloads}
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
