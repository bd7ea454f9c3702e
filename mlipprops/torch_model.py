"""A deployed model evaluated by torch in Python on a periodic cell: the reference for the LAMMPS plugin and the
engine of the fallback backend.

Edges are built with cell shifts (ASE's neighbor list) and passed with the cell, the periodic convention of the
NequIP data format; the LAMMPS plugin uses ghost atoms instead. The two must agree.
"""
from __future__ import annotations

import numpy as np

from mlipprops import tensors
from mlipprops.models import ModelInfo


def keep_freed_memory() -> bool:
    """glibc returns large freed blocks to the OS and page-faults them back on the next evaluation: with a model
    of the paper's size 1.2-3.4x the time of a step (shared/FACTS.md). Keep them for reuse, as the plugin does;
    MLIPPROPS_MALLOC_TUNE=0 leaves glibc's defaults."""
    import ctypes
    import os

    if os.environ.get("MLIPPROPS_MALLOC_TUNE") == "0":
        return False
    try:
        libc = ctypes.CDLL(None)
        M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # malloc.h
        return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):  # not glibc
        return False


class DeployedModel:
    """Loads a TorchScript deployment once (torch.jit.load, no pickle) and evaluates it."""

    def __init__(self, info: ModelInfo, threads: int | None = None, device: str = "cpu"):
        import torch

        keep_freed_memory()
        self.torch = torch
        self.info = info
        if threads:
            torch.set_num_threads(threads)
        if device == "cuda" and not torch.cuda.is_available():
            from mlipprops.errors import InputError
            raise InputError("device cuda: this torch sees no CUDA device (a CPU build, or no GPU); use cpu or auto")
        self.device = torch.device("cuda" if device != "cpu" and torch.cuda.is_available() else "cpu")
        self.module = torch.jit.load(info.path, map_location=self.device)
        self.module.eval()
        # legacy deployments take positions in their data dtype; the current format float64 (models.py)
        self.pos_dtype = getattr(torch, info.pos_dtype)

    def edges(self, positions: np.ndarray, cell: np.ndarray, types: np.ndarray):
        """Edges i -> j (both directions) within the cutoff of the pair's types, with integer cell shifts."""
        i, j, shifts, d = periodic_neighbors(positions, cell, self.info.r_max)
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
        on = {"device": self.device}
        data = {
            "pos": torch.tensor(np.asarray(positions), dtype=self.pos_dtype, **on),
            "edge_index": torch.tensor(np.stack([i, j]), dtype=torch.int64, **on),
            # legacy models want (N, 1) (an (N,) tensor breaks for N = 1); current ones take either
            "atom_types": torch.tensor(types, dtype=torch.int64, **on).reshape(-1, 1),
            "cell": torch.tensor(np.asarray(cell), dtype=self.pos_dtype, **on).reshape(1, 3, 3),
            "edge_cell_shift": torch.tensor(shifts, dtype=self.pos_dtype, **on),
            "pbc": torch.ones((1, 3), dtype=torch.bool, **on),
        }
        out = self.module(data)

        def host(name):
            return out[name].detach().double().cpu().numpy()
        energy = float(host("total_energy").sum())
        forces = host("forces").reshape(-1, 3)
        if "virial" in out:
            virial = host("virial").reshape(3, 3)
        else:
            virial = -host("stress").reshape(3, 3) * abs(np.linalg.det(cell))
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


def periodic_neighbors(positions: np.ndarray, cell: np.ndarray, cutoff: float):
    """All pairs i != j (and images of i itself) closer than `cutoff` in a periodic cell, as (i, j, S, d) with
    pos[j] - pos[i] + S @ cell the pair vector: a k-d tree over the images the cutoff can reach, ten times faster
    than ASE's neighbor list for the small cells that MD calls it on every step."""
    from scipy.spatial import cKDTree

    positions, cell = np.asarray(positions, float), np.asarray(cell, float)
    n = len(positions)
    frac = np.linalg.solve(cell.T, positions.T).T
    home = np.floor(frac)
    wrapped = positions - home @ cell
    volume = abs(np.linalg.det(cell))
    heights = volume / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    reach = np.ceil(cutoff / heights).astype(int)
    shifts = np.array(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij")).reshape(3, -1).T
    images = (wrapped[None, :, :] + (shifts @ cell)[:, None, :]).reshape(-1, 3)
    pairs = cKDTree(wrapped).sparse_distance_matrix(cKDTree(images), cutoff, output_type="ndarray")
    i, k, d = pairs["i"], pairs["j"], pairs["v"]
    j, image = k % n, k // n
    keep = (d < cutoff) & ~((i == j) & np.all(shifts[image] == 0, axis=1))
    i, j, image, d = i[keep], j[keep], image[keep], d[keep]
    S = shifts[image] - home[j] + home[i]
    order = np.lexsort((j, i))
    return i[order], j[order], S[order].astype(np.int64), d[order]
