#!/usr/bin/env python3
"""Independent reference evaluation of deployed Allegro / NequIP TorchScript models (torch + ase only).

Works for both deployed formats found in tests/models:
  * legacy  ``nequip-deploy build`` files (nequip 0.6.x; extra files ``n_species``, ``default_dtype``, ...),
  * current ``.nequip.pth`` TorchScript files (nequip >= 0.7; extra files ``num_types``,
    optional ``per_edge_type_cutoff``, ...).
Metadata are read with ``torch.jit.load(path, _extra_files=...)`` only: no nequip, no pickle, no torch.load.

    from reference import evaluate
    res = evaluate("tests/models/cuau_current_f64.nequip.pth", atoms)
    res["energy"]   # float, eV
    res["forces"]   # (N, 3) eV/A
    res["stress"]   # (3, 3) eV/A^3, ASE sign (positive = tensile, i.e. the cell wants to shrink)
    res["stress_voigt"], res["energies"], res["virial"]

``evaluate`` builds the periodic graph with ``ase.neighborlist.neighbor_list("ijS", atoms, r_max)``
(both directions, row 0 = center i, row 1 = neighbor j, edge vector = pos[j] - pos[i] + S @ cell) and
passes ``cell`` and ``edge_cell_shift``. Per-edge-type cutoffs, when the model has them, prune the
edge list the way nequip's own neighbor-list transform does (the pruned edges contribute exactly zero anyway).

``evaluate_ghost`` uses the LAMMPS pair_allegro convention instead: explicit periodic images
("ghost" atoms) appended after the real atoms, edges only from real atoms, no ``cell`` and no
``edge_cell_shift``; the energy is the sum of ``atomic_energy`` over real atoms, ghost forces are
folded back onto their owners, and the stress comes from the model's ``virial`` output.

Run as a script to check models:  python reference.py MODEL.pth [MODEL.pth ...]
(finite-difference forces and stress, ghost convention vs periodic, errors against EMT test frames).
"""
import functools
import os
import sys
from typing import Dict, Tuple

import numpy as np
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list

_META_KEYS = (
    # both formats
    "r_max", "type_names", "model_dtype", "allow_tf32",
    # current (nequip >= 0.7) .nequip.pth
    "num_types", "per_edge_type_cutoff",
    # legacy (nequip 0.6) nequip-deploy
    "n_species", "default_dtype", "nequip_version", "torch_version", "e3nn_version",
    "_jit_bailout_depth", "_jit_fusion_strategy",
)
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@functools.lru_cache(maxsize=None)
def load_model(model_path: str) -> Tuple[torch.jit.ScriptModule, Dict]:
    """Load a deployed model and parse its metadata (cached per path)."""
    extra = {k: "" for k in _META_KEYS}
    model = torch.jit.load(model_path, map_location="cpu", _extra_files=extra)
    model.eval()
    raw = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in extra.items()}
    raw = {k: v for k, v in raw.items() if v != ""}
    type_names = raw["type_names"].split(" ")
    meta = {
        "raw": raw,
        "format": "current" if "num_types" in raw else "legacy",
        "r_max": float(raw["r_max"]),
        "type_names": type_names,
        "model_dtype": _DTYPES[raw.get("model_dtype", "float32")],
        # dtype of the outputs: legacy models rescale into default_dtype, current ones stay in model_dtype
        "out_dtype": _DTYPES[raw.get("default_dtype", raw.get("model_dtype", "float32"))],
        # dtype of the inputs (pos, cell, shifts): current models always take float64 and cast inside (a float32
        # one given float32 positions loses precision, an AOTInductor one gives NaN); legacy ones their data dtype
        "pos_dtype": torch.float64 if "num_types" in raw else
                     _DTYPES[raw.get("default_dtype", raw.get("model_dtype", "float32"))],
        "per_edge_type_cutoff": None,
    }
    if "per_edge_type_cutoff" in raw:
        c = np.array([float(x) for x in raw["per_edge_type_cutoff"].split()])
        meta["per_edge_type_cutoff"] = c.reshape(len(type_names), len(type_names))  # [center][neighbor]
    return model, meta


def _atom_types(atoms: Atoms, type_names) -> np.ndarray:
    index = {name: k for k, name in enumerate(type_names)}
    try:
        return np.array([index[s] for s in atoms.get_chemical_symbols()], dtype=np.int64)
    except KeyError as e:
        raise ValueError(f"element {e} not among the model's type_names {type_names}") from None


def _prune(meta, types, i, j, d):
    """Keep edges shorter than the per-edge-type cutoff [type(i)][type(j)] (if the model has one)."""
    c = meta["per_edge_type_cutoff"]
    if c is None:
        return np.ones(len(i), dtype=bool)
    return d < c[types[i], types[j]]


