"""Bundled examples: a structure file shipped with the package and the potential to run it with."""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class Example:
    structure: str                # file name in mlipprops/data
    about: str
    model: str | None = None      # a deployed model in mlipprops/data, or a LAMMPS pair style:
    pair_style: str | None = None
    pair_coeffs: tuple[str, ...] = ()
    units: str = "metal"

    def structure_path(self) -> str:
        return _data(self.structure)

    def model_path(self) -> str | None:
        return _data(self.model) if self.model else None


def _data(name: str) -> str:
    return str(resources.files("mlipprops.data").joinpath(name))


EXAMPLES = {
    "urea": Example("urea.cif", "urea (P-4 2_1 m, neutron structure), the bundled Allegro model trained on "
                    "GFN2-xTB (mlipprops/data/urea_allegro.md)", model="urea_allegro.nequip.pth"),
    "si-sw": Example("Si_diamond.cif", "diamond Si, Stillinger-Weber (PRB 31, 5262 (1985))",
                     pair_style="sw", pair_coeffs=("* * Si.sw Si",)),
    "cu-eam": Example("Cu_fcc.cif", "fcc Cu, EAM of Mishin et al. (PRB 63, 224106 (2001))",
                      pair_style="eam/alloy", pair_coeffs=("* * Cu_mishin1.eam.alloy Cu",)),
}


def example(name: str):
    """A bundled example as (structure, potential): "urea" (the Allegro model), "si-sw", "cu-eam"."""
    import mlipprops as mp
    from mlipprops.errors import InputError

    if name not in EXAMPLES:
        raise InputError(f"example {name}: choose one of {', '.join(sorted(EXAMPLES))}")
    ex = EXAMPLES[name]
    potential = mp.Potential.model(ex.model_path()) if ex.model else \
        mp.Potential.lammps(ex.pair_style, list(ex.pair_coeffs), ex.units)
    return mp.read_structure(ex.structure_path()), potential
