"""Deployed-model handling with a TorchScript toy model (milliseconds): format inspection without unpickling,
the Python evaluation, and the fix-external backend in LAMMPS. The trained Allegro models are tested in
test_allegro.py."""
import zipfile

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.io import read

from conftest import load, run_cli
from mlipprops.errors import InputError
from mlipprops.models import CURRENT, LEGACY, inspect_model
from mlipprops.potential import Potential
from mlipprops.system import System
from mlipprops.torch_model import DeployedModel
from toy_model import save_toy_model

EV_A3_TO_GPA = 160.21766208


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return save_toy_model(tmp_path_factory.mktemp("toy") / "toy.pth")


@pytest.fixture
def cuau():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
    atoms.symbols[[1, 6]] = "Au"
    atoms.set_cell(atoms.cell[:] + [[0, 0, 0], [0.4, 0, 0], [0.3, -0.2, 0]], scale_atoms=True)  # triclinic
    atoms.rattle(0.05, seed=3)
    return atoms


def test_inspect_formats(tmp_path, toy):
    legacy = inspect_model(toy)
    assert legacy.format == LEGACY and legacy.type_names == ("Cu", "Au") and legacy.r_max == 4.5
    assert legacy.model_dtype == "float64" and not legacy.allow_tf32
    assert legacy.architecture == "unknown" and not legacy.local  # a toy, not Allegro: never assumed local
    assert [w for w in legacy.warnings() if "periodic graph" not in w] == []
    current = inspect_model(save_toy_model(tmp_path / "c.nequip.pth", dtype="float32", legacy=False))
    assert current.format == CURRENT and current.model_dtype == "float32"
    assert any("float32" in w for w in current.warnings())


def test_per_edge_type_cutoff_and_tf32_are_read(tmp_path, toy):
    path = tmp_path / "pair.nequip.pth"
    with zipfile.ZipFile(toy) as src, zipfile.ZipFile(path, "w") as dst:
        for name in src.namelist():
            if name.endswith("/extra/allow_tf32"):
                dst.writestr(name, "1")
            elif not name.endswith("/extra/n_species"):
                dst.writestr(name, src.read(name))
        dst.writestr("toy/extra/num_types", "2")
        dst.writestr("toy/extra/per_edge_type_cutoff", "4.5 4.0 4.0 4.5")
    info = inspect_model(str(path))
    assert info.format == CURRENT and info.cutoff("Cu", "Au") == 4.0 and info.cutoff("Au", "Au") == 4.5
    assert info.allow_tf32 and any("TF32" in w for w in info.warnings())


def test_refuses_what_is_not_a_deployed_model(tmp_path):
    torch.save({"state_dict": {"w": torch.zeros(2)}}, tmp_path / "ckpt.pth")
    with pytest.raises(InputError, match="checkpoint"):
        inspect_model(str(tmp_path / "ckpt.pth"))
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(InputError, match="not a deployed model"):
        inspect_model(str(tmp_path / "text.pth"))
    with pytest.raises(InputError, match="not found"):
        inspect_model(str(tmp_path / "none.pth"))


def test_python_model_forces_and_virial_are_derivatives(toy, cuau):
    model = DeployedModel(inspect_model(toy))
    types = [0 if s == "Cu" else 1 for s in cuau.get_chemical_symbols()]
    e0, forces, virial = model(cuau.positions, cuau.cell[:], types)
    h = 1e-5
    for atom, axis in ((0, 0), (3, 2), (6, 1)):
        p = cuau.positions.copy()
        p[atom, axis] += h
        ep = model(p, cuau.cell[:], types)[0]
        p[atom, axis] -= 2 * h
        em = model(p, cuau.cell[:], types)[0]
        assert -(ep - em) / (2 * h) == pytest.approx(forces[atom, axis], abs=1e-7)
    for a, b in ((0, 0), (1, 2), (0, 1)):  # W_ab = -dE/d(gamma_ab), engineering strain of cell and positions
        eps = np.zeros((3, 3))
        eps[a, b] = eps[b, a] = h / 2 if a != b else h
        ep = model(cuau.positions @ (np.eye(3) + eps), cuau.cell[:] @ (np.eye(3) + eps), types)[0]
        em = model(cuau.positions @ (np.eye(3) - eps), cuau.cell[:] @ (np.eye(3) - eps), types)[0]
        dE = (ep - em) / (2 * h)
        assert -dE == pytest.approx(virial[a, b], abs=1e-7)


def test_fix_external_backend_equals_the_model(toy, cuau):
    pot = Potential.model(toy, backend="python").with_types_for(cuau.get_chemical_symbols(), "x")
    system = System(cuau, pot, "x")
    engine = system.open_engine()
    engine.evaluate()
    assert engine.backend == "python"
    e, f, w = DeployedModel(pot.model_info)(cuau.positions, cuau.cell[:], [0 if s == "Cu" else 1 for s in
                                                                         cuau.get_chemical_symbols()])
    assert engine.energy() == pytest.approx(e, abs=1e-10)
    assert np.abs(system.frame.vectors_to_input(engine.forces()) - f).max() < 1e-10
    sigma = system.frame.stress_to_input(engine.stress())
    assert np.abs(sigma + w / cuau.get_volume() * EV_A3_TO_GPA).max() < 1e-5  # LAMMPS' eV/A3 -> bar constant
    engine.close()


def test_species_not_in_model(toy):
    with pytest.raises(InputError, match="Ag .*not in the model"):
        Potential.model(toy).with_types_for(["Cu", "Ag"], "cuag.cif")


@pytest.mark.mpi
def test_evaluate_cli_on_one_and_two_ranks(tmp_path, toy, cuau):
    cuau.write(tmp_path / "cuau.extxyz")
    cuau = read(tmp_path / "cuau.extxyz")  # the file's precision, not the in-memory positions
    args = ("evaluate", "--model", toy, "--structure", tmp_path / "cuau.extxyz", "--backend", "python")
    run_cli(*args, "--out", tmp_path / "one")
    run_cli(*args, "--out", tmp_path / "two", np_=2)
    one, two = load(tmp_path / "one" / "evaluate.json"), load(tmp_path / "two" / "evaluate.json")
    for key in ("energy", "forces", "stress_GPa", "schema_version"):
        assert key in one
    assert np.array(one["forces"]).shape == (len(cuau), 3)
    e, f, _ = DeployedModel(inspect_model(toy))(cuau.positions, cuau.cell[:],
                                                [0 if s == "Cu" else 1 for s in cuau.get_chemical_symbols()])
    assert one["energy"] == pytest.approx(e, abs=1e-10) and np.abs(np.array(one["forces"]) - f).max() < 1e-10
    assert two["energy"] == pytest.approx(one["energy"], abs=1e-10)
    assert np.abs(np.array(two["forces"]) - np.array(one["forces"])).max() < 1e-10
    assert np.abs(np.array(two["stress_GPa"]) - np.array(one["stress_GPa"])).max() < 1e-8


def test_info_cli_and_bad_model_lines(tmp_path, toy):
    out = run_cli("info", "--model", toy).stdout
    assert "Cu Au" in out and "4.5" in out and "legacy" in out
    torch.save({"w": torch.zeros(1)}, tmp_path / "ck.pth")
    for path, words in ((tmp_path / "ck.pth", "checkpoint"), (tmp_path / "no.pth", "not found")):
        proc = run_cli("info", "--model", path, check=False)
        lines = [x for x in proc.stderr.splitlines() if x.strip()]
        assert proc.returncode != 0 and len(lines) == 1 and words in lines[0] and "Traceback" not in proc.stderr
