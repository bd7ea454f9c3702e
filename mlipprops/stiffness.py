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
  asymmetry  |A| when only one amplitude was run: central differences remove this term's leading part, so it is
             an upper bound on the nonlinearity error, conservative by a factor of order 1/d.
C_err is the root sum of squares of symmetry and (amplitude if available else asymmetry).

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
        parts["asymmetry"] = np.abs(symmetrize(asym[smallest]))
        trunc = parts["asymmetry"]
    C_err = np.sqrt(parts["symmetry"] ** 2 + trunc**2)
    return StiffnessEstimate(symmetrize(C_raw), C_err, C_raw, raw, parts)
