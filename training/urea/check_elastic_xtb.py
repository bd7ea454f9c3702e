#!/usr/bin/env python3
"""Urea's 0 K elastic tensor computed directly with GFN2-xTB (ASE + tblite), no model involved, and compared with
mlipprops + the bundled model.

Direct route: the GFN2-xTB-relaxed 2x2x2 supercell of make_data.py (relaxed.extxyz, zero stress, P-4 2_1 m) is
strained by +-delta along the Voigt strains e1, e3, e4 and e6; in each strained cell the ions are relaxed (BFGS)
and the stress is read. Two ways to relax the ions: inside the space group of the strained cell (default), or
with --free as mlipprops relaxes them, freely, from a start rattled by --rattle (A, seeded per strain) so that a
symmetric saddle cannot hold them; the free runs also give GFN2-xTB's own saddle check, (E(+d) + E(-d))/2 - E0
per strain, which is V d^2 C_jj / 2 > 0 around a minimum. Central differences give, in the tetragonal
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

STRAINS = {"e4": 3, "e1": 0, "e6": 5, "e3": 2}  # Voigt index of each applied strain (the soft ones first)


def strained_stress(relaxed_path: str, component: int, amount: float, fmax: float, rattle: float = 0.0,
                    seed: int = 0, log: str | None = None, steps: list | None = None) -> dict:
    """Stress (GPa, Voigt, tensile > 0) and energy (eV) of the relaxed cell under one Voigt strain, ions relaxed:
    inside the strained cell's symmetry, or (rattle > 0) freely from a rattled start. `steps`: filled with every
    BFGS step as a labelled frame (energy, forces, stress), from the start to the relaxed cell."""
    from ase.constraints import FixSymmetry
    from ase.io import read
    from ase.optimize import BFGS
    from ase.units import GPa
    from tblite.ase import TBLite

    from mlipprops import tensors

    atoms = read(relaxed_path)
    eps = tensors.voigt_strain_tensor(component, amount)
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
    affine = atoms.get_positions()
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    if rattle > 0:
        atoms.rattle(stdev=rattle, seed=seed)
    else:
        atoms.set_constraint(FixSymmetry(atoms))
    opt = BFGS(atoms, logfile=log)
    if steps is not None:
        opt.attach(lambda: steps.append(labelled_copy(atoms)))
    converged = opt.run(fmax=fmax, steps=1000)
    stress = tensors.stress_to_voigt(atoms.get_stress(voigt=False) / GPa)
    return {"component": component, "amount": amount, "stress_GPa": stress.tolist(), "steps": opt.nsteps,
            "converged": bool(converged), "max_force": float(np.abs(atoms.get_forces()).max()),
            "energy_eV": float(atoms.get_potential_energy()), "rattle_A": rattle, "seed": seed,
            "max_ion_displacement_A": float(np.linalg.norm(atoms.get_positions() - affine, axis=1).max())}


def labelled_copy(atoms):
    """The atoms without constraints, with the calculator's energy, raw forces and stress frozen in."""
    from ase.calculators.singlepoint import SinglePointCalculator

    frame = atoms.copy()
    frame.set_constraint()
    frame.calc = SinglePointCalculator(frame, energy=atoms.get_potential_energy(),
                                       forces=atoms.get_forces(apply_constraint=False),
                                       stress=atoms.get_stress(voigt=False))
    return frame


def reference_energy(relaxed_path: str) -> float:
    """GFN2-xTB energy (eV) of the unstrained relaxed cell."""
    from ase.io import read
    from tblite.ase import TBLite
    atoms = read(relaxed_path)
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    return float(atoms.get_potential_energy())


