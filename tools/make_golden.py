#!/usr/bin/env python3
"""Write the committed golden fixtures tests/fixtures/golden_<model>_<attention>.safetensors.

Configs: model3+se, model4+se, model3+legacy. Scaled-down widths so each file stays
under 2 MB: channels (8,16,32,64) (SE hidden = 64//16 = 4), lyrics_dim 24, batch
3 x 1 x 40 x 72, dropout p = 0 (model.train(), so BN uses batch statistics),
Adam lr 1e-3 (betas .9/.999, eps 1e-8, no weight decay), clip_grad_norm_ 1.0, 2 steps.
Training semantics: tools/seed_model.py (train_steps), identical to tools/torch_step.py.

RNG draw for seed S: torch.manual_seed(S); model = Seed(...) (default PyTorch init);
audio = randn(3,1,40,72); lyrics = randn(3,24); target = rand(3,2). All f32.

Keys (all f32 unless noted):
    input.audio [3,1,40,72], input.lyrics [3,24], input.target [3,2]
    init.<name>          every state_dict entry before step 1 (num_batches_tracked: int64)
    output [3,2]         prediction at step 1
    act.audio [3,64]     audio-tower output at step 1
    loss [2]             each step's loss, before its update
    grad_norm [2]        each step's pre-clip total grad 2-norm
    grad.<name>          every parameter's gradient at step 1 (pre-clip)
    after.<name>         every state_dict entry after the 2 steps (num_batches_tracked: int64)
    after_step1.<name>   (extra) value after step 1 of each BN-fed conv bias, see below
    f64.loss [2], f64.grad_norm [2]   (F64) the same run in float64 from the same f32 init/inputs
    f64.grad.<name>      (F64) step-1 gradients of that run: all of them when they fit in the
                         2 MB budget, otherwise the smallest tensors first (metadata f64_grad
                         says "all" or lists the names left out)
  __metadata__: model, attention, channels ("8,16,32,64"), lyrics_dim, lr, clip, steps,
  seed, torch, input ("3x1x40x72"), dropout, bn_fed_conv_biases, f64_grad, conditioning.

BN-fed conv biases (tensors a test must treat specially): every conv in the audio
tower feeds a BatchNorm2d, so every conv bias has a true gradient of exactly 0:
    model3: audio_tower.features.{0,4,8,12}.bias
    model4: audio_tower.features.{0,3,7,10,14,17,21,24}.bias
Their f32 gradient is rounding noise (compare grad.* of them with an absolute tolerance
tied to the global gradient norm, not relative), and Adam's first step moves each element
by ~lr*sign(noise) (up to lr*|g|/(|g|+1e-8)), so after.<bias> is implementation noise
within +-steps*lr of init. Consequence: the following BN's running_mean depends on the
bias after step 1 (step 2's batch mean includes it): after.running_mean =
X + 0.1*after_step1.bias, where X does not depend on the bias noise. Compare
after.<bn>.running_mean - 0.1*after_step1.<conv>.bias against your own
running_mean - 0.1*(your bias after step 1), or use an absolute tolerance 0.1*2*lr.
Everything else (losses, other grads, other after-weights, running_var) is independent
of these biases up to rounding.

Conditioning check: a seed is accepted only if, f32 torch vs f64 torch (same f32 init
and inputs, cast to f64),
  * the f32 run is bit-for-bit deterministic (run twice),
  * loss and grad_norm relative error <= 2e-6,
  * output / act.audio error <= 1e-5 * max|ref| of the tensor,
  * each grad tensor: max abs err <= 1e-5 * max(max|g64| of that tensor, 0.01 * grad_norm64)
    (the floor is what lets the BN-fed conv biases -- true grad 0 -- pass),
  * each after-state parameter tensor: max abs err <= 1e-5 * max|a64| of the tensor over
    all elements except BN-fed conv biases (not checked) and Adam-ambiguous elements (below),
  * BN running_var: <= 1e-5 * max; running_mean likewise after removing 0.1*after_step1.bias
    (see above); num_batches_tracked equal,
  * no near ties that an f32 implementation could resolve differently (f64 forward, both
    steps): every ReLU input |x| >= 1e-6 * rms(x) of that tensor, and in every 2x2 max-pool
    window whose max is > 0, max - second >= 1e-6 * rms(x),
otherwise the next seed is tried. The chosen seed and the measured errors per tensor category
are printed (and stored in the `conditioning` metadata as JSON).

Adam-ambiguous elements: 0 < |g1_i| < AMBIG_TAU * max|g1| of the tensor (g1 = the step-1
gradient; AMBIG_TAU = 1e-2, metadata ambiguous_tau). Adam's first step moves every element by
~lr*sign(g1_i), and the second step's update depends on g2_i/g1_i, so a gradient rounding
difference d (~1e-7..1e-6 * max|g1|) moves it by ~lr*d/|g1_i|: below 1e-2 * max|g1| that is
more than 1e-5 of a typical weight scale (and near the noise floor the sign itself can flip),
so for these elements a correct f32 implementation can land up to ~2*steps*lr away from
another correct one. A flipped element also perturbs step 2 slightly
for everything downstream. The unmasked per-tensor metric is printed as
"[unmasked, not checked]": measured over 100 seeds it never gets below 1e-5 for any config
(median ~8e-5 model3, ~3e-4 model4), so it cannot be used as an acceptance criterion. Exact
zero gradients (dead ReLU units) are not ambiguous. Metadata n_ambiguous gives the count.

Suggested tolerances for the Rust test (f32 vs these f32 fixtures): loss/grad_norm/output/
act.audio rel ~1e-5; grad.<name> abs <= ~1e-5 * max(max|grad.<name>|, 0.01*grad_norm[0])
(BN-fed conv biases then pass automatically); after.<name>: elements with
0 < |grad.<name>_i| < ambiguous_tau * max|grad.<name>| within 2*steps*lr, others within
max(1e-5, 3 * the worst checked after.* conditioning error) * max|after.<name>| (your rounding
differs from torch's, so your noise-decided elements, and their knock-on effect on step 2,
differ too: two correct f32 runs can be twice torch's own f32 error apart); BN-fed conv biases: within
steps*lr of init.<name>; running_mean as described above.

Usage: /path/to/venv/bin/python tools/make_golden.py [--out-dir tests/fixtures] [--seed 0]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from seed_model import Seed, set_dropout, train_steps, bn_fed_conv_biases, save_safetensors  # noqa: E402

CONFIGS = [("model3", "se"), ("model4", "se"), ("model3", "legacy")]
CHANNELS = (8, 16, 32, 64)
LYRICS_DIM = 24
INPUT = (3, 1, 40, 72)
LR = 1e-3
CLIP = 1.0
STEPS = 2
SIZE_LIMIT = 2_000_000  # bytes; files must be strictly below this
SIZE_BUDGET = 1_950_000  # what we fill up to

LOSS_RTOL = 2e-6
GRAD_RTOL = 1e-5
GRAD_FLOOR = 0.01  # x global grad norm
STATE_RTOL = 1e-5
ACT_RTOL = 1e-5
MARGIN = 1e-6
AMBIG_TAU = 1e-2  # Adam-ambiguous: 0 < |g1_i| < AMBIG_TAU * max|g1| of the tensor


def draw(model_kind, attention, seed):
    torch.manual_seed(seed)
    model = Seed(model_kind, attention, CHANNELS, LYRICS_DIM)
    set_dropout(model, 0.0)
    audio = torch.randn(*INPUT)
    lyrics = torch.randn(INPUT[0], LYRICS_DIM)
    target = torch.rand(INPUT[0], 2)
    return model, audio, lyrics, target


def categorize(model):
    """name (param/buffer) -> category string."""
    cats = {}
    bnfed = set(bn_fed_conv_biases(model))
    for mname, mod in model.named_modules():
        pre = mname + "." if mname else ""
        if isinstance(mod, nn.Conv2d):
            cats[pre + "weight"] = "conv.weight"
            cats[pre + "bias"] = "conv.bias(BN-fed)" if pre + "bias" in bnfed else "conv.bias"
        elif isinstance(mod, nn.BatchNorm2d):
            for b in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                cats[pre + b] = "bn." + b
        elif isinstance(mod, nn.Linear):
            kind = "linear"
            if ".excitation." in pre:
                kind = "se"
            elif ".attention.attention." in pre:
                kind = "attn"
            cats[pre + "weight"] = kind + ".weight"
            if mod.bias is not None:
                cats[pre + "bias"] = kind + ".bias"
    return cats


class TieProbe:
    """Records min relative margins of ReLU inputs and max-pool windows."""

    def __init__(self, model):
        self.relu = float("inf")
        self.pool = float("inf")
        self.where = {}
        self.handles = []
        for name, mod in model.named_modules():
            if isinstance(mod, nn.ReLU):
                self.handles.append(mod.register_forward_hook(self._relu_hook(name)))
            elif isinstance(mod, nn.MaxPool2d):
                self.handles.append(mod.register_forward_hook(self._pool_hook(name)))

    def _relu_hook(self, name):
        def hook(mod, inp, out):
            x = inp[0].detach()
            rms = x.pow(2).mean().sqrt().item()
            m = (x.abs().min().item() / rms) if rms > 0 else float("inf")
            if m < self.relu:
                self.relu, self.where["relu"] = m, name
        return hook

    def _pool_hook(self, name):
        def hook(mod, inp, out):
            x = inp[0].detach()
            b, c, h, w = x.shape
            x = x[:, :, : h // 2 * 2, : w // 2 * 2]
            win = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(-1, 4)
            top = win.topk(2, dim=1).values
            pos = top[:, 0] > 0
            rms = x.pow(2).mean().sqrt().item()
            if pos.any() and rms > 0:
                m = (top[pos, 0] - top[pos, 1]).min().item() / rms
                if m < self.pool:
                    self.pool, self.where["pool"] = m, name
        return hook

    def remove(self):
        for h in self.handles:
            h.remove()


def maxabs(t):
    return t.detach().abs().max().item() if t.numel() else 0.0


def check(model_kind, attention, seed):
    model, audio, lyrics, target = draw(model_kind, attention, seed)
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    cats = categorize(model)
    bnfed = bn_fed_conv_biases(model)

    m32 = copy.deepcopy(model)
    r32 = train_steps(m32, audio, lyrics, target, STEPS, LR, CLIP, keep_step1_state=True)
    # determinism: a second f32 run must be bit-identical
    m32b = copy.deepcopy(model)
    r32b = train_steps(m32b, audio, lyrics, target, STEPS, LR, CLIP)
    det = torch.equal(r32["loss"], r32b["loss"]) and torch.equal(r32["grad_norm"], r32b["grad_norm"]) and all(
        torch.equal(a, b) for a, b in zip(m32.state_dict().values(), m32b.state_dict().values()))

    m64 = copy.deepcopy(model).double()
    probe = TieProbe(m64)
    r64 = train_steps(m64, audio.double(), lyrics.double(), target.double(), STEPS, LR, CLIP,
                      keep_step1_state=True)
    probe.remove()

    errs = {}  # category -> max normalised error (error / allowed-scale)

    def note(cat, val):
        errs[cat] = max(errs.get(cat, 0.0), val)

    l32, l64 = r32["loss"].double(), r64["loss"]
    note("loss(rel)", ((l32 - l64).abs() / l64.abs()).max().item())
    n32, n64 = r32["grad_norm"].double(), r64["grad_norm"]
    note("grad_norm(rel)", ((n32 - n64).abs() / n64.abs()).max().item())
    note("output(rel)", maxabs(r32["output"].double() - r64["output"]) / maxabs(r64["output"]))
    note("act.audio(rel)", maxabs(r32["act_audio"].double() - r64["act_audio"]) / maxabs(r64["act_audio"]))
    gnorm = n64[0].item()
    for n, g64 in r64["grads"].items():
        g32 = r32["grads"][n].double()
        denom = max(maxabs(g64), GRAD_FLOOR * gnorm)
        note("grad." + cats[n], maxabs(g32 - g64) / denom)
    s32 = m32.state_dict()
    s64 = m64.state_dict()
    # map BN running_mean -> preceding conv bias
    rm_fix = {}
    for b in bnfed:
        parts = b.split(".")
        idx = int(parts[-2])
        bn = ".".join(parts[:-2] + [str(idx + 1)])
        rm_fix[bn + ".running_mean"] = b
    n_amb = 0
    for n, a64 in s64.items():
        a32 = s32[n]
        cat = cats[n]
        if cat == "bn.num_batches_tracked":
            if not torch.equal(a32, a64):
                note("after." + cat, float("inf"))
            continue
        if n in bnfed:
            note("after." + cat + "[abs/lr, not checked]", maxabs(a32.double() - a64) / LR)
            continue
        a32 = a32.double()
        if n in rm_fix:
            a32 = a32 - 0.1 * r32["state1"][rm_fix[n]].double()
            a64 = a64 - 0.1 * r64["state1"][rm_fix[n]]
        err = (a32 - a64).abs()
        scale = maxabs(a64)
        if n in r64["grads"]:
            # literal (unmasked) metric, reported only
            note("after." + cat + "[unmasked, not checked]", err.max().item() / scale)
            g = r64["grads"][n]
            amb = (g.abs() < AMBIG_TAU * maxabs(g)) & (g != 0)
            n_amb += int(amb.sum())
            err = err[~amb]
        note("after." + cat, (err.max().item() if err.numel() else 0.0) / scale)

    ok = det
    reasons = [] if det else ["f32 run not deterministic"]
    for cat, v in errs.items():
        if cat.endswith("not checked]"):
            continue
        if cat.endswith("(rel)"):
            tol = LOSS_RTOL if cat.startswith(("loss", "grad_norm")) else ACT_RTOL
        elif cat.startswith("grad."):
            tol = GRAD_RTOL
        else:
            tol = STATE_RTOL
        if not v <= tol:
            ok = False
            reasons.append(f"{cat} {v:.3g} > {tol:g}")
    if probe.relu < MARGIN:
        ok = False
        reasons.append(f"relu margin {probe.relu:.3g} at {probe.where.get('relu')}")
    if probe.pool < MARGIN:
        ok = False
        reasons.append(f"pool margin {probe.pool:.3g} at {probe.where.get('pool')}")
    info = dict(errs=errs, relu_margin=probe.relu, pool_margin=probe.pool, reasons=reasons,
                n_ambiguous=n_amb)
    return ok, info, dict(model=model, init=init, audio=audio, lyrics=lyrics, target=target,
                          r32=r32, r64=r64, s32=s32, bnfed=bnfed)


def build_file(model_kind, attention, seed, info, d):
    r32, r64 = d["r32"], d["r64"]
    out = {
        "input.audio": d["audio"], "input.lyrics": d["lyrics"], "input.target": d["target"],
        "output": r32["output"], "act.audio": r32["act_audio"],
        "loss": r32["loss"], "grad_norm": r32["grad_norm"],
        "f64.loss": r64["loss"], "f64.grad_norm": r64["grad_norm"],
    }
    for k, v in d["init"].items():
        out["init." + k] = v
    for k, v in r32["grads"].items():
        out["grad." + k] = v
    for k, v in d["s32"].items():
        out["after." + k] = v
    for b in d["bnfed"]:
        out["after_step1." + b] = r32["state1"][b]

    def est(tensors):
        return sum(t.numel() * t.element_size() + len(k) + 80 for k, t in tensors.items()) + 1000

    left_out = []
    for n, g in sorted(r64["grads"].items(), key=lambda kv: (kv[1].numel(), kv[0])):
        trial = dict(out)
        trial["f64.grad." + n] = g
        if est(trial) <= SIZE_BUDGET:
            out = trial
        else:
            left_out.append(n)
    out = {k: v.detach().contiguous() for k, v in out.items()}
    cond = {k: float(f"{v:.3g}") for k, v in info["errs"].items()}
    cond["relu_margin"] = float(f"{info['relu_margin']:.3g}")
    cond["pool_margin"] = float(f"{info['pool_margin']:.3g}")
    meta = dict(
        model=model_kind, attention=attention, channels=",".join(map(str, CHANNELS)),
        lyrics_dim=str(LYRICS_DIM), lr=repr(LR), clip=repr(CLIP), steps=str(STEPS), seed=str(seed),
        torch=torch.__version__, input="x".join(map(str, INPUT)), dropout="0.0",
        optimizer="adam betas=(0.9,0.999) eps=1e-8 weight_decay=0",
        bn_fed_conv_biases=",".join(d["bnfed"]),
        f64_grad="all" if not left_out else "missing:" + ",".join(left_out),
        conditioning=json.dumps(cond, sort_keys=True),
        n_ambiguous=str(info["n_ambiguous"]), ambiguous_tau=repr(AMBIG_TAU),
        threads=str(torch.get_num_threads()),
    )
    return out, meta, left_out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out-dir", default=os.path.join(here, "..", "tests", "fixtures"))
    ap.add_argument("--seed", type=int, default=0, help="first seed tried for each config")
    ap.add_argument("--max-tries", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2,
                    help="torch.set_num_threads; f32 results (not the seed choice) depend on it; "
                         "the committed fixtures used 2 (0: torch default)")
    ap.add_argument("--only", help="comma list of configs like model3_se to (re)write")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(args.out_dir, exist_ok=True)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    only = set(args.only.split(",")) if args.only else None
    for model_kind, attention in CONFIGS:
        tag = f"{model_kind}_{attention}"
        if only and tag not in only:
            continue
        for seed in range(args.seed, args.seed + args.max_tries):
            ok, info, d = check(model_kind, attention, seed)
            if ok:
                break
            print(f"[{tag}] seed {seed} rejected: {'; '.join(info['reasons'])}")
        else:
            raise SystemExit(f"[{tag}] no well-conditioned seed in {args.max_tries} tries")
        out, meta, left_out = build_file(model_kind, attention, seed, info, d)
        path = os.path.join(args.out_dir, f"golden_{tag}.safetensors")
        save_safetensors(out, path, metadata=meta)
        os.chmod(path, 0o644)
        size = os.path.getsize(path)
        print(f"[{tag}] seed {seed} -> {os.path.relpath(path)} ({size} bytes, {len(out)} tensors)")
        print(f"[{tag}] loss {r_(d['r32']['loss'])} grad_norm {r_(d['r32']['grad_norm'])}")
        print(f"[{tag}] f32-vs-f64 (normalised: rel, or abs err / allowed scale; tol in docstring):")
        for cat in sorted(info["errs"]):
            print(f"    {cat:36s} {info['errs'][cat]:.3g}")
        print(f"    {'min relu margin (|x|/rms)':36s} {info['relu_margin']:.3g}")
        print(f"    {'min pool gap (/rms)':36s} {info['pool_margin']:.3g}")
        print(f"    {'Adam-ambiguous elements':36s} {info['n_ambiguous']}")
        if left_out:
            print(f"[{tag}] f64.grad omitted for size: {', '.join(left_out)}")
        if size >= SIZE_LIMIT:
            raise SystemExit(f"{path} is {size} bytes, over the {SIZE_LIMIT} byte limit")


def r_(t):
    return "[" + ", ".join(f"{x:.9g}" for x in t.tolist()) + "]"


if __name__ == "__main__":
    main()
