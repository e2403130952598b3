#!/usr/bin/env bash
# Installs the pinned cuobjdump and nvdisasm (NVIDIA's PyPI wheels) next to the pinned nvcc and
# prints the cuobjdump path on stdout. Idempotent: a second run finds the pinned versions and only
# prints (no network needed).
#
#   CUOBJDUMP=$(scripts/install-cuobjdump.sh)
#   $CUOBJDUMP -sass "$OUT_DIR"/conv.sm_90.cubin
#
# NVIDIA publishes these two tools on PyPI only from 13.2.51 on (no 13.0 build); 13.2 reads the
# sm_90 cubins of the pinned ptxas 13.0.88. `cuobjdump -sass` runs nvdisasm, which it finds next to
# itself. Both wheels declare no dependencies and are installed with --no-deps into the venv of
# scripts/install-nvcc.sh (MOODGRAD_NVCC_VENV), so pip never touches the pinned CUDA 13.0 packages;
# the tools only read cubins, nvcc never calls them.
set -euo pipefail
. "$(dirname "$0")/pinned-wheels.sh"

VENV="${MOODGRAD_NVCC_VENV:-$HOME/.cache/moodgrad-nvcc}"
PKGS=(
    nvidia-cuda-cuobjdump==13.2.86
    nvidia-cuda-nvdisasm==13.2.86
)

pinned_install "$VENV" --no-deps "${PKGS[@]}"

SITE=$(site_packages "$VENV")
CUOBJDUMP="$SITE/nvidia/cu13/bin/cuobjdump"
for tool in "$CUOBJDUMP" "$SITE/nvidia/cu13/bin/nvdisasm"; do
    if [ ! -x "$tool" ]; then
        echo "install-cuobjdump.sh: $tool not found after install" >&2
        exit 1
    fi
done
echo "$CUOBJDUMP"
