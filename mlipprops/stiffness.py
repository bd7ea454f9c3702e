"""Stiffness from stresses at +-strain: central differences and what the data say about their error. Pure numpy.

For each Voigt strain component j and amplitude d the stress is known at +d, -d and at the reference (0):
  central difference  C[:, j] = (s(+d) - s(-d)) / 2d           error O(d^2)
  asymmetry           A[:, j] = (s(+d) + s(-d) - 2 s(0)) / 2d  the first nonlinear term, O(d)
Error estimate per component:
  symmetry   |C_ij - C_ji| / 2 of the raw matrix: noise in stresses and incomplete ion relaxation;
  amplitude  |C(d2) - C(d)| / (d2/d - 1) for the two smallest amplitudes d < d2: the truncation error of C(d),
             measured, not assumed. For an analytic potential it is O(d^2) and this overestimates it 3-fold (d2 = 2d);
             tabulated potentials (spline EAM) have a discontinuous third derivative, which makes it O(d), and then
             this is the Richardson estimate itself (seen: Cu_mishin1, C11(0.5 %) 0.27 GPa above C11(0.05 %));
  truncation when only one amplitude was run: for s_i(e) = C e + D e^2/2 + E e^3/6 the central difference is off
             by E d^2/6 and the asymmetry is A = D d/2. If strain j has one scale of nonlinearity (its
             stiffness C_jj over its own D_jj, as for any analytic potential, ML models included), E_ij ~ D_ij D_jj
             / C_jj and the error is 2/3 A_ij A_jj / C_jj (larger of ij and ji). Seen: urea's bundled model, C33
             0.34 GPa estimated, 0.29 GPa from two amplitudes; SW Si C11 0.02 estimated, 0.003 measured. A tabulated
             potential breaks the assumption (its error is O(d)): give two amplitudes there (the default for LAMMPS
             pair styles). Where C_jj <= 0 (an unstable strain) the bound |A| itself is taken.
C_err is the root sum of squares of symmetry and (amplitude if available else truncation); `asymmetry` |A| is
reported as well.

Stress differences measure the stress-strain coefficients B of the reference state; at a reference stress s0 they
differ from the Brugger constants C by terms in s0 (tensors.stress_strain_coefficients), which are removed before
anything else: C is reported, and its symmetry error is the asymmetry that the stress does not explain.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlipprops.tensors import stress_strain_coefficients, symmetrize


@dataclass
class StiffnessEstimate:
    C: np.ndarray            # Brugger constants, symmetrized, at the smallest amplitude
    C_err: np.ndarray
    C_raw: np.ndarray        # before symmetrization
    by_amplitude: dict       # amplitude -> raw central-difference C
    parts: dict              # name -> 6x6 error contribution


def central_difference(s_plus: np.ndarray, s_minus: np.ndarray, s0: np.ndarray, delta: float):
    """s_plus[j], s_minus[j]: Voigt stress (6) at +-delta along strain component j. Returns (C, A)."""
    s_plus, s_minus = np.asarray(s_plus, float), np.asarray(s_minus, float)
    C = (s_plus - s_minus).T / (2.0 * delta)
    A = (s_plus + s_minus - 2.0 * np.asarray(s0, float)).T / (2.0 * delta)
    return C, A


def estimate(stresses: dict[float, tuple[np.ndarray, np.ndarray]], s0: np.ndarray) -> StiffnessEstimate:
    """stresses: amplitude -> (s_plus[6][6], s_minus[6][6]); s0: reference Voigt stress."""
    amplitudes = sorted(stresses)
    raw, asym = {}, {}
    stress_terms = stress_strain_coefficients(np.zeros((6, 6)), s0)  # B - C at the reference stress
    for d in amplitudes:
        B, asym[d] = central_difference(*stresses[d], s0, d)
        raw[d] = B - stress_terms
    smallest = amplitudes[0]
    C_raw = raw[smallest]
    parts = {"symmetry": np.abs(C_raw - C_raw.T) / 2.0}
    if len(amplitudes) > 1:
        ratio = amplitudes[1] / smallest - 1.0
        parts["amplitude"] = np.abs(symmetrize(raw[amplitudes[1]]) - symmetrize(C_raw)) / ratio
        trunc = parts["amplitude"]
    else:
        A = asym[smallest]
        parts["asymmetry"] = np.abs(symmetrize(A))
        diag = np.diag(C_raw)
        stable = diag > 0
        estimate = np.where(stable[None, :], 2.0 / 3.0 * np.abs(A * np.diag(A)[None, :]) /
                            np.where(stable, diag, 1.0)[None, :], np.abs(A))
        parts["truncation"] = np.maximum(estimate, estimate.T)
        trunc = parts["truncation"]
    C_err = np.sqrt(parts["symmetry"] ** 2 + trunc**2)
    return StiffnessEstimate(symmetrize(C_raw), C_err, C_raw, raw, parts)


def energy_noise(E0: float, natoms: int) -> float:
    """What two relaxations of one structure may differ by in energy: float32 models' rounding (2e-7 |E0|) and the
    minimizer's tolerance (1e-6 per atom)."""
    return 2e-7 * abs(E0) + 1e-6 * natoms


