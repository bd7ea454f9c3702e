#!/usr/bin/env bash
# Regenerate tests/models/cuau_legacy_f64.pth and cuau_legacy_f32.pth
# (nequip 0.6.2 + nequip-allegro 0.3.0, `nequip-train` then `nequip-deploy build`).
#
#   tests/models/legacy/make_legacy.sh [VENV] [WORKDIR]
#
# VENV (default /tmp/venv-legacy) is made if missing:
#   python3 -m venv VENV && VENV/bin/pip install torch==2.13.0
#   VENV/bin/pip install "numpy<2" nequip==0.6.2 nequip-allegro==0.3.0 ase
# WORKDIR (default /tmp/mlipprops-models-legacy) holds data and training runs; it must be outside the repo.
# Training runs from inside WORKDIR with relative paths, because the whole config is stored in the
# deployed file (extra file `config`).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODELS="$(dirname "$HERE")"
VENV="${1:-/tmp/venv-legacy}"
WORK="${2:-/tmp/mlipprops-models-legacy}"

if [ ! -x "$VENV/bin/nequip-train" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install torch==2.13.0
  "$VENV/bin/pip" install "numpy<2" nequip==0.6.2 nequip-allegro==0.3.0 ase
fi

# nequip 0.6 calls torch.load on its own pickles; torch >= 2.6 defaults to weights_only=True.
export TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

mkdir -p "$WORK/data"
cd "$WORK"
"$VENV/bin/python" "$MODELS/make_data.py" data/cuau_emt.extxyz

for name in cuau_legacy_f64 cuau_legacy_f32; do
  rm -rf "results/$name"
  cp "$HERE/$name.yaml" "$name.yaml"
  start=$(date +%s)
  "$VENV/bin/nequip-train" "$name.yaml" > "train_$name.log" 2>&1
  echo "$name: trained in $(( $(date +%s) - start )) s"
  "$VENV/bin/nequip-deploy" build --train-dir "results/$name" "$name.pth" > "deploy_$name.log" 2>&1
  cp "$name.pth" "$MODELS/$name.pth"
  # validation metrics at the best epoch (lowest validation_loss; best_model.pth is that epoch)
  "$VENV/bin/python" - "results/$name/metrics_epoch.csv" <<'PY'
import csv, sys
rows = [{k.strip(): v.strip() for k, v in r.items()} for r in csv.DictReader(open(sys.argv[1]))]
best = min(rows, key=lambda r: float(r["validation_loss"]))
print("  best epoch", best["epoch"], "of", rows[-1]["epoch"], ":",
      ", ".join(f"{k}={best[k]}" for k in best if k.startswith("validation_")))
PY
done
ls -l "$MODELS"/cuau_legacy_*.pth
