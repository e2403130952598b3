#!/usr/bin/env python3
"""Write tests/fixtures/unit/vgg_unit.safetensors: PyTorch's Conv2d(3x3, pad 1) -> BatchNorm2d
-> ReLU (-> MaxPool2d(2, 2)) forward and backward, the module chain the fused op
`ops::vgg_unit` replaces (tests/vgg_unit.rs).

Cases (odd map sizes so the floor-mode pool drops a row and a column; C_in = 1 as the first
layer):
    a: x [2,1,9,11],  4 channels, pool, train
    b: x [3,3,6,5],   5 channels, no pool, train
    c: x [2,2,7,9],   3 channels, pool, eval (running statistics set, not the defaults)
Everything in float64 (the reference is exact to ~1e-16; the test compares f32 and f64 runs).
Keys per case K: K.x, K.weight, K.bias, K.gamma, K.beta, K.running_mean, K.running_var (before),
K.dy (the output gradient), K.y, K.after.running_mean, K.after.running_var, K.grad.x,
K.grad.weight, K.grad.bias, K.grad.gamma, K.grad.beta. Metadata: per case "K" = JSON
{c_in, c_out, pool, train}, torch version.

    /root/.venvs/torch/bin/python tools/make_unit_golden.py
"""
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

CASES = {
    "a": dict(n=2, c_in=1, c_out=4, h=9, w=11, pool=True, train=True),
    "b": dict(n=3, c_in=3, c_out=5, h=6, w=5, pool=False, train=True),
    "c": dict(n=2, c_in=2, c_out=3, h=7, w=9, pool=True, train=False),
}


def case(key, n, c_in, c_out, h, w, pool, train):
    torch.manual_seed(ord(key))
    conv = torch.nn.Conv2d(c_in, c_out, 3, padding=1).double()
    bn = torch.nn.BatchNorm2d(c_out).double()
    with torch.no_grad():
        bn.weight.copy_(torch.rand(c_out, dtype=torch.float64) + 0.5)
        bn.bias.copy_(torch.randn(c_out, dtype=torch.float64) * 0.3)
        bn.running_mean.copy_(torch.randn(c_out, dtype=torch.float64) * 0.2)
        bn.running_var.copy_(torch.rand(c_out, dtype=torch.float64) + 0.5)
    layers = [conv, bn, torch.nn.ReLU()] + ([torch.nn.MaxPool2d(2, 2)] if pool else [])
    net = torch.nn.Sequential(*layers)
    net.train(train)
    out = {
        "x": torch.randn(n, c_in, h, w, dtype=torch.float64),
        "weight": conv.weight.detach().clone(),
        "bias": conv.bias.detach().clone(),
        "gamma": bn.weight.detach().clone(),
        "beta": bn.bias.detach().clone(),
        "running_mean": bn.running_mean.clone(),
        "running_var": bn.running_var.clone(),
    }
    x = out["x"].clone().requires_grad_(True)
    y = net(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    out.update({
        "dy": dy,
        "y": y.detach(),
        "after.running_mean": bn.running_mean.clone(),
        "after.running_var": bn.running_var.clone(),
        "grad.x": x.grad,
        "grad.weight": conv.weight.grad,
        "grad.bias": conv.bias.grad,
        "grad.gamma": bn.weight.grad,
        "grad.beta": bn.bias.grad,
    })
    return {f"{key}.{k}": v.contiguous() for k, v in out.items()}


def main():
    tensors, meta = {}, {"torch": torch.__version__}
    for key, c in CASES.items():
        tensors.update(case(key, **c))
        meta[key] = json.dumps({k: c[k] for k in ("c_in", "c_out", "pool", "train")})
    path = Path(__file__).resolve().parent.parent / "tests/fixtures/unit/vgg_unit.safetensors"
    save_file(tensors, str(path), metadata=meta)
    print(f"wrote {path} ({path.stat().st_size} bytes, {len(tensors)} tensors)")


if __name__ == "__main__":
    main()
