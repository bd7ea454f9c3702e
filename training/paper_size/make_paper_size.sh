#!/usr/bin/env bash
# A paper-size Allegro model (paper_size.yaml) for the cost benchmarks: trained for --max-minutes on a few
# GFN2-xTB frames of urea (every 10th frame of training/urea/data/urea_gfn2.extxyz), then deployed to TorchScript.
# Too large for git: it goes to benchmarks/models/paper_size.nequip.pth (ignored), where the benchmarks find it.
#
#   training/paper_size/make_paper_size.sh [VENV] [MINUTES] [WORKDIR]
#
# VENV: a nequip environment (python3 -m venv V && V/bin/pip install torch==2.13.0 && V/bin/pip install
# nequip==0.19.1 nequip-allegro==0.8.3 ase); default /tmp/venv-current. WORKDIR default /tmp/mlipprops-paper-size.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="${1:-/tmp/venv-current}"
MINUTES="${2:-40}"
WORK="${3:-/tmp/mlipprops-paper-size}"
mkdir -p "$WORK" "$REPO/benchmarks/models"
cd "$WORK"
cp "$HERE/paper_size.yaml" .
"$VENV/bin/python" - "$REPO/training/urea/data/urea_gfn2.extxyz" <<'PY'
import sys
from ase.io import read, write
frames = read(sys.argv[1], ":")[::10]
write("frames.extxyz", frames, format="extxyz")
print(f"{len(frames)} frames")
PY
start=$(date +%s)
"$VENV/bin/nequip-train" -cp "$WORK" -cn paper_size "+trainer.max_time=00:$(printf %02d $((MINUTES / 60))):$(printf %02d $((MINUTES % 60))):00" \
    > train.log 2>&1
echo "trained in $(( $(date +%s) - start )) s"
"$VENV/bin/python" "$REPO/tests/models/current/compile_torchscript.py" outputs/paper_size/best.ckpt paper_size.nequip.pth \
    > compile.log 2>&1
cp paper_size.nequip.pth "$REPO/benchmarks/models/paper_size.nequip.pth"
"$VENV/bin/python" - paper_size.nequip.pth <<'PY'
import sys, torch
print("parameters:", sum(p.numel() for p in torch.jit.load(sys.argv[1]).parameters()))
PY
ls -l "$REPO/benchmarks/models/paper_size.nequip.pth"
