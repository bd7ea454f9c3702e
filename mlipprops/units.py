"""The one place for LAMMPS unit systems and stress signs.

LAMMPS reports pressure compressive-positive, in bar (metal), atm (real) or reduced units (lj). mlipprops reports
stress tensile-positive, in GPa (metal, real) or reduced units (lj).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AMU_PER_A3_TO_G_CM3 = 1.66053906660


@dataclass(frozen=True)
class Units:
    name: str
    pressure_unit: str      # what LAMMPS pressures are in
    gpa_per_pressure: float  # 1 LAMMPS pressure unit in GPa (1.0 for lj: no conversion)
    stress_unit: str        # what mlipprops reports stresses and C in
    energy_unit: str
    force_unit: str
    gpa_per_energy_density: float  # 1 energy/length^3 in report units (GPa; 1 for lj)
    boltzmann: float               # k_B in energy units per temperature unit
    default_timestep: float        # a safe MD step for atoms without hydrogen (time units)

    def stress_from_pressure(self, p: np.ndarray) -> np.ndarray:
        """LAMMPS pressure (any shape) -> tensile-positive stress in report units."""
        return -np.asarray(p, float) * self.gpa_per_pressure

    def pressure_from_stress(self, s: float) -> float:
        """Tensile-positive stress in report units -> LAMMPS pressure (compressive positive)."""
        return -s / self.gpa_per_pressure

    @property
    def reduced(self) -> bool:
        return self.name == "lj"


UNITS = {
    "metal": Units("metal", "bar", 1.0e-4, "GPa", "eV", "eV/Angstrom", 160.21766208, 8.617333262e-5, 0.001),
    "real": Units("real", "atm", 1.01325e-4, "GPa", "kcal/mol", "kcal/mol/Angstrom", 6.9476954, 1.987204259e-3,
                  1.0),
    "lj": Units("lj", "lj", 1.0, "lj", "epsilon", "epsilon/sigma", 1.0, 1.0, 0.005),
}
