"""The melting order parameter: solid-like atoms by q6 (mlipprops/order.py, numpy) against LAMMPS' own compute
orientorder/atom, and a molecular sublattice's order computed from the sublattice alone inside a running engine."""
from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from mlipprops import examples
from mlipprops.order import q6_vectors, solid_like
from mlipprops.potential import Potential
from mlipprops.structure import make_supercell, read_structure
from mlipprops.system import System
from mlipprops.units import UNITS


def lammps_solid_like(atoms, cutoff: float, min_bonds: int, group: str = "union all") -> tuple[np.ndarray, np.ndarray]:
    """LAMMPS' per-atom solid-like flags and |q6| (pair_style zero: only the neighbour list matters)."""
    from mlipprops.engine import template
    symbols = sorted(set(atoms.get_chemical_symbols()))
    potential = Potential(f"zero {cutoff + 0.5!r}", ("* *",), UNITS["metal"], tuple(symbols))
    engine = System(atoms, potential, "test").open_engine()
    try:
        engine.command(f"group centres {group}\n" + template("melt_order", cutoff=cutoff, min_bonds=min_bonds)
                       .replace("mlp_q6 all", "mlp_q6 centres"))
        engine.evaluate()
        ids = engine.lmp.numpy.extract_atom("id")[:len(atoms)]
        order = np.argsort(ids)
        solid = engine.lmp.numpy.extract_variable("mlp_solid", group="all", vartype=1)[order]
        q6 = np.array(engine.lmp.numpy.extract_compute("mlp_q6", 1, 2))[order, 0]  # Q6, then components
        return solid.astype(bool), q6
    finally:
        engine.close()


@pytest.mark.parametrize("rattle", [0.05, 0.45])
def test_numpy_q6_equals_lammps_for_all_atoms(rattle):
    """A hot crystal (all solid-like) and a strongly disordered one (mixed): the same atoms, one by one."""
    atoms = bulk("Cu", "fcc", a=3.615, cubic=True).repeat((4, 4, 4))
    atoms.rattle(rattle, seed=4)
    lammps, _ = lammps_solid_like(atoms, 3.05, 7)
    mine = solid_like(atoms.positions, atoms.cell[:], 3.05, 7)
    assert np.array_equal(mine, lammps)
    if rattle > 0.4:
        assert 0 < mine.sum() < len(atoms)  # a real test: both kinds present


def urea(repeat=(2, 2, 3), rattle=0.1):
    atoms = make_supercell(read_structure(examples.EXAMPLES["urea"].structure_path()), repeat)
    atoms.rattle(rattle, seed=7)
    return atoms


def test_sublattice_q6_is_built_from_the_sublattice_alone():
    """Urea's C sublattice at the 6.70 A C-C cutoff: LAMMPS' compute on group `type C` of the whole crystal takes
    H, N and O as neighbours too (q6 ~ 0.13, the old bug); on the C atoms alone it agrees with numpy (~0.4)."""
    atoms = urea()
    carbon = np.array(atoms.get_chemical_symbols()) == "C"
    sub = atoms[carbon]
    q, _, _ = q6_vectors(sub.positions, sub.cell[:], 6.70)
    q6_numpy = np.sqrt(4 * np.pi / 13 * np.sum(np.abs(q) ** 2, axis=1))
    solid_c_only, q6_c_only = lammps_solid_like(sub, 6.70, 8)
    assert np.allclose(q6_numpy, q6_c_only, atol=1e-10) and q6_numpy.mean() > 0.35
    assert np.array_equal(solid_like(sub.positions, sub.cell[:], 6.70, 8), solid_c_only)
    _, q6_whole = lammps_solid_like(atoms, 6.70, 8, group="type 1")  # C is type 1 of C H N O
    assert q6_whole[carbon].mean() < 0.2  # what the compute on a group gives: not the sublattice's order


def test_engine_observes_the_sublattice_order_in_a_run():
    """The variable the melting runs sample (v_mlp_nsolid), set from Python every N steps during MD, equals
    solid_like() of the C positions at that moment."""
    atoms = urea(rattle=0.02)
    potential = Potential("zero 3.0", ("* *",), UNITS["metal"], ("C", "H", "N", "O"))  # shorter than 6.7 A
    engine = System(atoms, potential, "urea").open_engine()
    try:
        ids = np.flatnonzero(np.array(atoms.get_chemical_symbols()) == "C") + 1
        engine.observe("mlp_nsolid", 5, ids, lambda p, cell: solid_like(p, cell, 6.7, 8).sum())
        engine.set_velocities(2000.0, 3)
        engine.command("fix nve all nve\ntimestep 0.002\nrun 25")  # free flight: the sublattice disorders
        state = engine.save_state()
        expected = solid_like(state.positions[ids - 1], state.cell, 6.7, 8).sum()
        assert engine.variable("mlp_nsolid") == expected and 0 < expected < len(ids)
    finally:
        engine.close()


def test_the_upper_half_of_a_molecular_crystal_is_expanded_molecule_by_molecule():
    """melt.expanded_upper_half on urea 2x2x4, molecules split across the cell's faces and a tilted third vector:
    whole molecules chosen by centre, each moved rigidly, the lower half unchanged, no molecule broken or joined."""
    from mlipprops import molecules
    from mlipprops.properties.melt import expanded_upper_half, id_ranges

    crystal = read_structure(examples.EXAMPLES["urea"].structure_path()).repeat((2, 2, 4))
    crystal.set_cell(crystal.cell.array + [[0, 0, 0], [0, 0, 0], [0.7, -0.4, 0]], scale_atoms=True)
    crystal.positions += [0.3, 0.2, 2.0]  # molecules across the faces: wrapped, they are in pieces
    crystal.wrap()
    labels = molecules.molecule_labels(crystal)
    before = molecules.whole(crystal.positions, crystal.cell.array, labels)
    u = molecules.centres(before, crystal.cell.array, labels, crystal.get_masses()) @ np.linalg.inv(crystal.cell)[:, 2]
    upper, cell, positions = expanded_upper_half(crystal.positions, crystal.cell.array, labels,
                                                 crystal.get_masses(), 1.3)
    assert np.array_equal(upper, (u % 1.0 >= 0.5)[labels]) and 0.4 < upper.mean() < 0.6
    assert np.allclose(cell[2], 1.15 * crystal.cell.array[2]) and np.allclose(cell[:2], crystal.cell.array[:2])
    moved = positions - before
    for label in np.unique(labels):  # one rigid translation along c per molecule
        d = moved[labels == label]
        assert np.allclose(d, d[0], atol=1e-12) and np.allclose(np.cross(d[0], cell[2]), 0, atol=1e-9)
    # the lower half keeps its positions up to whole cells; every centre inside the new cell, the upper ones apart
    shifts = moved[~upper] @ np.linalg.inv(crystal.cell.array)
    assert np.allclose(shifts, np.round(shifts), atol=1e-9)
    new_u = molecules.centres(positions, cell, labels, crystal.get_masses()) @ np.linalg.inv(cell)[:, 2]
    assert new_u.min() >= 0 and new_u.max() < 1
    expanded = crystal.copy()
    expanded.set_cell(cell)
    expanded.positions = positions
    assert molecules.composition(expanded) == molecules.composition(crystal)
    assert id_ranges(np.array([1, 2, 3, 4, 7, 9, 10])) == "1:4 7 9:10"
