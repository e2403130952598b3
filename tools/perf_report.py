#!/usr/bin/env python3
"""Put moodgrad's criterion results beside PyTorch's CPU timings as a markdown table.

Reads target/criterion/<group>/<bench>/new/estimates.json (median) and the JSON written by
tools/bench_torch_cpu.py. Use tools/perf_cpu.sh to produce both in one run on one machine.
Usage: perf_report.py TORCH_JSON [CRITERION_DIR]
"""

import json
import os
import sys

CONV = [  # (criterion bench name, torch entry name)
    ("block1_1to64_128x1292", "block1"),
    ("block2_64to128_64x646", "block2"),
    ("block3_128to256_32x323", "block3"),
    ("block4_256to512_16x161", "block4"),
    ("m4_64to64_128x1292", "m4_64to64"),
    ("m4_128to128_64x646", "m4_128to128"),
    ("m4_256to256_32x323", "m4_256to256"),
    ("m4_512to512_16x161", "m4_512to512"),
]


def median_ms(crit, group, bench):
    p = os.path.join(crit, group, bench, "new", "estimates.json")
    with open(p) as f:
        return json.load(f)["median"]["point_estimate"] / 1e6


def main():
    torch_json = sys.argv[1]
    crit = sys.argv[2] if len(sys.argv) > 2 else "target/criterion"
    with open(torch_json) as f:
        t = json.load(f)
    conv = {c["name"]: c for c in t["conv2d_3x3"]}
    rows = []
    for bench, name in CONV:
        ours = median_ms(crit, "conv2d_fwd_bwd", bench)
        c = conv[name]
        gf = c["gflop_fwd_bwd"]
        label = f"conv3x3 {c['cin']}→{c['cout']} @ {c['h']}×{c['w']} fwd+bwd"
        rows.append((label, ours, c["fwd_bwd_ms"], f"{gf / ours * 1e3:.0f} vs {gf / c['fwd_bwd_ms'] * 1e3:.0f} GFLOP/s"))
    for bench, u in zip([b for b, _ in CONV[:4]], t["vgg_unit"]):
        pool = "+pool" if u["pool"] else ""
        label = f"VGG unit conv+BN+ReLU{pool} {u['cin']}→{u['cout']} @ {u['h']}×{u['w']} fwd+bwd"
        fused = median_ms(crit, "vgg_unit", f"fused_{bench}")
        unfused = median_ms(crit, "vgg_unit", f"unfused_{bench}")
        rows.append((label, fused, u["fwd_bwd_ms"], f"unfused ops {unfused:.1f} ms ({unfused / fused:.2f}× the fused)"))
    rows.append(("SE block fwd+bwd 1×512×16×161", median_ms(crit, "se_block", "fwd_bwd_1x512x16x161"),
                 t["se_block"]["fwd_bwd_ms"], ""))
    rows.append(("SE + global average pool fwd+bwd (as in the model)",
                 median_ms(crit, "se_block", "fwd_bwd_pooled_1x512x16x161"), t["se_block"]["pooled_fwd_bwd_ms"],
                 "folded: GAP(x·g) = g·mean(x)"))
    for model in ["model3", "model4"]:
        rows.append((f"{model.upper().replace('MODEL', 'MODEL_')} + SE training step, batch 2, 128×1292",
                     median_ms(crit, "train_step", f"{model}_batch2_128x1292"), t["train_step"][f"{model}_se"]["ms"],
                     ""))
    print(f"PyTorch {t['torch']} on {t['cpu']}, {t['threads']} threads; medians.\n")
    print("| workload | moodgrad ms | PyTorch ms | PyTorch / moodgrad | note |")
    print("|---|---:|---:|---:|---|")
    for label, ours, theirs, note in rows:
        print(f"| {label} | {ours:.1f} | {theirs:.1f} | {theirs / ours:.2f}× | {note} |")


if __name__ == "__main__":
    main()
