"""Deployed NequIP/Allegro models: what a file is, read from the archive's listing and its plain-text extra
files. Nothing is unpickled: model files come from other people.

Formats (FACTS.md): a TorchScript archive is a zip whose folder holds code/, constants.pkl and extra/<key> text
files. `nequip-deploy` (nequip 0.6, legacy) writes nequip_version, n_species, config, default_dtype, ...;
`nequip-compile` (nequip >= 0.7) writes num_types and, when set, per_edge_type_cutoff. A torch.save checkpoint
is a zip too, but has no code/ folder; an AOTInductor .nequip.pt2 package has no TorchScript code either.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

from mlipprops.errors import InputError

LEGACY = "nequip-deploy (legacy, nequip 0.6 / Allegro 0.2-0.3)"
CURRENT = "nequip-compile TorchScript (nequip >= 0.7 / nequip-allegro >= 0.8)"


@dataclass(frozen=True)
class ModelInfo:
    path: str
    format: str
    type_names: tuple[str, ...]
    r_max: float
    model_dtype: str
    allow_tf32: bool
    per_edge_type_cutoff: np.ndarray | None = None  # [center type][neighbor type], Angstrom
    versions: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @property
    def legacy(self) -> bool:
        return self.format == LEGACY

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
        if self.model_dtype == "float32":
            notes.append("float32 model: stresses carry noise of order 1e-4 GPa; keep strain amplitudes >= 0.5 % "
                         "(the default) for elastic constants, and expect force tolerances below ~1e-4 eV/A to "
                         "be unreachable")
        return notes

    def describe(self) -> dict:
        return {"path": os.path.abspath(self.path), "format": self.format, "type_names": list(self.type_names),
                "r_max": self.r_max, "model_dtype": self.model_dtype, "allow_tf32": self.allow_tf32,
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
    pair_cut = None
    if extra.get("per_edge_type_cutoff"):
        values = np.array([float(x) for x in extra["per_edge_type_cutoff"].split()])
        if values.size != len(types) ** 2:
            raise InputError(f"{path}: per_edge_type_cutoff has {values.size} values for {len(types)} types")
        pair_cut = values.reshape(len(types), len(types))
    versions = {k: extra[k] for k in ("nequip_version", "torch_version", "allegro_version", "versions")
                if k in extra}
    return ModelInfo(path, LEGACY if legacy else CURRENT, types, float(extra["r_max"]), dtype,
                     extra.get("allow_tf32", "0").strip().lower() in ("1", "true"), pair_cut, versions,
                     {k: v for k, v in extra.items() if k != "config"})


def format_info(info: ModelInfo) -> str:
    lines = [f"model       {os.path.abspath(info.path)}",
             f"format      {info.format}",
             f"type names  {' '.join(info.type_names)}",
             f"r_max       {info.r_max:g} A",
             f"model dtype {info.model_dtype}",
             f"allow_tf32  {info.allow_tf32}"]
    if info.per_edge_type_cutoff is not None:
        pairs = [f"{a}-{b} {info.cutoff(a, b):g}" for a in info.type_names for b in info.type_names]
        lines.append(f"pair cutoffs {', '.join(pairs)} A")
    for key, value in info.versions.items():
        lines.append(f"{key:11s} {value}")
    lines += [f"warning: {w}" for w in info.warnings()]
    return "\n".join(lines)
