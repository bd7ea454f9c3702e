"""Crystal structures in: CIF, POSCAR, extxyz, LAMMPS data -> ASE Atoms, with the checks a user needs, and the
rotation between the input file's frame and LAMMPS' upper-triangular frame."""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers
from ase.neighborlist import neighbor_list

from mlipprops.errors import InputError

CIF_SUFFIXES = (".cif", ".mmcif")
XYZ_SUFFIXES = (".xyz", ".extxyz")
DATA_SUFFIXES = (".data", ".lmp", ".lammps")


def read_structure(source, supercell: tuple[int, int, int] | None = None, types: list[str] | None = None,
                   min_distance: float = 0.5, cif_block: str | None = None) -> Atoms:
    """A periodic crystal as ase.Atoms, checked: from a file (CIF with symmetry expansion, POSCAR, extxyz, LAMMPS
    data, whose types 1..n are the elements `types`), an ase.Atoms or a pymatgen Structure; repeated by
    `supercell`. Atoms closer than `min_distance` (A), partial occupancy, missing cells, a CIF cut short or whose
    atoms disagree with its formula and Z, and a CIF of several structures without `cif_block` (the name after
    `data_`) are refused with an InputError; carbon without hydrogen is warned about. The atoms keep the file's
    order (a CIF: its atom-site loop, each site followed by its symmetry copies; `atoms.arrays["cif_label"]`)."""
    from mlipprops.errors import warn

    if not min_distance >= 0:  # a negative or NaN limit would switch the overlap check off without a word
        raise InputError(f"--min-distance {min_distance}: a distance in A, zero or more (0.5 by default)")

    if isinstance(source, Atoms):
        atoms = source.copy()
        if not atoms.pbc.all() or abs(atoms.cell.volume) < 1e-6:
            raise InputError("the structure has no full 3D periodic cell: mlipprops needs a crystal")
        atoms.info.setdefault("source", "ase.Atoms")
    elif hasattr(source, "lattice") and hasattr(source, "species"):  # a pymatgen Structure
        from pymatgen.io.ase import AseAtomsAdaptor
        if not source.is_ordered:
            raise InputError("the pymatgen Structure has partial occupancy: choose one ordered configuration")
        atoms = AseAtomsAdaptor.get_atoms(source)
        atoms.info["source"] = "pymatgen Structure"
    else:
        atoms = _read_file(str(source), types, cif_block)
    if cif_block is not None and not str(atoms.info["source"]).lower().endswith(CIF_SUFFIXES):
        raise InputError(f"--cif-block {cif_block}: {atoms.info['source']} is not a CIF file (leave --cif-block out)")
    # checked before it is repeated: a periodic cell's overlaps are its repeats' (and a neighbour list of a
    # million-atom supercell takes gigabytes and minutes)
    for note in check_structure(atoms, atoms.info["source"], min_distance):
        warn(note)
    return make_supercell(atoms, supercell)


def _read_file(path: str, type_symbols: list[str] | None = None, cif_block: str | None = None) -> Atoms:
    """Read a periodic structure. `type_symbols` maps LAMMPS data types 1..n to elements."""
    if not os.path.isfile(path):
        raise InputError(f"structure file {path} not found: check the path (--structure)")
    name = os.path.basename(path).lower()
    try:
        if name.endswith(CIF_SUFFIXES):
            atoms = _read_cif(path, cif_block)
        elif name.endswith(DATA_SUFFIXES) or name.startswith("data."):
            atoms = _read_lammps_data(path, type_symbols)
        else:
            from ase.io import read
            fmt = "extxyz" if name.endswith(XYZ_SUFFIXES) else None
            if name.startswith(("poscar", "contcar")) or name.endswith(".vasp"):
                fmt = "vasp"
            atoms = read(path, format=fmt)
    except InputError:
        raise
    except Exception as exc:  # readers raise anything from ValueError to StopIteration on a bad file
        raise InputError(f"cannot read structure {path}: {exc}. Give a CIF, POSCAR, extxyz or LAMMPS data file")
    if not atoms.pbc.all() or abs(atoms.cell.volume) < 1e-6:
        raise InputError(f"structure {path} has no full 3D periodic cell: mlipprops needs a crystal")
    atoms.pbc = True
    atoms.info["source"] = os.path.abspath(path)
    return atoms


