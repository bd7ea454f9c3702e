"""Structure reading, checks, and the frame rotation into LAMMPS."""
import numpy as np
import pytest
from ase.build import bulk
from scipy.spatial.transform import Rotation

from mlipprops.errors import InputError
from mlipprops.structure import (LammpsFrame, check_structure, is_orthogonal, lammps_cell, make_supercell,
                                 read_structure)


def test_cif_symmetry_expansion_with_hydrogens(datadir):
    atoms = read_structure(str(datadir / "urea.cif"))
    assert len(atoms) == 16 and atoms.get_chemical_formula() == "C2H8N4O2"
    assert atoms.cell.cellpar()[:3] == pytest.approx([5.565, 5.565, 4.684])
    assert check_structure(atoms, "urea.cif") == []  # no overlaps, H present


def test_bundled_diamond_cif_expands_to_eight_atoms():
    from mlipprops.examples import EXAMPLES
    atoms = read_structure(EXAMPLES["si-sw"].structure_path())
    assert len(atoms) == 8
    d = atoms.get_all_distances(mic=True)
    assert np.sort(d[0])[1] == pytest.approx(5.431 * np.sqrt(3) / 4, rel=1e-6)


def test_partial_occupancy_is_refused(datadir):
    with pytest.raises(InputError, match="partial occupancy"):
        read_structure(str(datadir / "disordered.cif"))


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_structure(str(tmp_path / "nope.cif"))
    bad = tmp_path / "junk.cif"
    bad.write_text("this is not a cif\n")
    with pytest.raises(InputError, match="junk.cif"):
        read_structure(str(bad))


def test_overlapping_atoms_are_refused():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.positions[1] = atoms.positions[0] + [0.1, 0.0, 0.0]
    with pytest.raises(InputError, match="apart"):
        check_structure(atoms, "x.extxyz")


def test_carbon_without_hydrogen_warns():
    atoms = bulk("C", "diamond", a=3.57) + bulk("Si", "diamond", a=5.43)[:0]
    atoms[0].symbol = "N"
    assert any("hydrogen" in n for n in check_structure(atoms, "cn.cif"))


def test_supercell_and_lammps_data_round_trip(tmp_path):
    atoms = make_supercell(bulk("Cu", "fcc", a=3.6, cubic=True), (2, 1, 3))
    assert len(atoms) == 24
    with pytest.raises(InputError):
        make_supercell(atoms, (0, 1, 1))
    from ase.io import write
    write(tmp_path / "cu.data", atoms, format="lammps-data", masses=True)
    back = read_structure(str(tmp_path / "cu.data"))
    assert back.get_chemical_symbols() == ["Cu"] * 24


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lammps_frame_maps_any_cell_to_upper_triangular(seed):
    rng = np.random.default_rng(seed)
    cell = rng.normal(size=(3, 3)) * 4 + np.eye(3) * 6
    if seed == 2:
        cell[2] *= -1  # left-handed: Q becomes improper, still orthogonal
    frame = LammpsFrame.for_cell(cell)
    L = frame.cell_to_lammps(cell)
    assert np.allclose(frame.Q @ frame.Q.T, np.eye(3))
    assert np.allclose(L, lammps_cell(cell)) and np.allclose(np.triu(L, 1), 0) and np.all(np.diag(L) > 0)
    assert np.allclose(frame.vectors_to_input(L), cell)
    sigma = rng.normal(size=(3, 3))
    sigma = sigma + sigma.T
    assert np.allclose(frame.stress_to_input(frame.Q @ sigma @ frame.Q.T), sigma)


def test_orthogonality():
    assert is_orthogonal(np.eye(3) * 4)
    assert not is_orthogonal(bulk("Si").cell[:])
    R = Rotation.from_euler("xyz", [10, 20, 30], degrees=True).as_matrix()
    assert is_orthogonal(np.eye(3) @ R.T)


def test_molecules_of_a_molecular_crystal(datadir):
    from mlipprops.molecules import composition, intact, is_molecular
    urea = read_structure(str(datadir / "urea.cif"))
    assert composition(urea) == {"CH4N2O": 2} and is_molecular(urea)
    assert not is_molecular(bulk("Cu", "fcc", a=3.6, cubic=True))
    broken = urea.copy()
    broken.positions[0] += [1.5, 0, 0]  # pull one atom out of its molecule
    assert not intact(composition(urea), broken)


def test_centre_species_picks_the_atom_nearest_the_molecular_centre(datadir):
    from mlipprops.molecules import centre_species
    # urea: C (bonded to O and both N) is nearer the centre of mass than O; N and H occur more than once
    assert centre_species(read_structure(str(datadir / "urea.cif"))) == "C"
    assert centre_species(bulk("Cu", "fcc", a=3.6, cubic=True)) is None
