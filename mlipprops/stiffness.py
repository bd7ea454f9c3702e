"""Stiffness from stresses at +-strain: central differences and what the data say about their error. Pure numpy.

For each Voigt strain component j and amplitude d the stress is known at +d, -d and at the reference (0):
  central difference  C[:, j] = (s(+d) - s(-d)) / 2d           error O(d^2)
  asymmetry           A[:, j] = (s(+d) + s(-d) - 2 s(0)) / 2d  the first nonlinear term, O(d)
Error parts per component (C_err is their root sum of squares; `asymmetry` |A| is reported beside them):
  stress_noise  what one evaluation's stress scatters by (repeated evaluations of one state: a potential that is
             not a deterministic function of the positions, e.g. a GPU model's atomic sums), through the central
             difference: sqrt(var(+d) + var(-d)) / 2d;
  relaxation  what the incomplete ion relaxation may leave in each strained cell's stress: the bound from the
             energy the minimizer's quasi-Newton model says is left and the relaxation stiffness of each strain
             (relaxation_error), through the central difference the same way. It is the noise of a deterministic
             potential: where the minimizer stops inside the force tolerance depends on its path, and along a soft
             internal mode a small force leaves a large displacement;
  symmetry   |C_ij - C_ji| / 2 of the raw matrix where the two parts above cannot explain it (beyond twice the
             standard deviation they give it, where the caller knows it: symmetry.stiffness_variance), less what
             they explain: what else breaks the symmetry of C, such as a frame or a symmetry-completion error;
  amplitude  |C(d2) - C(d)| / (d2/d - 1) for the two smallest amplitudes d < d2, less the part of the difference
             that the noise of both explains: the truncation error of C(d), measured, not assumed. For an analytic
             potential it is O(d^2) and this overestimates it 3-fold (d2 = 2d); tabulated potentials (spline EAM) have a
             discontinuous third derivative, which makes it O(d), and then this is the Richardson estimate itself
             (seen: Cu_mishin1, C11(0.5 %) 0.27 GPa above C11(0.05 %));
  truncation when only one amplitude was run: for s_i(e) = C e + D e^2/2 + E e^3/6 along strain j the central
             difference is off by E_ijjj d^2/6 and the asymmetry is A_ij = D_ijj d/2. Assume one scale e0 of
             nonlinearity for the crystal (the anharmonicity of its bonds, which every strain stretches), 1/e0 the
             strongest nonlinearity any strain shows in any stress, max_kj |D_kjj| / sqrt(C_kk C_jj): then
             E_ijjj ~ max(|D_ijj|, |C_ij| / e0) / e0 and the error is 2/3 a max(|A_ij|, |C_ij| a), a = max_kj |A_kj|
             / sqrt(C_kk C_jj) (larger of ij and ji). A shear of an orthorhombic or higher crystal has A_jj = 0 by
             symmetry, yet its fourth-order term is not zero: the scale gives it an error; a component that vanishes
             by symmetry gets one only where strain j raises stress i at second order (A_ij). Measured against C(d) - C(d/5) at d = 0.5 % (estimate / true): SW Si C11 3.6,
             C12 0.47, C44 1.4; LJ fcc 1.3, 0.9, 1.0; urea's model C33 1.0, C13 3.6, C44 5.9, C66 4.5, but C11 and
             C12 0.14 and 0.19: urea's relaxed structure is a saddle, and along its soft mode C11 and C12 change by
             0.4 GPa between d = 0.1 % and 0.5 % (not an O(d^2) truncation: C is no linear response there, which the
             stability verdict says). The float32 CuAu test model breaks it: C11 0.12x (0.018 estimated, 0.14
             true; its fourth-order term is 12 times what one scale gives). A tabulated potential breaks the assumption (its error is O(d)): give two
             amplitudes there (the default for LAMMPS pair styles). Where C_jj <= 0 (an unstable strain) the bound
             |A| itself is taken.

Stress differences measure the stress-strain coefficients B of the reference state; at a reference stress s0 they
differ from the Brugger constants C by terms in s0 (tensors.stress_strain_coefficients), which are removed before
anything else: C is reported, and its symmetry error is the asymmetry that the stress does not explain.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlipprops.tensors import stress_strain_coefficients, symmetrize

# the error parts that are variances of the measured stresses, propagated through the central differences
NOISE_PARTS = ("stress_noise", "relaxation")


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


def _symmetrized(err: np.ndarray) -> np.ndarray:
    """The error of (C_ij + C_ji) / 2 when the two may come from the same strained cell (a crystal's symmetry makes
    one cell give both): their errors add, they do not average out."""
    return (err + err.T) / 2.0


def estimate(stresses: dict[float, tuple[np.ndarray, np.ndarray]], s0: np.ndarray,
             variances: dict[str, dict[float, tuple[np.ndarray, np.ndarray]]] | None = None,
             s0_variance: np.ndarray | None = None,
             stiffness_variances: dict[str, dict[float, tuple[np.ndarray, np.ndarray]]] | None = None
             ) -> StiffnessEstimate:
    """stresses: amplitude -> (s_plus[6][6], s_minus[6][6]); s0: reference Voigt stress. variances: part name
    (NOISE_PARTS) -> amplitude -> the variances of those stresses, laid out the same way; s0_variance: of s0.
    stiffness_variances: part name -> amplitude -> the variances of the symmetric and antisymmetric parts of C,
    where the caller knows how the cells are correlated (symmetry.stiffness_variance); else the errors of C_ij and
    C_ji are taken to add, and all of the asymmetry counts."""
    amplitudes = sorted(stresses)
    variances = variances or {}
    raw, asym, var_C, var_A = {}, {}, {}, {}
    stress_terms = stress_strain_coefficients(np.zeros((6, 6)), s0)  # B - C at the reference stress
    v0 = np.zeros(6) if s0_variance is None else np.asarray(s0_variance, float)
    for d in amplitudes:
        B, asym[d] = central_difference(*stresses[d], s0, d)
        raw[d] = B - stress_terms
        var_raw = {name: (np.asarray(by[d][0]) + np.asarray(by[d][1])).T / (2.0 * d) ** 2
                   for name, by in variances.items()}
        var_A[d] = sum(var_raw.values(), np.zeros((6, 6))) + (4.0 * v0)[:, None] / (2.0 * d) ** 2
        known = stiffness_variances or {}
        var_C[d] = {name: known[name][d][0] if name in known else _symmetrized(np.sqrt(v)) ** 2
                    for name, v in var_raw.items()}
        var_anti = sum((known[name][d][1] for name in var_raw if name in known), np.zeros((6, 6)))
        if d == amplitudes[0]:
            asymmetry_noise = var_anti
    smallest = amplitudes[0]
    C_raw = raw[smallest]
    if "stress_noise" in var_C[smallest]:
        # the reference stress's own noise reaches C through the terms in s0 that turn B into C (linear in s0)
        var_C[smallest]["stress_noise"] = var_C[smallest]["stress_noise"] + sum(
            (symmetrize(stress_strain_coefficients(np.zeros((6, 6)), e)) ** 2 * v for e, v in zip(np.eye(6), v0)),
            np.zeros((6, 6)))
    parts = {name: np.sqrt(v) for name, v in var_C[smallest].items()}
    # only the asymmetry that the noise parts do not explain (they are counted already): beyond twice what they
    # give it, the part of it above them
    asymmetry2 = ((C_raw - C_raw.T) / 2.0) ** 2
    parts["symmetry"] = np.sqrt(np.where(asymmetry2 > 4.0 * asymmetry_noise, asymmetry2 - asymmetry_noise, 0.0))
    if len(amplitudes) > 1:
        d2 = amplitudes[1]
        noise = [np.sqrt(sum(var_C[d].values(), np.zeros((6, 6)))) for d in (smallest, d2)]
        diff = symmetrize(raw[d2]) - symmetrize(C_raw)
        parts["amplitude"] = np.sqrt(np.maximum(diff**2 - noise[0]**2 - noise[1]**2, 0.0)) / (d2 / smallest - 1.0)
        trunc = parts["amplitude"]
    else:
        A = asym[smallest]
        parts["asymmetry"] = np.abs(symmetrize(A))
        signal = np.sqrt(np.maximum(A**2 - var_A[smallest], 0.0))  # the nonlinearity the noise does not explain
        parts["truncation"] = truncation(C_raw, signal)
        trunc = parts["truncation"]
    C_err = np.sqrt(sum(parts[name] ** 2 for name in var_C[smallest]) + parts["symmetry"] ** 2 + trunc**2)
    return StiffnessEstimate(symmetrize(C_raw), C_err, C_raw, raw, parts)


def relaxation_error(relaxation_stiffness: np.ndarray, remaining_energy: float, volume: float) -> np.ndarray:
    """The stress error (Voigt, the units of the stiffness) of stopping an ion relaxation where the quasi-Newton
    model says remaining_energy = g.K^-1.g / 2 is left to gain (volume and energy in the units whose ratio is the
    stiffness'). Near the minimum the stress still to come is dS_i = (1/V) L_i.K^-1.g, L_i the forces a unit strain
    i puts on the ions and K their Hessian, and by Cauchy-Schwarz in the metric K^-1
      |dS_i| <= (1/V) sqrt(L_i.K^-1.L_i) sqrt(g.K^-1.g) = sqrt(dC_ii 2 remaining_energy / V),
    dC_ii = L_i.K^-1.L_i / V the part of C_ii that the ions' relaxation takes off (clamped minus relaxed), which
    each strained cell measures. Equality holds when the force left lies along the mode that strain couples to:
    a soft internal mode, where a small force leaves a large displacement, is the case that matters (urea's model:
    3-5e-4 GPa per cell along its soft e1 - e2 mode, at forces below 1e-4 eV/A)."""
    return np.sqrt(np.maximum(np.asarray(relaxation_stiffness, float), 0.0) * 2.0 * max(remaining_energy, 0.0)
                   / volume)


def truncation(C: np.ndarray, A: np.ndarray) -> np.ndarray:
    """The O(d^2) error of one amplitude's central differences from its asymmetry A (module docstring):
    2/3 a max(|A_ij|, |C_ij| a) with a = max_kj |A_kj| / sqrt(C_kk C_jj), the larger of ij and ji; |A_ij| where
    C_jj <= 0."""
    diag = np.diag(C).astype(float)
    stable = diag > 0
    positive = np.where(stable, diag, np.inf)  # an unstable strain says nothing about the scale
    a = float(np.max(np.abs(A) / np.sqrt(np.outer(positive, positive))))
    error = np.where(stable[None, :], 2.0 / 3.0 * a * np.maximum(np.abs(A), np.abs(C) * a), np.abs(A))
    return np.maximum(error, error.T)


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
