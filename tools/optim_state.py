#!/usr/bin/env python3
"""Convert Adam/AdamW optimiser state between moodgrad and PyTorch, so a run can move between
the two mid-training.

    optim_state.py to-torch   --state optimizer.safetensors --model-weights model.safetensors --out adam.pt
    optim_state.py from-torch --torch adam.pt --model-weights model.safetensors --out optimizer.safetensors
    optim_state.py check-moodgrad DIR     # the moodgrad -> PyTorch check (files from tests/optim_state.rs)

moodgrad's format (`Adam::export_state`, a checkpoint's optimizer.safetensors):
    <name>.exp_avg, <name>.exp_avg_sq   first/second moments, the parameter's shape (F64 from the
                                        f64 backend, F32 otherwise)
    <name>.step                         I64 scalar: updates this parameter has had
    metadata  optimizer  "Adam" | "AdamW"
              betas      JSON [beta1, beta2];  eps
              groups     JSON list, in order, the default group last:
                         {"name", "prefixes", "initial_lr", "lr", "weight_decay"}
    A parameter belongs to the first group one of whose prefixes starts its name, else to
    "default" (no prefixes). A parameter with no entries has no state (frozen, or never updated).

PyTorch's format (`torch.optim.Adam(param_groups).state_dict()`, torch.save'd):
    state         {index: {"step": tensor(float), "exp_avg": tensor, "exp_avg_sq": tensor}}
    param_groups  [{"params": [index, ...], "lr", "initial_lr", "betas", "eps", "weight_decay",
                    "amsgrad", "maximize", ..., "decoupled_weight_decay", "name", "prefixes"}]
    Indices number the parameters group by group in group order (how state_dict() numbers them).

The mapping:
  * moodgrad group i <-> torch param group i, same order (the default group last). Empty groups are
    kept (PyTorch accepts `{"params": []}`) unless --drop-empty-groups.
  * Within a group, parameters are in the model's named_parameters() order (from --model-weights,
    which builds tools/seed_model.Seed from a state_dict's names and shapes, or --param-names, a
    file with one name a line in named_parameters() order). Build the torch optimizer the same way:
    `torch_param_groups()` below does.
  * A torch group's "name" and "prefixes" ride along as extra param-group keys (PyTorch keeps unknown
    keys through state_dict()/load_state_dict()), so from-torch recovers them; for a torch file
    without them, give `--group NAME=PREFIX[,PREFIX...]` once per torch group (`default=` for a
    group without prefixes). When no torch group is named "default", an empty one is appended at
    --default-lr / --default-weight-decay (it holds no parameter; those only matter to parameters
    that join it later).
  * Every torch group's members must be exactly the parameters moodgrad's prefix rule puts in it;
    betas, eps, amsgrad=False, maximize=False and decoupled_weight_decay must be the same in every
    group (moodgrad keeps them per optimiser): anything else is refused with the reason.
  * Parameters named by --frozen are left out of the torch groups (as `filter(requires_grad)`
    code does); without it frozen parameters stay in their group, without state, as PyTorch
    keeps them.
  * step: moodgrad's int64 <-> torch's float tensor (float32, as torch.optim makes it).
  * lr: the group's current rate both ways; initial_lr (what a scheduler takes as its base) too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from seed_model import Seed, bn_fed_conv_biases, infer_config, save_safetensors  # noqa: E402

DEFAULT_GROUP = "default"
SUFFIXES = ("exp_avg", "exp_avg_sq", "step")


class ConversionError(ValueError):
    pass


# ---------------------------------------------------------------- groups and names

def group_of(name: str, groups: list[dict]) -> int:
    """moodgrad's rule: the first group one of whose prefixes starts the name, else the last."""
    for i, g in enumerate(groups[:-1]):
        if any(name.startswith(p) for p in g["prefixes"]):
            return i
    return len(groups) - 1


def members(names: list[str], groups: list[dict], frozen=()) -> list[list[str]]:
    out = [[] for _ in groups]
    for n in names:
        if n not in frozen:
            out[group_of(n, groups)].append(n)
    return out


