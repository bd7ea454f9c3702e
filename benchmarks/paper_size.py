"""The cost of a model of the Allegro molecular-crystal paper's size, measured here and projected to the seed's case.

The model (training/paper_size/: the SI's hyperparameters, float32, H C N O S, briefly trained on GFN2-xTB frames
of urea) is far too slow for the test suite: a force evaluation takes seconds. So this script measures a few MD
steps per case and counts evaluations for the rest:

  per step   urea cells of 128, 192 and 432 atoms through the plugin: 1 rank x 1 thread, 1 rank x 2 threads,
             2 ranks x 1 thread, seconds per step and per atom-step, peak memory per rank; the same model in
             nequip's ASE calculator (128 atoms) for comparison; glibc's malloc tuned or not (128 atoms);
  a tensor   force evaluations of one relaxed-ion tensor with the bundled urea model through the plugin (a force
             evaluation is a force evaluation, whatever the model): ours with the symmetry reduction (tetragonal
             urea: 8 strained cells) and without it (12 cells, as a monoclinic crystal needs), and the wall time of
             the strained cells split over 2 task groups (2 ranks) against 1 (task-group efficiency);
  projection the seed's case (the paper's model, a sildenafil-size cell of 504 atoms, 64 cores): evaluations
             x seconds per evaluation at 504 atoms (linear in atoms, from the measured sizes) / (64 x efficiency),
             for the stock flow (2500 evaluations and 13 model loads, benchmarks/elastic_evaluations.py) and ours.

    .venv/bin/python benchmarks/paper_size.py [--model benchmarks/models/paper_size.nequip.pth] [--steps 3]
        [--nequip-python /work/venv-train/bin/python] [--json benchmarks/results/paper_size.json]
    (a legacy-format model: --nequip-python of a venv with nequip 0.6, see make_paper_size_legacy.sh)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from report import write_report

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
WORKER = textwrap.dedent("""
    import json, resource, sys, time
    import numpy as np
    import mlipprops as mp
    from mlipprops.system import System
    from mpi4py import MPI
    model, repeat, steps = sys.argv[1], tuple(int(x) for x in sys.argv[2].split(",")), int(sys.argv[3])
    atoms, _ = mp.example("urea")
    atoms = atoms.repeat(repeat)
    pot = mp.Potential.model(model, "plugin").with_types_for(atoms.get_chemical_symbols(), "urea")
    engine = System(atoms, pot, "urea").open_engine(MPI.COMM_WORLD)
    engine.set_velocities(300.0, 1)
    engine.command("fix nve all nve\\ntimestep 0.0005\\nrun 1")  # load, warm up
    t0 = time.perf_counter()
    engine.command(f"run {steps}")
    dt = (time.perf_counter() - t0) / steps
    rss = MPI.COMM_WORLD.gather(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2)
    if MPI.COMM_WORLD.Get_rank() == 0:
        print("RESULT " + json.dumps({"natoms": len(atoms), "s_per_step": dt, "max_rss_gib": max(rss)}))
