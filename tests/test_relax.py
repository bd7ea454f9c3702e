"""relax through the CLI: the relax.json contract, convergence from a strained start, input-frame output."""
import numpy as np
import pytest
from ase.build import bulk
from ase.io import read

from conftest import SI_SW, load, run_cli

CONTRACT = ("energy", "natoms", "cell", "lattice", "density_g_cm3", "residual_stress_GPa", "max_force",
            "schema_version")


def test_relax_contract_and_values(tmp_path):
    atoms = bulk("Si", "diamond", a=5.50)  # primitive (triclinic) and 1.3 % too large
    atoms.write(tmp_path / "si.extxyz")
    proc = run_cli("relax", "--structure", tmp_path / "si.extxyz", *SI_SW, "--out", tmp_path / "r")
    r = load(tmp_path / "r" / "relax.json")
    assert all(k in r for k in CONTRACT)
    assert r["provenance"]["potential"]["pair_style"] == "sw" and r["settings"]["mode"] == "tri"
    assert r["converged"] and r["rounds"] >= 1 and "relaxed in" in proc.stdout
    assert r["minimum_check"]["is_minimum"] and "minimum check: a minimum" in proc.stdout
    assert max(map(abs, r["residual_stress_GPa"])) < 1e-3 and r["max_force"] < 1e-4
    a0 = 5.431
    assert r["lattice"] == pytest.approx([a0 / 2**0.5] * 3 + [60.0] * 3, abs=2e-3)
    assert r["density_g_cm3"] == pytest.approx(8 * 28.0855 / a0**3 * 1.66053906660, rel=1e-3)
    assert r["energy"] == pytest.approx(-4.3366 * 2, abs=1e-3)
    # cell in the input frame: same directions as the input vectors, scaled isotropically
    cell = np.array(r["cell"])
    # (to within the shear the 1e-3 GPa stress tolerance allows: 1e-3 / C44 * 2.7 A ~ 5e-5 A)
    assert np.allclose(cell, atoms.cell[:] * cell[0, 1] / atoms.cell[0, 1], atol=2e-4)
    for ext in ("cif", "extxyz", "data"):
        assert (tmp_path / "r" / f"relaxed.{ext}").is_file()
    back = read(tmp_path / "r" / "relaxed.extxyz")
    assert np.allclose(back.cell[:], cell)


def test_relax_under_pressure_shrinks_the_cell(tmp_path):
    run_cli("relax", "--example", "si-sw", "--pressure", "5", "--out", tmp_path / "p")
    r = load(tmp_path / "p" / "relax.json")
    assert r["stress_GPa"][:3] == pytest.approx([-5.0] * 3, abs=1e-3)
    # B = 101.4 GPa, B' ~ 4: V/V0 ~ 0.953 at 5 GPa
    assert (r["lattice"][0] / 5.431) ** 3 == pytest.approx(0.953, abs=0.004)


def test_iso_mode_keeps_the_shape(tmp_path):
    atoms = bulk("Si", "diamond", a=5.50, cubic=True)
    atoms.set_cell(atoms.cell[:] * [1.0, 1.02, 1.0], scale_atoms=True)
    atoms.write(tmp_path / "t.extxyz")
    run_cli("relax", "--structure", tmp_path / "t.extxyz", *SI_SW, "--relax-mode", "iso", "--out", tmp_path / "i")
    r = load(tmp_path / "i" / "relax.json")
    a, b, c = r["lattice"][:3]
    assert b / a == pytest.approx(1.02, rel=1e-9)
    assert abs(sum(r["residual_stress_GPa"][:3])) / 3 < 1e-3