def check_groups(groups: list[dict]) -> None:
    names = [g["name"] for g in groups]
    if not groups or names[-1] != DEFAULT_GROUP or names.count(DEFAULT_GROUP) != 1:
        raise ConversionError(f"the groups must end with exactly one `{DEFAULT_GROUP}` group, got {names}")
    if groups[-1]["prefixes"]:
        raise ConversionError(f"the `{DEFAULT_GROUP}` group takes no prefixes, got {groups[-1]['prefixes']}")
    if len(set(names)) != len(names):
        raise ConversionError(f"group names repeat: {names}")


def seed_from_weights(path: str) -> Seed:
    state = load_file(path)
    cfg = infer_config(state)
    return Seed(cfg["model"], cfg["attention"], cfg["channels"], cfg["lyrics_dim"],
                audio_hidden=cfg["audio_hidden"], audio_out=cfg["audio_out"], head_hidden=cfg["head_hidden"])


def named_shapes(args) -> list[tuple[str, tuple | None]]:
    """(name, shape or None) of every parameter, in named_parameters() order."""
    if args.model_weights:
        return [(n, tuple(p.shape)) for n, p in seed_from_weights(args.model_weights).named_parameters()]
    with open(args.param_names) as f:
        return [(line.strip(), None) for line in f if line.strip()]


def torch_param_groups(model: torch.nn.Module, groups: list[dict], frozen=()) -> list[dict]:
    """The torch.optim param_groups that match moodgrad's `groups` (lr = the group's current lr)."""
    params = dict(model.named_parameters())
    return [{"params": [params[n] for n in mem], "lr": g["lr"], "initial_lr": g.get("initial_lr", g["lr"]),
             "weight_decay": g["weight_decay"], "name": g["name"], "prefixes": list(g["prefixes"])}
            for g, mem in zip(groups, members(list(params), groups, frozen))]


# ---------------------------------------------------------------- moodgrad -> torch

def read_moodgrad(path: str) -> tuple[dict, dict]:
    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
    return load_file(path), meta


def moodgrad_meta(meta: dict) -> tuple[list[dict], tuple[float, float], float, bool]:
    for k in ("groups", "betas", "eps", "optimizer"):
        if k not in meta:
            raise ConversionError(f"the moodgrad state has no `{k}` metadata (not written by Adam::export_state?)")
    groups = json.loads(meta["groups"])
    check_groups(groups)
    b1, b2 = json.loads(meta["betas"])
    if meta["optimizer"] not in ("Adam", "AdamW"):
        raise ConversionError(f"unknown optimizer {meta['optimizer']!r}")
    return groups, (float(b1), float(b2)), float(meta["eps"]), meta["optimizer"] == "AdamW"


