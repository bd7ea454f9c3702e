"""Which of the six Voigt strains a crystal's point group makes equivalent, so that the stresses of a few strained
cells give those of all six (spglib for the symmetry operations; pure numpy otherwise).

If R is a symmetry operation of the crystal (Cartesian, input frame) and the strain e_j = s R e_i R^T (s = +-1),
then the stress under +d e_j is R sigma(s d e_i) R^T: the crystal cannot tell the two strained cells apart. A
cubic crystal needs e1 and e4 only, a tetragonal one e1, e3, e4 and e6, a monoclinic one all six.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlipprops import tensors


@dataclass(frozen=True)
class Equivalence:
    """Strain `component` is `sign` times R e_`source` R^T."""
    component: int
    source: int
    sign: int
    R: np.ndarray


def point_group(atoms, symprec: float = 1e-4) -> list[np.ndarray]:
    """Cartesian rotations (input frame, column vectors: x' = R x) of the crystal's space group operations."""
    import warnings

    import spglib

    A = atoms.cell[:]
    with warnings.catch_warnings():  # spglib 2.x warns about its own error handling on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        data = spglib.get_symmetry((A, atoms.get_scaled_positions(), atoms.get_atomic_numbers()), symprec=symprec)
    if data is None:
        return [np.eye(3)]
    out = []
    for W in data["rotations"]:
        R = A.T @ W @ np.linalg.inv(A.T)  # fractional f' = W f  ->  Cartesian x' = A^T W A^-T x
        if np.allclose(R @ R.T, np.eye(3), atol=1e-6):
            out.append(R)
    return out or [np.eye(3)]


def plan(rotations: list[np.ndarray]) -> tuple[list[int], list[Equivalence]]:
    """The strains to run (each the first of its set) and how the others follow from them."""
    run, derived = [], []
    for j in range(6):
        target = tensors.voigt_strain_tensor(j, 1.0)
        found = None
        for i in run:
            source = tensors.voigt_strain_tensor(i, 1.0)
            for R in rotations:
                image = R @ source @ R.T
                for sign in (1, -1):
                    if np.allclose(image, sign * target, atol=1e-8):
                        found = Equivalence(j, i, sign, R)
                        break
                if found:
                    break
            if found:
                break
        if found:
            derived.append(found)
        else:
            run.append(j)
    return run, derived


def complete(stresses: dict[tuple[int, int], np.ndarray], derived: list[Equivalence]) -> None:
    """Add the stresses of the derived strains to {(component, sign): Voigt stress} (input frame), in place."""
    for eq in derived:
        for sign in (1, -1):
            sigma = tensors.voigt_to_stress(stresses[(eq.source, sign * eq.sign)])
            stresses[(eq.component, sign)] = tensors.stress_to_voigt(eq.R @ sigma @ eq.R.T)


def stiffness_variance(variances: dict[tuple[int, int], np.ndarray], derived: list[Equivalence],
                       delta: float) -> tuple[np.ndarray, np.ndarray]:
    """The variances of the symmetric and antisymmetric parts, (C_ij + C_ji)/2 and (C_ij - C_ji)/2, of the
    central-difference C = (s(+d) - s(-d)) / 2d when the stresses of the cells run ({(component, sign): variances of
    the six Voigt stresses}) scatter independently, the others following by symmetry (complete). C is linear in those
    stresses, so a variance is sum_k (dC/ds_k)^2 var_k exactly, correlations included: a derived cell repeats its
    source's noise, which C_ij + C_ji can double or cancel."""
    symmetric, antisymmetric = np.zeros((6, 6)), np.zeros((6, 6))
    for key, v in variances.items():
        for k in np.flatnonzero(np.asarray(v) > 0):
            unit = {cell: np.zeros(6) for cell in variances}
            unit[key] = np.eye(6)[k]
            complete(unit, derived)
            C = np.array([unit[(j, 1)] - unit[(j, -1)] for j in range(6)]).T / (2.0 * delta)
            symmetric += ((C + C.T) / 2.0) ** 2 * v[k]
            antisymmetric += ((C - C.T) / 2.0) ** 2 * v[k]
    return symmetric, antisymmetric


def complete_variances(variances: dict[tuple[int, int], np.ndarray], derived: list[Equivalence]) -> None:
    """As complete(), for the variances of independent stress components (Voigt, input frame): a derived cell's
    stress R s R^T is a linear map M s of its source's, so its variances are (M * M) @ var."""
    for eq in derived:
        M = np.column_stack([tensors.stress_to_voigt(eq.R @ tensors.voigt_to_stress(e) @ eq.R.T) for e in np.eye(6)])
        for sign in (1, -1):
            variances[(eq.component, sign)] = (M * M) @ np.asarray(variances[(eq.source, sign * eq.sign)], float)


def lattice_rotations(cell: np.ndarray, positions: np.ndarray, numbers, symprec: float = 1e-4) -> list[np.ndarray]:
    """The crystal's point-group operations as integer matrices W on fractional coordinates of `cell` (rows):
    f -> W f (spglib, translations dropped)."""
    import warnings

    import spglib

    cell = np.asarray(cell, float)
    fractional = np.linalg.solve(cell.T, np.asarray(positions, float).T).T % 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        data = spglib.get_symmetry((cell, fractional, np.asarray(numbers)), symprec=symprec)
    if data is None:
        return [np.eye(3)]
    # a supercell repeats each rotation once per lattice translation it holds: keep one of each
    return [np.asarray(W, float) for W in np.unique(np.asarray(data["rotations"]), axis=0)]


def symmetrize_cell(cell: np.ndarray, rotations: list[np.ndarray]) -> np.ndarray:
    """The LAMMPS-shaped cell (rows, lower triangular) whose metric h h^T is that of `cell` averaged over the
    lattice rotations W (W^T M W = M for a symmetric metric M). A time-averaged MD cell carries the statistical
    error of its shape, which breaks the crystal's symmetry (a cubic cell comes out slightly tetragonal); the
    average keeps only the part the symmetry allows."""
    M = np.asarray(cell, float) @ np.asarray(cell, float).T
    average = sum(W.T @ M @ W for W in rotations) / len(rotations)
    return np.linalg.cholesky((average + average.T) / 2.0)
