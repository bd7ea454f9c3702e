#!/usr/bin/env python3
"""Compare tests/models/reference.py with nequip's own ASE calculator on a few Cu-Au cells.

Run with the python of a training venv (it needs nequip installed):
  legacy  (nequip 0.6.2):  TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 /tmp/venv-legacy/bin/python compare_ase.py tests/models/cuau_legacy_f64.pth ...
  current (nequip 0.19.1): /tmp/venv-current/bin/python compare_ase.py tests/models/cuau_current_f64.nequip.pth ...
The same file lives in legacy/ and current/ (identical copies).
Prints, per model, the largest |difference| in energy (eV), forces (eV/A) and stress (eV/A^3) over the cells.
"""
import os
import sys

import numpy as np
from ase.build import bulk

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import reference  # noqa: E402
from make_data import make_frames  # noqa: E402


def nequip_calculator(path):
    import nequip
    if nequip.__version__.startswith("0.6"):
        from nequip.ase import NequIPCalculator
        return NequIPCalculator.from_deployed_model(
            path, species_to_type_name={"Cu": "Cu", "Au": "Au"}, set_global_options=True)
    from nequip.integrations.ase import NequIPCalculator
    return NequIPCalculator.from_compiled_model(path, device="cpu", chemical_species_to_atom_type_map=True)


def cells():
    out = [reference._test_cell()]
    prim = bulk("Cu", "fcc", a=3.7)                 # 1-atom primitive cell: many self-images
    prim.positions += 0.0
    out.append(prim)
    l10 = bulk("Cu", "fcc", a=3.8).repeat((1, 1, 2))  # 2 atoms, one Au, sheared cell
    l10.symbols[1] = "Au"
    l10.set_cell(l10.cell.array @ np.array([[1, 0.03, 0], [0, 1, -0.02], [0.01, 0, 1.01]]).T, scale_atoms=True)
    out.append(l10)
    out += make_frames(48, seed=7)[::6]              # 8 EMT test frames (strained, volume, md)
    return out


def main(paths):
    for path in paths:
        calc = nequip_calculator(path)
        de = df = ds = 0.0
        structures = cells()
        for at in structures:
            at = at.copy()
            ref = reference.evaluate(path, at)
            at.calc = calc
            de = max(de, abs(at.get_potential_energy() - ref["energy"]))
            df = max(df, float(np.abs(at.get_forces() - ref["forces"]).max()))
            ds = max(ds, float(np.abs(at.get_stress() - ref["stress_voigt"]).max()))
        print(f"{os.path.basename(path)}: {len(structures)} cells, max |dE| {de:.2e} eV, "
              f"max |dF| {df:.2e} eV/A, max |dS| {ds:.2e} eV/A^3")


if __name__ == "__main__":
    main(sys.argv[1:])