def moodgrad_to_torch(tensors: dict, meta: dict, shapes: list[tuple], frozen=(),
                      drop_empty_groups: bool = False) -> dict:
    """A torch.optim.Adam/AdamW state_dict equal to what PyTorch would hold in the same state."""
    groups, betas, eps, decoupled = moodgrad_meta(meta)
    names = [n for n, _ in shapes]
    shape_of = dict(shapes)
    bases = {}
    for key in tensors:
        base, _, suffix = key.rpartition(".")
        if suffix not in SUFFIXES:
            raise ConversionError(f"`{key}` is not an optimiser entry")
        bases.setdefault(base, set()).add(suffix)
    for base, have in bases.items():
        if base not in shape_of:
            raise ConversionError(f"optimiser state for `{base}`, which is not a parameter of the model")
        if base in frozen:
            raise ConversionError(f"`{base}` has optimiser state but --frozen leaves it out of the torch groups")
        if have != set(SUFFIXES):
            raise ConversionError(f"`{base}` lacks {sorted(set(SUFFIXES) - have)}")
        for s in ("exp_avg", "exp_avg_sq"):
            if shape_of[base] is not None and tuple(tensors[f"{base}.{s}"].shape) != shape_of[base]:
                raise ConversionError(f"`{base}.{s}` has shape {tuple(tensors[f'{base}.{s}'].shape)}, "
                                      f"the parameter {shape_of[base]}")
    mem = members(names, groups, frozen)
    kept = [(g, m) for g, m in zip(groups, mem) if m or not drop_empty_groups]
    # A real optimiser over placeholders yields every hyper-parameter key torch expects.
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    holders = {n: torch.nn.Parameter(torch.zeros(1)) for n in names}
    opt = cls([{"params": [holders[n] for n in m], "lr": g["lr"], "initial_lr": g["initial_lr"],
                "weight_decay": g["weight_decay"], "name": g["name"], "prefixes": list(g["prefixes"])}
               for g, m in kept], betas=betas, eps=eps)
    sd = opt.state_dict()
    index = {}
    for g, m in kept:
        for n in m:
            index[n] = len(index)
    from torch.optim.optimizer import _get_scalar_dtype

    step_dtype = _get_scalar_dtype()
    for base in bases:
        sd["state"][index[base]] = {
            "step": torch.tensor(float(tensors[f"{base}.step"].item()), dtype=step_dtype),
            "exp_avg": tensors[f"{base}.exp_avg"].clone(),
            "exp_avg_sq": tensors[f"{base}.exp_avg_sq"].clone(),
        }
    return sd


# ---------------------------------------------------------------- torch -> moodgrad

def parse_group_spec(spec: str) -> dict:
    name, sep, rest = spec.partition("=")
    if not sep or not name:
        raise ConversionError(f"--group wants NAME=PREFIX[,PREFIX...], got {spec!r}")
    return {"name": name, "prefixes": [p for p in rest.split(",") if p]}


def _plain(v):
    """A hyper-parameter as plain floats (betas may be a tuple, a list, or hold tensors)."""
    if isinstance(v, (tuple, list)):
        return tuple(float(x) for x in v)
    return float(v) if isinstance(v, (int, float, torch.Tensor)) and not isinstance(v, bool) else v