def _types_tensor(meta, types) -> torch.Tensor:
    # legacy Allegro does atom_types.squeeze(-1): an (N,) tensor breaks for N == 1, so legacy models get the
    # nequip-0.6 shape (N, 1); current models take (N,) (they also accept (N, 1): they view(-1)).
    t = torch.tensor(types, dtype=torch.int64)
    return t.view(-1, 1) if meta["format"] == "legacy" else t


def _run(model, data):
    # NOTE: no torch.no_grad(): the model takes autograd derivatives inside forward()
    out = model(data)
    return {k: v.detach() for k, v in out.items()}


def periodic_inputs(meta, atoms: Atoms, prune: bool = True) -> Dict[str, torch.Tensor]:
    """Model input dict for a periodic (or partly periodic) ase.Atoms."""
    types = _atom_types(atoms, meta["type_names"])
    i, j, S, d = neighbor_list("ijSd", atoms, meta["r_max"])
    if prune:
        keep = _prune(meta, types, i, j, d)
        i, j, S = i[keep], j[keep], S[keep]
    dt = meta["pos_dtype"]
    return {
        "pos": torch.tensor(atoms.get_positions(), dtype=dt),
        "edge_index": torch.tensor(np.vstack([i, j]), dtype=torch.int64),
        "atom_types": _types_tensor(meta, types),
        "cell": torch.tensor(atoms.cell.array, dtype=dt).view(1, 3, 3),
        "edge_cell_shift": torch.tensor(S, dtype=dt),
    }


def evaluate(model_path, atoms: Atoms) -> dict:
    """Energy (eV), forces (eV/A), stress (3x3, eV/A^3, ASE sign) of a periodic ase.Atoms."""
    model, meta = load_model(os.fspath(model_path))
    out = _run(model, periodic_inputs(meta, atoms))
    stress = out["stress"].view(3, 3).double().numpy()
    return {
        "energy": float(out["total_energy"].sum()),
        "energies": out["atomic_energy"].view(-1).double().numpy(),
        "forces": out["forces"].double().numpy(),
        "stress": stress,
        "stress_voigt": stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]],
        "virial": out["virial"].view(3, 3).double().numpy(),
    }


def ghost_inputs(meta, atoms: Atoms, prune: bool = True):
    """pair_allegro-style inputs: real atoms, then ghost images; edges from real atoms only; no cell.

    Returns (data, owner, n_real): owner[k] = index of the real atom that ghost/atom k is an image of.
    """
    types = _atom_types(atoms, meta["type_names"])
    n = len(atoms)
    i, j, S, d = neighbor_list("ijSd", atoms, meta["r_max"])
    if prune:
        keep = _prune(meta, types, i, j, d)
        i, j, S, d = i[keep], j[keep], S[keep], d[keep]
    pos = atoms.get_positions()
    cell = atoms.cell.array
    is_image = np.any(S != 0, axis=1)
    # one ghost per distinct (atom, shift)
    keys, inverse = np.unique(np.column_stack([j[is_image], S[is_image]]), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    ghost_owner = keys[:, 0]
    ghost_pos = pos[ghost_owner] + keys[:, 1:] @ cell
    nbr = j.copy()
    nbr[is_image] = n + inverse
    all_pos = np.vstack([pos, ghost_pos])
    owner = np.concatenate([np.arange(n), ghost_owner])
    dt = meta["pos_dtype"]
    data = {
        "pos": torch.tensor(all_pos, dtype=dt),
        "edge_index": torch.tensor(np.vstack([i, nbr]), dtype=torch.int64),
        "atom_types": _types_tensor(meta, types[owner]),
    }
    return data, owner, n


def evaluate_ghost(model_path, atoms: Atoms) -> dict:
    """Same quantities as ``evaluate`` but through the pair_allegro (no cell, explicit ghosts) convention."""
    model, meta = load_model(os.fspath(model_path))
    data, owner, n = ghost_inputs(meta, atoms)
    out = _run(model, data)
    ae = out["atomic_energy"].view(-1).double().numpy()
    f_all = out["forces"].double().numpy()
    forces = np.zeros((n, 3))
    np.add.at(forces, owner, f_all)
    virial = out["virial"].view(3, 3).double().numpy()
    stress = -virial / atoms.get_volume()
    # the same virial from forces on local + ghost atoms: W = sum_k F_k (x) r_k (symmetrised)
    pos_all = data["pos"].double().numpy()
    w = f_all.T @ pos_all
    return {
        "energy": float(ae[:n].sum()),
        "energies": ae[:n],
        "forces": forces,
        "stress": stress,
        "stress_voigt": stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]],
        "virial": virial,
        "virial_from_fr": 0.5 * (w + w.T),
        "ghost_atomic_energies": ae[n:],
        "n_ghosts": len(owner) - n,
    }


