#!/usr/bin/env bash
# Regenerate tests/models/cuau_current_f64.nequip.pth, cuau_current_pertype.nequip.pth (Allegro) and
# cuau_nequip_f64.nequip.pth (a two-layer NequIP: message passing)
# (nequip 0.19.1 + nequip-allegro 0.8.3: `nequip-train` with a Hydra config, then TorchScript compile).
#
#   tests/models/current/make_current.sh [VENV] [WORKDIR] [NAME ...]     (default: all three)
#
# VENV (default /tmp/venv-current) is made if missing:
#   python3 -m venv VENV && VENV/bin/pip install torch==2.13.0
#   VENV/bin/pip install nequip==0.19.1 nequip-allegro==0.8.3 ase
# WORKDIR (default /tmp/mlipprops-models-current) holds data, Hydra outputs and checkpoints (outside the repo).
# `nequip-compile --mode torchscript` refuses torch >= 2.10, so compile_torchscript.py runs the same
# steps through nequip's own functions (see its docstring).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODELS="$(dirname "$HERE")"
VENV="${1:-/tmp/venv-current}"
WORK="${2:-/tmp/mlipprops-models-current}"
shift $(( $# < 2 ? $# : 2 ))
NAMES="${*:-cuau_current_f64 cuau_current_pertype cuau_nequip_f64}"

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
cp "$HERE"/cuau_*.yaml .

for name in $NAMES; do
  rm -rf "outputs/$name"
  start=$(date +%s)
  "$VENV/bin/nequip-train" -cp "$WORK" -cn "$name" > "train_$name.log" 2>&1
  echo "$name: trained in $(( $(date +%s) - start )) s"
  "$VENV/bin/python" "$HERE/compile_torchscript.py" "outputs/$name/best.ckpt" "$name.nequip.pth" \
      > "compile_$name.log" 2>&1
  cp "$name.nequip.pth" "$MODELS/$name.nequip.pth"
  # validation metrics of the best epoch and the test-set metrics printed by the `test` run
  "$VENV/bin/python" - "outputs/$name/csv" <<'PY'
import csv, glob, sys
f = sorted(glob.glob(sys.argv[1] + "/*/metrics.csv"))[-1]
rows = [r for r in csv.DictReader(open(f)) if r.get("val0_epoch/weighted_sum")]
best = min(rows, key=lambda r: float(r["val0_epoch/weighted_sum"]))
keys = ["per_atom_energy_mae", "forces_mae", "forces_rmse", "stress_mae"]
print("  best val epoch", best["epoch"], "of", rows[-1]["epoch"], ":",
      ", ".join(f"{k}={float(best['val0_epoch/' + k]):.4g}" for k in keys))
test = [r for r in csv.DictReader(open(f)) if r.get("test0_epoch/forces_mae")]
if test:
    print("  test:", ", ".join(f"{k}={float(test[-1]['test0_epoch/' + k]):.4g}" for k in keys))
PY
done
ls -l "$MODELS"/cuau_*.nequip.pth
