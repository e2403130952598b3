#!/usr/bin/env bash
# Builds, on this (x86-64, no GPU) machine, everything a lent GPU machine needs, into gpu-bin/
# (git-ignored): the release binary, every test executable and the bench executables, with the
# kernels' PTX embedded (pinned nvcc). Then on the device, from the repository root:
#   gpu-bin/run.sh            # CUDA test suite + device benches + PyTorch's equivalents
set -euo pipefail
cd "$(dirname "$0")/.."
NVCC="$(scripts/install-nvcc.sh)"
export NVCC MOODGRAD_REQUIRE_PTX=1
rm -rf gpu-bin && mkdir -p gpu-bin/tests gpu-bin/benches
cargo build --release
cp target/release/moodgrad gpu-bin/
cargo test --release --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["profile"]["test"]: print(m["executable"])' \
  | xargs -I{} cp {} gpu-bin/tests/
cargo bench --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["kind"]==["bench"]: print(m["executable"])' \
  | xargs -I{} cp {} gpu-bin/benches/
cat > gpu-bin/run.sh <<'RUN'
#!/usr/bin/env bash
# On the GPU machine, from the repository root (tests read tests/fixtures/ relative to it).
set -u
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
for t in gpu-bin/tests/*; do echo "== $t"; "$t" --test-threads=1 2>&1 | tail -25; done
for b in gpu-bin/benches/device-*; do echo "== $b"; "$b" --bench 2>&1 | grep -E "time:|thrpt:|^[a-z_]+/"; done
python3 tools/bench_torch_gpu.py
RUN
chmod +x gpu-bin/run.sh
echo "gpu-bin/ ready: $(ls gpu-bin/tests | wc -l) test executables, $(ls gpu-bin/benches | wc -l) benches"
