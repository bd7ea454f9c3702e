#!/usr/bin/env bash
# One-off: train the three model sizes side by side on one GPU while the direct GFN2-xTB elastic check runs on the
# CPU cores. Writes checkpoints, logs and metrics to $OUT. (Not part of the pipeline: train.py runs anywhere.)
cd "$(dirname "$0")"
nvidia-smi -L
python3 -c "import torch, nequip, allegro, tblite; print('torch', torch.__version__, torch.cuda.is_available())" || exit 1
python3 train.py split
OMP_NUM_THREADS=1 timeout 400 python3 check_elastic_xtb.py --jobs 8 --out "$OUT/xtb_elastic.json" > "$OUT/xtb.log" 2>&1 &
for size in small two medium; do
  OMP_NUM_THREADS=2 python3 train.py "urea_$size" --size "$size" --epochs 2000 --max-minutes "${MINUTES:-6}" --no-deploy \
      > "$OUT/train_$size.out" 2>&1 &
done
wait
for size in small two medium; do
  mkdir -p "$OUT/$size"
  cp "outputs/urea_$size/best.ckpt" "$OUT/$size/" 2>/dev/null
  cp train_urea_"$size".log "$OUT/$size/" 2>/dev/null
  cp -r outputs/urea_"$size"/csv "$OUT/$size/" 2>/dev/null
done
cp "$OUT"/xtb_elastic.json.part "$OUT/xtb_runs.json" 2>/dev/null
ls -laR "$OUT" | head -50
