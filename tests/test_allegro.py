"""Deployed Allegro models trained by our own scripts (tests/models) inside LAMMPS: every backend against the
model evaluated independently in Python (tests/models/reference.py), derivatives, MPI, NVE, the CLI."""
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.io import read

from conftest import C_of, load, run_cli

MODELS = Path(__file__).parent / "models"
sys.path.insert(0, str(MODELS))
from reference import evaluate  # noqa: E402

from mlipprops.potential import Potential  # noqa: E402
from mlipprops.system import System  # noqa: E402

EV_A3_TO_GPA = 160.21766208
FLOAT64 = ["cuau_legacy_f64.pth", "cuau_current_f64.nequip.pth", "cuau_current_pertype.nequip.pth"]


def backends():
    """The Python fallback always; the plugin when it builds here (CI builds it before the tests)."""
    from mlipprops import plugin
    return ["python"] + (["plugin"] if plugin.find() and not plugin.stale_reason() else [])


def alloy(kind: str):
    if kind == "triclinic":
        atoms = bulk("Cu", "fcc", a=3.65, cubic=True).repeat((2, 2, 1))
        atoms.set_cell(atoms.cell[:] + [[0, 0, 0], [0.5, 0, 0], [0.4, -0.3, 0]], scale_atoms=True)
        atoms.symbols[[1, 6, 9, 14]] = "Au"
    else:  # 'small': 4 atoms, a cell shorter than twice the cutoff (4.5 A) in every direction
        atoms = bulk("Cu", "fcc", a=3.7, cubic=True)
        atoms.symbols[[2]] = "Au"
    atoms.rattle(0.04, seed=7)
    return atoms


def lammps_single_point(model: str, atoms, backend: str):
    pot = Potential.model(str(MODELS / model), backend).with_types_for(atoms.get_chemical_symbols(), "t")
    system = System(atoms, pot, "t")
    engine = system.open_engine()
    engine.evaluate()
    out = (engine.energy(), system.frame.vectors_to_input(engine.forces()),
           system.frame.stress_to_input(engine.stress()) / EV_A3_TO_GPA, engine.backend)
    engine.close()
    return out


@pytest.mark.parametrize("model", FLOAT64)
@pytest.mark.parametrize("kind", ["triclinic", "small"])
def test_lammps_equals_the_model_in_python(model, kind):
    atoms = alloy(kind)
    ref = evaluate(str(MODELS / model), atoms)
    for backend in backends():
        energy, forces, stress, used = lammps_single_point(model, atoms, backend)
        assert used == backend
        assert energy == pytest.approx(ref["energy"], abs=1e-8), backend
        assert np.abs(forces - ref["forces"]).max() < 1e-5, backend
        # LAMMPS converts eV/A^3 to bar with its own constant (1.6021765e6): 1e-7 relative
        assert np.abs(stress - ref["stress"]).max() < 1e-6, backend


def test_float32_model_agrees_to_single_precision():
    atoms = alloy("triclinic")
    ref = evaluate(str(MODELS / "cuau_legacy_f32.pth"), atoms)
    for backend in backends():
        energy, forces, stress, _ = lammps_single_point("cuau_legacy_f32.pth", atoms, backend)
        assert energy == pytest.approx(ref["energy"], abs=1e-4)
        assert np.abs(forces - ref["forces"]).max() < 1e-4 and np.abs(stress - ref["stress"]).max() < 1e-5


@pytest.mark.parametrize("model", FLOAT64)
def test_stress_is_the_strain_derivative_of_the_energy(model):
    atoms = alloy("triclinic")
    for backend in backends():
        _, _, stress, _ = lammps_single_point(model, atoms, backend)
        h = 1e-5
        for a, b in ((0, 0), (2, 2), (0, 1), (1, 2)):
            eps = np.zeros((3, 3))
            eps[a, b] = eps[b, a] = h if a == b else h / 2
            energies = []
            for sign in (1, -1):
                strained = atoms.copy()
                strained.set_cell(atoms.cell[:] @ (np.eye(3) + sign * eps), scale_atoms=True)
                energies.append(lammps_single_point(model, strained, backend)[0])
            dE = (energies[0] - energies[1]) / (2 * h)
            assert dE / atoms.get_volume() == pytest.approx(stress[a, b], abs=2e-6), (backend, a, b)


