#!/usr/bin/env python3
"""Errors of a deployed urea model against GFN2-xTB on held-out frames, evaluated the way users run it: through
mlipprops' LAMMPS engine (the plugin, or the Python fallback where the plugin is not built).

Prints and writes (--json) per kind of frame (strain, rigid, near, md) and overall: energy MAE (meV/atom; also its
mean and spread), force MAE and RMSE (eV/A), stress MAE and RMSE (GPa, 6 Voigt components) and the number of frames;
and the energy offset between molten and crystal-like frames ("molten_minus_crystal_meV_per_atom": the mean error
of the MD melt and liquid frames, 450-900 K, less that of the crystal-like ones), which shifts a melting point by about
offset / entropy of fusion: what a coexistence T_m is most sensitive to; and the same for the hot-liquid frames
(1100-1300 K, where mlipprops melt makes its liquid half: "hot_minus_crystal_meV_per_atom").

With --hot T [T ...]: NVT MD of the relaxed 2x2x2 cell at liquid density (10 % expanded, molecules moved rigidly)
at each temperature for --hot-ps ps (H mass 4, 1 fs steps), checking every 0.5 ps that every molecule is still
urea: a coexistence melting point needs a model that keeps molecules whole where it makes the liquid (mlipprops
melt makes it at 1.2x the temperature at which its heating ramp melts the crystal). Written as "hot_liquid".

Usage:  python evaluate_model.py MODEL.nequip.pth [--frames data/test.extxyz] [--json metrics.json]
                                 [--hot T [T ...]] [--hot-ps PS]
"""
from __future__ import annotations

import argparse
import json

import numpy as np
from ase.io import read
from ase.units import GPa

import mlipprops as mp
from mlipprops import tensors


def errors(model: str, frames) -> dict:
    potential = mp.Potential.model(model)
    rows: dict[str, list] = {}
    energy_error, ids = [], []  # per frame, in frame order
    for atoms in frames:
        ev = mp.evaluate(atoms, potential)
        ref_stress = tensors.stress_to_voigt(atoms.get_stress(voigt=False) / GPa)  # both tensile > 0
        energy_error.append((ev.energy - atoms.get_potential_energy()) / len(atoms))
        ids.append(atoms.info.get("frame_id", ""))
        rows.setdefault(atoms.info["config_type"], []).append((
            energy_error[-1], ev.forces - atoms.get_forces(), ev.stress_GPa - ref_stress))
    rows["all"] = [r for kind in list(rows) for r in rows[kind]]
    out = {}
    for kind, r in rows.items():
        de = np.array([x[0] for x in r])
        df = np.concatenate([x[1].ravel() for x in r])
        ds = np.concatenate([x[2] for x in r])
        out[kind] = {"frames": len(r), "energy_mae_meV_per_atom": 1000 * np.abs(de).mean(),
                     "energy_mean_error_meV_per_atom": 1000 * de.mean(), "energy_std_meV_per_atom": 1000 * de.std(),
                     "forces_mae_eV_per_A": np.abs(df).mean(), "forces_rmse_eV_per_A": np.sqrt((df ** 2).mean()),
                     "stress_mae_GPa": np.abs(ds).mean(), "stress_rmse_GPa": np.sqrt((ds ** 2).mean())}
    de = np.array(energy_error)
    molten = np.array([f.startswith(("melt-", "liquid-")) for f in ids])
    hot = np.array([f.startswith("hot-") for f in ids])
    crystal = ~molten & ~hot
    for key, kind in (("molten_minus_crystal_meV_per_atom", molten), ("hot_minus_crystal_meV_per_atom", hot)):
        out[key] = 1000 * (de[kind].mean() - de[crystal].mean()) if kind.any() and crystal.any() else None
    return out


def hot_liquid(model: str, temperatures: list[float], picoseconds: float) -> dict:
    """For each temperature: the time (ps) at which a molecule first broke, or None if all stayed whole."""
    from make_data import expanded_rigidly
    from mlipprops.molecules import composition
    from mlipprops.system import System

    # molecules moved with their centres: scaling every position stretches the bonds, which then break early
    relaxed = expanded_rigidly(read("data/relaxed.extxyz"), 1.10)
    potential = mp.Potential.model(model).with_types_for(sorted(set(relaxed.get_chemical_symbols())), model)
    reference = composition(relaxed)
    chunk = 500  # steps of 1 fs between checks
    out = {}
    for k, temperature in enumerate(temperatures):
        system = System(relaxed.copy(), potential, model)
        with system.open_engine() as engine:
            engine.set_mass(list(potential.type_symbols).index("H") + 1, 4.0)
            engine.set_velocities(temperature, 7 + k)
            broke = None
            for step in range(chunk, int(round(1000 * picoseconds)) + 1, chunk):
                engine.md(chunk, "nvt", temperature, 0.001, seed=11 + step)
                if composition(system.atoms_from_state(engine.save_state())) != reference:
                    broke = step / 1000
                    break
        out[f"{temperature:g}"] = {"picoseconds": picoseconds, "first_broken_at_ps": broke}
        print(f"{temperature:g} K: " + (f"a molecule broke at {broke:g} ps" if broke else
                                         f"all molecules whole for {picoseconds:g} ps"), flush=True)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--frames", default="data/test.extxyz")
    p.add_argument("--json")
    p.add_argument("--hot", type=float, nargs="+", help="temperatures (K) of the hot-liquid check")
    p.add_argument("--hot-ps", type=float, default=10.0)
    args = p.parse_args()
    result = errors(args.model, read(args.frames, ":"))
    if args.hot:
        result["hot_liquid"] = hot_liquid(args.model, args.hot, args.hot_ps)
    for kind, e in result.items():
        if kind == "hot_liquid":
            continue
        if not isinstance(e, dict):
            print(f"{kind}: " + ("no such frames" if e is None else f"{e:+.2f} meV/atom"))
            continue
        print(f"{kind:6s} {e['frames']:4d} frames: E {e['energy_mae_meV_per_atom']:.2f} meV/atom "
              f"(mean {e['energy_mean_error_meV_per_atom']:+.2f}, spread {e['energy_std_meV_per_atom']:.2f}), "
              f"F MAE {e['forces_mae_eV_per_A']:.3f} RMSE {e['forces_rmse_eV_per_A']:.3f} eV/A, "
              f"stress MAE {e['stress_mae_GPa']:.3f} RMSE {e['stress_rmse_GPa']:.3f} GPa")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
