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


# -- what a new user hit (issue 28): CIFs cut short, several blocks, deuterium, the atom order -------------------
def _urea_text(datadir) -> str:
    return (datadir / "urea.cif").read_text()


def test_cif_cut_between_rows_of_its_atom_loop_is_refused(datadir, tmp_path):
    """head -c cutting the atom loop after a whole row leaves a valid CIF of fewer atoms: its formula times Z
    (C H4 N2 O x 2 = 16 atoms) says so."""
    text = _urea_text(datadir)
    cut = tmp_path / "cut.cif"
    cut.write_text(text[:text.index("H2 H")])
    with pytest.raises(InputError, match=r"cut.cif: its atoms .*12 in the cell.* Z = 2 .*cut short"):
        read_structure(str(cut))


def test_cif_cut_inside_a_row_is_refused(datadir, tmp_path):
    text = _urea_text(datadir)
    cut = tmp_path / "cut.cif"
    cut.write_text(text[:text.index("H1 H") + 12])
    with pytest.raises(InputError, match=r"cut.cif: a loop ends inside a row.*cut short"):
        read_structure(str(cut))


def test_cif_atoms_against_formula_without_z(datadir, tmp_path):
    """Without Z only the proportions can be checked: an H row lost still shows."""
    text = _urea_text(datadir).replace("_cell_formula_units_Z            2\n", "")
    whole, cut = tmp_path / "whole.cif", tmp_path / "cut.cif"
    whole.write_text(text)
    cut.write_text(text[:text.index("H2 H")])
    assert len(read_structure(str(whole))) == 16
    with pytest.raises(InputError, match="are not its formula"):
        read_structure(str(cut))
    # pymatgen-written CIFs give the cell's content as the formula 'sum' beside Z ('Cu4', Z = 4): consistent too
    from mlipprops.examples import EXAMPLES
    assert len(read_structure(EXAMPLES["cu-eam"].structure_path())) == 4


def test_cif_with_several_structures_needs_a_block_name(datadir, tmp_path):
    from mlipprops.examples import EXAMPLES
    both = tmp_path / "both.cif"
    both.write_text(open(EXAMPLES["si-sw"].structure_path()).read() + _urea_text(datadir))
    with pytest.raises(InputError, match=r"both.cif holds 2 structures \(data blocks Si, urea\).*cif_block=NAME"):
        read_structure(str(both))
    assert len(read_structure(str(both), cif_block="urea")) == 16
    assert len(read_structure(str(both), cif_block="Si")) == 8
    with pytest.raises(InputError, match="no block data_nope"):
        read_structure(str(both), cif_block="nope")
    with pytest.raises(InputError, match="not a CIF"):
        read_structure(str(datadir / "urea_gfn2_heldout.extxyz"), cif_block="urea")


def test_cif_atoms_keep_the_atom_loop_order(datadir):
    """The loop's order (C1 O1 N1 H1 H2), each site followed by its symmetry copies, not pymatgen's sorting by
    electronegativity (H first): forces and structures come back in the file's order."""
    atoms = read_structure(str(datadir / "urea.cif"))
    assert atoms.get_chemical_symbols() == ["C"] * 2 + ["O"] * 2 + ["N"] * 4 + ["H"] * 8
    assert list(atoms.arrays["cif_label"]) == ["C1"] * 2 + ["O1"] * 2 + ["N1"] * 4 + ["H1"] * 4 + ["H2"] * 4
    assert list(make_supercell(atoms, (1, 1, 2)).arrays["cif_label"][16:18]) == ["C1", "C1"]


def test_deuterium_is_read_as_hydrogen_with_a_warning(datadir, tmp_path, capsys):
    heavy = tmp_path / "d.cif"
    heavy.write_text(_urea_text(datadir).replace("H1 H ", "D1 D "))
    atoms = read_structure(str(heavy))
    assert atoms.get_chemical_symbols().count("H") == 8
    assert "d.cif has deuterium (D): read as hydrogen" in capsys.readouterr().err


def test_negative_min_distance_is_refused(datadir):
    with pytest.raises(InputError, match="min_distance=-1"):
        read_structure(str(datadir / "urea.cif"), min_distance=-1)
