#!/usr/bin/env python3
"""Urea's 0 K elastic tensor computed directly with GFN2-xTB (ASE + tblite), no model involved, and compared with
mlipprops + the bundled model.

Direct route: the GFN2-xTB-relaxed 2x2x2 supercell of make_data.py (relaxed.extxyz, zero stress, P-4 2_1 m) is
strained by +-delta along the Voigt strains e1, e3, e4 and e6; in each strained cell the ions are relaxed (BFGS,
space group of the strained cell kept) and the stress is read. Central differences give, in the tetragonal
(-42m) class, C11, C12 (sigma2 / e1), C13 (sigma3 / e1 and sigma1 / e3), C33, C44, C66:
C22 = C11, C23 = C13, C55 = C44 by symmetry. Each strain runs in its own process (--jobs), results are cached
per strain in OUT.json.part so that a rerun resumes.

Comparison: with --mlipprops ELASTIC_JSON (mlipprops elastic's output for the bundled model) the script prints
both tensors, the combinations the issue asks for (C33, C13, C44, C66, C11 + C12, bulk modulus) and their
relative deviations, and writes them into OUT.json.

Usage:  python check_elastic_xtb.py [--relaxed data/relaxed.extxyz] [--delta 0.005] [--jobs 2]
                                    [--mlipprops results/urea/elastic.json] [--out data/xtb_elastic.json]
"""
from __future__ import annotations

import argparse
import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np

from mlipprops.tensors import tetragonal_combinations

STRAINS = {"e1": 0, "e3": 2, "e4": 3, "e6": 5}  # Voigt index of each applied strain


def strained_stress(relaxed_path: str, component: int, amount: float, fmax: float) -> dict:
    """Stress (GPa, Voigt, tensile > 0) of the relaxed cell under one Voigt strain, ions relaxed."""
    from ase.constraints import FixSymmetry
    from ase.io import read
    from ase.optimize import BFGS
    from ase.units import GPa
    from tblite.ase import TBLite

    from mlipprops import tensors

    atoms = read(relaxed_path)
    eps = tensors.voigt_strain_tensor(component, amount)
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    atoms.set_constraint(FixSymmetry(atoms))
    opt = BFGS(atoms, logfile=None)
    opt.run(fmax=fmax, steps=300)
    stress = tensors.stress_to_voigt(atoms.get_stress(voigt=False) / GPa)
    return {"component": component, "amount": amount, "stress_GPa": stress.tolist(), "steps": opt.nsteps,
            "max_force": float(np.abs(atoms.get_forces()).max())}


def tetragonal_tensor(runs: dict, delta: float) -> np.ndarray:
    """C (Voigt 6x6) from the four central differences, tetragonal symmetry imposed."""
    d = {name: (np.array(runs[f"{name}+"]["stress_GPa"]) - np.array(runs[f"{name}-"]["stress_GPa"])) / (2 * delta)
         for name in STRAINS}
    C = np.zeros((6, 6))
    C[0, 0] = C[1, 1] = d["e1"][0]
    C[0, 1] = C[1, 0] = d["e1"][1]
    C[0, 2] = C[2, 0] = C[1, 2] = C[2, 1] = 0.5 * (d["e1"][2] + d["e3"][0])
    C[2, 2] = d["e3"][2]
    C[3, 3] = C[4, 4] = d["e4"][3]
    C[5, 5] = d["e6"][5]
    return C


def compare(xtb: dict, model: dict, model_err: dict) -> dict:
    keys = ["C33", "C13", "C44", "C66", "C11+C12", "bulk_reuss", "bulk_voigt", "C11", "C12", "C11-C12"]
    rows = {}
    for k in keys:
        rel = (model[k] - xtb[k]) / abs(xtb[k]) if abs(xtb[k]) > 0.5 else None  # C11 - C12 ~ 0: no ratio
        rows[k] = {"gfn2_xtb": xtb[k], "mlipprops_model": model[k], "mlipprops_model_error": model_err[k],
                   "relative_deviation": rel}
    return rows


