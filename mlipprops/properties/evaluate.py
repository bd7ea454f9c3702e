"""Single point: energy, forces and stress of the structure as given (the check to run before trusting a model
on a new crystal)."""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from mlipprops import outputs, tensors


@dataclass(frozen=True)
class EvaluateSettings:
    """A single point has nothing to set."""

    def for_system(self, system) -> "EvaluateSettings":
        return self

    def check(self, system) -> None:
        pass


@dataclass
class EvaluateResult:
    """evaluate.json (`to_dict()`): energy, forces (input order and frame), stress (Voigt, tensile positive)."""
    record: dict

    energy = property(lambda self: self.record["energy"])
    forces = property(lambda self: np.array(self.record["forces"]))
    stress_GPa = property(lambda self: np.array(self.record["stress_GPa"]))
    backend = property(lambda self: self.record["backend"])

    def to_dict(self) -> dict:
        return self.record

    def save(self, out_dir: str) -> None:
        outputs.save(out_dir, "evaluate.json", self.record)

    @classmethod
    def from_files(cls, record: dict, folder: str) -> "EvaluateResult":
        return cls(record)


def compute(system, settings: EvaluateSettings, run) -> EvaluateResult | None:
    with system.open_engine(run.world, run.log_path()) as engine:
        engine.evaluate()
        frame, units = system.frame, system.potential.units
        record = {"property": "evaluate", "energy": engine.energy(),
                  "forces": frame.vectors_to_input(engine.forces()),
                  "stress_GPa": tensors.stress_to_voigt(frame.stress_to_input(engine.stress())),
                  "backend": engine.backend, "units": units.stress_unit, "energy_unit": units.energy_unit,
                  "force_unit": units.force_unit, "natoms": system.natoms,
                  "symbols": system.atoms.get_chemical_symbols(), "cell": system.atoms.cell[:],
                  "atom_order": "the input's (a CIF: its atom-site loop, each site followed by its symmetry copies; "
                                "site_labels)",
                  "site_labels": system.atoms.arrays["cif_label"].tolist() if "cif_label" in system.atoms.arrays
                  else None,
                  "source": system.source}
        version = engine.version()
    if run.world.Get_rank() != 0:
        return None
    run.stamp(record, system.potential, 1, version)
    return EvaluateResult(record)


def evaluate(atoms, potential, *, out: str | None = None, np: int | None = None) -> EvaluateResult:
    """Energy, forces and stress of `atoms` with `potential` (in the input frame and atom order)."""
    from mlipprops.run import Options, execute
    return execute(sys.modules[__name__], atoms, potential, EvaluateSettings(), Options(out=out, np=np))
