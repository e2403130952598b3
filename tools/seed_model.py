"""The seed's network, expressed as configuration, in PyTorch.

This is the reference model that moodgrad's Rust engine must match. The module
tree (and therefore the ``state_dict`` names) is fixed; see the brief in
tools/README.md.

    Seed(model="model3"|"model4", attention="se"|"legacy",
         channels=(64, 128, 256, 512), lyrics_dim=768, dropout=0.5,
         audio_hidden=256, audio_out=64, head_hidden=100)

(the last three are the seed's fixed widths, made settable for small test fixtures; below,
256 / 64 / 100 stand for them)

Inputs: ``audio`` [B, 1, H, W] (log-mel spectrogram), ``lyrics`` [B, lyrics_dim]
(a precomputed text embedding; no BERT here). Output: [B, 2], no activation.

Module tree / state_dict names (MODEL_3 + SE, channels c1..c4)::

    audio_tower.features.0   Conv2d(1,  c1, 3, padding=1)   weight, bias
    audio_tower.features.1   BatchNorm2d(c1)  weight, bias, running_mean, running_var, num_batches_tracked
    audio_tower.features.2   ReLU
    audio_tower.features.3   MaxPool2d(2, 2)
    audio_tower.features.4   Conv2d(c1, c2) ; .5 BN ; .6 ReLU ; .7 MaxPool
    audio_tower.features.8   Conv2d(c2, c3) ; .9 BN ; .10 ReLU ; .11 MaxPool
    audio_tower.features.12  Conv2d(c3, c4) ; .13 BN ; .14 ReLU      (no pool after block 4)
    audio_tower.features.15  SEAttention(c4, r=16): .excitation.0 Linear(c4, c4//16, bias=False),
                                                     .excitation.2 Linear(c4//16, c4, bias=False)
    audio_tower.features.16  AdaptiveAvgPool2d(1)
    (flatten)
    audio_tower.classifier   Sequential(Dropout, Linear(c4,256) [.1], ReLU, Dropout, Linear(256,64) [.4])
    classifier_head          Sequential(Dropout, Linear(64+lyrics_dim,100) [.1], ReLU, Dropout, Linear(100,2) [.4])

MODEL_4 uses two conv/BN/ReLU triples per block: block 1 = 0..5 (pool 6),
block 2 = 7..12 (pool 13), block 3 = 14..19 (pool 20), block 4 = 21..26,
SE at 27, AdaptiveAvgPool at 28.

Legacy attention: no SE inside ``features`` (so AdaptiveAvgPool is at 15 for
MODEL_3, 27 for MODEL_4), and instead of ``audio_tower.classifier``:
``audio_tower.dropout1``, ``.fc1`` Linear(c4,256), ``.relu1``, ``.dropout2``,
``.attention.attention`` = Sequential(Linear(256,64) [.0], ReLU, Linear(64,256) [.2],
Sigmoid) (forward: x * attention(x)), ``.fc2`` Linear(256,64).

Training-step semantics (``train_steps``), shared by torch_step.py and
make_golden.py so that both produce bit-identical numbers:

    model.train()            # BN uses batch statistics; dropout p is whatever the model has
    for each step:
        zero_grad (set_to_none)
        out  = model(audio, lyrics)
        loss = mean((out - target)**2)                    # nn.MSELoss(reduction="mean")
        loss.backward()
        norm = clip_grad_norm_(params, clip)              # total 2-norm over all param grads
                                                          # (pre-clip value returned); grads *= min(1, clip/(norm+1e-6))
        Adam/AdamW.step()

BatchNorm2d (train): y = (x - mean) / sqrt(var_biased + 1e-5) * weight + bias, statistics
over (N, H, W); running_mean = 0.9*running_mean + 0.1*mean,
running_var = 0.9*running_var + 0.1*var_unbiased (n/(n-1) correction),
num_batches_tracked += 1.

Adam (torch single-tensor path, used on CPU), per element, step t = 1, 2, ...:
    g  = grad (+ weight_decay * p for Adam; AdamW instead does p *= 1 - lr*weight_decay first)
    m  = m + (g - m) * (1 - beta1)          # lerp
    v  = v * beta2 + (1 - beta2) * g * g
    p  = p - (lr / (1 - beta1**t)) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)
with beta1 = 0.9, beta2 = 0.999, eps = 1e-8.
"""