# ----------------------------------------------------------------------------- checks (script use)

def _test_cell(seed=3, repeat=(2, 2, 2), a=3.80, rattle=0.08):
    from ase.build import bulk
    rng = np.random.default_rng(seed)
    at = bulk("Cu", "fcc", a=a, cubic=True).repeat(repeat)
    sym = np.array(at.get_chemical_symbols(), dtype=object)
    sym[rng.permutation(len(at))[: len(at) // 3]] = "Au"
    at.set_chemical_symbols(list(sym))
    eps = rng.uniform(-0.02, 0.02, (3, 3))
    at.set_cell(at.cell.array @ (np.eye(3) + 0.5 * (eps + eps.T)).T, scale_atoms=True)
    at.positions += rng.normal(0, rattle, at.positions.shape)
    return at


def check_model(path, h=1e-5, verbose=True):
    """Finite differences, ghost convention and EMT test-set errors for one model. Returns a dict."""
    model, meta = load_model(os.fspath(path))
    at = _test_cell()
    r = evaluate(path, at)
    res = {"format": meta["format"], "metadata": meta["raw"], "n_atoms": len(at)}
    hh = h if meta["model_dtype"] == torch.float64 else 1e-2
    # forces = -dE/dx (central differences on a few components)
    rng = np.random.default_rng(0)
    errs = []
    for a_idx in rng.choice(len(at), 4, replace=False):
        for c in range(3):
            p, m = at.copy(), at.copy()
            p.positions[a_idx, c] += hh
            m.positions[a_idx, c] -= hh
            fd = -(evaluate(path, p)["energy"] - evaluate(path, m)["energy"]) / (2 * hh)
            errs.append(abs(fd - r["forces"][a_idx, c]))
    res["fd_force_maxerr"] = max(errs)
    # stress = (1/V) dE/d(strain)
    serr = []
    for a_, b_ in [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]:
        e = np.zeros((3, 3))
        e[a_, b_] = e[b_, a_] = hh if a_ == b_ else hh / 2
        es = []
        for sgn in (1, -1):
            s = at.copy()
            s.set_cell(at.cell.array @ (np.eye(3) + sgn * e).T, scale_atoms=True)
            es.append(evaluate(path, s)["energy"])
        dEde = (es[0] - es[1]) / (2 * hh)
        serr.append(abs(dEde / at.get_volume() - r["stress"][a_, b_]))
    res["fd_stress_maxerr"] = max(serr)
    # pair_allegro convention (no cell, explicit ghosts)
    g = evaluate_ghost(path, at)
    res["ghost_dE"] = abs(g["energy"] - r["energy"])
    res["ghost_dF"] = float(np.abs(g["forces"] - r["forces"]).max())
    res["ghost_dS_virial_output"] = float(np.abs(g["stress"] - r["stress"]).max())
    res["ghost_dS_fr"] = float(np.abs(-g["virial_from_fr"] / at.get_volume() - r["stress"]).max())
    res["n_ghosts"] = g["n_ghosts"]
    # unpruned edges (all pairs within r_max) for per-edge-type-cutoff models
    if meta["per_edge_type_cutoff"] is not None:
        out = _run(model, periodic_inputs(meta, at, prune=False))
        res["unpruned_dE"] = abs(float(out["total_energy"].sum()) - r["energy"])
        res["unpruned_dF"] = float(np.abs(out["forces"].double().numpy() - r["forces"]).max())
    # errors against EMT on the independent test frames (make_data.py --frames 48 --seed 7)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from make_data import make_frames
    frames = make_frames(48, seed=7)
    de, df, ds = [], [], []
    for fr in frames:
        q = evaluate(path, fr)
        de.append(abs(q["energy"] - fr.get_potential_energy()) / len(fr))
        df.append(np.abs(q["forces"] - fr.get_forces()).ravel())
        ds.append(np.abs(q["stress"] - fr.get_stress(voigt=False)).ravel())
    df = np.concatenate(df)
    res["test_energy_mae_per_atom"] = float(np.mean(de))
    res["test_force_mae"] = float(df.mean())
    res["test_force_rmse"] = float(np.sqrt((df ** 2).mean()))
    res["test_stress_mae"] = float(np.concatenate(ds).mean())
    res["test_stress_mae_GPa"] = res["test_stress_mae"] * 160.21766
    res["energy_test_cell"] = r["energy"]
    if verbose:
        print(f"== {path}  ({meta['format']} format)")
        for k, v in res.items():
            print(f"   {k}: {v}")
    return res


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    for p in sys.argv[1:]:
        check_model(p)
