#!/usr/bin/env bash
# Installs the pinned CUDA 13.0 nvcc (from NVIDIA's PyPI wheels) into a venv outside the repo and
# prints the nvcc path on stdout. Idempotent: a second run finds the pinned versions and only prints.
#
#   NVCC=$(scripts/install-nvcc.sh)
#   $NVCC -arch=compute_80 -ptx kernels/conv.cu -o /tmp/conv.ptx
#
# The wheels carry nvcc, cicc/NVVM, the CRT headers, the runtime headers, CCCL and NVRTC; nvcc finds all
# of them relative to itself, so no -I flags are needed. Override the location with MOODGRAD_NVCC_VENV.
set -euo pipefail

VENV="${MOODGRAD_NVCC_VENV:-$HOME/.cache/moodgrad-nvcc}"
PKGS=(
    nvidia-cuda-nvcc==13.0.88
    nvidia-nvvm==13.0.88
    nvidia-cuda-crt==13.0.88
    nvidia-cuda-runtime==13.0.96
    nvidia-cuda-cccl==13.0.85
    nvidia-cuda-nvrtc==13.0.88
)

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" >&2
fi

# Already installed at exactly these versions? Then skip pip entirely (no network needed).
if ! "$VENV/bin/python" - "${PKGS[@]}" <<'PY' >&2
import sys
from importlib.metadata import version, PackageNotFoundError
for spec in sys.argv[1:]:
    name, want = spec.split("==")
    try:
        if version(name) != want:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PKGS[@]}" >&2
fi

SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
NVCC="$SITE/nvidia/cu13/bin/nvcc"
if [ ! -x "$NVCC" ]; then
    echo "install-nvcc.sh: nvcc not found at $NVCC after install" >&2
    exit 1
fi
echo "$NVCC"
