"""Quasi-Newton minimization (L-BFGS) driven from Python, one force evaluation per step: the ions in a fixed cell,
or ions and cell together at a target pressure.

Why not LAMMPS' own minimizers: with a deployed model a force evaluation costs far more than anything else, and
CG spends several on every line search. Near a minimum the energy is nearly quadratic, and L-BFGS's curvature model,
built from the gradients it has seen, takes near-Newton steps with no line search at all. Measured on urea with
its model (|F| to 1e-4 eV/A): a +0.5 % strained cell, CG 372 evaluations, L-BFGS 59, the same stress to 1e-4 GPa;
the minimum check's walk of cell and ions off a saddle, box/relax + CG 1194, L-BFGS 276, the same state.

Every rank of an engine runs the same arithmetic on the same gathered numbers, so all take the same steps.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from mlipprops.errors import InputError

# The curvature (energy/length^2) assumed until two steps have measured one: a stiff bond's order of magnitude in
# eV/A^2 and in lj units (the LJ pair's 57 epsilon/sigma^2). The trust radius bounds the step a wrong guess gives.
CURVATURE = 70.0
# The energy's noise per atom (energy units): a float32 model's rounding (measured: the CuAu model's energy scatters
# by 2.3e-6 eV around a smooth curve on 32 atoms, 7e-8 per atom), float64 far below (the urea model's: 4e-10 eV on
# 16 atoms). Only a fall by more than this is progress.
NOISE_PER_ATOM = {"float32": 1e-6, "float64": 1e-10}
# A step that raises the energy by more than this per atom (energy units) is rejected. Smaller rises are taken: a
# quasi-Newton walk need not fall at every step, and rejecting them (at the noise) costs more evaluations than it
# saves (urea's whole tensor: 619 -> 1072)
UPHILL_PER_ATOM = 1e-5
# The cell's stiffness assumed when its strain coordinates are scaled to look like the ions' (GPa): the order of
# magnitude of a molecular crystal's and a soft metal's elastic constants; L-BFGS learns the rest
STIFFNESS_GUESS_GPA = 30.0


@dataclass
class Minimized:
    converged: bool
    evaluations: int
    # what the quasi-Newton model says is left to gain: g.H.g / 2 at the state left (energy units); with the
    # relaxation stiffness it bounds the stress error of stopping there (stiffness.relaxation_error)
    remaining_energy: float = 0.0
    # the stress (report units, LAMMPS frame) of the starting state (relax_cell_and_ions)
    start_stress: np.ndarray | None = None


def lbfgs(evaluate: Callable, x: np.ndarray, converged: Callable[[], bool], step_size: Callable, noise: float,
          uphill: float, memory: int = 20, max_evaluations: int = 3000,
          patience: int = 40) -> tuple[np.ndarray, Minimized]:
    """Minimize from x. evaluate(x) -> (energy, gradient), with side effects (the engine's state); converged():
    whether the state evaluated last is good enough; step_size(d): the size of step d relative to the largest
    allowed (1 at the limit); noise: the energy's (absolute); uphill: the rise that rejects a step. Stops
    converged, after max_evaluations, or stuck: `patience` steps without a new lowest energy (by more than the
    noise) nor a new smallest gradient (by 1 %), which is the noise floor of a float32 model (a slow walk down a
    soft mode lowers the energy at a steady gradient). The state evaluated last is the returned one."""
    energy, gradient = evaluate(x)
    evaluations, steps, trust = 1, Steps(memory), 1.0
    lowest, smallest, since, current = energy, np.inf, 0, True
    while not converged() and evaluations < max_evaluations and since < patience:
        d = -steps.inverse_hessian_times(gradient)
        if d @ gradient >= 0:  # not downhill: the curvature pairs no longer describe this region
            steps.forget()
            d = -gradient / CURVATURE
        size = step_size(d)
        if size == 0.0:  # a vanishing gradient that converged() does not accept: nowhere to go
            break
        d *= min(1.0, trust / size)
        new_energy, new_gradient = evaluate(x + d)
        evaluations += 1
        if not (np.isfinite(new_energy) and np.isfinite(new_gradient).all()):
            # a model that breaks down (NaN) passes every energy comparison: it would be walked on as progress
            raise InputError(f"the potential gave a non-finite energy or force after {evaluations} evaluations of "
                             "a minimization: the model breaks down on these configurations; check it on the "
                             "structure with `mlipprops evaluate`")
        if new_energy > energy + max(noise, uphill):
            # the step overshot (a steep wall, or curvature of the wrong sign): shorter steps until one falls
            trust = 0.5 * min(trust, step_size(d))
            current, since = False, since + 1
            continue
        steps.add(d, new_gradient - gradient)
        x, energy, gradient, current = x + d, new_energy, new_gradient, True
        trust = min(1.0, 2.0 * trust)
        norm, since = np.linalg.norm(gradient), since + 1
        if energy < lowest - noise or norm < 0.99 * smallest:
            lowest, smallest, since = min(lowest, energy), min(smallest, norm), 0
    if not current:  # the last evaluation was a rejected step: the engine returns to the accepted state
        evaluate(x)
        evaluations += 1
    remaining = 0.5 * float(gradient @ steps.inverse_hessian_times(gradient))
    return x, Minimized(bool(converged()), evaluations, remaining)


class Steps:
    """The last `memory` steps s and gradient changes y, and the inverse Hessian they imply (the two-loop
    recursion, Nocedal & Wright, Numerical Optimization, algorithm 7.4)."""

    def __init__(self, memory: int):
        self.pairs = deque(maxlen=memory)

    def add(self, s: np.ndarray, y: np.ndarray) -> None:
        sy = s @ y
        if sy > 1e-12 * np.linalg.norm(s) * np.linalg.norm(y):  # positive curvature only keeps H positive definite
            self.pairs.append((s, y, 1.0 / sy))

    def forget(self) -> None:
        self.pairs.clear()

    def inverse_hessian_times(self, g: np.ndarray) -> np.ndarray:
        q = g.copy()
        alphas = []
        for s, y, rho in reversed(self.pairs):
            a = rho * (s @ q)
            q -= a * y
            alphas.append(a)
        if self.pairs:
            s, y, _ = self.pairs[-1]
            q *= (s @ y) / (y @ y)
        else:
            q /= CURVATURE
        for (s, y, rho), a in zip(self.pairs, reversed(alphas)):
            q += (a - rho * (y @ q)) * s
        return q


# The cell's degrees of freedom in each box/relax mode: entries (i, j) of the lower-triangular deformation D, the
# cell rows going h0 -> h0 D (so the cell keeps LAMMPS' shape; iso: one common factor for the diagonal; fixed: none,
# the ions alone)
CELL_ENTRIES = {"fixed": (), "iso": ((0, 0), (1, 1), (2, 2)), "aniso": ((0, 0), (1, 1), (2, 2)),
                "tri": ((0, 0), (1, 1), (2, 2), (1, 0), (2, 0), (2, 1))}


class Enthalpy:
    """H = E + P V of the engine's crystal as a function of ions and cell (mode iso, aniso or tri, as fix box/relax;
    fixed: the ions alone), from the engine's current state; pressure in report units, compressive positive.

    Coordinates: the cell as h = h0 D, the ions as r = u D with u in the starting cell. At fixed u a change dD
    strains the crystal homogeneously by D^-1 dD, so dH/dD = V D^-T (sigma + P) (sigma tensile positive). The strain
    coordinates are scaled by sqrt(V C / CURVATURE), so that their curvature is the ions' order of magnitude."""

    def __init__(self, engine, mode: str, pressure: float):
        state = engine.save_state()
        self.engine, self.mode, self.pressure = engine, mode, pressure
        self.h0, self.natoms = state.cell, len(state.positions)
        self.entries = CELL_ENTRIES[mode]
        self.per_volume = 1.0 / engine.units.gpa_per_energy_density  # report stress units -> energy per volume
        self.scale = np.sqrt(abs(np.linalg.det(self.h0)) * STIFFNESS_GUESS_GPA * self.per_volume / CURVATURE)
        self.start = np.concatenate([state.positions.ravel(), np.zeros(1 if mode == "iso" else len(self.entries))])
        self.forces = self.residual = None  # of the state evaluated last (residual: stress - target, LAMMPS frame)
        self.start_stress = None  # of the first state evaluated

    def deformation(self, x: np.ndarray) -> np.ndarray:
        strains = x[3 * self.natoms:] / self.scale
        if self.mode == "iso":
            return np.eye(3) * (1.0 + strains[0])
        D = np.eye(3)
        for (i, j), value in zip(self.entries, strains):
            D[i, j] += value
        return D

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        D = self.deformation(x)
        h = self.h0 @ D
        self.engine.place(h, x[:3 * self.natoms].reshape(-1, 3) @ D)
        self.forces = self.engine.forces()
        stress = self.engine.stress()
        if self.start_stress is None:
            self.start_stress = stress
        self.residual = stress + self.pressure * np.eye(3)
        volume = abs(np.linalg.det(h))
        dH_dD = volume * self.per_volume * np.linalg.solve(D.T, self.residual)
        cell = [np.trace(dH_dD)] if self.mode == "iso" else [dH_dD[i, j] for i, j in self.entries]
        return (self.engine.energy() + self.pressure * self.per_volume * volume,
                np.concatenate([-(self.forces @ D.T).ravel(), np.array(cell) / self.scale]))

    def step_size(self, d: np.ndarray, max_step: float, max_strain_step: float) -> float:
        return max(_largest_move(d[:3 * self.natoms]) / max_step,
                   np.abs(d[3 * self.natoms:]).max(initial=0.0) / self.scale / max_strain_step)


