#!/usr/bin/env python3
"""Train and deploy the urea Allegro model on make_data.py's GFN2-xTB frames (nequip 0.19.1 + nequip-allegro 0.8.3).

  1. split: every tenth frame of each kind (strain, md) is held out as the test set (data/test.extxyz), the rest
     is data/train.extxyz (nequip splits it 90/10 into train and validation at random, seeded);
  2. `nequip-train` with urea_allegro.yaml (energy + force + stress loss), sizes and epochs from the options;
  3. TorchScript deployment (tests/models/current/compile_torchscript.py: nequip-compile's steps, without its
     torch < 2.10 guard) to NAME.nequip.pth, the format mlipprops' LAMMPS plugin reads.

Run from this folder with the nequip environment's python (see README.md here); the held-out errors of the
deployed model are measured by evaluate_model.py, in mlipprops' own environment, through LAMMPS.

Every run's settings, frame counts and wall time are appended to runs.json (kept in git: the record of how each
model was made).

Usage:  python train.py NAME [--epochs N] [--size small|two|medium] [--max-minutes M] [--no-deploy]
                             [--from DEPLOYED.nequip.pth] [--lr LR] [--threads N] [--set KEY=VALUE]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
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
    p.add_argument("--from", dest="warm", help="start from the weights of a deployed model of the same --size "
                                               "(warmstart.py; its training checkpoint need not exist)")
    p.add_argument("--lr", type=float, help="initial learning rate (default: the config's)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's, all cores)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other Hydra override of urea_allegro.yaml, e.g. training_module.loss.coeffs.stress=1e5")
    args = p.parse_args()
    n_train, n_test = split(args.data)
    print(f"{n_train} training + validation frames, {n_test} held out", flush=True)
    if args.name == "split":
        return
    overrides = [f"trainer.max_epochs={args.epochs}", f"hydra.run.dir={args.outputs}/{args.name}"]
    overrides += [f"training_module.model.{k}={v}" for k, v in SIZES[args.size].items()]
    if args.resume:
        overrides.append(f"++ckpt_path={os.path.abspath(args.resume)}")
    if args.warm:  # a copy in the run's folder: the checkpoint rebuilds its model from it (the source may be replaced)
        os.makedirs(f"{args.outputs}/{args.name}", exist_ok=True)
        start = os.path.abspath(f"{args.outputs}/{args.name}/warm_start.nequip.pth")
        shutil.copyfile(args.warm, start)
        overrides += ["training_module.model._target_=warmstart.AllegroFromDeployed",
                      f"+training_module.model.deployed_path={start}"]
    if args.lr:
        overrides.append(f"training_module.optimizer.lr={args.lr}")
    overrides += args.set
    if args.max_minutes:
        m = int(args.max_minutes)
        overrides.append(f"+trainer.max_time=00:{m // 60:02d}:{m % 60:02d}:{int(60 * (args.max_minutes - m)):02d}")
    env = dict(os.environ, PYTHONPATH=HERE)  # warmstart.py, for Hydra
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    t0 = time.time()
    with open(f"train_{args.name}.log", "w") as log:
        subprocess.run([sys.executable, "-m", "nequip.scripts.train", "-cp", HERE, "-cn", "urea_allegro", *overrides],
                       stdout=log, stderr=subprocess.STDOUT, check=True, env=env)
    wall = time.time() - t0
    print(f"trained in {wall:.0f} s (log: train_{args.name}.log)", flush=True)
    record(args, overrides, n_train, n_test, wall)
    if not args.no_deploy:
        deploy(args.name)


def record(args, overrides: list[str], n_train: int, n_test: int, wall: float) -> None:
    """Append this run's settings to runs.json (the loss and model of the config, the overrides, frames, wall)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(os.path.join(HERE, "urea_allegro.yaml")).training_module
    path = os.path.join(HERE, "runs.json")
    runs = json.load(open(path)) if os.path.exists(path) else []
    loss = OmegaConf.to_container(cfg.loss.coeffs)  # as run: --set overrides the config's
    loss.update({o.split("=")[0].rsplit(".", 1)[1]: float(o.split("=")[1]) for o in args.set if ".loss.coeffs." in o})
    runs.append({"name": args.name, "data": args.data, "train_and_validation_frames": n_train, "test_frames": n_test,
                 "size": args.size, "warm_start_from": args.warm and os.path.basename(args.warm),
                 "resumed_from": args.resume, "loss": loss,
                 "lr": args.lr or cfg.optimizer.lr, "max_epochs": args.epochs, "max_minutes": args.max_minutes,
                 "threads": args.threads, "overrides": overrides, "wall_s": round(wall),
                 "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
    with open(path + ".tmp", "w") as f:
        json.dump(runs, f, indent=1)
    os.replace(path + ".tmp", path)


def deploy(name: str) -> None:
    # a warm-started checkpoint names warmstart.AllegroFromDeployed as its model builder: importable from here
    subprocess.run([sys.executable, COMPILE, f"outputs/{name}/best.ckpt", f"{name}.nequip.pth"], check=True,
                   env=dict(os.environ, PYTHONPATH=HERE))


if __name__ == "__main__":
    main()
