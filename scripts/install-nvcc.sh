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
. "$(dirname "$0")/pinned-wheels.sh"

VENV="${MOODGRAD_NVCC_VENV:-$HOME/.cache/moodgrad-nvcc}"
PKGS=(
    nvidia-cuda-nvcc==13.0.88
    nvidia-nvvm==13.0.88
    nvidia-cuda-crt==13.0.88
    nvidia-cuda-runtime==13.0.96
    nvidia-cuda-cccl==13.0.85
    nvidia-cuda-nvrtc==13.0.88
)

pinned_install "$VENV" "" "${PKGS[@]}"

SITE=$(site_packages "$VENV")
NVCC="$SITE/nvidia/cu13/bin/nvcc"
if [ ! -x "$NVCC" ]; then
    echo "install-nvcc.sh: nvcc not found at $NVCC after install" >&2
    exit 1
fi
echo "$NVCC"
