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


def centre_species(atoms: Atoms) -> str | None:
    """For a molecular crystal with one kind of molecule, the element that occurs once in it and sits closest to
    its centre of mass (C of urea): its sublattice is the molecules' lattice, on which a melting order parameter
    is computed. None for a non-molecular crystal or when no element occurs exactly once per molecule."""
    if not is_molecular(atoms):
        return None
    labels = molecule_labels(atoms)
    symbols = np.array(atoms.get_chemical_symbols())
    first = labels == labels[0]
    # unwrapped positions of the first molecule: each atom's minimum image from its first atom
    members = atoms.positions[first]
    members = members[0] + find_mic(members - members[0], atoms.cell, pbc=True)[0]
    centre = (atoms.get_masses()[first][:, None] * members).sum(0) / atoms.get_masses()[first].sum()
    once = [el for el, n in Counter(symbols[first]).items() if n == 1]
    if not once or len(composition(atoms)) != 1:
        return None
    distance = {el: np.linalg.norm(members[symbols[first] == el][0] - centre) for el in once}
    return min(once, key=distance.get)
