#!/usr/bin/env bash
# Regenerate tests/models/cuau_nequip_f64.nequip.pth: a tiny two-layer NequIP (message-passing) model
# (nequip 0.19.1: `nequip-train` with a Hydra config, then the TorchScript compile of ../current).
#
#   tests/models/nequip/make_nequip.sh [VENV] [WORKDIR]
#
# VENV (default /tmp/venv-current) is made if missing, as in ../current/make_current.sh.
# WORKDIR (default /tmp/mlipprops-models-nequip) holds data, Hydra outputs and checkpoints (outside the repo).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODELS="$(dirname "$HERE")"
VENV="${1:-/tmp/venv-current}"
WORK="${2:-/tmp/mlipprops-models-nequip}"

if [ ! -x "$VENV/bin/nequip-train" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install torch==2.13.0
  "$VENV/bin/pip" install nequip==0.19.1 nequip-allegro==0.8.3 ase
fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

mkdir -p "$WORK/data"
cd "$WORK"
"$VENV/bin/python" "$MODELS/make_data.py" data/cuau_emt.extxyz                      # train + val (240)
"$VENV/bin/python" "$MODELS/make_data.py" data/cuau_emt_test.extxyz --frames 48 --seed 7   # test (48)
cp "$HERE"/cuau_nequip_f64.yaml .

name=cuau_nequip_f64
rm -rf "outputs/$name"
start=$(date +%s)
"$VENV/bin/nequip-train" -cp "$WORK" -cn "$name" > "train_$name.log" 2>&1
echo "$name: trained in $(( $(date +%s) - start )) s"
"$VENV/bin/python" "$MODELS/current/compile_torchscript.py" "outputs/$name/best.ckpt" "$name.nequip.pth" \
    > "compile_$name.log" 2>&1
cp "$name.nequip.pth" "$MODELS/$name.nequip.pth"
ls -l "$MODELS/$name.nequip.pth"
