"""Solid-like atoms by bond orientational order (ten Wolde, Ruiz-Montero & Frenkel, J. Chem. Phys. 104, 9932
(1996)), and the neighbour cutoff it needs. Pure numpy.

Each atom's q6 vector q_6m(i) = 1/N_i sum_j Y_6m(r_ij) over its neighbours within the cutoff; a neighbour is
aligned when the normalized product Re(q6(i) . q6(j)*) / |q6(i)| |q6(j)| exceeds 0.5; an atom is solid-like with
at least `min_bonds` aligned neighbours. LAMMPS' compute orientorder/atom + coord/atom orientorder compute the same
for all atoms; for a molecular crystal the order lives on the sublattice of one atom per molecule, whose
neighbours must be that sublattice alone (LAMMPS' compute restricts the centres to a group, never the neighbours),
so it is computed here, from the sublattice positions.
"""
from __future__ import annotations

import numpy as np

ALIGNED = 0.5  # normalized q6 product above which two neighbours count as aligned


def shell_gap_cutoff(centres: np.ndarray, distances: np.ndarray, reach: float = 1.8) -> float:
    """A neighbour cutoff in the widest gap between neighbour shells (relative to the shell radius) within
    `reach` x the nearest distance: the first shell for fcc (12) and diamond (4), the 8 + 6 of bcc, and the 14
    near neighbours of a molecular sublattice whose shells are split by the lower symmetry (urea's C atoms: 4 at
    4.26, 2 at 4.68, 4 at 4.98, 4 at 5.56 A, then none before 7.27 A). Where that does not give every atom the
    same count (no clean shells: a glass, a liquid), halfway from 1.1 x the nearest distance to the next one."""
    d = np.sort(distances)
    radii = d[np.r_[True, np.diff(d) > 0.01]]  # each shell by its nearest member
    if (radii > reach * radii[0]).any():  # keep the shells within reach, and the first one beyond
        radii = radii[:np.argmax(radii > reach * radii[0]) + 1]
    if len(radii) >= 2:
        k = np.argmax(radii[1:] / radii[:-1])
        cutoff = float(0.5 * (1.1 * radii[k] + radii[k + 1]))  # room for thermal spread of the last shell inside
        counts = np.bincount(centres[distances < cutoff])
        if counts.min() == counts.max():
            return cutoff
    beyond = d[d > 1.1 * d[0]]
    return float(0.5 * (1.1 * d[0] + beyond.min())) if beyond.size else float(1.2 * d[0])


def q6_vectors(positions: np.ndarray, cell: np.ndarray, cutoff: float):
    """Per-atom q6 vectors (N, 13, complex) and the neighbour pairs (i, j) within `cutoff` (periodic cell)."""
    from ase.neighborlist import primitive_neighbor_list
    from scipy.special import sph_harm_y

    i, j, D = primitive_neighbor_list("ijD", (True, True, True), np.asarray(cell, float),
                                      np.asarray(positions, float), float(cutoff), self_interaction=False)
    n = len(positions)
    r = np.linalg.norm(D, axis=1)
    theta = np.arccos(np.clip(D[:, 2] / np.maximum(r, 1e-300), -1.0, 1.0))
    phi = np.arctan2(D[:, 1], D[:, 0])
    q = np.zeros((n, 13), complex)
    for k, m in enumerate(range(-6, 7)):
        np.add.at(q[:, k], i, sph_harm_y(6, m, theta, phi))
    q /= np.maximum(np.bincount(i, minlength=n), 1)[:, None]
    return q, i, j


def solid_like(positions: np.ndarray, cell: np.ndarray, cutoff: float, min_bonds: int) -> np.ndarray:
    """Which atoms are solid-like (boolean per atom)."""
    q, i, j = q6_vectors(positions, cell, cutoff)
    norm = np.linalg.norm(q, axis=1)
    product = np.real(np.sum(q[i] * np.conj(q[j]), axis=1)) / np.maximum(norm[i] * norm[j], 1e-300)
    aligned = np.bincount(i[product > ALIGNED], minlength=len(positions))
    return aligned >= min_bonds
