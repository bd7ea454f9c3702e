"""The Born matrix (second strain derivatives of the energy) with deployed models, on every backend: LAMMPS'
`compute born/matrix numdiff` through the plugin (which must fill its virial when LAMMPS asks for the pair virial
alone), inside hybrid/overlay, with a message-passing model on its periodic graph, and the Python backend's own
finite differences; all against the energy's finite differences in Lagrangian strain, and without side effects on
the pressure."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from mlipprops import tensors
from mlipprops.potential import Potential
from mlipprops.structure import lammps_cell
from mlipprops.system import System

MODELS = Path(__file__).parent / "models"
GPA = 160.21766208  # eV/A^3


def cuau32(a=3.62):
    atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat((2, 2, 2))
    atoms.symbols[[1, 5, 9, 14, 22]] = "Au"
    atoms.positions += np.random.default_rng(0).normal(0, 0.03, atoms.positions.shape)
    return atoms


def engine_for(model: str, backend: str, atoms, neighbor_cutoff: float = 0.0):
    from dataclasses import replace
    pot = Potential.model(model, backend).with_types_for(atoms.get_chemical_symbols(), "test")
    return System(atoms, replace(pot, neighbor_cutoff=neighbor_cutoff), "test").open_engine()


def born_of_lammps(engine, delta: float) -> np.ndarray:
    """compute born/matrix numdiff as the born method uses it, per volume, GPa; and the pressure after it."""
    from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR
    engine.command(f"compute b all born/matrix numdiff {delta!r} mlp_press\n"
                   "thermo_style custom step pe c_b[*] c_mlp_press[*]\nrun 0 post no")
    rows = np.array(engine.lmp.numpy.extract_compute("b", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR))
    return tensors.born_from_rows(rows)[0] / abs(np.linalg.det(engine.cell())) * GPA


def born_of_energy(engine, h: float = 1e-4) -> np.ndarray:
    """Second derivatives of the energy in Lagrangian strain eta (F = sqrt(1 + 2 eta)), per volume, GPa."""
    reference = engine.save_state()

    def energy(eta):
        w, v = np.linalg.eigh(np.eye(3) + 2 * eta)
        engine.restore_state(reference)
        engine.set_cell(lammps_cell(reference.cell @ ((v * np.sqrt(w)) @ v.T)))
        engine.evaluate()
        return engine.energy()

    E = np.zeros((6, 6))
    for a in range(6):
        for b in range(a, 6):
            E[a, b] = E[b, a] = sum(s * energy(tensors.voigt_strain_tensor(a, sa * h) + tensors.voigt_strain_tensor(
                b, sb * h)) for sa, sb, s in ((1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1))) / (4 * h * h)
    engine.restore_state(reference)
    return E / abs(np.linalg.det(reference.cell)) * GPA


@pytest.mark.parametrize("model,tol", [("cuau_current_f64.nequip.pth", 0.01), ("cuau_legacy_f32.pth", 0.5),
                                       ("cuau_nequip_f64.nequip.pth", 0.01)])
def test_plugin_born_matrix_is_the_energy_curvature(built_plugin, model, tol):
    """Under stress (-8 GPa here) too: LAMMPS' numdiff plus its stress terms is the Lagrangian curvature. A float32
    model needs larger steps: 1e-3 for the Born matrix (what the born method takes for it), 3e-3 for the energy
    (float32 energies: 1e-4 gives noise of tens of GPa; 3e-3 agrees within 0.25 GPa, 1e-2 has 1.7 GPa of
    truncation error)."""
    engine = engine_for(str(MODELS / model), "plugin", cuau32())
    try:
        engine.evaluate()
        p_before = engine.stress()
        B = born_of_lammps(engine, 1e-3 if "f32" in model else 1e-6)
        assert np.abs(engine.stress() - p_before).max() < 1e-9  # the compute leaves the pressure as it was
        assert np.abs(p_before).max() > 1.0                       # a stressed cell: stress terms matter
        E = born_of_energy(engine, 3e-3 if "f32" in model else 1e-4)
        assert np.abs(B - E).max() < tol and B[0, 0] > 100
    finally:
        engine.close()


def test_born_matrix_inside_hybrid_overlay(built_plugin):
    """melt widens the neighbour list with hybrid/overlay zero: the pair virial of the sub-style still counts."""
    model = str(MODELS / "cuau_current_f64.nequip.pth")
    plain, overlay = engine_for(model, "plugin", cuau32()), engine_for(model, "plugin", cuau32(), 6.5)
    try:
        assert np.abs(born_of_lammps(plain, 1e-6) - born_of_lammps(overlay, 1e-6)).max() < 1e-6
    finally:
        plain.close()
        overlay.close()


def test_python_backend_born_matrix_equals_the_plugin(built_plugin):
    model = str(MODELS / "cuau_current_f64.nequip.pth")
    atoms = cuau32()
    plugin_engine, python_engine = engine_for(model, "plugin", atoms), engine_for(model, "python", atoms)
    try:
        B = born_of_lammps(plugin_engine, 1e-6)
        python_engine.evaluate()
        state = python_engine.save_state()
        types = np.array([("Cu", "Au").index(s) for s in atoms.get_chemical_symbols()])  # the model's order
        cell = python_engine.cell()
        mine = python_engine.python_model.model.born_matrix(state.positions, cell, types, 1e-5)
        assert np.abs(mine / abs(np.linalg.det(cell)) * GPA - B).max() < 1e-3
    finally:
        plugin_engine.close()
        python_engine.close()
