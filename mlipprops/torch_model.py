"""A deployed model evaluated by torch in Python on a periodic cell: the reference for the LAMMPS plugin and the
engine of the fallback backend.

Edges are built with cell shifts (ASE's neighbor list) and passed with the cell, the periodic convention of the
NequIP data format; the LAMMPS plugin uses ghost atoms instead. The two must agree.
"""
from __future__ import annotations

import numpy as np

from mlipprops import tensors
from mlipprops.models import ModelInfo

VIRIAL_TO_LAMMPS = [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]  # LAMMPS order xx yy zz xy xz yz


class DeployedModel:
    """Loads a TorchScript deployment once (torch.jit.load, no pickle) and evaluates it."""

    def __init__(self, info: ModelInfo, threads: int | None = None):
        import torch

        self.torch = torch
        self.info = info
        if threads:
            torch.set_num_threads(threads)
        self.module = torch.jit.load(info.path, map_location="cpu")
        self.module.eval()
        # legacy deployments take positions in their data dtype; the current format float64 (models.py)
        self.pos_dtype = getattr(torch, info.pos_dtype)

    def edges(self, positions: np.ndarray, cell: np.ndarray, types: np.ndarray):
        """Edges i -> j (both directions) within the cutoff of the pair's types, with integer cell shifts."""
        from ase.neighborlist import primitive_neighbor_list

        i, j, shifts, d = primitive_neighbor_list("ijSd", (True, True, True), np.asarray(cell, float),
                                                  np.asarray(positions, float), self.info.r_max,
                                                  self_interaction=False)
        if self.info.per_edge_type_cutoff is not None:
            keep = d < self.info.per_edge_type_cutoff[types[i], types[j]]
            i, j, shifts = i[keep], j[keep], shifts[keep]
        return i, j, shifts

    def __call__(self, positions: np.ndarray, cell: np.ndarray, types: np.ndarray):
        """positions (N,3) and cell rows (3,3) in Angstrom; types index type_names.
        Returns energy (eV), forces (N,3, eV/A) and the virial W = -stress * volume (3x3, eV)."""
        torch = self.torch
        types = np.asarray(types, np.int64)
        i, j, shifts = self.edges(positions, cell, types)
        data = {
            "pos": torch.tensor(np.asarray(positions), dtype=self.pos_dtype),
            "edge_index": torch.tensor(np.stack([i, j]), dtype=torch.int64),
            # legacy models want (N, 1) (an (N,) tensor breaks for N = 1); current ones take either
            "atom_types": torch.tensor(types, dtype=torch.int64).reshape(-1, 1),
            "cell": torch.tensor(np.asarray(cell), dtype=self.pos_dtype).reshape(1, 3, 3),
            "edge_cell_shift": torch.tensor(shifts, dtype=self.pos_dtype),
            "pbc": torch.ones((1, 3), dtype=torch.bool),
        }
        out = self.module(data)
        energy = float(out["total_energy"].detach().double().sum())
        forces = out["forces"].detach().double().numpy().reshape(-1, 3)
        if "virial" in out:
            virial = out["virial"].detach().double().numpy().reshape(3, 3)
        else:
            virial = -out["stress"].detach().double().numpy().reshape(3, 3) * abs(np.linalg.det(cell))
        return energy, forces, virial

    def born_matrix(self, positions: np.ndarray, cell: np.ndarray, types: np.ndarray, delta: float) -> np.ndarray:
        """Second derivatives of the energy with respect to Lagrangian strain eta (6x6 Voigt, engineering shear,
        energy units): what LAMMPS' compute born/matrix gives for a pair style whose virial is right. Central
        differences over +-delta of the strain gradient dU/deta = -F^-1 W F^-1 (W the model's virial at the
        deformation F = sqrt(1 + 2 eta)): 12 evaluations of the model."""
        B = np.zeros((6, 6))
        for a in range(6):
            gradients = []
            for sign in (1.0, -1.0):
                w, v = np.linalg.eigh(np.eye(3) + 2.0 * tensors.voigt_strain_tensor(a, sign * delta))
                F = (v * np.sqrt(w)) @ v.T
                _, _, virial = self(np.asarray(positions) @ F, np.asarray(cell) @ F, types)
                Finv = np.linalg.inv(F)
                gradients.append(tensors.stress_to_voigt(-Finv @ virial @ Finv))
            B[a] = (gradients[0] - gradients[1]) / (2.0 * delta)
        return tensors.symmetrize(B)
