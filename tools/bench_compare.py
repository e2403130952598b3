#!/usr/bin/env python3
"""Joins two benchmark JSONs of the same shape (`moodgrad bench kernels --json` and
tools/bench_torch_gpu.py) on (op, name, shape, precision) and prints a markdown table of both with
the ratio of their times. Rows only one side has are shown with a dash.

Usage: python tools/bench_compare.py moodgrad.json torch.json
"""

import json
import sys


def throughput(r):
    if r is None:
        return "—"
    if "gbps" in r:
        return f"{r['gbps']:.3g} GB/s ({r['fraction_of_copy']:.2f} copy)"
    if "tflops" in r:
        frac = r.get("fraction_of_peak")
        return f"{r['tflops']:.3g} TFLOP/s" + (f" ({frac:.2f} peak)" if frac is not None else "")
    if "samples_per_s" in r:
        peak, rss = r.get("peak_bytes"), r.get("peak_rss_bytes")
        mem = f", peak {peak / 2**20:.0f} MiB" if peak else ""
        return f"{r['samples_per_s']:.3g} samples/s{mem}" + (f", RSS {rss / 2**20:.0f} MiB" if rss else "")
    return ""


def key(r):
    return (r["op"], r.get("name", r["op"]), r["shape"], r.get("precision", "fp32"))


def main(argv):
    if len(argv) != 2:
        sys.exit("usage: bench_compare.py A.json B.json")
    runs = []
    for path in argv:
        try:
            with open(path) as f:
                runs.append(json.load(f))
        except (OSError, ValueError) as e:
            sys.exit(f"{path}: cannot read a benchmark JSON: {e}")
        if "workloads" not in runs[-1]:
            sys.exit(f"{path}: no `workloads` list (not bench kernels / bench_torch_gpu.py output?)")
    a, b = runs
    ta, tb = (r.get("tool", p) for r, p in zip(runs, argv))
    print(f"A = {ta} on {a.get('device')}: copy {a['copy_gbps']:.1f} GB/s, batch {a.get('batch')}, input {a.get('input')}")
    print(f"B = {tb} on {b.get('device')}: copy {b['copy_gbps']:.1f} GB/s, batch {b.get('batch')}, input {b.get('input')}")
    print()
    print("| op | name | shape | precision | A ms | B ms | A ÷ B time | A | B |")
    print("|---|---|---|---|---:|---:|---:|---|---|")
    rb = {key(r): r for r in b["workloads"]}
    keys = [key(r) for r in a["workloads"]] + [k for k in rb if k not in {key(r) for r in a["workloads"]}]
    ra = {key(r): r for r in a["workloads"]}
    for k in keys:
        x, y = ra.get(k), rb.get(k)
        ms = lambda r: f"{r['ms']:.3f}" if r else "—"  # noqa: E731
        ratio = f"{x['ms'] / y['ms']:.2f}" if x and y and y["ms"] > 0 else "—"
        print(f"| {' | '.join(k)} | {ms(x)} | {ms(y)} | {ratio} | {throughput(x)} | {throughput(y)} |")


if __name__ == "__main__":
    main(sys.argv[1:])
