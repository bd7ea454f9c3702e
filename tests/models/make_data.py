#!/usr/bin/env python3
"""Deterministic EMT-labelled training data for a small fcc Cu-Au alloy (extxyz).

Frames (240 by default, 16 or 32 atoms each):
  * "strained"   random Cu/Au occupancy of fcc supercells, lattice constant from Vegard's law
                 (EMT lattice constants Cu 3.59 A, Au 4.055 A), random symmetric strain
                 (up to +-4 % per component), atoms rattled (sigma 0.02-0.10 A);
  * "volume"     undistorted / lightly rattled cells at +-6 % volume (equation-of-state points);
  * "md"         snapshots of short NVE runs started at 300-1200 K (EMT, 2 fs steps).
Every frame carries energy (eV), forces (eV/A) and the ASE stress (eV/A^3, 3x3, ASE sign:
positive = tensile), written by ase.io.write in extended-XYZ format.

Usage:  python make_data.py [OUT.extxyz] [--frames N] [--seed S]
Needs only numpy and ase (EMT is part of ase). Output is identical for the same ase/numpy versions.
"""
import argparse
import warnings

import numpy as np
from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet

A_CU, A_AU = 3.59, 4.055  # EMT equilibrium fcc lattice constants (A)
REPEATS = [(2, 2, 1), (2, 1, 2), (1, 2, 2), (2, 2, 2)]  # 16, 16, 16, 32 atoms (4-atom cubic cell)


def random_alloy(rng, repeat, x_au=None):
    """fcc cube supercell with random Cu/Au occupancy; Vegard lattice constant."""
    if x_au is None:
        x_au = rng.uniform(0.0, 1.0)
    a = (1 - x_au) * A_CU + x_au * A_AU
    atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat(repeat)
    n = len(atoms)
    n_au = int(round(x_au * n))
    symbols = np.array(["Cu"] * n, dtype=object)
    symbols[rng.permutation(n)[:n_au]] = "Au"
    atoms.set_chemical_symbols(list(symbols))
    return atoms


def strain_cell(atoms, eps):
    """Apply the symmetric strain eps (3x3) to cell and positions."""
    f = np.eye(3) + eps
    atoms.set_cell(atoms.cell.array @ f.T, scale_atoms=True)
    return atoms


def random_strain(rng, amp):
    e = rng.uniform(-amp, amp, size=(3, 3))
    return 0.5 * (e + e.T)


def label(atoms, kind):
    """Compute EMT energy/forces/stress and freeze them in a SinglePointCalculator."""
    atoms = atoms.copy()
    atoms.wrap()
    atoms.calc = EMT()
    e = atoms.get_potential_energy()
    f = atoms.get_forces()
    s = atoms.get_stress(voigt=False)
    atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f, stress=s)
    atoms.info["config_type"] = kind
    return atoms


def make_frames(n_frames=240, seed=20261101):
    rng = np.random.default_rng(seed)
    n_vol = n_frames // 8            # 30 of 240
    n_md = n_frames // 4             # 60 of 240
    n_strained = n_frames - n_vol - n_md
    frames = []
    for i in range(n_strained):
        repeat = REPEATS[i % len(REPEATS)]
        x_au = 0.0 if i % 20 == 0 else (1.0 if i % 20 == 10 else None)  # a few pure Cu / pure Au cells
        atoms = random_alloy(rng, repeat, x_au)
        strain_cell(atoms, random_strain(rng, 0.04))
        atoms.positions += rng.normal(0.0, rng.uniform(0.02, 0.10), size=atoms.positions.shape)
        frames.append(label(atoms, "strained"))
    for i in range(n_vol):
        repeat = REPEATS[i % len(REPEATS)]
        atoms = random_alloy(rng, repeat)
        s = rng.uniform(-0.02, 0.02)  # linear strain, about +-6 % volume
        strain_cell(atoms, s * np.eye(3))
        atoms.positions += rng.normal(0.0, 0.01, size=atoms.positions.shape)
        frames.append(label(atoms, "volume"))
    n_runs = max(1, n_md // 10)
    per_run = [n_md // n_runs + (1 if k < n_md % n_runs else 0) for k in range(n_runs)]
    for k, n_snap in enumerate(per_run):
        atoms = random_alloy(rng, REPEATS[3 if k % 2 == 0 else k % 3])
        strain_cell(atoms, random_strain(rng, 0.01))
        atoms.calc = EMT()
        temp = rng.uniform(300.0, 1200.0)
        with warnings.catch_warnings():  # newer ase prefers thermalize_momenta; same thing
            warnings.simplefilter("ignore", DeprecationWarning)
            MaxwellBoltzmannDistribution(atoms, temperature_K=temp, rng=rng)
        dyn = VelocityVerlet(atoms, timestep=2.0 * units.fs)
        for _ in range(n_snap):
            dyn.run(10)
            frames.append(label(atoms, "md"))
    return frames


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", nargs="?", default="cuau_emt.extxyz")
    p.add_argument("--frames", type=int, default=240)
    p.add_argument("--seed", type=int, default=20261101)
    args = p.parse_args()
    frames = make_frames(args.frames, args.seed)
    write(args.out, frames, format="extxyz")
    n_at = [len(a) for a in frames]
    fmax = max(np.abs(a.get_forces()).max() for a in frames)
    print(f"wrote {len(frames)} frames ({min(n_at)}-{max(n_at)} atoms, {sum(n_at)} atoms total, "
          f"max |F| component {fmax:.2f} eV/A) to {args.out}")


if __name__ == "__main__":
    main()
