#!/usr/bin/env bash
# One run, one machine: moodgrad's CPU benches, then PyTorch's equivalents, then the table
# for docs/perf.md. Needs the torch venv of tools/README.md (TORCH_PY points at its python).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${TORCH_PY:-$HOME/.venvs/torch/bin/python}
cargo bench --bench cpu
"$PY" tools/bench_torch_cpu.py --out target/torch_cpu.json > /dev/null
python3 tools/perf_report.py target/torch_cpu.json
