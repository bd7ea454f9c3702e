"""Molecules of a molecular crystal by covalent connectivity: to tell a molecular crystal from an extended solid,
and to check that molecules stay intact in a simulation (a melted molecular crystal must still be molecules)."""
from __future__ import annotations

from collections import Counter

import numpy as np
from ase import Atoms
from ase.geometry import find_mic
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

BOND_SCALE = 1.2  # a bond: closer than 1.2 x the sum of covalent radii (ASE's natural cutoffs)


def molecule_labels(atoms: Atoms) -> np.ndarray:
    """Connected-component label of every atom, bonds taken across periodic boundaries."""
    from ase.neighborlist import natural_cutoffs, neighbor_list

    i, j = neighbor_list("ij", atoms, natural_cutoffs(atoms, mult=BOND_SCALE))
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(len(atoms), len(atoms)))
    return connected_components(graph, directed=False)[1]


def composition(atoms: Atoms) -> Counter:
    """How many molecules of each formula."""
    labels = molecule_labels(atoms)
    symbols = np.array(atoms.get_chemical_symbols())
    formulas = []
    for label in np.unique(labels):
        members = Counter(symbols[labels == label])
        formulas.append("".join(f"{el}{n if n > 1 else ''}" for el, n in sorted(members.items())))
    return Counter(formulas)


def is_molecular(atoms: Atoms) -> bool:
    """More than one connected component, none spanning the cell: a molecular crystal (not a metal or a
    covalent network, which are one component)."""
    return len(np.unique(molecule_labels(atoms))) > 1


def intact(reference: Counter, atoms: Atoms) -> bool:
    return composition(atoms) == reference


def whole(positions: np.ndarray, cell: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Positions with every molecule made whole: each atom at its minimum image from its molecule's first atom
    (a molecule shorter than half the cell in every direction, as in any crystal cell that holds it)."""
    out = np.array(positions, float)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        out[members] = out[members[0]] + find_mic(out[members] - out[members[0]], cell, pbc=True)[0]
    return out


def centres(positions: np.ndarray, cell: np.ndarray, labels: np.ndarray, masses: np.ndarray,
            made_whole: bool = False) -> np.ndarray:
    """Centre of mass of every molecule (row k: label k), from positions made whole (here unless `made_whole`)."""
    x = positions if made_whole else whole(positions, cell, labels)
    total = np.bincount(labels, masses)
    return np.stack([np.bincount(labels, masses * x[:, k]) for k in range(3)], axis=1) / total[:, None]


def centre_species(atoms: Atoms) -> str | None:
    """For a molecular crystal with one kind of molecule, the element that occurs once in it and sits closest to
    its centre of mass (C of urea): its sublattice is the molecules' lattice, on which a melting order parameter
    is computed. None for a non-molecular crystal or when no element occurs exactly once per molecule."""
    if not is_molecular(atoms):
        return None
    labels = molecule_labels(atoms)
    symbols = np.array(atoms.get_chemical_symbols())
    first = labels == labels[0]
    x = whole(atoms.positions, atoms.cell, labels)
    members, centre = x[first], centres(x, atoms.cell, labels, atoms.get_masses(), made_whole=True)[labels[0]]
    once = [el for el, n in Counter(symbols[first]).items() if n == 1]
    if not once or len(composition(atoms)) != 1:
        return None
    distance = {el: np.linalg.norm(members[symbols[first] == el][0] - centre) for el in once}
    return min(once, key=distance.get)