from __future__ import annotations

import time

import torch
import torch.nn as nn

MODELS = ("model3", "model4")
ATTENTIONS = ("se", "legacy")
DEFAULT_CHANNELS = (64, 128, 256, 512)


class SEAttention(nn.Module):
    """Squeeze-and-excitation over channels: x * sigmoid(W2 relu(W1 mean_hw(x)))."""

    def __init__(self, channels: int, r: int = 16):
        super().__init__()
        hidden = max(1, channels // r)
        self.excitation = nn.Sequential(
            nn.Linear(channels, hidden, bias=False),
            nn.ReLU(),
            nn.Linear(hidden, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x):
        s = x.mean((2, 3))
        w = self.excitation(s)
        return x * w[:, :, None, None]


class AttentionModule(nn.Module):
    """Legacy feature gating: x * sigmoid(W2 relu(W1 x + b1) + b2)."""

    def __init__(self, d: int):
        super().__init__()
        self.attention = nn.Sequential(
            nn.Linear(d, d // 4),
            nn.ReLU(),
            nn.Linear(d // 4, d),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return x * self.attention(x)


class AudioTower(nn.Module):
    """VGGish audio model: [B,1,H,W] -> [B,64]."""

    def __init__(self, model="model3", attention="se", channels=DEFAULT_CHANNELS, dropout=0.5,
                 hidden=256, out=64):
        super().__init__()
        if model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {model!r}")
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
        channels = tuple(int(c) for c in channels)
        if len(channels) != 4:
            raise ValueError("channels must have 4 entries")
        self.attention_kind = attention
        convs_per_block = 1 if model == "model3" else 2
        layers = []
        cin = 1
        for i, c in enumerate(channels):
            for _ in range(convs_per_block):
                layers += [nn.Conv2d(cin, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
                cin = c
            if i < 3:
                layers.append(nn.MaxPool2d(2, 2))
        c_last = channels[-1]
        if attention == "se":
            layers.append(SEAttention(c_last, r=16))
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        if attention == "se":
            self.classifier = nn.Sequential(
                nn.Dropout(dropout),
                nn.Linear(c_last, hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, out),
            )
        else:
            self.dropout1 = nn.Dropout(dropout)
            self.fc1 = nn.Linear(c_last, hidden)
            self.relu1 = nn.ReLU()
            self.dropout2 = nn.Dropout(dropout)
            self.attention = AttentionModule(hidden)
            self.fc2 = nn.Linear(hidden, out)

    def forward(self, x):
        x = self.features(x)
        x = x.flatten(1)
        if self.attention_kind == "se":
            return self.classifier(x)
        x = self.dropout1(x)
        x = self.fc1(x)
        x = self.relu1(x)
        x = self.dropout2(x)
        x = self.attention(x)
        return self.fc2(x)


class Seed(nn.Module):
    def __init__(self, model="model3", attention="se", channels=DEFAULT_CHANNELS,
                 lyrics_dim=768, dropout=0.5, audio_hidden=256, audio_out=64, head_hidden=100):
        super().__init__()
        self.config = dict(model=model, attention=attention,
                           channels=tuple(int(c) for c in channels),
                           lyrics_dim=int(lyrics_dim), dropout=float(dropout),
                           audio_hidden=int(audio_hidden), audio_out=int(audio_out),
                           head_hidden=int(head_hidden))
        self.audio_tower = AudioTower(model, attention, channels, dropout, audio_hidden, audio_out)
        self.classifier_head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(audio_out + lyrics_dim, head_hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(head_hidden, 2),
        )

    def forward_parts(self, audio, lyrics):
        """Returns (prediction [B,2], audio-tower output [B,64])."""
        a = self.audio_tower(audio)
        out = self.classifier_head(torch.cat([a, lyrics], 1))
        return out, a

    def forward(self, audio, lyrics):
        return self.forward_parts(audio, lyrics)[0]


def set_dropout(model: nn.Module, p: float) -> None:
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = float(p)


def bn_fed_conv_biases(model: nn.Module) -> list[str]:
    """Parameter names of conv biases that feed straight into a BatchNorm.

    Their true gradient is exactly 0 (BN subtracts the batch mean), so their f32
    gradient is rounding noise, and Adam's first step moves them by ~lr*sign(noise).
    """
    names = []
    for prefix, mod in model.named_modules():
        if isinstance(mod, nn.Sequential):
            kids = list(mod.named_children())
            for (n1, m1), (_, m2) in zip(kids, kids[1:]):
                if isinstance(m1, nn.Conv2d) and isinstance(m2, nn.BatchNorm2d) and m1.bias is not None:
                    names.append(f"{prefix}.{n1}.bias" if prefix else f"{n1}.bias")
    return names


def infer_config(state: dict, prefix: str = "") -> dict:
    """Recover model/attention/channels/lyrics_dim from state_dict names and shapes."""
    def get(name):
        return state[prefix + name]

    conv_idx = sorted(
        int(k[len(prefix):].split(".")[2])
        for k in state
        if k.startswith(prefix + "audio_tower.features.") and k.endswith(".weight")
        and state[k].dim() == 4
    )
    outs = [get(f"audio_tower.features.{i}.weight").shape[0] for i in conv_idx]
    if len(conv_idx) == 4:
        model = "model3"
        channels = outs
    elif len(conv_idx) == 8:
        model = "model4"
        channels = outs[::2]
    else:
        raise ValueError(f"cannot infer model from {len(conv_idx)} conv layers")
    attention = "legacy" if (prefix + "audio_tower.fc1.weight") in state else "se"
    fc1, fc2 = ("fc1", "fc2") if attention == "legacy" else ("classifier.1", "classifier.4")
    audio_hidden = get(f"audio_tower.{fc1}.weight").shape[0]
    audio_out = get(f"audio_tower.{fc2}.weight").shape[0]
    head_hidden, head_in = get("classifier_head.1.weight").shape
    return dict(model=model, attention=attention, channels=tuple(int(c) for c in channels),
                lyrics_dim=int(head_in - audio_out), audio_hidden=int(audio_hidden),
                audio_out=int(audio_out), head_hidden=int(head_hidden))


def train_steps(model: Seed, audio, lyrics, target, steps: int, lr: float = 1e-3,
                clip: float = 1.0, weight_decay: float = 0.0, adamw: bool = False,
                keep_step1_state: bool = False) -> dict:
    """Run ``steps`` training steps in place. See module docstring for semantics.

    Returns dict with: loss [steps], grad_norm [steps] (pre-clip), grads (name ->
    step-1 pre-clip gradient), output (step-1 prediction), act_audio (step-1
    audio-tower output), and, if keep_step1_state, state1 (state_dict after the
    first update).
    """
    model.train()
    named = list(model.named_parameters())
    params = [p for _, p in named]
    opt_cls = torch.optim.AdamW if adamw else torch.optim.Adam
    opt = opt_cls(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay,
                  foreach=False)
    loss_fn = nn.MSELoss(reduction="mean")
    losses, norms, seconds = [], [], []
    res = {}
    for step in range(steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        out, act = model.forward_parts(audio, lyrics)
        loss = loss_fn(out, target)
        loss.backward()
        if step == 0:
            res["grads"] = {n: p.grad.detach().clone() for n, p in named}
            res["output"] = out.detach().clone()
            res["act_audio"] = act.detach().clone()
        norm = torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        losses.append(loss.detach().clone())
        norms.append(norm.detach().clone())
        seconds.append(time.perf_counter() - t0)
        if step == 0 and keep_step1_state:
            res["state1"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    res["loss"] = torch.stack(losses) if losses else torch.zeros(0)
    res["grad_norm"] = torch.stack(norms) if norms else torch.zeros(0)
    res["seconds"] = seconds  # wall time of each step (zero_grad to opt.step), step 1 incl. its grad copies
    return res


def save_safetensors(tensors: dict, path: str, metadata: dict | None = None) -> None:
    """safetensors.torch.save_file, but with a byte-for-byte reproducible header.

    The safetensors library writes the JSON header (notably ``__metadata__``) in hash
    order, so regenerating a fixture would change its bytes. The header is re-serialised
    here with sorted keys (same tensor data and offsets, padded with spaces to 8 bytes as
    the format allows), so identical inputs give identical files.
    """
    import json
    import struct

    from safetensors.torch import save

    tensors = {k: v.detach().contiguous() for k, v in tensors.items()}
    raw = save(tensors, metadata={str(k): str(v) for k, v in (metadata or {}).items()})
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    if "__metadata__" in header:
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.write(raw[8 + n:])
