#!/usr/bin/env python3
"""PyTorch reference for `moodgrad step`.

Three things this script can do (combine freely in one call; they run in this order):

1. --init-out W.safetensors --seed S   write a default-initialised model's state_dict
     (torch.manual_seed(S), then Seed(...) is constructed; f32, num_batches_tracked int64).
2. --batch-out B.safetensors --input BxCxHxW --lyrics-dim T --seed S
     write a random batch: audio [B,1,H,W] ~ N(0,1), lyrics [B,T] ~ N(0,1), target [B,2] ~ U(0,1),
     all f32. The RNG sequence is: manual_seed(S); build the model (even if --init-out is not
     given); audio; lyrics; target -- the same order tools/make_golden.py uses, so
     `--init-out W --batch-out B --seed S` with the golden config reproduces a golden draw.
3. --weights W.safetensors --batch B.safetensors --steps N --out O.safetensors
     model.train() with every dropout p = 0; each step: zero_grad, forward, MSELoss(mean),
     backward, norm = clip_grad_norm_(params, clip), Adam (or AdamW) step with
     betas (0.9, 0.999), eps 1e-8. The model config (model/attention/channels/lyrics dim) is
     inferred from the weights unless given explicitly.
     Output O.safetensors:
        loss          [N]   each step's loss (before that step's update)
        grad_norm     [N]   each step's pre-clip total gradient 2-norm
        grad.<name>         every parameter's gradient at the FIRST step, pre-clip
        <name>              every state_dict entry after the N steps (num_batches_tracked int64)
     (with --extras also: output [B,2] and act.audio [B,64], the step-1 prediction and
     audio-tower output). Float tensors are f32, or f64 with --dtype float64 (in which case
     the weights and batch are cast to f64 after loading and the whole run is in f64).

--weights-prefix / --batch-prefix let the step read a golden fixture directly, e.g.
    torch_step.py --weights tests/fixtures/golden_model3_se.safetensors --weights-prefix init. \\
                  --batch tests/fixtures/golden_model3_se.safetensors --batch-prefix input. \\
                  --steps 2 --out /tmp/o.safetensors
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from seed_model import Seed, set_dropout, infer_config, train_steps, save_safetensors  # noqa: E402


def parse_channels(s):
    return tuple(int(c) for c in s.split(",")) if s else None


def parse_shape(s):
    dims = tuple(int(d) for d in s.lower().split("x"))
    if len(dims) != 4:
        raise argparse.ArgumentTypeError("--input must be BxCxHxW")
    return dims


def random_batch(shape, lyrics_dim, dtype=torch.float32):
    b, c, h, w = shape
    audio = torch.randn(b, c, h, w, dtype=dtype)
    lyrics = torch.randn(b, lyrics_dim, dtype=dtype)
    target = torch.rand(b, 2, dtype=dtype)
    return audio, lyrics, target


def strip_prefix(d, prefix):
    if not prefix:
        return dict(d)
    return {k[len(prefix):]: v for k, v in d.items() if k.startswith(prefix)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["model3", "model4"], help="default: inferred from --weights (model3 for --init-out)")
    ap.add_argument("--attention", choices=["se", "legacy"], help="default: inferred from --weights (se for --init-out)")
    ap.add_argument("--channels", type=parse_channels, help="comma list, default inferred from --weights (64,128,256,512 for --init-out)")
    ap.add_argument("--lyrics-dim", type=int, help="lyrics embedding width T (default 768 / inferred)")
    ap.add_argument("--weights", help="state_dict safetensors to start from")
    ap.add_argument("--weights-prefix", default="", help="only use keys with this prefix (stripped), e.g. 'init.'")
    ap.add_argument("--batch", help="safetensors with audio [B,1,H,W], lyrics [B,T], target [B,2]")
    ap.add_argument("--batch-prefix", default="", help="key prefix in --batch, e.g. 'input.'")
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--clip", type=float, default=1.0, help="clip_grad_norm_ max norm")
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--adamw", action="store_true", help="use AdamW (decoupled decay) instead of Adam")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--extras", action="store_true", help="also write output [B,2] and act.audio [B,64] of step 1")
    ap.add_argument("--out", help="where to write the step results")
    ap.add_argument("--init-out", help="write a default-initialised state_dict here")
    ap.add_argument("--batch-out", help="write a random batch here (needs --input)")
    ap.add_argument("--seed", type=int, default=0, help="RNG seed for --init-out/--batch-out")
    ap.add_argument("--input", type=parse_shape, help="BxCxHxW for --batch-out, e.g. 2x1x128x1292")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave default)")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    did = False

    if args.init_out or args.batch_out:
        model_kind = args.model or "model3"
        attention = args.attention or "se"
        channels = args.channels or (64, 128, 256, 512)
        lyrics_dim = args.lyrics_dim or 768
        torch.manual_seed(args.seed)
        model = Seed(model_kind, attention, channels, lyrics_dim)
        meta = dict(model=model_kind, attention=attention, channels=",".join(map(str, channels)),
                    lyrics_dim=str(lyrics_dim), seed=str(args.seed), torch=torch.__version__)
        if args.init_out:
            sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
            save_safetensors(sd, args.init_out, metadata=meta)
            print(f"wrote {args.init_out} ({len(sd)} tensors)")
        if args.batch_out:
            if not args.input:
                ap.error("--batch-out needs --input BxCxHxW")
            if args.input[1] != 1:
                ap.error("the audio tower takes 1 input channel (C must be 1)")
            audio, lyrics, target = random_batch(args.input, lyrics_dim)
            save_safetensors({"audio": audio, "lyrics": lyrics, "target": target}, args.batch_out, metadata=meta)
            print(f"wrote {args.batch_out}")
        did = True

    if args.weights or args.batch or args.out:
        if not (args.weights and args.batch and args.out):
            ap.error("a step needs --weights, --batch and --out")
        dtype = torch.float64 if args.dtype == "float64" else torch.float32
        state = strip_prefix(load_file(args.weights), args.weights_prefix)
        cfg = infer_config(state)
        for k, v in (("model", args.model), ("attention", args.attention),
                     ("channels", args.channels), ("lyrics_dim", args.lyrics_dim)):
            if v is None:
                continue
            if (tuple(v) if k == "channels" else v) != cfg[k]:
                ap.error(f"--{k.replace('_', '-')} {v} disagrees with weights ({cfg[k]})")
        model = Seed(cfg["model"], cfg["attention"], cfg["channels"], cfg["lyrics_dim"],
                     audio_hidden=cfg["audio_hidden"], audio_out=cfg["audio_out"], head_hidden=cfg["head_hidden"])
        set_dropout(model, 0.0)
        model.load_state_dict(state, strict=True)
        model.to(dtype)
        batch = strip_prefix(load_file(args.batch), args.batch_prefix)
        audio = batch["audio"].to(dtype)
        lyrics = batch["lyrics"].to(dtype)
        target = batch["target"].to(dtype)
        res = train_steps(model, audio, lyrics, target, args.steps, lr=args.lr, clip=args.clip,
                          weight_decay=args.weight_decay, adamw=args.adamw)
        out = {"loss": res["loss"].to(dtype), "grad_norm": res["grad_norm"].to(dtype)}
        if args.steps > 0:
            for n, g in res["grads"].items():
                out["grad." + n] = g.to(dtype)
            if args.extras:
                out["output"] = res["output"].to(dtype)
                out["act.audio"] = res["act_audio"].to(dtype)
        for k, v in model.state_dict().items():
            out[k] = v.detach().clone() if not v.is_floating_point() else v.detach().to(dtype)
        out = {k: v.contiguous() for k, v in out.items()}
        meta = dict(model=cfg["model"], attention=cfg["attention"],
                    channels=",".join(map(str, cfg["channels"])), lyrics_dim=str(cfg["lyrics_dim"]),
                    lr=repr(args.lr), clip=repr(args.clip), steps=str(args.steps),
                    weight_decay=repr(args.weight_decay), optimizer="adamw" if args.adamw else "adam",
                    dtype=args.dtype, torch=torch.__version__)
        save_safetensors(out, args.out, metadata=meta)
        losses = ", ".join(f"{x:.9g}" for x in res["loss"].tolist())
        norms = ", ".join(f"{x:.9g}" for x in res["grad_norm"].tolist())
        print(f"wrote {args.out}: loss [{losses}] grad_norm [{norms}]")
        print("step seconds [" + ", ".join(f"{x:.3f}" for x in res["seconds"]) + f"] ({torch.get_num_threads()} threads)")
        did = True

    if not did:
        ap.print_help()
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