def _read_cif(path: str, block_name: str | None = None) -> Atoms:
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.io.cif import CifParser

    block = _cif_block(path, block_name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            structures = CifParser.from_str(str(block), occupancy_tolerance=1.05).parse_structures(primitive=False)
        except ValueError as exc:
            notes = "; ".join(str(w.message) for w in caught)
            raise InputError(f"cannot read CIF {path}: {exc} {notes}".strip())
    structure = structures[0]
    if not structure.is_ordered:
        sites = [f"{s.species_string}@{np.round(s.frac_coords, 4).tolist()}" for s in structure if not s.is_ordered]
        raise InputError(
            f"CIF {path} has partial occupancy / disorder ({len(sites)} sites, e.g. {sites[0]}): "
            "choose one ordered configuration (remove the minor disorder component) and retry")
    labels = [str(x) for x in block.data.get("_atom_site_label", [])]
    structure = _in_loop_order(structure, labels)
    _check_formula(path, block, structure.composition)
    atoms = AseAtomsAdaptor.get_atoms(structure)
    atoms.set_array("cif_label", np.array([site.label for site in structure], dtype=object).astype(str))
    if "D" in _cif_symbols(block):
        from mlipprops.errors import warn
        warn(f"CIF {path} has deuterium (D): read as hydrogen, with hydrogen's mass (the potential knows H only; "
             "MD with deuterium's mass: melt's --hydrogen-mass 2.014)")
    return atoms


def _cif_block(path: str, name: str | None):
    """The one data block of a CIF that holds a structure; with several, the one the user named."""
    from pymatgen.io.cif import CifFile

    with open(path, errors="replace") as fh:
        text = fh.read()
    try:
        blocks = CifFile.from_str(text).data
    except (ValueError, ZeroDivisionError) as exc:
        # a loop whose values do not fill its rows: what a file cut short (or a lost value) looks like
        raise InputError(f"cannot read CIF {path}: a loop ends inside a row ({exc}): is the file cut short? "
                         "Restore the complete file") from None
    with_atoms = [k for k, b in blocks.items() if "_atom_site_fract_x" in b.data or "_atom_site_Cartn_x" in b.data]
    if name is not None:
        if name not in blocks:
            raise InputError(f"--cif-block {name}: CIF {path} has no block data_{name} (it has: "
                             f"{', '.join(blocks) or 'none'})")
        return blocks[name]
    if len(with_atoms) > 1:
        raise InputError(f"CIF {path} holds {len(with_atoms)} structures (data blocks {', '.join(with_atoms)}): "
                         "name one with --cif-block NAME")
    if not with_atoms:
        raise InputError(f"CIF {path} has no atom sites (_atom_site_fract_x): is it a crystal structure file?")
    return blocks[with_atoms[0]]


def _in_loop_order(structure, labels: list[str]):
    """The sites in the order of the CIF's atom-site loop (pymatgen sorts them by electronegativity), each site's
    symmetry copies after it: the input file's order, as far as a symmetry-expanded file has one."""
    position = {label: k for k, label in enumerate(labels)}
    if not labels or any(site.label not in position for site in structure):
        return structure  # labels pymatgen made up: no loop order to restore
    from pymatgen.core import Structure
    order = sorted(range(len(structure)), key=lambda k: position[structure[k].label])
    return Structure.from_sites([structure[k] for k in order])


_FORMULA_TERM = re.compile(r"([A-Z][a-z]?)(\d*\.?\d*)")


def _cif_symbols(block) -> list[str]:
    """The element of each atom-site row as the file writes it (type symbol, else the label's letters)."""
    column = block.data.get("_atom_site_type_symbol") or block.data.get("_atom_site_label") or []
    return [m.group(1) for m in (_FORMULA_TERM.match(str(x)) for x in column) if m]


def _check_formula(path: str, block, composition) -> None:
    """A CIF whose atoms are not its formula times Z (a file cut inside its atom loop, a lost symmetry operator,
    missing H atoms) is refused: the computed crystal would not be the one the file describes."""
    formula = block.data.get("_chemical_formula_sum")
    if not formula or str(formula).strip() in ("?", "."):
        return
    expected: dict[str, float] = {}
    for element, count in _FORMULA_TERM.findall(str(formula)):
        element = "H" if element in ("D", "T") else element  # pymatgen reads deuterium and tritium as H
        expected[element] = expected.get(element, 0.0) + (float(count) if count else 1.0)
    found = {str(el): float(n) for el, n in composition.get_el_amt_dict().items()}
    try:
        z = float(str(block.data.get("_cell_formula_units_Z", "")).split("(")[0])
    except ValueError:
        z = None  # no Z: only the proportions can be compared
    if not z:
        some = next(iter(expected))
        z = found.get(some, 0.0) / expected[some]
    # CSD files give the formula unit and Z; pymatgen and the Materials Project write the cell's content as the
    # "sum" beside Z: either is consistent, a cut file is neither
    for units in (z, 1.0):
        if set(found) == set(expected) and all(abs(found[e] - units * n) <= 1e-3 * units * n
                                               for e, n in expected.items()):
            return
    want = " ".join(f"{e}{z * n:g}" for e, n in expected.items())
    have = " ".join(f"{e}{n:g}" for e, n in found.items())
    raise InputError(f"CIF {path}: its atoms ({have}, {sum(found.values()):g} in the cell) are not its formula "
                     f"'{formula}' times Z = {z:g} ({want}): the file is cut short or atoms (often H) are missing; "
                     "restore the complete file")


def _read_lammps_data(path: str, type_symbols: list[str] | None) -> Atoms:
    from ase.io.lammpsdata import read_lammps_data

    z_of_type = None
    if type_symbols:
        z_of_type = {i + 1: atomic_numbers[s] for i, s in enumerate(type_symbols)}
    atoms = read_lammps_data(path, Z_of_type=z_of_type, atom_style="atomic", units="metal")
    if z_of_type is None and "masses" not in atoms.arrays:
        raise InputError(f"LAMMPS data file {path} has no Masses section: give the elements with --types")
    return atoms


# a supercell larger than this is a typo, not a calculation (and would fill the memory before LAMMPS starts)
MAX_ATOMS = 10_000_000


def make_supercell(atoms: Atoms, repeat: tuple[int, int, int] | None) -> Atoms:
    if not repeat:
        return atoms
    if len(repeat) != 3 or any(int(n) < 1 for n in repeat):
        raise InputError(f"--supercell {' '.join(map(str, repeat))}: three repeats, each a positive integer")
    if len(atoms) * int(np.prod(repeat)) > MAX_ATOMS:
        raise InputError(f"--supercell {' '.join(map(str, repeat))} makes {len(atoms) * int(np.prod(repeat)):.3g} "
                         f"atoms, more than {MAX_ATOMS:.0e}: choose smaller repeats")
    big = atoms.repeat(tuple(int(n) for n in repeat))
    big.info.update(atoms.info)
    return big


def check_structure(atoms: Atoms, source: str, min_distance: float = 0.5) -> list[str]:
    """Raise on atoms that overlap; return warnings worth showing."""
    i, j, d = neighbor_list("ijd", atoms, min_distance)
    if len(d):
        k = int(np.argmin(d))
        sym = atoms.get_chemical_symbols()
        raise InputError(
            f"structure {source}: atoms {i[k]} ({sym[i[k]]}) and {j[k]} ({sym[j[k]]}) are {d[k]:.3f} A apart, "
            f"closer than {min_distance} A: duplicated sites or a wrong cell? (--min-distance changes the limit)")
    notes = []
    symbols = set(atoms.get_chemical_symbols())
    if "C" in symbols and "H" not in symbols and len(symbols) > 1:
        notes.append(f"structure {source} has carbon but no hydrogen: X-ray CIFs often omit H atoms; add them")
    return notes


def masses_of(symbols: list[str]) -> list[float]:
    return [float(atomic_masses[atomic_numbers[s]]) for s in symbols]


@dataclass(frozen=True)
class LammpsFrame:
    """An orthogonal map Q from the input frame to LAMMPS' frame, x_lammps = Q x_input.

    LAMMPS wants the cell rows a = (lx, 0, 0), b = (xy, ly, 0), c = (xz, yz, lz) with lx, ly, lz > 0. Q is a
    rotation, or a rotation times an inversion for a left-handed input cell; rank-2 and rank-4 tensors transform
    the same way under both.
    """

    Q: np.ndarray

    @classmethod
    def for_cell(cls, cell: np.ndarray) -> "LammpsFrame":
        H = np.asarray(cell, float)
        return cls(np.linalg.solve(H, lammps_cell(H)).T)

    def cell_to_lammps(self, cell: np.ndarray) -> np.ndarray:
        return np.asarray(cell) @ self.Q.T

    def positions_to_lammps(self, positions: np.ndarray) -> np.ndarray:
        return np.asarray(positions) @ self.Q.T

    def vectors_to_input(self, v: np.ndarray) -> np.ndarray:
        return np.asarray(v) @ self.Q

    def stress_to_input(self, sigma: np.ndarray) -> np.ndarray:
        return self.Q.T @ sigma @ self.Q


def lammps_cell(cell: np.ndarray) -> np.ndarray:
    """The upper-triangular (LAMMPS) cell with the same lengths and angles as `cell` (rows are vectors)."""
    a, b, c = np.asarray(cell, float)
    lx = np.linalg.norm(a)
    xy = b @ a / lx
    ly = np.sqrt(b @ b - xy**2)
    xz = c @ a / lx
    yz = (b @ c - xy * xz) / ly
    lz = np.sqrt(c @ c - xz**2 - yz**2)
    return np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])


def is_orthogonal(cell: np.ndarray, tol: float = 1e-6) -> bool:
    a, b, c = np.asarray(cell, float) / np.linalg.norm(cell, axis=1)[:, None]
    return max(abs(a @ b), abs(a @ c), abs(b @ c)) < tol


def lattice_parameters(cell: np.ndarray) -> list[float]:
    from ase.geometry import cell_to_cellpar
    return [float(x) for x in cell_to_cellpar(np.asarray(cell))]
