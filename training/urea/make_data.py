#!/usr/bin/env python3
"""GFN2-xTB (tblite) reference data for urea: the training set of the bundled Allegro model.

Every frame is a 2x2x2 supercell of the P-4 2_1 m cell (128 atoms, 16 molecules): tblite evaluates at the Gamma
point only, and cells this size give stresses and stiffnesses within ~0.3 % of larger ones (shared/FACTS.md),
where the 16-atom cell is off by up to 1.4 GPa. Stages, each appending to OUT (extxyz) and resumable:

  relax   GFN2-xTB relaxation of the experimental structure (neutron, Swaminathan et al. 1984), cell and ions,
          space group kept (ASE FixSymmetry): the reference geometry of everything below and of the direct
          elastic check (check_elastic_xtb.py). Written to relaxed.extxyz.
  strain  the relaxed cell under random symmetric strains (+-3 % per component, a third with up to +8 %
          volume expansion as in hot and molten urea), atoms rattled (sigma 0.01-0.08 A).
  rigid   molecules moved as rigid bodies in cells from 4 % compressed to 18 % expanded: the intermolecular
          landscape from contact to dissociation (without it a first model let NPT cells expand without bound).
  near    the response a relaxed-ion elastic tensor depends on: the relaxed cell under small strains (+-1.2 %
          per component), ions displaced by 0.005-0.04 A (forces: the Hessian that ion relaxation follows), a
          quarter of them along the soft orthorhombic strain e1 - e2 (+-2 %), where GFN2-xTB urea sits near a
          shallow saddle and a model must get the curvature, not only the sign.
  elastic the cells a model's elastic run relaxed into (--from-elastic: mlipprops elastic output folders, each
          with its relaxed cell and the ion displacements of every strained cell in its checkpoints), as 2x2x2
          supercells, and a rattled copy of each (sigma 0.01 A): where the model's ions go under strain, which is
          where its relaxed-ion C comes from (urea's soft NH2 mode makes the relaxation land in different places
          for +-e1 and for different starting points). Active learning on the property itself.
  phase   where a model's crystal goes and GFN2-xTB's does not (--model): the tetragonal cell relaxed by the
          model, its ions rattled (0.01 A, several seeds) and relaxed again with the cell, as mlipprops relax's
          minimum check does, in the 16-atom cell and in the 2x2x2 supercell; a model with a spurious lower
          structure slides into it (the first models: an orthorhombic cell 18 % off, 7-9 meV/atom below the
          tetragonal one, where GFN2-xTB puts it 5 meV/atom above). Images along the straight path from the
          tetragonal structure to each one found (cell and fractional coordinates interpolated), with rattled
          copies, and snapshots of the model's NPT crystal at 300 and 500 K (where its lattice drifts the same
          way). Active learning on the model's wrong minima.
  relaxpath GFN2-xTB's own ion relaxation (inside the cell's symmetry, as check_elastic_xtb.py's reference) under
          +-0.5 % e1, e3, e4, e6 and +-1 % e4, five points along each BFGS trajectory and the relaxed displacement
          overshot by half: the curvature along the path the ions take, which relaxed-ion C depends on.
  hot     the model's own hot liquid (--model), where mlipprops melt makes its liquid half: NVT at 10-30 %
          expanded volume (molecules moved rigidly), 1100 and 1300 K, snapshots every 0.5 ps, and where a
          molecule breaks the configurations on the way to the break; the run goes on from the last whole state
          (a model whose molecules break in the liquid half cannot give a coexistence melting point).
  md      snapshots of molecular dynamics run with a first model (--model, trained on the stages above)
          through mlipprops' own LAMMPS engine: NPT solid at 100-400 K; NVT at 10 % expanded volume for a melt
          at 900 K and the liquid at 600 and 450 K. The model only proposes configurations; every label is
          GFN2-xTB; snapshots outside 55-110 A^3 per molecule are not labelled. H is given mass 4 in these runs
          (1 fs steps; the configurational ensemble does not depend on masses).

Labels: energy (eV), forces (eV/A), stress (eV/A^3, ASE sign) with tblite's defaults (accuracy 1,
electronic temperature 300 K). A frame whose SCF fails is skipped and counted in the manifest.
OUT's manifest (OUT.json) records counts, timings, versions and seeds. Same inputs, same frames.

Usage:  python make_data.py relax|strain|rigid|near|md|elastic|phase|hot|relaxpath [--out data/urea_gfn2.extxyz] [--model M.nequip.pth]
                                                   [--jobs N] [--from-elastic DIR [DIR ...]]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

HERE = os.path.dirname(os.path.abspath(__file__))
REPEAT = (2, 2, 2)
SEED = 20261126
MD_RUNS = [  # (name, T in K, steps, snapshots, start from, ensemble); 1 fs steps, the first half equilibrates
    ("solid-100K", 100.0, 2000, 30, "relaxed", "npt"),
    ("solid-250K", 250.0, 2000, 30, "relaxed", "npt"),
    ("solid-400K", 400.0, 3000, 40, "relaxed", "npt"),
    # the melt and the liquid at fixed volume, 10 % above the crystal's (liquid urea is ~7 % less dense): a cell
    # that cannot drift far from the densities in the data
    ("melt-900K", 900.0, 6000, 40, "expanded", "nvt"),
    ("liquid-600K", 600.0, 3000, 40, "melt-900K", "nvt"),
    ("liquid-450K", 450.0, 3000, 40, "liquid-600K", "nvt"),
]
LIQUID_VOLUME = 1.10


def calculator():
    from tblite.ase import TBLite
    return TBLite(method="GFN2-xTB", verbosity=0)


def label(atoms, config_type: str):
    """GFN2-xTB energy, forces and stress frozen into the frame; None when the SCF fails."""
    atoms = atoms.copy()
    atoms.wrap()
    atoms.calc = calculator()
    try:
        e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(voigt=False)
    except Exception as err:  # tblite raises on SCF non-convergence
        print(f"  {config_type}: SCF failed ({err}); frame skipped", flush=True)
        return None
    atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f, stress=s)
    atoms.info["config_type"] = config_type
    return atoms


def experimental_supercell():
    from mlipprops.structure import read_structure
    return read_structure(os.path.join(HERE, "..", "..", "mlipprops", "data", "urea.cif")).repeat(REPEAT)


def relax(out_dir: str):
    from ase.constraints import FixSymmetry
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    atoms = experimental_supercell()
    atoms.calc = calculator()
    atoms.set_constraint(FixSymmetry(atoms))
    opt = BFGS(FrechetCellFilter(atoms), logfile=os.path.join(out_dir, "relax.log"))
    opt.run(fmax=0.002, steps=400)
    atoms.set_constraint()
    relaxed = label(atoms, "relaxed")
    write(os.path.join(out_dir, "relaxed.extxyz"), relaxed, format="extxyz")
    return relaxed, {"relax_steps": opt.nsteps}


def strained_frames(relaxed, n: int):
    rng = np.random.default_rng(SEED)
    frames = []
    for k in range(n):
        atoms = relaxed.copy()
        e = rng.uniform(-0.03, 0.03, size=(3, 3))
        e = 0.5 * (e + e.T)
        if k % 3 == 2:  # hot / molten densities
            e += np.eye(3) * rng.uniform(0.0, 0.026)
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + e), scale_atoms=True)
        atoms.positions += rng.normal(0.0, rng.uniform(0.01, 0.08), size=atoms.positions.shape)
        frames.append((f"strain-{k}", atoms))
    return frames


def near_frames(relaxed, n: int):
    rng = np.random.default_rng(SEED + 2)
    frames = []
    for k in range(n):
        atoms = relaxed.copy()
        e = rng.uniform(-0.012, 0.012, size=(3, 3))
        e = 0.5 * (e + e.T)
        if k % 4 == 3:  # along e1 - e2 (+ a little of the rest)
            soft = rng.uniform(-0.02, 0.02)
            e = 0.2 * e + np.diag([soft, -soft, 0.0])
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + e), scale_atoms=True)
        atoms.positions += rng.normal(0.0, rng.uniform(0.005, 0.04), size=atoms.positions.shape)
        frames.append((f"near-{k}", atoms))
    return frames


def elastic_frames(folders: list[str]):
    """The relaxed strained cells of mlipprops elastic runs (see the module docstring), frame ids from the folder
    name and the strain (e.g. el_mid-e1+0.005, and its rattled copy el_mid-e1+0.005-r)."""
    import glob

    from mlipprops import tensors

    rng = np.random.default_rng(SEED + 3)
    frames = []
    for folder in folders:
        relaxed = read(os.path.join(folder, "relaxed.extxyz"))
        for path in sorted(glob.glob(os.path.join(folder, "checkpoints", "elastic", "e*.json"))):
            name = os.path.basename(path)[:-5]  # e1+0.005
            component, amount = int(name[1]) - 1, float(name[2:])
            F = np.eye(3) + tensors.voigt_strain_tensor(component, amount)
            atoms = relaxed.copy()
            atoms.set_cell(relaxed.cell.array @ F.T, scale_atoms=True)  # rows are vectors: x -> F x
            atoms.positions += np.asarray(json.load(open(path))["ion_displacements"])
            atoms = atoms.repeat(REPEAT)
            tag = f"{os.path.basename(os.path.normpath(folder))}-{name}"
            frames.append((tag, atoms))
            rattled = atoms.copy()
            rattled.positions += rng.normal(0.0, 0.01, size=atoms.positions.shape)
            frames.append((tag + "-r", rattled))
    return frames


def whole_molecules(atoms, labels):
    """(atom indices, positions made whole across the periodic boundaries) of each molecule."""
    from mlipprops.molecules import whole

    xyz = whole(atoms.positions, atoms.cell, labels)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        yield members, xyz[members]


def rigid_frames(relaxed, n: int):
    """Molecules moved as rigid bodies: cell scaled from 4 % compressed to 18 % expanded (linear; the molecular
    centres follow, bond lengths do not), random rotations (sigma 2-10 deg) and shifts (sigma 0.05-0.25 A) of
    each molecule (redrawn where molecules overlap), a small rattle on top: the intermolecular energy landscape,
    from contact to dissociation."""
    from scipy.spatial.transform import Rotation

    from mlipprops.molecules import composition, molecule_labels

    rng = np.random.default_rng(SEED + 1)
    labels = molecule_labels(relaxed)
    reference = composition(relaxed)
    frames = []
    while len(frames) < n:
        k = len(frames)
        atoms = relaxed.copy()
        scale = 1.0 + (-0.04 + 0.22 * k / max(1, n - 1))
        strain = np.eye(3) * scale + 0.5 * rng.uniform(-0.015, 0.015, (3, 3)) * (1 + np.eye(3))
        shift_sigma, angle_sigma = rng.uniform(0.05, 0.25), np.radians(rng.uniform(2.0, 10.0))
        cell = atoms.cell.array @ strain
        for members, xyz in whole_molecules(atoms, labels):
            masses = atoms.get_masses()[members]
            com = masses @ xyz / masses.sum()
            rot = Rotation.from_rotvec(rng.normal(0.0, angle_sigma, 3))
            new_com = com @ strain + rng.normal(0.0, shift_sigma, 3)
            atoms.positions[members] = new_com + rot.apply(xyz - com)
        atoms.set_cell(cell, scale_atoms=False)
        atoms.positions += rng.normal(0.0, 0.02, size=atoms.positions.shape)
        if composition(atoms) == reference:  # else two molecules overlap: drawn again
            frames.append((f"rigid-{k}", atoms))
    return frames


def md_frames(relaxed, model: str, work: str):
    """Configurations from MD runs with a first model, through mlipprops' engine (see the module docstring)."""
    from mlipprops.molecules import composition
    from mlipprops.potential import Potential
    from mlipprops.system import System

    symbols = relaxed.get_chemical_symbols()
    potential = Potential.model(model).with_types_for(sorted(set(symbols)), model)
    reference = composition(relaxed)
    expanded = relaxed.copy()
    expanded.set_cell(relaxed.cell * LIQUID_VOLUME ** (1 / 3), scale_atoms=True)
    starts, frames, notes = {"relaxed": relaxed, "expanded": expanded}, [], {}
    for i, (name, temperature, steps, n_snap, start, ensemble) in enumerate(MD_RUNS):
        system = System(starts[start].copy(), potential, model)
        engine = system.open_engine(log_path=os.path.join(work, f"{name}.lammps.log"))
        engine.command(f"mass {list(potential.type_symbols).index('H') + 1} 4.0")
        engine.set_velocities(temperature, SEED + i)
        every = steps // (2 * n_snap)  # the first half equilibrates
        engine.md(steps // 2, ensemble, temperature, 0.001, seed=SEED + i)
        snaps = []
        for k in range(n_snap):
            engine.md(every, ensemble, temperature, 0.001, seed=SEED + 100 * i + k)
            snaps.append(system.atoms_from_state(engine.save_state()))
        engine.close()
        starts[name] = snaps[-1]
        volumes = np.array([a.get_volume() / 16 for a in snaps])
        kept = [(f"{name}-{k}", a) for k, a in enumerate(snaps) if 55.0 < volumes[k] < 110.0]
        intact = sum(composition(a) == reference for a in snaps)
        notes[name] = {"temperature_K": temperature, "ensemble": ensemble, "steps": steps, "snapshots": n_snap,
                       "kept": len(kept), "molecules_intact": intact,
                       "volume_per_molecule_A3": [float(volumes.min()), float(volumes.max())]}
        print(f"  {name}: {intact}/{n_snap} snapshots with molecules intact, V/molecule "
              f"{volumes.min():.1f}-{volumes.max():.1f} A^3, {len(kept)} kept", flush=True)
        frames += kept
    return frames, notes


PHASE_SEEDS = 6  # rattled relaxations of the 16-atom cell (2 of the supercell)
PHASE_IMAGES = (0.25, 0.5, 0.75, 1.0)  # along the path from the tetragonal structure to the model's other one
PHASE_MD = [("phase-300K", 300.0, 6000, 12), ("phase-500K", 500.0, 6000, 12)]  # NPT, 1 fs, H mass 4


def path_images(start, end, fractions):
    """Structures on the straight line from start to end: cell and fractional coordinates (the end's taken by
    minimum image from the start's) interpolated."""
    f0 = start.get_scaled_positions(wrap=False)
    df = end.get_scaled_positions(wrap=False) - f0
    df -= np.round(df)
    df -= df.mean(axis=0)  # no drift of the whole crystal
    images = []
    for x in fractions:
        atoms = start.copy()
        atoms.set_cell((1 - x) * start.cell.array + x * end.cell.array)
        atoms.set_scaled_positions(f0 + x * df)
        images.append(atoms)
    return images


def phase_frames(relaxed, model: str, work: str):
    """The model's other minima and its drifting crystal (see the module docstring)."""
    import mlipprops as mp
    from mlipprops.system import System

    potential = mp.Potential.model(model)
    stem = os.path.basename(model).split(".")[0]  # frame ids name the model: each model has its own wrong minima
    rng = np.random.default_rng(SEED + 4)
    cell16, _ = mp.example("urea")
    frames, notes = [], {"minima": []}
    for label_, start, seeds in (("c16", cell16, PHASE_SEEDS), ("c128", relaxed.copy(), 2)):
        tetragonal = mp.relax(start, potential, quiet=True, skip_minimum_check=True)
        for k in range(seeds):
            rattled = tetragonal.atoms.copy()
            rattled.positions += np.random.default_rng(SEED + 10 * k).normal(0.0, 0.01, rattled.positions.shape)
            other = mp.relax(rattled, potential, quiet=True, skip_minimum_check=True)
            drop = (other.energy - tetragonal.energy) / len(rattled)
            notes["minima"].append({"cell": label_, "seed": k, "energy_change_eV_per_atom": drop,
                                    "lattice": other.lattice})
            print(f"  {label_} seed {k}: {1000 * drop:+.2f} meV/atom, cell {np.round(other.lattice[:3], 3)}",
                  flush=True)
            if drop > -1e-4:  # came back: nothing to learn from this start
                continue
            # the same minimum again (in either orientation, or the supercell of one found): its path images are
            # the same frames up to symmetry, so only their rattled copies are new
            key = (round(1000 * drop, 2), tuple(np.round(sorted(np.array(other.lattice[:3]) /
                                                                 (1 if len(rattled) == 16 else 2)), 2)))
            seen = key in notes.setdefault("seen", set())
            notes["seen"].add(key)
            for x, image in zip(PHASE_IMAGES, path_images(tetragonal.atoms, other.atoms, PHASE_IMAGES)):
                big = image.repeat(REPEAT) if len(image) == 16 else image
                tag = f"phase-{stem}-{label_}-s{k}-{x:g}"
                if not seen:
                    frames.append((tag, big))
                shaken = big.copy()
                shaken.positions += rng.normal(0.0, 0.02, size=big.positions.shape)
                frames.append((tag + "-r", shaken))
    symbols = sorted(set(relaxed.get_chemical_symbols()))
    for i, (name, temperature, steps, n_snap) in enumerate(PHASE_MD):
        system = System(relaxed.copy(), potential.with_types_for(symbols, model), model)
        engine = system.open_engine(log_path=os.path.join(work, f"{name}.lammps.log"))
        engine.command(f"mass {list(system.potential.type_symbols).index('H') + 1} 4.0")
        engine.set_velocities(temperature, SEED + 50 + i)
        every = steps // (2 * n_snap)  # the first half equilibrates
        engine.md(steps // 2, "npt", temperature, 0.001, seed=SEED + 50 + i)
        for k in range(n_snap):
            engine.md(every, "npt", temperature, 0.001, seed=SEED + 500 + 100 * i + k)
            snap = system.atoms_from_state(engine.save_state())
            frames.append((f"{name}-{stem}-{k}", snap))
        engine.close()
        lengths = snap.cell.lengths() / 2
        notes[name] = {"last_cell_A": lengths.tolist()}
        print(f"  {name}: last cell {np.round(lengths, 3)} A per 16-atom cell", flush=True)
    notes["distinct_minima"] = len(notes.pop("seen", ()))
    return frames, notes


HOT_RUNS = [(v, t) for v in (1.10, 1.20, 1.30) for t in (1100.0, 1300.0)]  # (volume / crystal's, T in K)
HOT_PS, HOT_EVERY_PS, HOT_CHECK_PS, HOT_BREAKS = 6.0, 0.5, 0.1, 4


def expanded_rigidly(atoms, volume: float):
    """The crystal with its cell scaled to `volume` times its own and each molecule moved with its centre, bonds
    as they were (scaling every position stretches the bonds, and stretched bonds break in the first steps)."""
    from mlipprops.molecules import molecule_labels

    out = atoms.copy()
    out.set_cell(atoms.cell * volume ** (1 / 3), scale_atoms=False)
    for members, xyz in whole_molecules(atoms, molecule_labels(atoms)):
        out.positions[members] = xyz + (volume ** (1 / 3) - 1.0) * xyz.mean(axis=0)
    return out


def hot_frames(relaxed, model: str, work: str):
    """The model's own hot liquid, where `mlipprops melt` makes its liquid half (1.2x the heating ramp's melting
    point, the cell expanded up to the density at which the ramp melted: +31 % for urea_al4): NVT from the
    rigidly expanded crystal at each (volume, T) of HOT_RUNS for HOT_PS (H mass 4, 1 fs), a snapshot every
    HOT_EVERY_PS, every molecule checked every HOT_CHECK_PS. When one breaks, the two checks before it and the
    broken state are kept (the configurations on the way to a break are where the model's barrier is too low),
    and the run goes on from the last whole state with new velocities, HOT_BREAKS times at most."""
    from mlipprops.molecules import composition
    from mlipprops.potential import Potential
    from mlipprops.system import System

    symbols = sorted(set(relaxed.get_chemical_symbols()))
    potential = Potential.model(model).with_types_for(symbols, model)
    stem = os.path.basename(model).split(".")[0]
    reference = composition(relaxed)
    check, every = round(1000 * HOT_CHECK_PS), round(HOT_EVERY_PS / HOT_CHECK_PS)
    frames, notes = [], {}
    for i, (volume, temperature) in enumerate(HOT_RUNS):
        name = f"hot-{stem}-{volume:g}V-{temperature:g}K"
        system = System(expanded_rigidly(relaxed, volume), potential, model)
        recent, breaks, kept = [], [], {fid for fid, _ in frames}
        whole = None
        with system.open_engine(log_path=os.path.join(work, f"{name}.lammps.log")) as engine:
            engine.set_mass(list(potential.type_symbols).index("H") + 1, 4.0)
            engine.set_velocities(temperature, SEED + 70 + i)
            for k in range(1, round(HOT_PS / HOT_CHECK_PS) + 1):
                engine.md(check, "nvt", temperature, 0.001, seed=SEED + 700 + 1000 * i + k)
                state = engine.save_state()
                snap = system.atoms_from_state(state)
                recent = (recent + [(f"{name}-{k * HOT_CHECK_PS:.1f}ps", snap, state)])[-3:]
                if composition(snap) != reference:
                    breaks.append(round(k * HOT_CHECK_PS, 1))
                    frames += [(fid, a) for fid, a, _ in recent if fid not in kept]
                    kept |= {fid for fid, _, _ in recent}
                    if len(breaks) == HOT_BREAKS or whole is None:
                        break
                    engine.restore_state(whole)  # new velocities from the last whole state
                    engine.set_velocities(temperature, SEED + 7000 + 1000 * i + k)
                    recent = []
                    continue
                whole = state
                if k % every == 0 and recent[-1][0] not in kept:
                    frames.append(recent[-1][:2])
                    kept.add(recent[-1][0])
        notes[name] = {"volume_ratio": volume, "temperature_K": temperature, "broken_at_ps": breaks}
        print(f"  {name}: molecules broke at {breaks} ps" if breaks else
              f"  {name}: all molecules whole for {HOT_PS:g} ps", flush=True)
    return frames, notes


RELAX_PATH_STRAINS = [(3, 0.005), (3, -0.005), (3, 0.01), (3, -0.01), (5, 0.005), (5, -0.005), (0, 0.005),
                      (0, -0.005), (2, 0.005), (2, -0.005)]  # (Voigt index, strain): C44 first
RELAX_PATH_KEEP = (0.0, 0.25, 0.5, 0.75, 1.0)  # fractions of each BFGS trajectory kept


def _relax_path(item):
    """One strained cell's GFN2-xTB ion relaxation inside its symmetry (check_elastic_xtb.py's reference), every
    BFGS step a labelled frame (the relaxation computes them anyway); kept: RELAX_PATH_KEEP of the way and the
    relaxed displacement overshot by half (the curvature beyond the minimum)."""
    from check_elastic_xtb import strained_stress

    component, amount = item
    steps = []
    strained_stress(os.path.join(HERE, "data", "relaxed.extxyz"), component, amount, fmax=0.001, steps=steps)
    tag = f"relaxpath-e{component + 1}{amount:+g}"
    frames = []
    for x in RELAX_PATH_KEEP:
        frame = steps[round(x * (len(steps) - 1))]
        frame.info.update(config_type="relaxpath", frame_id=f"{tag}-{x:g}")
        frames.append(frame)
    beyond = steps[-1].copy()
    beyond.positions = steps[0].positions + 1.5 * (steps[-1].positions - steps[0].positions)
    beyond = label(beyond, "relaxpath")
    if beyond is not None:
        beyond.info["frame_id"] = f"{tag}-1.5"
        frames.append(beyond)
    return tag, len(steps), frames


def relax_path_frames(out: str, jobs: int):
    """GFN2-xTB's own internal relaxation under the strains of the elastic tensor, labelled along the way: a
    relaxed-ion C of a molecular crystal is a small difference of large numbers (urea C44: 89 GPa with the ions
    clamped, 9.7 relaxed), so the curvature along the path the ions take must be right to a few per cent, and
    random displacements (near) put almost all their force signal in the stiff bond modes."""
    done = {a.info.get("frame_id") for a in read(out, ":")} if os.path.exists(out) else set()
    todo = [(j, d) for j, d in RELAX_PATH_STRAINS if f"relaxpath-e{j + 1}{d:+g}-1" not in done]
    notes, t0 = {}, time.time()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for tag, n, frames in pool.map(_relax_path, todo):
            for frame in frames:
                write(out, frame, format="extxyz", append=True)
            notes[tag] = {"bfgs_steps": n, "frames": len(frames)}
            print(f"  {tag}: {n} BFGS steps, {len(frames)} frames, {time.time() - t0:.0f} s", flush=True)
    return {"cells": notes, "seconds": round(time.time() - t0, 1)}


def _label_one(item):
    fid, atoms, config_type = item
    frame = label(atoms, config_type)
    if frame is not None:
        frame.info["frame_id"] = fid
    return frame


def label_all(candidates, out: str, config_type: str, jobs: int = 1):
    """Label the candidates not yet in OUT (resume), appending frames in candidate order as they are done;
    `jobs` processes side by side (one OpenMP thread each is the efficient choice then)."""
    done = set()
    if os.path.exists(out):
        done = {a.info.get("frame_id") for a in read(out, ":")}
    failed, t0 = 0, time.time()
    todo = [(fid, a, config_type) for fid, a in candidates if fid not in done]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for k, frame in enumerate(pool.map(_label_one, todo)):
            if frame is None:
                failed += 1
                continue
            write(out, frame, format="extxyz", append=True)
            if k % 20 == 0:
                print(f"  {config_type}: {k + 1}/{len(todo)} labelled, {time.time() - t0:.0f} s", flush=True)
    return {"candidates": len(candidates), "labelled_now": len(todo) - failed, "scf_failed": failed,
            "seconds": round(time.time() - t0, 1)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=["relax", "strain", "rigid", "near", "md", "elastic", "phase", "hot", "relaxpath"])
    p.add_argument("--out", default="data/urea_gfn2.extxyz")
    p.add_argument("--strained", type=int, default=150)
    p.add_argument("--rigid", type=int, default=100)
    p.add_argument("--near", type=int, default=300)
    p.add_argument("--model", help="md and phase stages: the model, proposing configurations (written to "
                                   "md_candidates.extxyz, which a rerun labels without the model)")
    p.add_argument("--jobs", type=int, default=1, help="labelling processes side by side")
    p.add_argument("--from-elastic", nargs="+", default=[], help="elastic stage: mlipprops elastic output folders")
    p.add_argument("--propose-only", action="store_true", help="md stage: write the proposals, label later")
    args = p.parse_args()
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    manifest_path = args.out.rsplit(".", 1)[0] + ".json"
    manifest = json.load(open(manifest_path)) if os.path.exists(manifest_path) else {}
    from importlib.metadata import version
    manifest.update({"method": "GFN2-xTB", "code": f"tblite {version('tblite')}",
                     "supercell": list(REPEAT), "seed": SEED})
    t0 = time.time()
    if args.stage == "relax":
        relaxed, info = relax(out_dir)
        info["cell_A"] = relaxed.cell.lengths().tolist()
        info["energy_eV"] = relaxed.get_potential_energy()
    else:
        relaxed = read(os.path.join(out_dir, "relaxed.extxyz"))
        if args.stage == "strain":
            info = label_all(strained_frames(relaxed, args.strained), args.out, "strain", args.jobs)
        elif args.stage == "rigid":
            info = label_all(rigid_frames(relaxed, args.rigid), args.out, "rigid", args.jobs)
        elif args.stage == "near":
            info = label_all(near_frames(relaxed, args.near), args.out, "near", args.jobs)
        elif args.stage == "phase":
            if not args.model:
                p.error("the phase stage needs --model (the model whose other minima are to be labelled)")
            candidates, notes = phase_frames(relaxed, args.model, out_dir)
            info = label_all(candidates, args.out, "phase", args.jobs)
            info["models"] = sorted(set(manifest.get("phase", {}).get("models", [])) | {os.path.basename(args.model)})
            info[os.path.basename(args.model)] = notes
        elif args.stage == "relaxpath":
            info = relax_path_frames(args.out, args.jobs)
        elif args.stage == "hot":
            if not args.model:
                p.error("the hot stage needs --model (the model whose liquid is to be labelled)")
            candidates, notes = hot_frames(relaxed, args.model, out_dir)
            info = label_all(candidates, args.out, "hot", args.jobs)
            info[os.path.basename(args.model)] = notes
        elif args.stage == "elastic":
            info = label_all(elastic_frames(args.from_elastic), args.out, "elastic", args.jobs)
            info["from"] = sorted(set(manifest.get("elastic", {}).get("from", []))
                                  | {os.path.basename(os.path.normpath(f)) for f in args.from_elastic})
        else:
            proposals = os.path.join(out_dir, "md_candidates.extxyz")
            if not os.path.exists(proposals):
                if not args.model:
                    p.error("the md stage needs --model (a first model trained on the stages before)")
                candidates, notes = md_frames(relaxed, args.model, out_dir)
                for fid, atoms in candidates:
                    atoms.info["frame_id"] = fid
                write(proposals + ".part", [a for _, a in candidates], format="extxyz")
                os.replace(proposals + ".part", proposals)
                manifest["md_proposals"] = {"runs": notes, "model": os.path.basename(args.model)}
            candidates = [(a.info["frame_id"], a) for a in read(proposals, ":")]
            info = {"proposed": len(candidates)} if args.propose_only else label_all(candidates, args.out, "md",
                                                                                      args.jobs)
    info["wall_s"] = round(time.time() - t0, 1)
    manifest[args.stage] = manifest.get(args.stage, {}) | info
    if os.path.exists(args.out):
        frames = read(args.out, ":")
        manifest["frames"] = {t: sum(a.info["config_type"] == t for a in frames)
                              for t in ("strain", "rigid", "near", "md", "elastic", "phase", "hot", "relaxpath")}
    with open(manifest_path + ".tmp", "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(manifest_path + ".tmp", manifest_path)
    print(json.dumps(manifest[args.stage], indent=1))


if __name__ == "__main__":
    main()