def test_minimum_check_finds_a_saddle_held_by_symmetry(tmp_path):
    """Simple cubic Lennard-Jones: every force vanishes by symmetry, so the relaxation stops on it, yet it is a
    saddle (rattled ions slide into a close packing, 2 epsilon/atom lower): relax must say it is not a minimum, in
    relax.json, on stdout and in a warning. fcc, a minimum, passes; --skip-minimum-check skips."""
    from ase import Atoms
    from ase.build import bulk

    cases = {"sc": Atoms("Ar", cell=np.eye(3) * 1.1, pbc=True).repeat(3),
             "fcc": bulk("Ar", "fcc", a=1.55, cubic=True).repeat(2)}
    lj = ("--units", "lj", "--pair-style", "lj/cut 2.5", "--pair-coeff", "* * 1.0 1.0")
    found = {}
    for name, atoms in cases.items():
        atoms.write(tmp_path / f"{name}.extxyz")
        proc = run_cli("relax", "--structure", tmp_path / f"{name}.extxyz", *lj, "--out", tmp_path / name)
        r = load(tmp_path / name / "relax.json")
        assert r["converged"]
        found[name] = (r["minimum_check"], proc)
    sc, proc = found["sc"]
    assert not sc["is_minimum"] and sc["shallow"] is False and sc["energy_change_per_atom"] < -1.0
    assert sc["max_ion_displacement"] > 0.1
    assert "NOT a minimum (a saddle held by its symmetry)" in proc.stdout and "not a minimum" in proc.stderr
    fcc, proc = found["fcc"]
    assert fcc["is_minimum"] and fcc["shallow"] is None and abs(fcc["energy_change"]) <= fcc["allowed"]
    assert fcc["max_ion_displacement"] < 1e-3 and "minimum check: a minimum" in proc.stdout
    run_cli("relax", "--structure", tmp_path / "fcc.extxyz", *lj, "--skip-minimum-check", "--out", tmp_path / "s")
    assert load(tmp_path / "s" / "relax.json")["minimum_check"] is None


def test_minimum_check_with_a_stiff_cell_relaxes_the_cell_only_when_the_ions_slide():
    """Given a positive definite relaxed-ion C (elastic knows it), the check relaxes the rattled ions in the fixed
    cell: fcc LJ comes back (the cell untouched); simple cubic slides off its saddle already in the fixed cell, and
    then the cell follows for the depth, as deep as the check with the cell from the start finds."""
    from ase import Atoms
    from ase.build import bulk

    import mlipprops as mp
    from mlipprops.properties.relax import RelaxSettings, minimum_check, relax_in_place
    from mlipprops.system import System

    lj = mp.Potential.lammps("lj/cut 2.5", ["* * 1.0 1.0"], "lj", types=["Ar"])
    settings = RelaxSettings(relax_mode="aniso")
    found = {}
    for name, atoms, stiff in [("fcc", bulk("Ar", "fcc", a=1.55, cubic=True).repeat(2), True),
                               ("sc", Atoms("Ar", cell=np.eye(3) * 1.1, pbc=True).repeat(3), True),
                               ("sc, cell from the start", Atoms("Ar", cell=np.eye(3) * 1.1, pbc=True).repeat(3),
                                False)]:
        with System(atoms, lj, name).open_engine() as engine:
            outcome = relax_in_place(engine, settings)
            assert outcome.converged
            found[name] = minimum_check(engine, settings, outcome, stiff_cell=stiff)
    fcc, sc, reference = found["fcc"], found["sc"], found["sc, cell from the start"]
    assert fcc["is_minimum"] and not fcc["cell_relaxed"] and fcc["cell_change"] < 1e-12
    assert not sc["is_minimum"] and sc["cell_relaxed"] and sc["cell_change"] > 0.01 and sc["shallow"] is False
    assert reference["cell_relaxed"] and sc["energy_change_per_atom"] < -1.0
    # 27 atoms cannot close-pack without defects: the slide ends in one of several packings, -2.27 to -2.40 eps/atom
    # below the saddle (seen with either minimizer), all far deeper than the 1 eps/atom asked above
    assert sc["energy_change_per_atom"] == pytest.approx(reference["energy_change_per_atom"], abs=0.25)
