#!/usr/bin/env python3
"""PyTorch CPU baselines for moodgrad's kernels and training step (float32).

Measures, after warm-up, the median of several runs, with
torch.set_num_threads(os.cpu_count()) (override with --threads):

  conv2d_3x3   Conv2d(k=3, pad=1, bias) forward, and forward+backward (input grad + weight
               grad + bias grad, from a fixed random upstream gradient), batch 1, for the
               four VGG shapes of a 1x128x1292 input:
                 1->64 @128x1292, 64->128 @64x646, 128->256 @32x323, 256->512 @16x161.
               Also MODEL_4's second convs: 64->64 @128x1292, 128->128 @64x646,
               256->256 @32x323, 512->512 @16x161.
               FLOP count: 2*N*Cout*H*W*Cin*9 per forward, x3 for forward+backward;
               gflops = that / time.
  vgg_unit     Conv2d -> BatchNorm2d -> ReLU (-> MaxPool2d(2,2)) forward+backward, train
               mode, batch 1, MODEL_3's four blocks (the last without the pool).
  se_block     SEAttention(512, r=16) forward+backward at 1x512x16x161 (input grad + the
               two excitation weight grads); and SE followed by the global average pool.
  train_step   one full training step of Seed(model3|model4, "se"), default channels
               (64,128,256,512), lyrics_dim 768, batch 2, audio 2x1x128x1292, model.train()
               with dropout 0.5: zero_grad, forward, MSELoss, backward,
               clip_grad_norm_(1.0), Adam(lr 1e-3) step.

Runs during which other processes used CPU (a concurrent cargo build on a small box can
double the step times) are discarded and repeated, up to 4x the requested count; each entry
records its clean/all run times and the other processes' CPU seconds, and `all_clean`
says whether every median is over uncontended runs only.

Prints JSON to stdout; --out F.json also writes it to a file. Takes about 1.5 minutes on
2 idle cores of a recent x86 server (--repeats/--step-repeats change the run counts).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from seed_model import Seed, SEAttention  # noqa: E402

CONV_SHAPES = [  # (name, cin, cout, h, w)
    ("block1", 1, 64, 128, 1292),
    ("block2", 64, 128, 64, 646),
    ("block3", 128, 256, 32, 323),
    ("block4", 256, 512, 16, 161),
    ("m4_64to64", 64, 64, 128, 1292),
    ("m4_128to128", 128, 128, 64, 646),
    ("m4_256to256", 256, 256, 32, 323),
    ("m4_512to512", 512, 512, 16, 161),
]


def _cpu_busy_s():
    """(system-wide busy CPU seconds, this process's CPU seconds), Linux only."""
    try:
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:]]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
        busy = (sum(vals[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    t = os.times()
    return busy, t.user + t.system


def timeit(fn, warmup, runs, max_runs=None):
    """Median wall time (ms) of `runs` clean runs after `warmup` untimed ones.

    A run is clean when other processes used < 5% of a core (plus one 10 ms clock tick)
    during it: a concurrent cargo build on a 2-core box otherwise inflates timings badly.
    Up to max_runs (default 4*runs) runs are made to collect `runs` clean ones; if that
    fails the median of all runs is used and info["clean"] is False.
    Returns (median_ms, info).
    """
    max_runs = max_runs or 4 * runs
    for _ in range(warmup):
        fn()
    all_ts, clean_ts, other = [], [], 0.0
    while len(clean_ts) < runs and len(all_ts) < max_runs:
        c0 = _cpu_busy_s()
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        c1 = _cpu_busy_s()
        all_ts.append(dt * 1e3)
        if c0 is None or c1 is None:
            clean_ts.append(dt * 1e3)
            continue
        o = max(0.0, (c1[0] - c0[0]) - (c1[1] - c0[1]))
        other += o
        if o <= 0.05 * dt + 0.011:
            clean_ts.append(dt * 1e3)
    clean = len(clean_ts) >= runs
    ts = clean_ts if clean else all_ts
    info = dict(clean=clean, runs_ms=[round(t, 3) for t in ts],
                all_runs_ms=[round(t, 3) for t in all_ts], other_cpu_s=round(other, 3))
    return statistics.median(ts), info


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bench_conv(runs, warmup):
    out = []
    for name, cin, cout, h, w in CONV_SHAPES:
        torch.manual_seed(0)
        conv = nn.Conv2d(cin, cout, 3, padding=1)
        x = torch.randn(1, cin, h, w, requires_grad=True)
        gy = torch.randn(1, cout, h, w)

        def fwd():
            with torch.no_grad():
                conv(x)

        def fwd_bwd():
            x.grad = None
            conv.weight.grad = None
            conv.bias.grad = None
            y = conv(x)
            y.backward(gy)

        fwd_ms, fwd_info = timeit(fwd, warmup, runs)
        fb_ms, fb_info = timeit(fwd_bwd, warmup, runs)
        flop_fwd = 2 * 1 * cout * h * w * cin * 9
        out.append(dict(
            name=name, batch=1, cin=cin, cout=cout, h=h, w=w,
            gflop_fwd=flop_fwd / 1e9, gflop_fwd_bwd=3 * flop_fwd / 1e9,
            fwd_ms=fwd_ms, fwd_gflops=flop_fwd / (fwd_ms * 1e6),
            fwd_bwd_ms=fb_ms, fwd_bwd_gflops=3 * flop_fwd / (fb_ms * 1e6),
            fwd_timing=fwd_info, fwd_bwd_timing=fb_info,
        ))
        print(f"conv {name} {cin}->{cout} @{h}x{w}: fwd {fwd_ms:.2f} ms, fwd+bwd {fb_ms:.2f} ms "
              f"({3 * flop_fwd / (fb_ms * 1e6):.1f} GFLOP/s)", file=sys.stderr)
    return out


def bench_unit(runs, warmup):
    """Conv2d(3x3, pad 1) -> BatchNorm2d -> ReLU (-> MaxPool2d(2, 2)), train mode, batch 1,
    forward + backward (input grad and every parameter grad), MODEL_3's four blocks (the
    last without the pool): the chain moodgrad's fused `vgg_unit` op replaces."""
    out = []
    for k, (name, cin, cout, h, w) in enumerate(CONV_SHAPES[:4]):
        torch.manual_seed(0)
        pool = k < 3
        layers = [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]
        unit = nn.Sequential(*(layers + ([nn.MaxPool2d(2, 2)] if pool else [])))
        unit.train()
        x = torch.randn(1, cin, h, w, requires_grad=True)
        gy = torch.randn_like(unit(x).detach())

        def fwd_bwd():
            x.grad = None
            for p in unit.parameters():
                p.grad = None
            unit(x).backward(gy)

        ms, info = timeit(fwd_bwd, warmup, runs)
        out.append(dict(name=name, cin=cin, cout=cout, h=h, w=w, pool=pool, fwd_bwd_ms=ms, timing=info))
        print(f"unit {name} conv+bn+relu{'+pool' if pool else ''} fwd+bwd: {ms:.2f} ms", file=sys.stderr)
    return out


def bench_se(runs, warmup):
    torch.manual_seed(0)
    se = SEAttention(512, 16)
    x = torch.randn(1, 512, 16, 161, requires_grad=True)
    gy = torch.randn(1, 512, 16, 161)

    def fwd_bwd():
        x.grad = None
        for p in se.parameters():
            p.grad = None
        se(x).backward(gy)

    ms, info = timeit(fwd_bwd, warmup, runs)
    gp = torch.randn(1, 512)

    def pooled_fwd_bwd():
        # As in the SE models: SE, then AdaptiveAvgPool2d(1).
        x.grad = None
        for p in se.parameters():
            p.grad = None
        se(x).mean(dim=(2, 3)).backward(gp)

    pms, pinfo = timeit(pooled_fwd_bwd, warmup, runs)
    print(f"SE block 1x512x16x161 fwd+bwd: {ms:.3f} ms; SE + global pool: {pms:.3f} ms", file=sys.stderr)
    return dict(shape=[1, 512, 16, 161], r=16, fwd_bwd_ms=ms, timing=info, pooled_fwd_bwd_ms=pms,
                pooled_timing=pinfo)


def bench_step(model_kind, runs, warmup, batch=2, h=128, w=1292, lyrics_dim=768):
    torch.manual_seed(0)
    model = Seed(model_kind, "se", (64, 128, 256, 512), lyrics_dim, dropout=0.5)
    model.train()
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    loss_fn = nn.MSELoss()
    audio = torch.randn(batch, 1, h, w)
    lyrics = torch.randn(batch, lyrics_dim)
    target = torch.rand(batch, 2)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(audio, lyrics), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    ms, info = timeit(step, warmup, runs)
    n_params = sum(p.numel() for p in params)
    print(f"train step {model_kind}+se batch {batch}: {ms:.1f} ms", file=sys.stderr)
    return dict(model=model_kind, attention="se", batch=batch, input=[batch, 1, h, w],
                lyrics_dim=lyrics_dim, dropout=0.5, params=n_params, ms=ms, timing=info)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="also write the JSON here")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=7, help="timed runs per kernel (SE block: at least 20)")
    ap.add_argument("--step-repeats", type=int, default=5, help="timed runs per training step")
    ap.add_argument("--warmup", type=int, default=2, help="untimed runs before timing")
    ap.add_argument("--skip-steps", action="store_true", help="only the kernel benchmarks")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    t0 = time.time()
    res = dict(
        torch=torch.__version__, threads=torch.get_num_threads(), cpu_count=os.cpu_count(),
        cpu=cpu_name(), dtype="float32", statistic="median", repeats=args.repeats,
        step_repeats=args.step_repeats, warmup=args.warmup,
        flop_convention="conv fwd = 2*N*Cout*H*W*Cin*9; fwd+bwd = 3x fwd",
    )
    res["conv2d_3x3"] = bench_conv(args.repeats, args.warmup)
    res["vgg_unit"] = bench_unit(args.repeats, args.warmup)
    res["se_block"] = bench_se(max(args.repeats, 20), args.warmup)
    if not args.skip_steps:
        step_runs = args.step_repeats
        res["train_step"] = {
            "model3_se": bench_step("model3", step_runs, args.warmup),
            "model4_se": bench_step("model4", step_runs, args.warmup),
        }
    res["total_bench_s"] = time.time() - t0
    infos = [c["fwd_timing"] for c in res["conv2d_3x3"]] + [c["fwd_bwd_timing"] for c in res["conv2d_3x3"]]
    infos += [u["timing"] for u in res["vgg_unit"]]
    infos += [res["se_block"]["timing"], res["se_block"]["pooled_timing"]]
    infos += [v["timing"] for v in res.get("train_step", {}).values()]
    res["all_clean"] = all(i["clean"] for i in infos)
    res["other_processes_cpu_s_while_timing"] = round(sum(i["other_cpu_s"] for i in infos), 3)
    if not res["all_clean"]:
        print("warning: some benchmarks could not collect enough uncontended runs "
              "(timing.clean false); rerun on an idle machine", file=sys.stderr)
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