""")
ASE_WORKER = textwrap.dedent("""
    import json, resource, sys, time
    import numpy as np, torch
    from ase.io import read
    torch.set_num_threads(1)
    atoms = read(sys.argv[2])
    try:
        from nequip.integrations.ase import NequIPCalculator
        atoms.calc = NequIPCalculator.from_compiled_model(sys.argv[1], device="cpu",
                                                           chemical_species_to_atom_type_map=True)
    except ImportError:  # nequip 0.6, for a legacy-format model
        from nequip.ase import NequIPCalculator
        from nequip.scripts.deploy import TYPE_NAMES_KEY, load_deployed_model
        names = load_deployed_model(sys.argv[1], device="cpu", freeze=False)[1][TYPE_NAMES_KEY].split(" ")
        atoms.calc = NequIPCalculator.from_deployed_model(sys.argv[1], device="cpu",
                                                          species_to_type_name={n: n for n in names})
    atoms.get_forces()
    steps = int(sys.argv[3])
    t0 = time.perf_counter()
    for _ in range(steps):
        atoms.positions += 1e-4
        atoms.get_forces()
    print("RESULT " + json.dumps({"natoms": len(atoms), "s_per_step": (time.perf_counter() - t0) / steps,
                                  "max_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2}))
""")
CASES = {"1 rank x 1 thread": (1, 1), "1 rank x 2 threads": (1, 2), "2 ranks x 1 thread": (2, 1)}
SIZES = {"128": "2,2,2", "192": "2,2,3", "432": "3,3,3"}


def run(command: list[str], env: dict) -> dict:
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env})
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-1:]}
    return json.loads(lines[-1][7:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=str(HERE / "models" / "paper_size.nequip.pth"))
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--nequip-python", default="",
                   help="a Python with nequip (for its ASE calculator); skipped if not given")
    p.add_argument("--stock-evaluations", type=int, default=1506,
                   help="evaluations of the stock flow (benchmarks/elastic_evaluations.py on urea, 3 Dec 2026)")
    p.add_argument("--json", default=str(HERE / "results" / "paper_size.json"))
    args = p.parse_args()
    if not Path(args.model).is_file():
        sys.exit(f"{args.model} not found: make it with training/paper_size/make_paper_size.sh")
    import torch
    module = torch.jit.load(args.model)
    model = {"file": args.model, "bytes": Path(args.model).stat().st_size,
             "parameters": int(sum(p.numel() for p in module.parameters()))}
    print(f"model: {model['parameters']:,} parameters, {model['bytes'] / 2**20:.1f} MiB")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "worker.py"
        script.write_text(WORKER)
        for size in args.sizes:
            for case, (ranks, threads) in CASES.items():
                env = {"OMP_NUM_THREADS": str(threads), "MLIPPROPS_TORCH_THREADS": str(threads)}
                cmd = [sys.executable, str(script), args.model, SIZES[size], str(args.steps)]
                if ranks > 1:
                    cmd = [str(BIN / "mpiexec"), "-n", str(ranks), *cmd]
                t0 = time.perf_counter()
                r = run(cmd, env)
                rows.append({"atoms": int(size), "case": case, **r, "wall_s": time.perf_counter() - t0})
                print(rows[-1], flush=True)
            if size == args.sizes[0]:
                r = run([sys.executable, str(script), args.model, SIZES[size], str(args.steps)],
                        {"OMP_NUM_THREADS": "1", "MLIPPROPS_MALLOC_TUNE": "0"})
                rows.append({"atoms": int(size), "case": "1 rank x 1 thread, glibc malloc untuned", **r})
                print(rows[-1], flush=True)
                if args.nequip_python and Path(args.nequip_python).is_file():
                    import mlipprops as mp
                    atoms, _ = mp.example("urea")
                    atoms.repeat(tuple(int(x) for x in SIZES[size].split(","))).write(Path(tmp) / "cell.extxyz")
                    (Path(tmp) / "ase_worker.py").write_text(ASE_WORKER)
                    r = run([args.nequip_python, str(Path(tmp) / "ase_worker.py"), args.model,
                             str(Path(tmp) / "cell.extxyz"), str(args.steps)], {"OMP_NUM_THREADS": "1"})
                    rows.append({"atoms": int(size), "case": "nequip ASE calculator, 1 thread", **r})
                    print(rows[-1], flush=True)
        tensor = tensor_costs(Path(tmp))
    print("tensor:", tensor)
    projection = project(rows, tensor, args.stock_evaluations)
    for line in projection["table"]:
        print(line)
    write_report(args.json, {"benchmark": "paper-size Allegro model: cost per step, memory, projection",
                             "model": model, "steps": args.steps, "rows": rows, "tensor": tensor,
                             "projection": projection})


def tensor_costs(tmp: Path) -> dict:
    """Evaluations of one relaxed-ion urea tensor (bundled model, plugin) with and without the symmetry
    reduction; wall time on 1 and 2 ranks (2 task groups)."""
    import mlipprops as mp
    from elastic_evaluations import evaluations
    atoms, potential = mp.example("urea")
    potential = mp.Potential.model(potential.model_info.path, "plugin")
    relaxed = mp.relax(atoms, potential).atoms
    result = {}
    for name, keywords in (("symmetry, 1 rank", {}), ("no symmetry, 1 rank", {"use_symmetry": False}),
                           ("no symmetry, 2 ranks", {"use_symmetry": False, "np": 2, "groups": 2})):
        out = tmp / name.replace(" ", "_").replace(",", "")
        t0 = time.perf_counter()
        r = mp.elastic(relaxed, potential, no_relax=True, out=str(out), quiet=True, **keywords).to_dict()
        result[name] = {"evaluations": evaluations(out), "wall_s": time.perf_counter() - t0,
                        "cells": r["strained_cells"]["count"]}
    one, two = result["no symmetry, 1 rank"]["wall_s"], result["no symmetry, 2 ranks"]["wall_s"]
    result["group_efficiency_2_ranks"] = one / (2 * two)
    return result


def project(rows: list[dict], tensor: dict, stock_evaluations: int, atoms: int = 504, cores: int = 64) -> dict:
    """Hours for one tensor of a 504-atom cell on 64 cores: seconds per evaluation on one core, linear in the
    atom count (least squares through the measured sizes), divided by cores x an assumed parallel efficiency
    (the measured 2-rank one capped at 1: a superlinear 2-rank speed-up from smaller tensors per rank does not
    carry to 64 ranks; and 0.5 for ~8 atoms per rank), times the evaluation count."""
    import numpy as np
    one = [(r["atoms"], r["s_per_step"]) for r in rows if r.get("case") == "1 rank x 1 thread" and "s_per_step" in r]
    two = {r["atoms"]: r["s_per_step"] for r in rows if r.get("case") == "2 ranks x 1 thread" and "s_per_step" in r}
    n, t = np.array(one, float).T
    per_atom = float(n @ t / (n @ n))
    efficiency_2 = min(1.0, float(np.mean([dict(one)[k] / (2 * v) for k, v in two.items() if k in dict(one)])))
    ours = {"symmetric (tetragonal)": tensor["symmetry, 1 rank"]["evaluations"],
            "all 6 directions (monoclinic)": tensor["no symmetry, 1 rank"]["evaluations"]}
    table = [f"per atom-evaluation on one core: {per_atom:.3f} s; 2-rank efficiency {efficiency_2:.2f}",
             f"| flow | evaluations | hours at efficiency {efficiency_2:.2f} | hours at efficiency 0.50 |",
             "|---|---:|---:|---:|"]
    hours = {}
    for flow, count in {"stock": stock_evaluations, **{f"ours, {k}": v for k, v in ours.items()}}.items():
        h = [count * per_atom * atoms / (cores * e) / 3600 for e in (efficiency_2, 0.5)]
        hours[flow] = {"evaluations": count, "hours": h}
        table.append(f"| {flow} | {count} | {h[0]:.2f} | {h[1]:.2f} |")
    return {"atoms": atoms, "cores": cores, "s_per_atom_evaluation_1_core": per_atom,
            "efficiency_2_ranks": efficiency_2, "flows": hours, "table": table}


if __name__ == "__main__":
    main()
