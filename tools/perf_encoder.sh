#!/usr/bin/env bash
# The lyrics encoder's CPU table of docs/perf.md: moodgrad (examples/encoder_speed.rs) and PyTorch
# (tools/bench_torch_encoder.py, eager and sdpa attention) at sequence 512, batch 1, both with 2
# threads, alternating one measurement at a time (so a change in the machine's load hits both
# sides alike) for ROUNDS rounds (env: ROUNDS, REPS, THREADS, MODELS, MODES). Each line of the
# output is one measurement's JSON with the round and the 1-minute load average taken before it.
#
#   TORCH_PY=/root/.venvs/torch/bin/python tools/perf_encoder.sh > /tmp/encoder.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_PY="${TORCH_PY:-python3}"
ROUNDS="${ROUNDS:-3}"
REPS="${REPS:-3}"
THREADS="${THREADS:-2}"
MODELS="${MODELS:-bert-base minilm}"
MODES="${MODES:-forward forward_backward}"
cargo build --release --example encoder_speed >&2
BIN=target/release/examples/encoder_speed

for round in $(seq 1 "$ROUNDS"); do
    for model in $MODELS; do
        for mode in $MODES; do
            short=$([ "$mode" = forward ] && echo fwd || echo bwd)
            load=$(cut -d' ' -f1 /proc/loadavg)
            RAYON_NUM_THREADS=$THREADS "$BIN" "$model" 1 "$REPS" "$short" | sed "s/^{/{\"round\": $round, \"load1\": $load, /"
            for attn in eager sdpa; do
                load=$(cut -d' ' -f1 /proc/loadavg)
                OMP_NUM_THREADS=$THREADS "$TORCH_PY" tools/bench_torch_encoder.py --threads "$THREADS" --batch 1 \
                    --models "$model" --modes "$mode" --reps "$REPS" --attn "$attn" |
                    sed "s/^{/{\"round\": $round, \"load1\": $load, /"
            done
        done
    done
done