@pytest.mark.mpi
@pytest.mark.parametrize("backend", ["python", "plugin"])
def test_two_ranks_give_the_same_numbers(tmp_path, backend):
    if backend not in backends():
        pytest.skip("plugin not built")
    atoms = alloy("triclinic").repeat((1, 1, 2))
    atoms.write(tmp_path / "cuau.extxyz")
    args = ("evaluate", "--model", MODELS / "cuau_current_f64.nequip.pth", "--structure", tmp_path / "cuau.extxyz",
            "--backend", backend)
    run_cli(*args, "--out", tmp_path / "one")
    run_cli(*args, "--out", tmp_path / "two", np_=2)
    one, two = load(tmp_path / "one" / "evaluate.json"), load(tmp_path / "two" / "evaluate.json")
    ref = evaluate(str(MODELS / "cuau_current_f64.nequip.pth"), read(tmp_path / "cuau.extxyz"))
    assert one["energy"] == pytest.approx(ref["energy"], abs=1e-8)
    assert two["energy"] == pytest.approx(one["energy"], abs=1e-9)
    assert np.abs(np.array(two["forces"]) - np.array(one["forces"])).max() < 1e-8
    assert np.abs(np.array(two["stress_GPa"]) - np.array(one["stress_GPa"])).max() < 1e-6


@pytest.mark.slow
def test_nve_conserves_energy():
    """Velocity Verlet, 1 fs, 300 K, 2 ps: the total energy drift per atom per ps must stay tiny for a smooth
    model (the drift is reported in the closing note of the issue)."""
    atoms = bulk("Cu", "fcc", a=3.62, cubic=True).repeat(2)
    atoms.symbols[::5] = "Au"
    backend = backends()[-1]
    pot = Potential.model(str(MODELS / "cuau_current_f64.nequip.pth"), backend)
    system = System(atoms, pot.with_types_for(atoms.get_chemical_symbols(), "t"), "t")
    engine = system.open_engine()
    engine.set_velocities(600.0, 3)
    engine.command("variable etot equal etotal\nfix nve all nve\ntimestep 0.001\n"
                   "fix e all ave/time 10 1 10 v_etot file /tmp/nve_etot.txt")
    engine.command("run 2000")
    engine.close()
    e = np.loadtxt("/tmp/nve_etot.txt")[:, 1]
    t = np.arange(len(e)) * 0.01  # ps
    drift = abs(np.polyfit(t, e, 1)[0]) / len(atoms)  # eV/atom/ps
    assert drift < 1e-4 and np.ptp(e) / len(atoms) < 2e-3


@pytest.mark.slow
@pytest.mark.mpi
def test_relax_and_elastic_through_the_cli(tmp_path):
    atoms = bulk("Cu", "fcc", a=3.62, cubic=True).repeat((2, 2, 2))
    atoms.symbols[::4] = "Au"  # an ordered alloy: the tensor keeps cubic symmetry
    atoms.write(tmp_path / "cu3au.extxyz")
    model = MODELS / "cuau_current_f64.nequip.pth"
    common = ("--model", model, "--structure", tmp_path / "cu3au.extxyz", "--quiet")
    run_cli("relax", *common, "--out", tmp_path / "relax")
    r = load(tmp_path / "relax" / "relax.json")
    assert r["converged"] and max(map(abs, r["residual_stress_GPa"])) < 1e-3
    assert r["provenance"]["potential"]["model"]["type_names"] == ["Cu", "Au"]
    run_cli("elastic", *common, "--out", tmp_path / "one")
    run_cli("elastic", *common, "--out", tmp_path / "two", np_=2)
    C1, C2 = C_of(tmp_path / "one"), C_of(tmp_path / "two")
    assert np.abs(C1 - C2).max() < 1e-4
    assert C1[0, 0] > C1[0, 1] > 0 and C1[3, 3] > 0 and load(tmp_path / "one" / "elastic.json")["born_stable"]
    assert np.abs(C1[0, 0] - C1[1, 1]) < 0.05 and np.abs(C1[:3, 3:]).max() < 0.05  # cubic pattern


def test_ci_builds_the_plugin():
    """The plugin tests above fall back to the Python backend alone where no plugin is built; CI must build it."""
    import os
    from mlipprops import plugin
    if os.environ.get("CI"):
        assert plugin.find() and plugin.stale_reason() is None, plugin.stale_reason()
    else:
        pytest.skip("outside CI the plugin is optional (mlipprops build-plugin)")
