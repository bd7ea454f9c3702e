"""Molecules of a molecular crystal by covalent connectivity: to tell a molecular crystal from an extended solid,
and to check that molecules stay intact in a simulation (a melted molecular crystal must still be molecules)."""
from __future__ import annotations

from collections import Counter

import numpy as np
from ase import Atoms
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
