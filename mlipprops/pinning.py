"""Interface pinning: the chemical-potential difference of solid and liquid from a biased two-phase cell, and the
melting point where it changes sign (Pedersen, J. Chem. Phys. 139, 104102 (2013); Pedersen, Hummel, Kresse,
Kahl & Dellago, Phys. Rev. B 88, 094101 (2013)). Pure numpy.

The order parameter is the density mode Q = |rho_k|, rho_k = sum_j exp(-i k.r_j) / sqrt(N), of N particles (all
atoms of an atomic crystal, one atom per molecule of a molecular crystal) at a reciprocal-lattice vector k of
the crystal that lies in the interface plane. The crystal part of a two-phase cell adds to rho_k coherently, the
liquid part at random, so Q grows by Q_s / N per particle that crystallizes (Q_s: Q of the whole cell as bulk
crystal at T). A harmonic bias U = kappa/2 (Q - a)^2 pins the amount of crystal; in equilibrium the mean bias
force balances the thermodynamic one, dG/dQ = kappa (a - <Q>), and dG/dN_s = mu_s - mu_l, so

    delta_mu = mu_l - mu_s = kappa (<Q> - a) Q_s / N       per particle (per molecule of a molecular crystal),

positive below T_m (the solid is stable and pulls Q above the anchor), negative above. Near T_m,
delta_mu(T) = dH_m (T_m - T) / T_m: a straight line whose zero is T_m and whose slope gives the latent heat.

Why Q_s / N and not (Q_s - Q_l) / N: the liquid's contribution is incoherent, of order 1 whatever its amount,
and does not grow with the crystal; the slope per crystallized particle is the coherent amplitude per particle.
This scale sets delta_mu and the latent heat (a few per cent for a cell of hundreds of particles) but not T_m,
where the mean bias force is zero whatever the scale.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student_t

from mlipprops.fluctuation import block_mean_error, statistical_inefficiency


# -- the order parameter ---------------------------------------------------------------------------------------
def rhok_vector(nx: int, ny: int, cell: np.ndarray) -> np.ndarray:
    """The wave vector of LAMMPS' fix rhok with indices (nx, ny, 0) in a LAMMPS-shaped cell (rows a, b, c)."""
    return 2 * np.pi * np.array([nx / cell[0, 0], ny / cell[1, 1], 0.0])


def periodic_indices(cell: np.ndarray, max_index: int) -> list[tuple[int, int]]:
    """Indices (nx, ny), one of each +-pair, for which fix rhok's k = 2 pi (nx/Lx, ny/Ly, 0) is a reciprocal
    vector of the cell (k.a, k.b, k.c multiples of 2 pi): only then is Q the same for every periodic image. k lies
    in the interface plane (normal z), so Q does not change when the barostat stretches the cell along z; in a
    tilted cell (xy, xz, yz) only some indices qualify."""
    found = []
    for nx in range(0, max_index + 1):
        for ny in range(-max_index if nx else 1, max_index + 1):
            k = rhok_vector(nx, ny, cell)
            turns = np.asarray(cell, float) @ k / (2 * np.pi)
            if np.allclose(turns, np.round(turns), atol=1e-6):
                found.append((nx, ny))
    return found


def density_mode(positions: np.ndarray, k: np.ndarray) -> float:
    """Q = |sum_j exp(-i k.r_j)| / sqrt(N)."""
    phase = np.asarray(positions, float) @ k
    return float(np.hypot(np.cos(phase).sum(), np.sin(phase).sum()) / np.sqrt(len(phase)))


def choose_wavevector(positions: np.ndarray, cell: np.ndarray, max_index: int = 24) -> tuple[int, int, float]:
    """(nx, ny, Q) of the in-plane density mode with the largest Q in the crystal `positions`: the strongest
    in-plane Bragg reflection. Among those within 10 % of the largest, the shortest k, whose Debye-Waller factor
    loses least at high temperature."""
    best = [(nx, ny, density_mode(positions, rhok_vector(nx, ny, cell))) for nx, ny in periodic_indices(cell, max_index)]
    if not best:
        raise ValueError("no in-plane reciprocal vector of this cell: the cell's tilt admits none")
    top = max(q for *_, q in best)
    strong = [b for b in best if b[2] >= 0.9 * top]
    return min(strong, key=lambda b: np.linalg.norm(rhok_vector(b[0], b[1], cell)))


