#!/usr/bin/env bash
# One run, one machine: moodgrad's CPU benches, then PyTorch's equivalents, then the table
# for docs/perf.md. Needs the torch venv of tools/README.md (TORCH_PY points at its python).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${TORCH_PY:-$HOME/.venvs/torch/bin/python}
# Every group but the per-algorithm conv sweep (conv2d_algos, several minutes more; ALGOS=1 adds it).
FILTER='^(conv2d_fwd_bwd|vgg_unit|se_block|train_step)/'
[ "${ALGOS:-0}" = 1 ] && FILTER='.'
cargo bench --bench cpu -- --noplot "$FILTER"
"$PY" tools/bench_torch_cpu.py --out target/torch_cpu.json > /dev/null
python3 tools/perf_report.py target/torch_cpu.json
