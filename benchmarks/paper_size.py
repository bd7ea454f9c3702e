"""The cost of a model of the Allegro molecular-crystal paper's size, measured here and projected to the seed's case.

The model (training/paper_size/: the SI's hyperparameters, float32, H C N O S, briefly trained on GFN2-xTB frames
of urea) is far too slow for the test suite: a force evaluation takes seconds. So this script measures a few MD
steps per case and counts evaluations for the rest:

  per step   urea cells of 128, 192 and 432 atoms through the plugin: 1 rank x 1 thread, 1 rank x 2 threads,
             2 ranks x 1 thread, seconds per step and per atom-step, peak memory per rank; the same model in
             nequip's ASE calculator (128 atoms) for comparison; glibc's malloc tuned or not (128 atoms);
  a tensor   force evaluations of one relaxed-ion tensor, ours vs the stock flow, from the bundled urea model
             (benchmarks/elastic_evaluations.py: 1103 against 2500), times the measured cost per evaluation;
  projection the seed's case: the paper's model, a sildenafil-size cell (~500 atoms), 64 cores.

    .venv/bin/python benchmarks/paper_size.py [--model benchmarks/models/paper_size.nequip.pth] [--steps 3]
        [--nequip-python /tmp/venv-current/bin/python] [--json benchmarks/results/paper_size.json]
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
    from nequip.integrations.ase import NequIPCalculator
    torch.set_num_threads(1)
    atoms = read(sys.argv[2])
    atoms.calc = NequIPCalculator.from_compiled_model(sys.argv[1], device="cpu")
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
    p.add_argument("--nequip-python", default="/tmp/venv-current/bin/python")
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
                if Path(args.nequip_python).is_file():
                    import mlipprops as mp
                    atoms, _ = mp.example("urea")
                    atoms.repeat(tuple(int(x) for x in SIZES[size].split(","))).write(Path(tmp) / "cell.extxyz")
                    (Path(tmp) / "ase.py").write_text(ASE_WORKER)
                    r = run([args.nequip_python, str(Path(tmp) / "ase.py"), args.model, str(Path(tmp) / "cell.extxyz"),
                             str(args.steps)], {"OMP_NUM_THREADS": "1"})
                    rows.append({"atoms": int(size), "case": "nequip ASE calculator, 1 thread", **r})
                    print(rows[-1], flush=True)
    write_report(args.json, {"benchmark": "paper-size Allegro model: cost per step, memory", "model": model,
                             "steps": args.steps, "rows": rows})


if __name__ == "__main__":
    main()