def relax_ions(engine, force_tol: float, max_step: float = 0.1) -> Minimized:
    """Relax the ions in the engine's cell until the 2-norm of the global force vector is below force_tol (LAMMPS'
    ftol criterion); max_step: the largest move of an atom in one step (length units)."""
    return relax_cell_and_ions(engine, "fixed", 0.0, lambda forces, _: np.linalg.norm(forces) <= force_tol,
                               max_step=max_step)


def relax_cell_and_ions(engine, mode: str, pressure: float, converged: Callable, max_step: float = 0.1,
                        max_strain_step: float = 0.01, max_evaluations: int = 3000) -> Minimized:
    """Minimize the enthalpy over ions and cell (Enthalpy; mode fixed: the ions alone) until converged(forces,
    residual stress) on the state evaluated last; max_step: the largest move of an atom in one step (length units),
    max_strain_step: of a cell entry (fractional)."""
    H = Enthalpy(engine, mode, pressure)
    _, outcome = lbfgs(H, H.start, lambda: converged(H.forces, H.residual),
                       lambda d: H.step_size(d, max_step, max_strain_step), *_allowances(engine),
                       max_evaluations=max_evaluations)
    outcome.start_stress = H.start_stress
    return outcome


def _allowances(engine) -> tuple[float, float]:
    return engine.natoms * NOISE_PER_ATOM[engine.precision], engine.natoms * UPHILL_PER_ATOM


def _largest_move(d: np.ndarray) -> float:
    return float(np.linalg.norm(d.reshape(-1, 3), axis=1).max(initial=0.0))
