#!/usr/bin/env bash
# Builds, on this (x86-64, no GPU) machine, what a lent GPU machine runs, into gpu-bin/
# (git-ignored): the release binary and only the test executables that launch on a GPU, with
# every kernel's cubins and PTX embedded (pinned nvcc). Then on the device, from the repository
# root (the tests read tests/fixtures/ relative to it):
#   gpu-bin/run.sh            # ≤ 5 minutes on an H100/H200: tests, sanitizers, a full-size step, benches
#   gpu-bin/run.sh --quick    # ≤ 2 minutes: the CUDA tests alone
# Everything it measures lands in ${OUT:-gpu-out}/ for docs/gpu-log.md.
set -euo pipefail
cd "$(dirname "$0")/.."
NVCC="$(scripts/install-nvcc.sh)"
export NVCC MOODGRAD_REQUIRE_PTX=1
# The tests that open CUDA device 0 (through device::kernel_devices or --device cuda): the kernels
# against the CPU (FP32), the PyTorch goldens, the batched audio front end, the TF32 convolutions,
# the text kernels. (tests/cli.rs's TF32 step on the card needs the binary at this machine's path:
# run.sh's full-size step against PyTorch stands in for it there.)
GPU_TESTS=(backend_kernels text_kernels golden audio_batch conv_tc)
rm -rf gpu-bin && mkdir -p gpu-bin/tests
cargo build --release
cp target/release/moodgrad gpu-bin/
args=()
for t in "${GPU_TESTS[@]}"; do args+=(--test "$t"); done
cargo test --release --no-run --message-format=json "${args[@]}" 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["profile"]["test"]: print(m["executable"])' \
  | xargs -I{} cp {} gpu-bin/tests/
# ~90 MB of executables (five cubins per kernel file each) packed to fit what a device call carries.
strip gpu-bin/moodgrad gpu-bin/tests/*
tar -C gpu-bin -cf - moodgrad tests | xz -6 -T0 > gpu-bin/bundle.tar.xz
rm -rf gpu-bin/moodgrad gpu-bin/tests
cat > gpu-bin/run.sh <<'RUN'
#!/usr/bin/env bash
# On the GPU machine, from the repository root. Every CUDA run must really run: a test that cannot
# open the device fails (MOODGRAD_REQUIRE_CUDA=1) instead of skipping.
set -u
[ -d gpu-bin/tests ] || xz -dc gpu-bin/bundle.tar.xz | tar -C gpu-bin -xf -
export MOODGRAD_REQUIRE_CUDA=1 RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-8}"
OUT="${OUT:-gpu-out}"; mkdir -p "$OUT"
quick=0; [ "${1:-}" = "--quick" ] && quick=1
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start )) s] $*"; }
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm --format=csv | tee "$OUT/device.txt"
# 1. The CUDA tests (FP32 against the CPU, TF32 at the card's default), all binaries at once.
stamp "tests" | tee "$OUT/tests.txt"
pids=()
for t in gpu-bin/tests/*; do
  ( timeout 150 "$t" --test-threads=2 > "$OUT/test-$(basename "$t").txt" 2>&1; echo "exit $?" >> "$OUT/test-$(basename "$t").txt" ) &
  pids+=($!)
done
wait "${pids[@]}"
for f in "$OUT"/test-*.txt; do echo "== $f"; grep -E "^test result|panicked|FAILED|^exit" "$f"; done | tee -a "$OUT/tests.txt"
[ "$quick" = 1 ] && { stamp "quick run done"; exit 0; }
# 2. compute-sanitizer on the kernel tests that launch on the GPU (racecheck: shared-memory
#    hazards; memcheck: out-of-bounds and misaligned accesses).
CS="$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)"
stamp "sanitizers" | tee "$OUT/sanitizer.txt"
if [ -n "$CS" ]; then
  for t in gpu-bin/tests/backend_kernels-* gpu-bin/tests/conv_tc-*; do
    for tool in memcheck racecheck; do
      echo "== $tool $t"
      timeout 60 "$CS" --tool "$tool" --error-exitcode 9 "$t" --test-threads=1 2>&1 | tail -6
      echo "exit ${PIPESTATUS[0]}"
    done
  done >> "$OUT/sanitizer.txt" 2>&1
else
  echo "no compute-sanitizer on this machine: skipped" >> "$OUT/sanitizer.txt"
fi
# 3. One full-size MODEL_3 + SE training step at batch 16 (TF32, the card's default) against
#    PyTorch's (tools/torch_step.py, same weights and batch): loss and gradient norm.
stamp "full-size step" | tee "$OUT/step.txt"
W="$OUT/step-w.safetensors"; B="$OUT/step-b.safetensors"
timeout 60 python3 tools/torch_step.py --model model3 --attention se --seed 3 --input 16x1x128x1292 \
  --init-out "$W" --batch-out "$B" >> "$OUT/step.txt" 2>&1
timeout 90 python3 tools/torch_step.py --weights "$W" --batch "$B" --steps 1 --threads 8 --out "$OUT/step-torch.safetensors" >> "$OUT/step.txt" 2>&1
timeout 60 gpu-bin/moodgrad step --device cuda --weights "$W" --batch "$B" --steps 1 --out "$OUT/step-ours.safetensors" >> "$OUT/step.txt" 2>&1
python3 - "$OUT/step-torch.safetensors" "$OUT/step-ours.safetensors" >> "$OUT/step.txt" 2>&1 <<'PY'
import sys
from safetensors.numpy import load_file
t, o = load_file(sys.argv[1]), load_file(sys.argv[2])
for k in ("loss", "grad_norm"):
    a, b = float(t[k][0]), float(o[k][0])
    # TF32 rounds every convolution operand to 10 mantissa bits: ~1e-3 relative on these sums.
    print(f"{k}: torch (fp32, CPU) {a:.6g}, moodgrad (cuda, tf32) {b:.6g}, rel diff {abs(a-b)/abs(a):.2e}",
          "OK" if abs(a - b) <= 1e-2 * abs(a) else "OFF")
PY
# 4. Kernel benches, ours (fp32 and tf32 convolutions) beside PyTorch's (same JSON shape).
stamp "benches" | tee "$OUT/bench.txt"
for p in fp32 tf32; do
  timeout 60 gpu-bin/moodgrad bench kernels --device cuda --op all --precision "$p" --json > "$OUT/moodgrad-$p.json" 2>> "$OUT/bench.txt"
done
timeout 90 python3 tools/bench_torch_gpu.py --device cuda --out "$OUT/torch.json" >> "$OUT/bench.txt" 2>&1
for p in fp32 tf32; do python3 tools/bench_compare.py "$OUT/moodgrad-$p.json" "$OUT/torch.json" > "$OUT/compare-$p.md"; done
stamp "done" | tee -a "$OUT/bench.txt"
cat "$OUT/tests.txt" "$OUT/step.txt"; tail -n 20 "$OUT/sanitizer.txt"; cat "$OUT"/compare-*.md
RUN
chmod +x gpu-bin/run.sh
echo "gpu-bin/ ready ($(du -h gpu-bin/bundle.tar.xz | cut -f1) packed): carry gpu-bin and run gpu-bin/run.sh (or --quick)"
