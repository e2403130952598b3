#!/usr/bin/env python3
"""PyTorch's side of docs/perf-encoder.md: a BERT encoder at sequence 512 on the CPU, forward
(no grad, eval) and forward + backward (train mode, dropout on, loss = 1e-3 * sum of [CLS]),
bert-base-uncased's shape and all-MiniLM-L6-v2's, random weights (transformers' init), a full
batch of random ids (no padding: every token counts).

Prints one JSON line per measurement, the same fields as `cargo run --release --example
encoder_speed` prints for moodgrad: tokens/s of the best of `--reps` runs, and the peak memory
above the model: the peak resident set (ru_maxrss, sampled in a fresh process per measurement)
minus the resident set once the model was built (so, as moodgrad's allocator figure, it counts
the activations and workspaces of a pass and, for the backward, the gradients; glibc returns the
large blocks PyTorch frees to the OS, so the resident set follows what is live).

    ~/.venvs/torch/bin/python tools/bench_torch_encoder.py --threads 2 --batch 1
"""

import argparse
import json
import multiprocessing as mp
import resource
import time


def rss_mib():
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def shape(name):
    from transformers import BertConfig

    if name == "bert-base":
        return BertConfig()  # 30522 vocab, 768 hidden, 12 layers, 12 heads, 3072 FFN
    if name == "minilm":
        return BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
    raise SystemExit(f"unknown shape {name}")


def measure(name, mode, batch, seq, threads, reps, attn, q):
    import torch
    from transformers import BertModel

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = shape(name)
    cfg._attn_implementation = attn
    model = BertModel(cfg)
    ids = torch.randint(1000, cfg.vocab_size, (batch, seq))
    ids[:, 0] = 101
    mask = torch.ones_like(ids)

    def fwd():
        model.eval()
        with torch.no_grad():
            return model(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]

    def fwd_bwd():
        model.train()
        model.zero_grad(set_to_none=True)
        out = model(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]
        (1e-3 * out.sum()).backward()

    run = fwd if mode == "forward" else fwd_bwd
    base = rss_mib()
    run()  # warm-up
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    q.put(
        {
            "impl": f"pytorch {torch.__version__} ({attn} attention)",
            "model": name,
            "mode": mode,
            "batch": batch,
            "seq": seq,
            "threads": threads,
            "seconds": round(best, 4),
            "tokens_per_s": round(batch * seq / best, 1),
            "peak_above_model_mib": round(peak - base, 1),
        }
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="bert-base,minilm")
    ap.add_argument("--modes", default="forward,forward_backward")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--attn", default="eager", help="eager (transformers' BertSelfAttention math) or sdpa")
    a = ap.parse_args()
    ctx = mp.get_context("spawn")
    for name in a.models.split(","):
        for mode in a.modes.split(","):
            q = ctx.Queue()
            p = ctx.Process(target=measure, args=(name, mode, a.batch, a.seq, a.threads, a.reps, a.attn, q))
            p.start()
            print(json.dumps(q.get()), flush=True)
            p.join()


if __name__ == "__main__":
    main()
