"""Box relaxation at a target pressure: rounds of fix box/relax + ion minimization until the residual stress
and the largest force are below the user's tolerances."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlipprops.engine import Engine
from mlipprops.tensors import stress_to_voigt

# Which stress components each box/relax mode can bring to the target (Voigt indices).
MODE_COMPONENTS = {"iso": (), "aniso": (0, 1, 2), "tri": (0, 1, 2, 3, 4, 5)}


@dataclass(frozen=True)
class RelaxSettings:
    pressure: float = 0.0       # target, report units (GPa or lj), compressive positive
    mode: str = "aniso"         # iso | aniso | tri
    stress_tol: float = 1e-3    # report units
    force_tol: float = 1e-4     # LAMMPS force units
    max_rounds: int = 30


@dataclass
class RelaxOutcome:
    rounds: int
    converged: bool
    energy: float
    stress: np.ndarray           # 3x3, LAMMPS frame, tensile positive
    residual_stress: np.ndarray  # stress minus the target, 3x3, LAMMPS frame
    max_force: float


def residual_measure(residual: np.ndarray, mode: str) -> float:
    """The part of the residual stress that `mode` can remove: the mean for iso, components otherwise."""
    if mode == "iso":
        return abs(np.trace(residual) / 3.0)
    return float(np.max(np.abs(stress_to_voigt(residual)[list(MODE_COMPONENTS[mode])])))


def measure(engine: Engine, target: np.ndarray, mode: str, rounds: int, settings: RelaxSettings) -> RelaxOutcome:
    """Read the current state; forces, energy and virial must be current (after evaluate() or minimize())."""
    stress = engine.stress()
    residual = stress - target
    fmax = engine.max_force()
    ok = residual_measure(residual, mode) <= settings.stress_tol and fmax <= settings.force_tol
    return RelaxOutcome(rounds, ok, engine.energy(), stress, residual, fmax)


def relax(engine: Engine, settings: RelaxSettings) -> RelaxOutcome:
    """Relax cell and ions in place. Returns the final state's numbers; the engine holds the relaxed state."""
    if settings.mode not in MODE_COMPONENTS:
        raise ValueError(f"relax mode {settings.mode}: choose iso, aniso or tri")
    target = -settings.pressure * np.eye(3)
    p_lammps = engine.units.pressure_from_stress(-settings.pressure)
    engine.evaluate()
    outcome = measure(engine, target, settings.mode, 0, settings)
    for rounds in range(1, settings.max_rounds + 1):
        if outcome.converged:
            break
        engine.relax_box(settings.mode, p_lammps, ftol=settings.force_tol)
        engine.minimize(settings.force_tol)
        outcome = measure(engine, target, settings.mode, rounds, settings)
    return outcome


def relax_ions(engine: Engine, force_tol: float, max_rounds: int = 5) -> float:
    """Minimize the ions in a fixed cell until the largest force is below force_tol (or no progress)."""
    fmax = np.inf
    for _ in range(max_rounds):
        engine.minimize(force_tol)
        new = engine.max_force()
        if new <= force_tol or new >= 0.999 * fmax:
            return new
        fmax = new
    return fmax