def spring_constant(kT: float, q_solid: float, spacing: float, length: float) -> float:
    """kappa of the bias: its thermal width sqrt(kT/kappa) equals the change of Q when an interface moves by half
    a particle spacing (Q_s spacing / (2 length), `length` the cell along the normal). Stiffer, and the force
    noise grows with nothing gained; softer, and the interface wanders over layers (slow sampling) or escapes."""
    width = q_solid * spacing / (2.0 * length)
    return float(kT / width**2)


# -- delta mu at one temperature --------------------------------------------------------------------------------
@dataclass
class DeltaMu:
    value: float        # mu_l - mu_s per particle (energy units)
    error: float
    q_mean: float
    q_error: float
    samples: int        # samples in the mean (after the equilibration cut)
    independent: float  # of them effectively independent (samples / statistical inefficiency)
    stationary: bool    # first and second halves agree within 3 combined errors


def chemical_potential_difference(q: np.ndarray, anchor: float, kappa: float, q_solid: float, q_solid_err: float,
                                  particles: int, equilibration: float = 0.2) -> DeltaMu:
    """delta_mu from the biased series Q(t), after the first `equilibration` fraction. The error of <Q> is the
    larger of two estimates for a correlated series: the statistical inefficiency g (Sokal's window: Var = g var/n)
    and the scatter of 5 block means (blocks much longer than the correlation time are independent); the larger,
    because each can miss a slow drift the other sees. The error of Q_s adds in quadrature."""
    q = np.asarray(q, float)[int(equilibration * len(q)):]
    if len(q) < 20:
        raise ValueError(f"{len(q)} samples after equilibration: too few for a mean with an error")
    g = statistical_inefficiency(q)
    err = max(np.sqrt(g * q.var(ddof=1) / len(q)), float(block_mean_error(q, 5)[1]))
    scale = kappa * q_solid / particles
    value = scale * (q.mean() - anchor)
    error = np.hypot(scale * err, kappa * (q.mean() - anchor) * q_solid_err / particles)
    half = len(q) // 2
    (m1, e1), (m2, e2) = (block_mean_error(part, 5) for part in (q[:half], q[half:]))
    stationary = bool(abs(m1 - m2) <= 3 * np.hypot(e1, e2) + 1e-12)
    return DeltaMu(float(value), float(error), float(q.mean()), float(err), len(q), float(len(q) / g), stationary)


# -- the melting point from delta_mu(T) ---------------------------------------------------------------------------
@dataclass
class Crossing:
    """The weighted straight line delta_mu = slope (T - T_m) through the points used, and what follows from it."""
    T_m: float
    T_m_err: float
    slope: float             # d delta_mu / dT (energy per particle per K); negative
    slope_err: float
    latent_heat: float       # -slope T_m: dH_m per particle
    latent_heat_err: float
    temperatures: list       # of the points in the fit
    birge: float             # sqrt(chi^2 / dof): > 1 when the points scatter more than their errors say


def fit_crossing(points: list[dict], window: float = 0.15) -> Crossing:
    """Weighted least squares of delta_mu(T) through the points within `window` (fraction of T) of the zero of a
    first fit through all of them (delta_mu is linear in T only near T_m; at least the 3 closest are kept). The
    covariance is scaled by the Birge ratio squared when the points scatter more than their errors say, and the
    errors of what follows from the line are then widened to Student's t with n - 2 degrees of freedom. T_m's
    error from the delta method on T_m = T0 - b/a."""
    usable = [p for p in points if p.get("used", True)]
    if len(usable) < 2:
        raise ValueError("need two temperatures at least")
    T0 = _line(usable).T_m if len(usable) > 2 else None
    if T0 is not None and np.isfinite(T0):
        near = sorted(usable, key=lambda p: abs(p["temperature"] - T0))
        chosen = [p for p in near if abs(p["temperature"] - T0) <= window * abs(T0)]
        usable = chosen if len(chosen) >= 3 else near[:3]
    return _line(usable)


