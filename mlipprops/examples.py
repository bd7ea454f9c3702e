"""Bundled examples: a structure file shipped with the package and the potential to run it with."""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class Example:
    structure: str       # file name in mlipprops/data
    pair_style: str
    pair_coeffs: tuple[str, ...]
    units: str
    about: str

    def structure_path(self) -> str:
        return str(resources.files("mlipprops.data").joinpath(self.structure))


EXAMPLES = {
    "si-sw": Example("Si_diamond.cif", "sw", ("* * Si.sw Si",), "metal",
                     "diamond Si, Stillinger-Weber (PRB 31, 5262 (1985))"),
    "cu-eam": Example("Cu_fcc.cif", "eam/alloy", ("* * Cu_mishin1.eam.alloy Cu",), "metal",
                      "fcc Cu, EAM of Mishin et al. (PRB 63, 224106 (2001))"),
}
