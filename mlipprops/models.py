"""Deployed NequIP/Allegro models: what a file is, read from the archive's listing and its plain-text extra
files. Nothing is unpickled: model files come from other people.

Formats (FACTS.md): a TorchScript archive is a zip whose folder holds code/, constants.pkl and extra/<key> text
files. `nequip-deploy` (nequip 0.6, legacy) writes nequip_version, n_species, config, default_dtype, ...;
`nequip-compile` (nequip >= 0.7) writes num_types and, when set, per_edge_type_cutoff. A torch.save checkpoint
is a zip too, but has no code/ folder; an AOTInductor .nequip.pt2 package has no TorchScript code either.

The rules below are the ones the LAMMPS plugin applies to the same files (build/plugin): which format, which
dtype the positions go in, which architecture (tests/test_model_rules.py holds both to one table of cases).
- format: current (nequip-compile) when num_types is there, else legacy (nequip-deploy writes n_species);
- positions: float64 for the current format; legacy: default_dtype (the data dtype of nequip 0.6), else
  model_dtype, else float32. The model's precision (its warnings, finite-difference steps): model_dtype, else
  default_dtype, else float32;
- architecture: NequIP when the TorchScript code has NequIP's convolution layers (message passing: an atom's
  energy depends on neighbours of neighbours), else Allegro when it has Allegro's module (strictly local),
  else unknown (treated as message passing: never assumed local).
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

from mlipprops.errors import InputError

LEGACY = "nequip-deploy (legacy, nequip 0.6 / Allegro 0.2-0.3)"
CURRENT = "nequip-compile TorchScript (nequip >= 0.7 / nequip-allegro >= 0.8)"
ALLEGRO, NEQUIP, UNKNOWN = "allegro", "nequip", "unknown"


@dataclass(frozen=True)
class ModelInfo:
    path: str
    format: str
    type_names: tuple[str, ...]
    r_max: float
    model_dtype: str                 # the model's precision
    allow_tf32: bool
    per_edge_type_cutoff: np.ndarray | None = None  # [center type][neighbor type], Angstrom
    versions: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    architecture: str = UNKNOWN
    pos_dtype: str = "float64"       # what the model takes positions in

    @property
    def legacy(self) -> bool:
        return self.format == LEGACY

    @property
    def local(self) -> bool:
        """Strictly local (Allegro): an atom's energy depends on its neighbours alone, so LAMMPS' ghost atoms
        stand in for periodic images and the model decomposes over MPI ranks. Message-passing models do not."""
        return self.architecture == ALLEGRO

    def cutoff(self, center: str, neighbor: str) -> float:
        if self.per_edge_type_cutoff is None:
            return self.r_max
        i, j = self.type_names.index(center), self.type_names.index(neighbor)
        return float(self.per_edge_type_cutoff[i, j])

    def warnings(self) -> list[str]:
        notes = []
        if self.allow_tf32:
            notes.append("allow_tf32 is on: on NVIDIA GPUs (Ampere and later) matrix products run in TF32, about "
                         "3 significant digits; stresses and elastic constants lose precision (redeploy with "
                         "allow_tf32 false for property work; no effect on CPUs)")
        if not self.local:
            what = "a NequIP (message-passing)" if self.architecture == NEQUIP else "not an Allegro"
            notes.append(f"{what} model: evaluated on a periodic graph with all atoms on one MPI rank per LAMMPS "
                         "instance (plugin), or by the Python backend on several")
        if self.model_dtype == "float32":
            notes.append("float32 model: stresses carry noise of order 1e-4 GPa; keep strain amplitudes >= 0.5 % "
                         "(the default) for elastic constants, and expect force tolerances below ~1e-4 eV/A to "
                         "be unreachable")
        return notes

    def describe(self) -> dict:
        return {"path": os.path.abspath(self.path), "format": self.format, "type_names": list(self.type_names),
                "architecture": self.architecture, "r_max": self.r_max, "model_dtype": self.model_dtype,
                "positions_dtype": self.pos_dtype, "allow_tf32": self.allow_tf32,
                "per_edge_type_cutoff": None if self.per_edge_type_cutoff is None
                else self.per_edge_type_cutoff.tolist(), "versions": self.versions}


def _archive(path: str) -> tuple[zipfile.ZipFile, list[str]]:
    if not os.path.isfile(path):
        raise InputError(f"model file {path} not found: check the path given to --model")
    if not zipfile.is_zipfile(path):
        raise InputError(f"{path} is not a deployed model (not a TorchScript archive): deploy it with "
                         "nequip-deploy build or nequip-compile")
    archive = zipfile.ZipFile(path)
    return archive, archive.namelist()


def inspect_model(path: str) -> ModelInfo:
    archive, names = _archive(path)
    with archive:
        has_code = any("/code/" in n for n in names)
        has_constants = any(n.endswith("/constants.pkl") for n in names)
        if not (has_code and has_constants):
            if any(n.endswith("data.pkl") for n in names):
                raise InputError(f"{path} is a training checkpoint (torch.save), not a deployed model: deploy it "
                                 "first (nequip-deploy build, or nequip-compile --mode torchscript)")
            raise InputError(f"{path} is not a TorchScript model (an AOTInductor .pt2 package or another "
                             "archive?): mlipprops runs TorchScript deployments (.pth, .nequip.pth)")
        extra = {n.split("/extra/", 1)[1]: archive.read(n).decode("utf-8", "replace").strip()
                 for n in names if "/extra/" in n}
    if "r_max" not in extra or "type_names" not in extra:
        raise InputError(f"{path} is TorchScript but not a deployed NequIP/Allegro model (no r_max/type_names "
                         "metadata)")
    types = tuple(extra["type_names"].split())
    legacy = "num_types" not in extra
    dtype = extra.get("model_dtype") or extra.get("default_dtype") or "float32"
    pos_dtype = (extra.get("default_dtype") or extra.get("model_dtype") or "float32") if legacy else "float64"
    pair_cut = None
    if extra.get("per_edge_type_cutoff"):
        values = np.array([float(x) for x in extra["per_edge_type_cutoff"].split()])
        if values.size != len(types) ** 2:
            raise InputError(f"{path}: per_edge_type_cutoff has {values.size} values for {len(types)} types")
        pair_cut = values.reshape(len(types), len(types))
    versions = {k: extra[k] for k in ("nequip_version", "torch_version", "allegro_version", "versions")
                if k in extra}
    return ModelInfo(path, LEGACY if legacy else CURRENT, types, float(extra["r_max"]), _dtype_name(dtype),
                     extra.get("allow_tf32", "0").strip().lower() in ("1", "true"), pair_cut, versions,
                     {k: v for k, v in extra.items() if k != "config"}, architecture(names),
                     _dtype_name(pos_dtype))


def architecture(names: list[str]) -> str:
    """From the archive listing (the TorchScript code keeps the modules' qualified names)."""
    code = [n for n in names if "/code/__torch__/" in n]
    if any("/code/__torch__/nequip/nn/" in n and "convnetlayer" in n for n in code):
        return NEQUIP
    if any("/code/__torch__/allegro/nn/_allegro.py" in n for n in code):
        return ALLEGRO
    return UNKNOWN


def _dtype_name(text: str) -> str:
    """"float32"/"float64" also from "torch.float32", "float", "double" (as the plugin reads them)."""
    name = text.strip().removeprefix("torch.")
    return {"float": "float32", "double": "float64"}.get(name, name)


def format_info(info: ModelInfo) -> str:
    lines = [f"model       {os.path.abspath(info.path)}",
             f"format      {info.format}",
             f"type names  {' '.join(info.type_names)}",
             f"r_max       {info.r_max:g} A",
             f"architecture {info.architecture} ({'strictly local' if info.local else 'message passing or unknown'})",
             f"model dtype {info.model_dtype} (positions {info.pos_dtype})",
             f"allow_tf32  {info.allow_tf32}"]
    if info.per_edge_type_cutoff is not None:
        pairs = [f"{a}-{b} {info.cutoff(a, b):g}" for a in info.type_names for b in info.type_names]
        lines.append(f"pair cutoffs {', '.join(pairs)} A")
    for key, value in info.versions.items():
        lines.append(f"{key:11s} {value}")
    lines += [f"warning: {w}" for w in info.warnings()]
    return "\n".join(lines)