def _line(points: list[dict]) -> Crossing:
    T = np.array([p["temperature"] for p in points], float)
    y = np.array([p["delta_mu"] for p in points], float)
    e = np.array([p["delta_mu_err"] for p in points], float)
    e = np.maximum(e, 1e-12 + 1e-6 * np.abs(y).max())
    mid = T.mean()
    X = np.vstack([T - mid, np.ones_like(T)]).T
    w = 1.0 / e**2
    cov = np.linalg.inv(X.T @ (X * w[:, None]))
    a, b = cov @ (X.T @ (w * y))
    n = len(T)
    birge, factor = 1.0, 1.0
    if n > 2:
        birge = float(np.sqrt(np.sum(w * (y - X @ np.array([a, b]))**2) / (n - 2)))
        if birge > 1:
            cov = cov * birge**2
            factor = float(student_t.ppf(0.8413, n - 2))
    if not a < 0:
        return Crossing(float("nan"), float("inf"), float(a), float(np.sqrt(cov[0, 0])), float("nan"),
                        float("inf"), T.tolist(), birge)
    Tm = mid - b / a
    grad = np.array([b / a**2, -1.0 / a])
    Tm_err = float(np.sqrt(grad @ cov @ grad) * factor)
    # dH = -a Tm; its error from a (dominant) and Tm, which are correlated only weakly near the centre
    dH = -a * Tm
    dH_err = float(np.hypot(np.sqrt(cov[0, 0]) * factor * Tm, a * Tm_err))
    return Crossing(float(Tm), Tm_err, float(a), float(np.sqrt(cov[0, 0]) * factor), float(dH), dH_err, T.tolist(),
                    birge)


def unsupported(points: list[dict], crossing: Crossing | None, target_error: float) -> str | None:
    """Why this T_m is not supported by the data (a sentence), or None when it is: at least 3 temperatures in the
    fit, delta_mu falling with T beyond 3 of its errors, points below and above T_m, T_m inside their range, and
    its error at most `target_error`."""
    if crossing is None or len(crossing.temperatures) < 3:
        return f"{len(points)} usable temperatures: the fit needs 3 or more"
    if not crossing.slope < -3 * crossing.slope_err:
        return (f"delta_mu does not fall with T beyond its errors (slope {crossing.slope:.3g} +- "
                f"{crossing.slope_err:.2g} per K): longer runs or a wider temperature range")
    T = np.array(crossing.temperatures)
    if not T.min() < crossing.T_m < T.max():
        side = "above" if crossing.T_m > T.max() else "below"
        return (f"delta_mu does not change sign within {T.min():g}-{T.max():g} (the line crosses zero at "
                f"{crossing.T_m:.0f}, {side} them): widen the range towards it")
    if crossing.T_m_err > target_error:
        return (f"T_m {crossing.T_m:.1f} +- {crossing.T_m_err:.1f} is not known to the target {target_error:g}: "
                "longer runs, more temperatures, or a larger --target-error")
    return None


def next_temperatures(points: list[dict], lower: float, upper: float, count: int, target_error: float,
                      resolution: float = 0.5) -> list[float]:
    """`count` temperatures to run next. Without points: spread over [lower, upper]. With all delta_mu of one
    sign: beyond the end where the zero lies, by the span so far. Otherwise on both sides of the fitted T_m, at
    a distance that shrinks with the target error (no closer than `resolution` to a temperature already run)."""
    taken = [p["temperature"] for p in points]
    if not points:
        return [float(round(t, 1)) for t in np.linspace(lower, upper, max(count, 3))]
    usable = [p for p in points if p.get("used", True)] or points
    signs = {np.sign(p["delta_mu"]) for p in usable}
    span = max(max(taken) - min(taken), 0.1 * upper)
    if len(signs) == 1:  # one side only: step outwards, towards the zero
        if signs == {1.0}:  # the solid is stable everywhere: T_m is above
            start, step = max(taken), span / max(count, 1)
        else:
            start, step = min(taken), -span / max(count, 1)
        return [float(round(start + step * (i + 1), 1)) for i in range(count) if start + step * (i + 1) > 0]
    try:
        centre = fit_crossing(points).T_m
    except (ValueError, np.linalg.LinAlgError):
        centre = float("nan")
    if not np.isfinite(centre):
        centre = 0.5 * (min(taken) + max(taken))
    # closer below T_m than above: the bias holds an interface against melting better than against freezing (below
    # T_m a liquid half can crystallize out of register with the crystal, which Q does not see; Cu at 3 %
    # undercooling did, at 10 % superheating it held)
    chosen: list[float] = []
    distance = max(3 * target_error, 0.02 * centre)
    for i in range(4 * count):
        if len(chosen) == count:
            break
        t = centre + (1 if i % 2 == 0 else -0.5) * distance * (1 + i // 2 * 0.5)
        if t > 0 and min(abs(t - x) for x in taken + chosen) >= max(resolution, 0.2 * distance):
            chosen.append(float(round(t, 1)))
    return chosen