def torch_to_moodgrad(sd: dict, shapes: list[tuple], frozen=(), group_specs: list[dict] | None = None,
                      default_lr: float = 1e-3, default_weight_decay: float = 0.0,
                      dtype: torch.dtype | None = None) -> tuple[dict, dict]:
    """(tensors, metadata) of the moodgrad file equal to a torch Adam/AdamW state_dict."""
    tgroups = sd["param_groups"]
    if group_specs is not None and len(group_specs) != len(tgroups):
        raise ConversionError(f"{len(group_specs)} --group specs for {len(tgroups)} torch param groups")
    first = tgroups[0]
    for i, tg in enumerate(tgroups):
        for k in ("betas", "eps", "decoupled_weight_decay"):
            if _plain(tg.get(k)) != _plain(first.get(k)):
                raise ConversionError(f"param group {i} has {k} {tg.get(k)} but group 0 has {first.get(k)}; "
                                      "moodgrad keeps one value for the whole optimiser")
        for k in ("amsgrad", "maximize"):
            if tg.get(k, False):
                raise ConversionError(f"param group {i} uses {k}=True, which moodgrad's Adam does not implement")
    groups = []
    for i, tg in enumerate(tgroups):
        spec = group_specs[i] if group_specs is not None else None
        if spec is None:
            if "name" not in tg:
                raise ConversionError(f"torch param group {i} has no `name` key: give --group NAME=PREFIX,... "
                                      "once per group")
            spec = {"name": tg["name"], "prefixes": list(tg.get("prefixes", []))}
        lr = float(tg["lr"])
        groups.append({"name": spec["name"], "prefixes": spec["prefixes"],
                       "initial_lr": float(tg.get("initial_lr", lr)), "lr": lr,
                       "weight_decay": float(tg["weight_decay"])})
    if all(g["name"] != DEFAULT_GROUP for g in groups):
        groups.append({"name": DEFAULT_GROUP, "prefixes": [], "initial_lr": default_lr, "lr": default_lr,
                       "weight_decay": default_weight_decay})
    check_groups(groups)
    names = [n for n, _ in shapes]
    shape_of = dict(shapes)
    mem = members(names, groups, frozen)
    by_index = {}
    for i, tg in enumerate(tgroups):
        want = mem[i]
        if len(tg["params"]) != len(want):
            raise ConversionError(
                f"torch param group {i} ({groups[i]['name']}) has {len(tg['params'])} parameters, but the prefix "
                f"rule gives it {len(want)}: {want[:4]}{' ...' if len(want) > 4 else ''} (a frozen parameter the "
                "torch optimiser leaves out? name it with --frozen)")
        for idx, n in zip(tg["params"], want):
            by_index[idx] = n
    for g, m in zip(groups[len(tgroups):], mem[len(tgroups):]):
        if m:
            raise ConversionError(f"the appended `{g['name']}` group would hold {m[:4]}, which no torch group has")
    tensors = {}
    for idx, st in sd["state"].items():
        if idx not in by_index:
            raise ConversionError(f"state for parameter index {idx}, which no param group lists")
        n = by_index[idx]
        for k in ("exp_avg", "exp_avg_sq"):
            t = st[k].detach()
            if shape_of[n] is not None and tuple(t.shape) != shape_of[n]:
                raise ConversionError(f"state {idx} (`{n}`) {k} has shape {tuple(t.shape)}, the parameter "
                                      f"{shape_of[n]}: are the torch groups in named_parameters() order?")
            tensors[f"{n}.{k}"] = t.to(dtype) if dtype else t.clone()
        step = float(st["step"])
        if step != int(step) or step < 0:
            raise ConversionError(f"state {idx} (`{n}`) has step {step}")
        tensors[f"{n}.step"] = torch.tensor(int(step), dtype=torch.int64)
    meta = {"optimizer": "AdamW" if first.get("decoupled_weight_decay", False) else "Adam",
            "groups": json.dumps(groups), "betas": json.dumps([float(b) for b in first["betas"]]),
            "eps": repr(float(first["eps"]))}
    return tensors, meta


# ---------------------------------------------------------------- moodgrad -> torch, checked

def check_moodgrad(directory: str) -> int:
    """The reverse direction: a state moodgrad wrote (after its own steps) becomes a torch state whose
    next step matches moodgrad's next step. tests/optim_state.rs writes, when MOODGRAD_OPTIM_EXPORT=DIR:
    weights_before.safetensors, optimizer.safetensors (Adam::export_state), batch.safetensors and
    weights_after.safetensors (moodgrad's state_dict one step later), all f64, plus run.json (clip,
    frozen)."""
    run = json.load(open(os.path.join(directory, "run.json")))
    before = load_file(os.path.join(directory, "weights_before.safetensors"))
    after = load_file(os.path.join(directory, "weights_after.safetensors"))
    batch = load_file(os.path.join(directory, "batch.safetensors"))
    tensors, meta = read_moodgrad(os.path.join(directory, "optimizer.safetensors"))
    cfg = infer_config(before)
    model = Seed(cfg["model"], cfg["attention"], cfg["channels"], cfg["lyrics_dim"], dropout=0.0,
                 audio_hidden=cfg["audio_hidden"], audio_out=cfg["audio_out"], head_hidden=cfg["head_hidden"])
    model.double()
    model.load_state_dict(before, strict=True)
    for n in run["frozen"]:
        model.get_parameter(n).requires_grad_(False)
    shapes = [(n, tuple(p.shape)) for n, p in model.named_parameters()]
    sd = moodgrad_to_torch(tensors, meta, shapes)
    groups, betas, eps, decoupled = moodgrad_meta(meta)
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    opt = cls(torch_param_groups(model, groups), betas=betas, eps=eps, foreach=False)
    opt.load_state_dict(sd)
    model.train()
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.mse_loss(model(batch["audio"].double(), batch["lyrics"].double()),
                                        batch["target"].double())
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), run["clip"])
    opt.step()
    # Conv biases feeding BatchNorm have a true gradient of 0: f64 noise moves them (and the
    # running_mean after each) by <= lr*|noise|/eps per step, ~1e-14 absolute; the rest agree to
    # rounding, ~1e-15 of each tensor's scale.
    noise_fed = set()
    for b in bn_fed_conv_biases(model):
        i = int(b.split(".")[2])
        noise_fed |= {b, f"audio_tower.features.{i + 1}.running_mean"}
    worst_rel, worst_name, worst_noise = 0.0, "", 0.0
    for k, v in model.state_dict().items():
        want = after[k]
        if not v.is_floating_point():
            if not torch.equal(v, want):
                print(f"FAIL {k}: {v} vs moodgrad {want}")
                return 1
            continue
        d = (v - want).abs().max().item()
        if k in noise_fed:
            worst_noise = max(worst_noise, d)
            continue
        rel = d / max(want.abs().max().item(), 1e-300)
        if rel > worst_rel:
            worst_rel, worst_name = rel, k
    ok = worst_rel <= 1e-12 and worst_noise <= 1e-12
    print(f"moodgrad state -> torch -> one torch step vs moodgrad's own next step: loss {loss.item():.12g}; "
          f"weights <= {worst_rel:.1e} of scale (worst {worst_name}), BN-fed biases <= {worst_noise:.1e} abs: "
          f"{'ok' if ok else 'FAIL'}")
    return 0 if ok else 1


