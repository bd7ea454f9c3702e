"""Force evaluations and wall time of one elastic tensor with a deployed model: `mlipprops elastic` (defaults) against
the stock LAMMPS examples/ELASTIC flow, side by side, on urea with the bundled Allegro model through the plugin.

With a model, a force evaluation costs far more than anything else (seconds for a paper-size model), so the number
of evaluations is the run time. Both sides start from the same relaxed cell, relax the box once more, and relax the
ions of every strained cell with the same minimizer (cg, etol 0, ftol 1e-4) at the same strain (0.5 %):

  stock  a deck as in.elastic: write_restart, then per strain clear + read_restart + the model + change_box (shears
         by tilting the box) + minimize: 12 cells, each starting from the affinely strained positions;
  ours   `mlipprops elastic --example urea` as a user runs it: one amplitude (a model's default), the strains the
         crystal's symmetry makes equivalent run once (4 of 6 for tetragonal urea), each -d cell starting from the
         mirror of its +d cell's ion relaxation.

Evaluations are counted from the LAMMPS logs (every `minimize` reports its force evaluations; every `run 0` is one).

    .venv/bin/python benchmarks/elastic_evaluations.py [--repeats 3] [--json benchmarks/results/elastic_evaluations.json]
"""
from __future__ import annotations

import argparse
import glob
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from report import write_report

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
STRAIN, FORCE_TOL = 0.005, 1e-4
TILT = {1: "x delta 0 $({d}*lx)", 2: "y delta 0 $({d}*ly)", 3: "z delta 0 $({d}*lz)", 4: "yz delta $({d}*lz)",
        5: "xz delta $({d}*lz)", 6: "xy delta $({d}*ly)"}
PRESSURES = " ".join(f"$({k}:%.12g)" for k in ("pxx", "pyy", "pzz", "pxy", "pxz", "pyz"))
LAMMPS_TO_VOIGT = [0, 1, 2, 5, 4, 3]


def evaluations(folder: Path) -> int:
    n = 0
    for log in glob.glob(str(folder / "log*.lammps")):
        text = Path(log).read_text()
        n += sum(int(m) for m in re.findall(r"Iterations, force evaluations = \d+ (\d+)", text))
        n += len(re.findall(r"^run\s+0\b", text, re.M))
    return n


def stock_deck(data: Path, model: str, plugin: str, types: str) -> str:
    model_lines = f"plugin load {plugin}\npair_style mlipprops/allegro\npair_coeff * * {model} {types}"
    parts = ["units metal", "atom_style atomic", "boundary p p p", f"read_data {data}", "change_box all triclinic",
             model_lines, "min_style cg",
             "fix box_relax all box/relax aniso 0.0 vmax 0.001", f"minimize 0.0 {FORCE_TOL!r} 5000 50000",
             "unfix box_relax", "write_restart reference.restart"]
    for j, change in TILT.items():
        for sign in (-1, 1):
            parts += ["clear", "read_restart reference.restart", model_lines,
                      f"change_box all {change.format(d=sign * STRAIN)} remap units box",
                      f"minimize 0.0 {FORCE_TOL!r} 10000 100000",
                      f'print "STRAIN {j} {sign} {PRESSURES}" append results.txt screen no']
    return "\n".join(parts) + "\n"


def stock_tensor(results: Path) -> np.ndarray:
    plus, minus = np.zeros((6, 6)), np.zeros((6, 6))
    for line in results.read_text().split("\n"):
        f = line.split()
        if f[:1] == ["STRAIN"]:
            (plus if f[2] == "1" else minus)[:, int(f[1]) - 1] = -np.array(f[3:9], float)[LAMMPS_TO_VOIGT] * 1e-4
    C = (plus - minus) / (2 * STRAIN)
    return (C + C.T) / 2


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default=str(HERE / "results" / "elastic_evaluations.json"))
    args = p.parse_args()
    import mlipprops as mp
    from mlipprops import plugin
    if plugin.stale_reason():
        sys.exit(f"the plugin is needed: {plugin.stale_reason()} (mlipprops build-plugin)")
    atoms, potential = mp.example("urea")
    relaxed = mp.relax(atoms, potential).atoms
    types = " ".join(potential.with_types_for(atoms.get_chemical_symbols(), "urea").type_symbols)
    rows = {"stock": [], "ours": []}
    with tempfile.TemporaryDirectory(prefix="elastic_evaluations_") as tmp:
        work = Path(tmp)
        relaxed.write(work / "urea.extxyz")
        relaxed.write(work / "urea.data", format="lammps-data", specorder=types.split(), masses=True)
        for k in range(args.repeats):
            folder = work / f"stock{k}"
            folder.mkdir()
            (folder / "in.elastic").write_text(stock_deck(work / "urea.data", potential.model_info.path,
                                                          plugin.find(), types))
            t0 = time.perf_counter()
            subprocess.run([str(BIN / "lmp"), "-in", "in.elastic", "-screen", "none", "-log", "log.lammps"],
                           cwd=folder, check=True)
            rows["stock"].append({"wall_s": time.perf_counter() - t0, "evaluations": evaluations(folder),
                                  "C": stock_tensor(folder / "results.txt")})
            out = work / f"ours{k}"
            t0 = time.perf_counter()
            subprocess.run([str(BIN / "mlipprops"), "elastic", "--structure", str(work / "urea.extxyz"), "--model",
                            potential.model_info.path, "--backend", "plugin", "--quiet", "--out", str(out)],
                           check=True, capture_output=True)
            record = mp.load(out).to_dict()
            rows["ours"].append({"wall_s": time.perf_counter() - t0, "evaluations": evaluations(out),
                                 "C": np.array(record["C"]), "strained_cells": record["strained_cells"]["count"]})
    summary = {}
    for side, runs in rows.items():
        summary[side] = {"wall_median_s": statistics.median(r["wall_s"] for r in runs),
                         "evaluations": runs[-1]["evaluations"], "C": runs[-1]["C"]}
    Cs, Co = summary["stock"]["C"], summary["ours"]["C"]
    deviation = {name: float(Co[i, j] / Cs[i, j] - 1) for name, (i, j) in
                 {"C33": (2, 2), "C44": (3, 3), "C66": (5, 5), "C13": (0, 2), "C11": (0, 0), "C12": (0, 1)}.items()}
    print(f"urea, bundled model, plugin, strain {STRAIN:g}, ftol {FORCE_TOL:g}; median of {args.repeats}")
    print(f"{'':8s}{'evaluations':>12s}{'wall (s)':>10s}")
    for side in ("stock", "ours"):
        print(f"{side:8s}{summary[side]['evaluations']:>12d}{summary[side]['wall_median_s']:>10.1f}")
    print(f"ours/stock: evaluations {summary['ours']['evaluations'] / summary['stock']['evaluations']:.2f}, wall "
          f"{summary['ours']['wall_median_s'] / summary['stock']['wall_median_s']:.2f}")
    print("ours vs stock: " + ", ".join(f"{k} {100 * v:+.1f} %" for k, v in deviation.items()))
    write_report(args.json, {"benchmark": "elastic tensor with a model: evaluations, mlipprops vs stock ELASTIC",
                             "strain": STRAIN, "force_tol": FORCE_TOL, "repeats": args.repeats, "runs": rows,
                             "summary": summary, "ours_vs_stock": deviation})


if __name__ == "__main__":
    main()