def saddle_check(runs: dict, E0: float, natoms: int) -> dict:
    """(E(+d) + E(-d)) / 2 - E0 per strain (eV and meV/atom): positive around a minimum."""
    rows = {}
    for name in STRAINS:
        change = 0.5 * (runs[f"{name}+"]["energy_eV"] + runs[f"{name}-"]["energy_eV"]) - E0
        rows[name] = {"energy_change_eV": change, "meV_per_atom": 1000 * change / natoms,
                      "max_ion_displacement_A": max(runs[f"{name}{s}"]["max_ion_displacement_A"] for s in "+-")}
    return rows


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
    p.add_argument("--free", action="store_true", help="relax the ions freely from a rattled start, as mlipprops "
                   "does (default: inside the strained cell's symmetry)")
    p.add_argument("--rattle", type=float, default=0.01, help="with --free: rattle of the start, A")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--mlipprops", help="mlipprops elastic.json of the bundled model, to compare with")
    p.add_argument("--out", help="default data/xtb_elastic.json, with --free data/xtb_elastic_free.json")
    args = p.parse_args()
    args.out = args.out or ("data/xtb_elastic_free.json" if args.free else "data/xtb_elastic.json")
    rattle = args.rattle if args.free else 0.0

    part = args.out + ".part"
    runs = json.load(open(part)) if os.path.exists(part) else {}
    if not runs and os.path.exists(args.out):  # the finished runs of an earlier call, where tight enough
        earlier = json.load(open(args.out))
        if earlier["delta"] == args.delta:
            runs = {k: r for k, r in earlier["runs"].items()
                    if r["max_force"] <= args.fmax and r.get("rattle_A", 0.0) == rattle}
    todo = [(f"{name}{sign}", comp, float(f"{sign}1") * args.delta)
            for name, comp in STRAINS.items() for sign in "+-" if f"{name}{sign}" not in runs]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(strained_stress, args.relaxed, comp, amount, args.fmax, rattle,
                               2026 + 10 * comp + (amount > 0), f"{args.out}.{key}.log"): key
                   for key, comp, amount in todo}
        for fut in as_completed(futures):
            key = futures[fut]
            runs[key] = fut.result()
            print(f"{key}: stress {np.round(runs[key]['stress_GPa'], 4)} GPa after {runs[key]['steps']} steps",
                  flush=True)
            with open(part, "w") as f:
                json.dump(runs, f, indent=1)
    C = tetragonal_tensor(runs, args.delta)
    ions = f"ions relaxed freely from a start rattled by {rattle} A" if args.free else \
        "ions relaxed inside the strained cell's symmetry"
    result = {"method": f"GFN2-xTB (tblite), 2x2x2 supercell, {ions}, central differences",
              "ion_relaxation": "free" if args.free else "symmetry kept", "rattle_A": rattle,
              "delta": args.delta, "fmax_eV_per_A": args.fmax, "C_GPa": C.tolist(),
              "combinations_GPa": tetragonal_combinations(C), "runs": runs}
    print("GFN2-xTB C (GPa):\n" + np.array2string(C, precision=2, suppress_small=True))
    if all("energy_eV" in r for r in runs.values()):
        from ase.io import read
        E0 = reference_energy(args.relaxed)
        result["reference_energy_eV"] = E0
        result["saddle_check"] = saddle_check(runs, E0, len(read(args.relaxed)))
        for name, row in result["saddle_check"].items():
            print(f"  {name}: (E+ + E-)/2 - E0 = {row['meV_per_atom']:+.4f} meV/atom, "
                  f"ions moved up to {row['max_ion_displacement_A']:.3f} A")
    if args.mlipprops:
        record = json.load(open(args.mlipprops))
        Cm = np.array(record["C"])
        result["mlipprops"] = {"source": args.mlipprops, "C_GPa": Cm.tolist(), "C_err_GPa": record["C_err"],
                               "stability": {k: record["stability"][k] for k in
                                             ("verdict", "softest_strain_text", "saddle") if k in record["stability"]},
                               "saddle_check": record.get("saddle_check"),
                               "minimum_check": record.get("minimum_check")}
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