def propagated_errors(C: np.ndarray, C_err: np.ndarray, draws: int = 2000) -> dict:
    """Errors of the combinations from the run's C_err, by sampling C within it (entries independent)."""
    rng = np.random.default_rng(0)
    samples = [tetragonal_combinations(C + rng.normal(size=C.shape) * C_err) for _ in range(draws)]
    return {k: float(np.std([d[k] for d in samples])) for k in samples[0]}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--relaxed", default="data/relaxed.extxyz")
    p.add_argument("--delta", type=float, default=0.005)
    p.add_argument("--fmax", type=float, default=0.003, help="ion relaxation threshold, eV/A")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--mlipprops", help="mlipprops elastic.json of the bundled model, to compare with")
    p.add_argument("--out", default="data/xtb_elastic.json")
    args = p.parse_args()

    part = args.out + ".part"
    runs = json.load(open(part)) if os.path.exists(part) else {}
    if not runs and os.path.exists(args.out):  # the finished runs of an earlier call, where tight enough
        earlier = json.load(open(args.out))
        if earlier["delta"] == args.delta:
            runs = {k: r for k, r in earlier["runs"].items() if r["max_force"] <= args.fmax}
    todo = [(f"{name}{sign}", comp, float(f"{sign}1") * args.delta)
            for name, comp in STRAINS.items() for sign in "+-" if f"{name}{sign}" not in runs]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(strained_stress, args.relaxed, comp, amount, args.fmax): key
                   for key, comp, amount in todo}
        for fut in as_completed(futures):
            key = futures[fut]
            runs[key] = fut.result()
            print(f"{key}: stress {np.round(runs[key]['stress_GPa'], 4)} GPa after {runs[key]['steps']} steps",
                  flush=True)
            with open(part, "w") as f:
                json.dump(runs, f, indent=1)
    C = tetragonal_tensor(runs, args.delta)
    result = {"method": "GFN2-xTB (tblite), 2x2x2 supercell, relaxed ions, central differences",
              "delta": args.delta, "fmax_eV_per_A": args.fmax, "C_GPa": C.tolist(),
              "combinations_GPa": tetragonal_combinations(C), "runs": runs}
    print("GFN2-xTB C (GPa):\n" + np.array2string(C, precision=2, suppress_small=True))
    if args.mlipprops:
        record = json.load(open(args.mlipprops))
        Cm = np.array(record["C"])
        result["mlipprops"] = {"source": args.mlipprops, "C_GPa": Cm.tolist(), "C_err_GPa": record["C_err"],
                               "stability": {k: record["stability"][k] for k in
                                             ("verdict", "softest_strain_text", "saddle") if k in record["stability"]},
                               "saddle_check": record.get("saddle_check")}
        result["comparison"] = compare(tetragonal_combinations(C), tetragonal_combinations(Cm),
                                       propagated_errors(Cm, np.array(record["C_err"])))
        # C13 from the e3 strain alone (sigma1 / e3), which keeps the tetragonal symmetry: an e1 strain can set off
        # a soft internal mode, and then the symmetrized C13 carries that response too
        raw = np.array(record["C_unsymmetrized"])
        e3 = (np.array(runs["e3+"]["stress_GPa"]) - np.array(runs["e3-"]["stress_GPa"])) / (2 * args.delta)
        xtb13, model13 = 0.5 * (e3[0] + e3[1]), 0.5 * (raw[0, 2] + raw[1, 2])
        result["comparison"]["C13_from_e3"] = {"gfn2_xtb": xtb13, "mlipprops_model": model13,
                                               "relative_deviation": (model13 - xtb13) / abs(xtb13)}
        # the relaxed cell (mlipprops relaxes the conventional cell; relaxed.extxyz is its 2x2x2 supercell)
        from ase.io import read
        xtb_cell = read(args.relaxed).cell.lengths() / 2
        for name, k in (("a", 0), ("c", 2)):
            mine = record["relaxed"]["lattice"][k]
            result["comparison"][f"cell_{name}_A"] = {"gfn2_xtb": xtb_cell[k], "mlipprops_model": mine,
                                                       "relative_deviation": (mine - xtb_cell[k]) / xtb_cell[k]}
        print("mlipprops + model C (GPa):\n" + np.array2string(Cm, precision=2, suppress_small=True))
        for k, row in result["comparison"].items():
            rel = "" if row["relative_deviation"] is None else f"{100 * row['relative_deviation']:+.1f} %"
            err = f" +- {row['mlipprops_model_error']:.2f}" if row.get("mlipprops_model_error") else ""
            print(f"  {k:10s} GFN2-xTB {row['gfn2_xtb']:7.3f}  model {row['mlipprops_model']:7.3f}{err}  {rel}")
    with open(args.out + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
