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
# On the GPU machine, from the repository root (tests read tests/fixtures/ relative to it). Plans
# for about 8 minutes; everything lands in ${OUT:-gpu-out}/ for docs/gpu-log.md and docs/perf.md.
set -u
OUT="${OUT:-gpu-out}"; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$OUT/device.txt"
# 1. The CUDA suite (every test that opens Cuda(0) runs there too; sim runs as on CI).
for t in gpu-bin/tests/*; do
  echo "== $t"; timeout 120 "$t" --test-threads=1 2>&1 | tail -25
done > "$OUT/tests.txt" 2>&1
# 2. compute-sanitizer on the kernel tests (racecheck: shared-memory hazards; memcheck: bounds).
CS="$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)"
if [ -n "$CS" ]; then
  for t in gpu-bin/tests/backend_kernels-* gpu-bin/tests/conv_tc-*; do
    for tool in memcheck racecheck; do
      echo "== $tool $t"; timeout 150 "$CS" --tool "$tool" --error-exitcode 9 "$t" --test-threads=1 2>&1 | tail -8
    done
  done > "$OUT/sanitizer.txt" 2>&1
else
  echo "no compute-sanitizer on this machine" > "$OUT/sanitizer.txt"
fi
# 3. Kernel benches, ours (fp32 and tf32 convolutions) beside PyTorch's (same JSON shape).
for p in fp32 tf32; do
  timeout 120 gpu-bin/moodgrad bench kernels --device cuda --op all --precision "$p" --json > "$OUT/moodgrad-$p.json"
done
timeout 120 python3 tools/bench_torch_gpu.py --device cuda --out "$OUT/torch.json"
for p in fp32 tf32; do python3 tools/bench_compare.py "$OUT/moodgrad-$p.json" "$OUT/torch.json" > "$OUT/compare-$p.md"; done
tail -n 3 "$OUT"/*.txt; cat "$OUT"/compare-*.md
RUN
chmod +x gpu-bin/run.sh
echo "gpu-bin/ ready: $(ls gpu-bin/tests | wc -l) test executables, $(ls gpu-bin/benches | wc -l) benches"