# ---------------------------------------------------------------- command line

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def names_args(p):
        g = p.add_mutually_exclusive_group(required=True)
        g.add_argument("--model-weights", help="a state_dict safetensors of the seed network (names and shapes)")
        g.add_argument("--param-names", help="a file with every parameter name, one a line, named_parameters() order")
        p.add_argument("--frozen", action="append", default=[], help="a parameter left out of the torch groups")

    t = sub.add_parser("to-torch", help="moodgrad optimizer.safetensors -> torch.save'd Adam state_dict")
    t.add_argument("--state", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--drop-empty-groups", action="store_true")
    names_args(t)
    f = sub.add_parser("from-torch", help="torch.save'd Adam state_dict -> moodgrad optimizer.safetensors")
    f.add_argument("--torch", required=True)
    f.add_argument("--out", required=True)
    f.add_argument("--group", action="append", help="NAME=PREFIX[,PREFIX...], once per torch group, in order")
    f.add_argument("--default-lr", type=float, default=1e-3)
    f.add_argument("--default-weight-decay", type=float, default=0.0)
    f.add_argument("--dtype", choices=["float32", "float64"], help="default: keep the torch tensors' dtype")
    names_args(f)
    c = sub.add_parser("check-moodgrad", help="moodgrad -> torch -> one torch step, against moodgrad's step")
    c.add_argument("dir")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "check-moodgrad":
            return check_moodgrad(args.dir)
        shapes = named_shapes(args)
        if args.cmd == "to-torch":
            tensors, meta = read_moodgrad(args.state)
            sd = moodgrad_to_torch(tensors, meta, shapes, set(args.frozen), args.drop_empty_groups)
            torch.save(sd, args.out)
            print(f"wrote {args.out}: {len(sd['state'])} parameters with state, "
                  f"groups {[(g['name'], len(g['params'])) for g in sd['param_groups']]}")
        else:
            sd = torch.load(args.torch, weights_only=True)
            specs = [parse_group_spec(s) for s in args.group] if args.group else None
            dtype = {"float32": torch.float32, "float64": torch.float64}.get(args.dtype)
            tensors, meta = torch_to_moodgrad(sd, shapes, set(args.frozen), specs, args.default_lr,
                                              args.default_weight_decay, dtype)
            save_safetensors(tensors, args.out, metadata=meta)
            print(f"wrote {args.out}: {len(tensors) // 3} parameters with state, groups "
                  f"{[g['name'] for g in json.loads(meta['groups'])]}")
    except ConversionError as e:
        print(f"optim_state.py: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
