#!/usr/bin/env python3
"""Train and deploy the urea Allegro model on make_data.py's GFN2-xTB frames (nequip 0.19.1 + nequip-allegro 0.8.3).

  1. split: every tenth frame of each kind (strain, md) is held out as the test set (data/test.extxyz), the rest
     is data/train.extxyz (nequip splits it 90/10 into train and validation at random, seeded);
  2. `nequip-train` with urea_allegro.yaml (energy + force + stress loss), sizes and epochs from the options;
  3. TorchScript deployment (tests/models/current/compile_torchscript.py: nequip-compile's steps, without its
     torch < 2.10 guard) to NAME.nequip.pth, the format mlipprops' LAMMPS plugin reads.

Run from this folder with the nequip environment's python (see README.md here); the held-out errors of the
deployed model are measured by evaluate_model.py, in mlipprops' own environment, through LAMMPS.

Usage:  python train.py NAME [--epochs N] [--size small|two|medium] [--max-minutes M] [--no-deploy]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from ase.io import read, write

HERE = os.path.dirname(os.path.abspath(__file__))
COMPILE = os.path.join(HERE, "..", "..", "tests", "models", "current", "compile_torchscript.py")
SIZES = {  # Hydra overrides of training_module.model
    "small": dict(l_max=1, num_layers=1, num_scalar_features=32, num_tensor_features=8),
    "two": dict(l_max=1, num_layers=2, num_scalar_features=32, num_tensor_features=8),
    "medium": dict(l_max=1, num_layers=2, num_scalar_features=64, num_tensor_features=16),
}


def split(data: str) -> tuple[int, int]:
    frames = read(data, ":")
    current = [f"data/{n}.extxyz" for n in ("train", "test")]
    if all(os.path.exists(f) and os.path.getmtime(f) >= os.path.getmtime(data) for f in current):
        return tuple(len(read(f, ":")) for f in current)  # already split (runs side by side share it)
    train, test = [], []
    seen: dict[str, int] = {}
    for atoms in frames:
        kind = atoms.info["config_type"]
        seen[kind] = seen.get(kind, 0) + 1
        (test if seen[kind] % 10 == 0 else train).append(atoms)
    for name, frames in (("train", train), ("test", test)):  # atomic: runs side by side may read them
        write(f"data/{name}.part.extxyz", frames, format="extxyz")
        os.replace(f"data/{name}.part.extxyz", f"data/{name}.extxyz")
    return len(train), len(test)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="run name; 'split' only writes the train/test files")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--size", choices=SIZES, default="medium")
    p.add_argument("--data", default="data/urea_gfn2.extxyz")
    p.add_argument("--max-minutes", type=float, help="stop training after this wall time (best epoch kept)")
    p.add_argument("--outputs", default="outputs", help="folder of the training runs")
    p.add_argument("--resume", help="a checkpoint to continue training from (its optimizer and schedule too)")
    p.add_argument("--no-deploy", action="store_true", help="train only (deploy later where torch 2.13 runs)")
    args = p.parse_args()
    n_train, n_test = split(args.data)
    print(f"{n_train} training + validation frames, {n_test} held out", flush=True)
    if args.name == "split":
        return
    overrides = [f"trainer.max_epochs={args.epochs}", f"hydra.run.dir={args.outputs}/{args.name}"]
    overrides += [f"training_module.model.{k}={v}" for k, v in SIZES[args.size].items()]
    if args.resume:
        overrides.append(f"++ckpt_path={os.path.abspath(args.resume)}")
    if args.max_minutes:
        m = int(args.max_minutes)
        overrides.append(f"+trainer.max_time=00:{m // 60:02d}:{m % 60:02d}:{int(60 * (args.max_minutes - m)):02d}")
    t0 = time.time()
    with open(f"train_{args.name}.log", "w") as log:
        subprocess.run([sys.executable, "-m", "nequip.scripts.train", "-cp", HERE, "-cn", "urea_allegro", *overrides],
                       stdout=log, stderr=subprocess.STDOUT, check=True)
    print(f"trained in {time.time() - t0:.0f} s (log: train_{args.name}.log)", flush=True)
    if not args.no_deploy:
        deploy(args.name)


def deploy(name: str) -> None:
    subprocess.run([sys.executable, COMPILE, f"outputs/{name}/best.ckpt", f"{name}.nequip.pth"], check=True)


if __name__ == "__main__":
    main()
