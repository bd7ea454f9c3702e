#!/usr/bin/env bash
# The paper-size Allegro model in the legacy format (paper_size_legacy.yaml: nequip 0.6.2 + nequip-allegro 0.3.0, the
# framework of the molecular-crystal paper), trained EPOCHS epochs on every 10th GFN2-xTB frame of urea, then
# `nequip-deploy build`. Goes to benchmarks/models/paper_size_legacy.pth (ignored), where the benchmarks find it.
#
#   training/paper_size/make_paper_size_legacy.sh [VENV] [EPOCHS] [WORKDIR]
#
# VENV (default /tmp/venv-legacy): python3 -m venv V && V/bin/pip install torch==2.13.0 &&
#   V/bin/pip install "numpy<2" nequip==0.6.2 nequip-allegro==0.3.0 ase
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="${1:-/tmp/venv-legacy}"
EPOCHS="${2:-2}"
WORK="${3:-/tmp/mlipprops-paper-size-legacy}"
export TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1  # nequip 0.6 torch.loads its own pickles
mkdir -p "$WORK" "$REPO/benchmarks/models"
cd "$WORK"
rm -rf results/paper_size_legacy
sed "s/^max_epochs: .*/max_epochs: $EPOCHS/" "$HERE/paper_size_legacy.yaml" > paper_size_legacy.yaml
"$VENV/bin/python" - "$REPO/training/urea/data/urea_gfn2.extxyz" <<'PY'
import sys
from ase.io import read, write
write("frames.extxyz", read(sys.argv[1], ":")[::10], format="extxyz")
PY
start=$(date +%s)
"$VENV/bin/nequip-train" paper_size_legacy.yaml > train.log 2>&1
echo "trained in $(( $(date +%s) - start )) s"
"$VENV/bin/nequip-deploy" build --train-dir results/paper_size_legacy paper_size_legacy.pth > deploy.log 2>&1
cp paper_size_legacy.pth "$REPO/benchmarks/models/paper_size_legacy.pth"
tail -n 3 results/paper_size_legacy/metrics_epoch.csv
"$VENV/bin/python" - paper_size_legacy.pth <<'PY'
import sys, torch
print("parameters:", sum(p.numel() for p in torch.jit.load(sys.argv[1]).parameters()))
PY
ls -l "$REPO/benchmarks/models/paper_size_legacy.pth"
