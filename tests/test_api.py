"""The Python API (`import mlipprops as mp`): what a notebook or a script does, with nothing else imported."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import mlipprops as mp
from conftest import load, run_cli

SCRIPT = textwrap.dedent("""
    import mlipprops as mp

    atoms = mp.read_structure({structure!r})
    pot = mp.Potential.lammps("sw", ["* * Si.sw Si"], units="metal")
    first = mp.elastic(atoms, pot)
    again = mp.elastic(atoms, pot)              # twice in one process: LAMMPS closed and reopened
    C = first.C
    print("C", C[0, 0], C[0, 1], C[3, 3], abs(again.C - C).max())
    print("K_VRH", first.to_pymatgen().k_vrh)
    first.plot().savefig({png!r})
    first.save({out!r})
    print("loaded", mp.load({out!r}).C[0, 0], type(mp.load({out!r})).__name__)
    try:
        mp.read_structure({missing!r})
    except mp.InputError as exc:
        print("InputError", exc)
""")


def test_a_script_with_mp_alone(tmp_path):
    """Issue acceptance: SW Si's tensor twice, pymatgen, a figure, save and reload, an InputError."""
    structure = mp.examples.EXAMPLES["si-sw"].structure_path()
    script = SCRIPT.format(structure=structure, png=str(tmp_path / "C.png"), out=str(tmp_path / "si"),
                           missing=str(tmp_path / "missing.cif"))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    words = {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines()}
    c11, c12, c44, repeat = map(float, words["C"])
    assert abs(c11 - 151.4) < 0.3 and abs(c12 - 76.4) < 0.3 and abs(c44 - 56.4) < 0.3 and repeat < 1e-9
    assert float(words["K_VRH"][0]) == pytest.approx(101.4, abs=0.1)
    assert float(words["loaded"][0]) == c11 and words["loaded"][1] == "ElasticResult"
    assert "missing.cif not found" in " ".join(words["InputError"])
    assert (tmp_path / "C.png").stat().st_size > 10_000
    for name in ("elastic.json", "C.csv", "C.png", "relaxed.cif", "relaxed.extxyz", "relaxed.data"):
        assert (tmp_path / "si" / name).is_file()


def test_the_cli_writes_what_the_api_returns(tmp_path):
    """One implementation: the same numbers and keys through the CLI and through mp.relax/mp.elastic."""
    atoms, pot = mp.example("cu-eam")
    relaxed = mp.relax(atoms, pot, stress_tol=1e-4)
    run_cli("relax", "--example", "cu-eam", "--stress-tol", "1e-4", "--quiet", "--out", tmp_path / "r")
    cli = load(tmp_path / "r" / "relax.json")
    assert relaxed.to_dict().keys() == cli.keys() and relaxed.energy == pytest.approx(cli["energy"], abs=1e-10)
    assert np.allclose(relaxed.atoms.cell[:], cli["cell"], atol=1e-10) and relaxed.converged
    e = mp.elastic(atoms, pot, strains=(0.005,))
    run_cli("elastic", "--example", "cu-eam", "--strains", "0.005", "--quiet", "--out", tmp_path / "e")
    assert np.abs(e.C - np.array(load(tmp_path / "e" / "elastic.json")["C"])).max() < 1e-9


def test_settings_are_checked_and_named_as_the_flags():
    atoms, pot = mp.example("si-sw")
    with pytest.raises(mp.InputError, match="unknown setting.*strain_amplitude"):
        mp.elastic(atoms, pot, strain_amplitude=0.01)
    with pytest.raises(mp.InputError, match="not per cent"):
        mp.elastic(atoms, pot, strains=(0.5,))


def test_structures_from_ase_and_pymatgen():
    from pymatgen.io.ase import AseAtomsAdaptor
    atoms, pot = mp.example("si-sw")
    a = mp.read_structure(atoms, supercell=(1, 1, 2))
    b = mp.read_structure(AseAtomsAdaptor.get_structure(atoms), supercell=(1, 1, 2))
    assert len(a) == len(b) == 2 * len(atoms)
    assert mp.evaluate(a, pot).energy == pytest.approx(mp.evaluate(b, pot).energy, abs=1e-9)
    with pytest.raises(mp.InputError, match="closer than"):
        squeezed = atoms.copy()
        squeezed.positions[1] = squeezed.positions[0] + 0.1
        mp.read_structure(squeezed)


@pytest.mark.mpi
def test_np_runs_on_mpi_ranks_and_returns_here(tmp_path):
    """np=2 relaunches under mpiexec; the result comes back to this process, the same as on one rank."""
    atoms, pot = mp.example("si-sw")
    one = mp.elastic(atoms, pot, strains=(0.005,))
    two = mp.elastic(atoms, pot, strains=(0.005,), np=2, out=str(tmp_path / "np2"))
    assert two.to_dict()["provenance"]["mpi_ranks"] == 2 and np.abs(two.C - one.C).max() < 1e-8
    assert (tmp_path / "np2" / "log.group1.lammps").is_file()
    with pytest.raises(mp.InputError, match="cores"):
        mp.elastic(atoms, pot, np=1000)


def test_a_lammps_instance_is_closed_after_an_error(tmp_path):
    """A kernel can run a hundred calls: a failed one leaves no LAMMPS behind (here: the log is complete)."""
    atoms, pot = mp.example("si-sw")
    bad = mp.Potential.lammps("sw", ["* * Si.sw Si"], units="metal")
    import dataclasses
    bad = dataclasses.replace(bad, pair_style="sw/nonexistent")
    for _ in range(3):
        with pytest.raises(mp.LammpsError, match="Unrecognized pair style"):
            mp.evaluate(atoms, bad, out=str(tmp_path / "bad"))
    assert mp.evaluate(atoms, pot).energy < 0
