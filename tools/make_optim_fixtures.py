#!/usr/bin/env python3
"""Write the optimiser fixtures under tests/fixtures/optim/ (read by tests/optim_golden.rs and
tests/optim_state.rs), all from PyTorch's own optimisers and schedulers (torch 2.15, CPU):

  adam_groups_f64.safetensors   Adam over three parameter groups with one parameter frozen,
                                StepLR per epoch and clip_grad_norm_, 4 epochs x 3 batches, in
                                float64; the same run with AdamW.
  resume_f64.safetensors        PyTorch trains 5 steps, its optimiser state converted to moodgrad's
                                format (tools/optim_state.py), the weights, the next batch and the
                                result of one more PyTorch step.
  schedules.safetensors         the learning rates torch.optim.lr_scheduler (and transformers'
                                get_linear_schedule_with_warmup) give two groups at every
                                optimiser step, stepped per epoch or per step.

    python tools/make_optim_fixtures.py [--out-dir tests/fixtures/optim]

The network is the seed's (tools/seed_model.py) at narrow widths so the f64 files stay small:
model3 + SE, channels 4,8,8,32 (SE hidden 2), audio tower 16 -> 8, lyrics 8, head hidden 12,
dropout 0, train mode (BN batch statistics); batches 3x1x16x24 (f32, cast to f64). Initial
weights are PyTorch's default init in f32 (stored as F32: the f64 run starts from their exact
cast). Each step: zero_grad, forward, MSELoss(mean), backward,
norm = clip_grad_norm_(all parameters, 1.0), optimiser step; the scheduler after the epoch.

Groups (moodgrad's ParamGroup / PyTorch param_groups, in this order; a parameter joins the first
group whose prefix starts its name):
    audio    audio_tower.features.   lr 1e-3   weight_decay 0      (AdamW run: 1e-2)
    head     classifier_head.        lr 5e-4   weight_decay 1e-2   (AdamW run: 1e-1)
    default  (the rest: audio_tower.classifier.*)  lr 2e-3  weight_decay 0  (AdamW run: 5e-2)
Frozen: audio_tower.features.4.weight (requires_grad False: no gradient, no moments; it stays in
the audio group, as PyTorch keeps it).

adam_groups_f64 keys: input.<b>.{audio,lyrics,target} (b = 0,1,2; F32), init.<name> (F32, the
state_dict; num_batches_tracked I64), then for run in adam, adamw:
    <run>.loss [12], <run>.grad_norm [12] (pre-clip), <run>.lr [12, 3] (each group's lr at each
    step), <run>.after.<name> (every state_dict entry after the 12 steps, F64 / I64),
    <run>.bn_fed_grad_max [12] (max |grad| over the BN-fed conv biases at each step: f64 noise,
    their true gradient is 0; the Rust test bounds their drift with it)
and adam.state.<name>.{exp_avg,exp_avg_sq,step} (the final Adam state in moodgrad's format).
Metadata: config, groups_adam, groups_adamw (moodgrad `groups` JSON, initial rates),
state_groups_adam (the groups of the final state: rates after the last scheduler step), frozen, clip, epochs,
batches, step_size, gamma, bn_fed_conv_biases, torch.

resume_f64 keys: weights.<name> (the state_dict after 5 steps, F64 / I64), state.<name>.{...}
(the optimiser state after 5 steps, F64; file metadata optimizer/groups/betas/eps as Adam::
export_state writes them), batch.{audio,lyrics,target} (F32), expect.loss, expect.grad_norm and
expect.<name> (the state_dict after PyTorch's 6th step); metadata also config, frozen, clip,
steps_before, bn_fed_conv_biases. Scheduler StepLR(1, 0.5) per epoch of 3
batches, so the saved learning rates are half the base ones. The script also checks, and prints,
that torch -> moodgrad -> torch gives back the same state_dict and the same 6th step, bit for bit.

schedules keys: one F64 [steps, 2] tensor per case (lr of groups with base 1e-3 and 3e-4 at each
optimiser step, read before the step); metadata `cases` JSON describes each (kind, arguments,
interval, epochs, batches per epoch).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from optim_state import moodgrad_to_torch, torch_param_groups, torch_to_moodgrad  # noqa: E402
from seed_model import Seed, bn_fed_conv_biases, save_safetensors  # noqa: E402

CFG = dict(model="model3", attention="se", channels=(4, 8, 8, 32), lyrics_dim=8, audio_hidden=16,
           audio_out=8, head_hidden=12)
INPUT = (3, 1, 16, 24)
BATCHES = 3
EPOCHS = 4
CLIP = 2.5  # the pre-clip norms run 2.2..3.0 on this draw: some steps clipped, some not
STEP_SIZE, GAMMA = 2, 0.5
FROZEN = "audio_tower.features.4.weight"
BETAS, EPS = (0.9, 0.999), 1e-8


def groups_for(adamw: bool) -> list[dict]:
    wd = (1e-2, 1e-1, 5e-2) if adamw else (0.0, 1e-2, 0.0)
    spec = [("audio", ["audio_tower.features."], 1e-3), ("head", ["classifier_head."], 5e-4), ("default", [], 2e-3)]
    return [{"name": n, "prefixes": p, "initial_lr": lr, "lr": lr, "weight_decay": w} for (n, p, lr), w in zip(spec, wd)]


def draw(seed: int):
    torch.manual_seed(seed)
    model = Seed(dropout=0.0, **CFG)
    batches = [(torch.randn(*INPUT), torch.randn(INPUT[0], CFG["lyrics_dim"]), torch.rand(INPUT[0], 2))
               for _ in range(BATCHES)]
    return model, batches


def f64_model(init: dict) -> Seed:
    m = Seed(dropout=0.0, **CFG)
    m.load_state_dict(init, strict=True)
    m.double()
    m.get_parameter(FROZEN).requires_grad_(False)
    m.train()
    return m


def make_opt(model, groups, adamw):
    cls = torch.optim.AdamW if adamw else torch.optim.Adam
    return cls(torch_param_groups(model, groups), betas=BETAS, eps=EPS, foreach=False)


def one_step(model, opt, batch):
    audio, lyrics, target = (t.double() for t in batch)
    opt.zero_grad(set_to_none=True)
    loss = nn.functional.mse_loss(model(audio, lyrics), target)
    loss.backward()
    dead = [n for n, p in model.named_parameters() if p.requires_grad and not p.grad.any()]
    if dead:  # a tensor with no gradient would test nothing (e.g. a dead ReLU unit in the SE block)
        raise SystemExit(f"zero gradient for {dead}: pick another draw")
    bn_fed = max(model.get_parameter(n).grad.abs().max().item() for n in bn_fed_conv_biases(model))
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
    lrs = [g["lr"] for g in opt.param_groups]
    opt.step()
    return loss.item(), norm.item(), lrs, bn_fed


def state_f64(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def names_shapes(model):
    return [(n, tuple(p.shape)) for n, p in model.named_parameters()]


def golden(out_dir: str) -> None:
    model32, batches = draw(0)
    init = {k: v.detach().clone() for k, v in model32.state_dict().items()}
    out = {"init." + k: v for k, v in init.items()}
    for b, (a, l, t) in enumerate(batches):
        out.update({f"input.{b}.audio": a, f"input.{b}.lyrics": l, f"input.{b}.target": t})
    meta = dict(config=json.dumps(CFG), frozen=FROZEN, clip=repr(CLIP), epochs=str(EPOCHS), batches=str(BATCHES),
                step_size=str(STEP_SIZE), gamma=repr(GAMMA), torch=torch.__version__)
    for run, adamw in (("adam", False), ("adamw", True)):
        model = f64_model(init)
        groups = groups_for(adamw)
        opt = make_opt(model, groups, adamw)
        sched = torch.optim.lr_scheduler.StepLR(opt, STEP_SIZE, GAMMA)
        losses, norms, lrs, bn = [], [], [], []
        for _ in range(EPOCHS):
            for batch in batches:
                loss, norm, lr, g = one_step(model, opt, batch)
                losses.append(loss), norms.append(norm), lrs.append(lr), bn.append(g)
            sched.step()
        out[f"{run}.loss"] = torch.tensor(losses, dtype=torch.float64)
        out[f"{run}.grad_norm"] = torch.tensor(norms, dtype=torch.float64)
        out[f"{run}.lr"] = torch.tensor(lrs, dtype=torch.float64)
        out[f"{run}.bn_fed_grad_max"] = torch.tensor(bn, dtype=torch.float64)
        out.update({f"{run}.after.{k}": v for k, v in state_f64(model).items()})
        meta[f"groups_{run}"] = json.dumps(groups)
        clipped = sum(n > CLIP for n in norms)
        print(f"[{run}] loss {losses[0]:.6g} -> {losses[-1]:.6g}, grad_norm {min(norms):.3g}..{max(norms):.3g} "
              f"(clipped in {clipped} of {len(norms)} steps), final lrs {lrs[-1]}, "
              f"BN-fed bias grad noise <= {max(bn):.1e}")
        if run == "adam":
            tensors, smeta = torch_to_moodgrad(opt.state_dict(), names_shapes(model))
            meta["state_groups_adam"] = smeta["groups"]
            if any(k.startswith(FROZEN + ".") for k in tensors):
                raise SystemExit("the frozen parameter got optimiser state")
            out.update({f"adam.state.{k}": v for k, v in tensors.items()})
    meta["bn_fed_conv_biases"] = ",".join(bn_fed_conv_biases(model32))
    path = os.path.join(out_dir, "adam_groups_f64.safetensors")
    save_safetensors(out, path, metadata=meta)
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(out)} tensors)")


def resume(out_dir: str) -> None:
    model32, batches = draw(1)
    init = {k: v.detach().clone() for k, v in model32.state_dict().items()}
    model = f64_model(init)
    groups = groups_for(False)
    opt = make_opt(model, groups, False)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1, 0.5)
    k = 5
    for step in range(k):
        one_step(model, opt, batches[step % BATCHES])
        if (step + 1) % BATCHES == 0:
            sched.step()
    weights = state_f64(model)
    torch_sd = opt.state_dict()
    tensors, meta = torch_to_moodgrad(torch_sd, names_shapes(model))
    # The way back must give PyTorch the very same state.
    back = moodgrad_to_torch(tensors, meta, names_shapes(model))
    same = (set(back["state"]) == set(torch_sd["state"]) and all(
        torch.equal(back["state"][i][s], torch_sd["state"][i][s]) for i in torch_sd["state"] for s in
        ("exp_avg", "exp_avg_sq", "step")))
    keys = ("lr", "initial_lr", "betas", "eps", "weight_decay", "params", "name", "prefixes", "amsgrad", "maximize")
    same = same and all(all(a[key] == b[key] for key in keys)
                        for a, b in zip(back["param_groups"], torch_sd["param_groups"]))
    next_batch = batches[k % BATCHES]
    loss, norm, _, _ = one_step(model, opt, next_batch)
    expect = state_f64(model)
    # The 6th step again, from the round-tripped state.
    twin = f64_model(init)
    twin.load_state_dict(weights)
    opt2 = make_opt(twin, groups, False)
    opt2.load_state_dict(back)
    one_step(twin, opt2, next_batch)
    twin_same = all(torch.equal(v, expect[n]) for n, v in state_f64(twin).items())
    print(f"[resume] torch -> moodgrad -> torch: state_dict identical: {same}; 6th step identical: {twin_same}; "
          f"lrs now {[g['lr'] for g in torch_sd['param_groups']]}")
    if not (same and twin_same):
        raise SystemExit("the round trip through moodgrad's format changed the state")
    out = {"weights." + n: v for n, v in weights.items()}
    out.update({"state." + n: v for n, v in tensors.items()})
    out.update({"batch.audio": next_batch[0], "batch.lyrics": next_batch[1], "batch.target": next_batch[2]})
    out.update({"expect." + n: v for n, v in expect.items()})
    out["expect.loss"] = torch.tensor([loss], dtype=torch.float64)
    out["expect.grad_norm"] = torch.tensor([norm], dtype=torch.float64)
    meta.update(config=json.dumps(CFG), frozen=FROZEN, clip=repr(CLIP), steps_before=str(k), torch=torch.__version__,
                bn_fed_conv_biases=",".join(bn_fed_conv_biases(model)))
    path = os.path.join(out_dir, "resume_f64.safetensors")
    save_safetensors(out, path, metadata=meta)
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(out)} tensors)")


SCHEDULE_CASES = {
    # name: (kind, args, interval, epochs, batches per epoch)
    "step_epoch_seed": ("step", {"step_size": 15, "gamma": 0.5}, "epoch", 40, 2),
    "step_per_step": ("step", {"step_size": 3, "gamma": 0.7}, "step", 1, 25),
    "cosine_per_step": ("cosine", {"t_max": 10, "eta_min": 1e-5}, "step", 1, 45),
    "cosine_epoch": ("cosine", {"t_max": 6, "eta_min": 0.0}, "epoch", 8, 3),
    "warmup_per_step": ("warmup-linear", {"warmup": 4, "total": 20}, "step", 1, 24),
    "warmup_epoch": ("warmup-linear", {"warmup": 2, "total": 6}, "epoch", 7, 2),
    "warmup_none": ("warmup-linear", {"warmup": 0, "total": 10}, "step", 1, 12),
}
BASE_LRS = (1e-3, 3e-4)


def schedules(out_dir: str) -> None:
    from transformers import get_linear_schedule_with_warmup

    out = {}
    for name, (kind, a, interval, epochs, batches) in SCHEDULE_CASES.items():
        params = [nn.Parameter(torch.zeros(1, dtype=torch.float64)) for _ in BASE_LRS]
        opt = torch.optim.Adam([{"params": [p], "lr": lr} for p, lr in zip(params, BASE_LRS)], foreach=False)
        if kind == "step":
            sched = torch.optim.lr_scheduler.StepLR(opt, a["step_size"], a["gamma"])
        elif kind == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, a["t_max"], a["eta_min"])
        else:
            sched = get_linear_schedule_with_warmup(opt, a["warmup"], a["total"])
        lrs = []
        for _ in range(epochs):
            for _ in range(batches):
                lrs.append([g["lr"] for g in opt.param_groups])
                opt.step()  # no gradients: nothing moves, but the scheduler sees a step
                if interval == "step":
                    sched.step()
            if interval == "epoch":
                sched.step()
        out[name] = torch.tensor(lrs, dtype=torch.float64)
    cases = {n: {"kind": k, "args": a, "interval": i, "epochs": e, "batches": b, "base_lrs": list(BASE_LRS)}
             for n, (k, a, i, e, b) in SCHEDULE_CASES.items()}
    path = os.path.join(out_dir, "schedules.safetensors")
    save_safetensors(out, path, metadata={"cases": json.dumps(cases, sort_keys=True), "torch": torch.__version__})
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(out)} cases)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out-dir", default=os.path.normpath(os.path.join(here, "..", "tests", "fixtures", "optim")))
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (the fixtures: 2)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.out_dir, exist_ok=True)
    golden(args.out_dir)
    resume(args.out_dir)
    schedules(args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