def saddle_check(E0: float, cells: list[tuple], stress_energy: float, s0: np.ndarray, natoms: int,
                 shallow_energy: float) -> dict:
    """Is the relaxed reference a minimum of the potential? cells: (strain name, amplitude, sign, energy of the
    relaxed strained cell, largest ion displacement of its relaxation). Around a minimum the strained cells lie
    higher: (E(+d) + E(-d)) / 2 - E0 = V d^2 C_jj / 2 > 0, the terms linear in d cancelling. A reference that is
    a saddle (held there by its symmetry: its forces vanish by symmetry, so relaxation cannot leave it) is found
    out by the strain, which breaks the symmetry: the ions slide into a lower state and the pair average drops
    below E0. Then C is measured across that transition, not the crystal's linear response. Allowed before
    calling it: what a reference stress s0 can give at second order (|s0| V d^2, stress_energy = V per unit of
    s0's stress) and the floating-point noise of energies (2e-7 |E0|: float32 models; 1e-6 per atom).
    `shallow`: the deepest drop is under shallow_energy per atom (k_B x 10 K, SHALLOW_SADDLE_TEMPERATURE): such a
    double well is averaged away by thermal motion at any working temperature (GFN2-xTB's urea: ~0.1 meV/atom);
    deeper, the crystal of this potential has another structure."""
    tolerance = energy_noise(E0, natoms)
    pairs: dict[tuple, dict] = {}
    for name, amplitude, sign, energy, moved in cells:
        pairs.setdefault((name, amplitude), {})[sign] = (energy, moved)
    rows = []
    for (name, amplitude), both in sorted(pairs.items()):
        if len(both) < 2:
            continue
        change = 0.5 * (both[1][0] + both[-1][0]) - E0
        allowed = tolerance + float(np.abs(s0).max()) * stress_energy * amplitude ** 2
        rows.append({"strain": name, "amplitude": amplitude, "energy_change": change,
                     "energy_change_per_atom": change / natoms, "allowed": allowed,
                     "max_ion_displacement": max(both[1][1], both[-1][1]), "below_reference": change < -allowed})
    lower = [r for r in rows if r["below_reference"]]
    lowest = min(lower, key=lambda r: r["energy_change"]) if lower else None
    return {"reference_is_minimum": not lower, "strains": rows, "lowest": lowest,
            "shallow": None if lowest is None else bool(-lowest["energy_change_per_atom"] < shallow_energy)}


SHALLOW_SADDLE_TEMPERATURE = {False: 10.0, True: 0.01}  # K; reduced (lj) units: 1 % of epsilon / k_B


def shallow_energy(units) -> float:
    """k_B x SHALLOW_SADDLE_TEMPERATURE per atom, in the units' energy: a drop below a structure shallower than this
    is a double well that thermal motion averages away."""
    return units.boltzmann * SHALLOW_SADDLE_TEMPERATURE[units.reduced]
