"""Solid-liquid coexistence analysis: growth rates, the melting point from them, and where to look next. Pure numpy.

In a two-phase cell at fixed lateral lattice and fixed normal pressure the interface moves towards the liquid
below T_m (the solid grows) and towards the solid above it; near T_m the growth rate is linear in T - T_m
(Wilson-Frenkel). So T_m is the zero of a straight line fitted through the measured rates, and its error comes
from the scatter of those rates, not from a bisection step.

Why the errors are what they are (measured: Cu_mishin1, 768 atoms, 6 seeds, benchmarks/README.md): the solid-like
count does not scatter around a straight line, it wanders (the interface advances by layers, irregularly), so its
slope is only as well known as the slopes of separate stretches of the run agree (block slopes); and trials at
the same temperature differ by more than any single run shows (each prepares its own interface and lattice),
which the fit learns from the scatter of the rates about the line (random effects). Errors from the residuals
alone were 3-5 times too small, and T_m's error with them up to 10 times.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scipy.stats import t as student_t

from mlipprops.fluctuation import statistical_inefficiency

GROWS, MELTS, UNDECIDED = "solid grows", "solid melts", "undecided"


@dataclass
class Growth:
    rate: float        # solid atoms per ps (positive: the solid grows)
    error: float       # standard error of the rate
    verdict: str
    start_fraction: float
    end_fraction: float


def growth_rate(times: np.ndarray, n_solid: np.ndarray, natoms: int, transient: float = 0.2,
                saturated: float = 0.05, sigmas: float = 3.0, blocks: int = 8) -> Growth:
    """Slope of the solid-atom count against time, after the first `transient` of the run and before the cell
    becomes (almost) all solid or all liquid. Its error is the larger of the residuals' (corrected for their
    correlation) and the scatter of the slopes of `blocks` consecutive stretches (/sqrt(blocks)), which sees the
    slow wandering of the interface that the residuals of one straight line hide. The verdict, a statement about
    this trajectory, needs the slope to differ from zero by `sigmas` times the residuals' error, or the cell to
    have become all solid or all liquid."""
    t, n = np.asarray(times, float), np.asarray(n_solid, float)
    frac = n / natoms
    full = np.flatnonzero((frac > 1 - saturated) | (frac < saturated))
    # stop at saturation: afterwards the count no longer measures the interface velocity
    end = t[full[0]] if full.size else t[-1]
    keep = (t >= t[0] + transient * (end - t[0])) & (t <= end)
    if keep.sum() < 4:  # saturated early (far from T_m): the whole way there is the measurement
        keep = t <= max(end, t[min(3, len(t) - 1)])
    tk, nk = t[keep], n[keep]
    A = np.vstack([tk - tk.mean(), np.ones_like(tk)]).T
    coef, *_ = np.linalg.lstsq(A, nk, rcond=None)
    resid = nk - A @ coef
    g = statistical_inefficiency(resid) if len(resid) > 3 else 1.0
    dof = max(len(tk) - 2, 1)
    var_slope = g * (resid @ resid) / dof / np.sum((tk - tk.mean()) ** 2) if len(tk) > 2 else np.inf
    rate, noise = float(coef[0]), float(np.sqrt(var_slope))
    # the verdict is about this trajectory: did the count move beyond its own noise?
    if frac[-1] > 1 - saturated or (rate > sigmas * noise and frac[-1] > frac[0]):
        verdict = GROWS
    elif frac[-1] < saturated or (rate < -sigmas * noise and frac[-1] < frac[0]):
        verdict = MELTS
    else:
        verdict = UNDECIDED
    # the error is about the mean interface velocity at this temperature, which the fit of T_m needs
    err = noise
    stretches = [k for k in np.array_split(np.arange(len(tk)), blocks) if len(k) >= 4]
    if len(stretches) >= 3:
        slopes = [np.polyfit(tk[k], nk[k], 1)[0] for k in stretches]
        err = max(err, float(np.std(slopes, ddof=1) / np.sqrt(len(slopes))))
    return Growth(rate, err, verdict, float(frac[0]), float(frac[-1]))


def volume_drifting(times: np.ndarray, volume: np.ndarray, n_solid: np.ndarray, n_order: int,
                    per_particle: float = 0.2, slack: float = 0.005) -> tuple[bool, float]:
    """(drifting, relative volume change over the second half of a trial). A two-phase cell changes volume as its
    interface moves, by the volume of fusion per particle that changes phase (2-15 % of the volume per particle
    for the crystals seen: `per_particle` = 20 % bounds it); a change beyond that, and beyond `slack` of the
    volume, is a cell still settling (a liquid half still densifying), whose growth rate does not measure the
    interface (urea, 409 K trial: the volume fell 8.7 % while the solid count barely moved)."""
    t, v, n = (np.asarray(a, float) for a in (times, volume, n_solid))
    half = slice(len(t) // 2, None)
    dv = np.polyfit(t[half], v[half], 1)[0] * np.ptp(t[half])
    dn = np.polyfit(t[half], n[half], 1)[0] * np.ptp(t[half])
    explained = abs(dn) * per_particle * v.mean() / n_order
    return bool(abs(dv) > explained + slack * v.mean()), float(dv / v.mean())


def trusted(trials: list[dict]) -> list[dict]:
    """The trials a fit may use: not those whose volume was still drifting."""
    return [t for t in trials if not t.get("volume_drifting", False)]


def bracket(trials: list[dict]) -> tuple[float | None, float | None]:
    """Highest temperature where the solid grew and lowest where it melted (trusted trials only)."""
    grows = [t["temperature"] for t in trusted(trials) if t["verdict"] == GROWS]
    melts = [t["temperature"] for t in trusted(trials) if t["verdict"] == MELTS]
    return (max(grows) if grows else None), (min(melts) if melts else None)


@dataclass
class RateLine:
    """The straight line rate = slope (T - mid) + intercept fitted near the bracket (rate_line)."""
    mid: float
    slope: float
    intercept: float
    cov: np.ndarray           # of (slope, intercept), scaled as described in rate_line
    temperatures: list        # of the trials in the fit
    t_factor: float           # Student's t at 68 % when the scatter was learnt from the residuals, else 1

    def at(self, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The line and its 1-sigma band at temperatures T."""
        X = np.vstack([np.asarray(T, float) - self.mid, np.ones_like(T, float)]).T
        return X @ np.array([self.slope, self.intercept]), np.sqrt(np.einsum("ij,jk,ik->i", X, self.cov, X))


def rate_line(trials: list[dict], window: float | None = None) -> RateLine:
    """A straight-line fit of rate(T) through the trials near the bracket: within `window` of its midpoint
    (default: twice the bracket width, at least 3 % of T), and at least the 4 closest. The bracket only says
    where to look: a single trial can fall on the wrong side by chance (a small cell near T_m may crystallize
    whole), so the fit is not limited to it.

    Random effects: each rate is off by its own error and by a scatter tau common to all trials (method of
    moments, as DerSimonian & Laird, Control. Clin. Trials 7, 177 (1986), for a line), and the covariance is
    scaled by the weighted residuals when they exceed their expectation (Knapp & Hartung, Stat. Med. 22, 2693
    (2003)). When the scatter was learnt from the residuals it is an estimate with n - 2 degrees of freedom:
    errors derived from the line are widened to Student's t (a line through 4 rates knows its scatter poorly)."""
    low, high = bracket(trials)
    if low is None or high is None:
        raise ValueError("no bracket: need a trial where the solid grows and one where it melts")
    mid = 0.5 * (low + high)
    window = window or max(2.0 * abs(high - low), 0.03 * abs(mid))
    data = sorted(trusted(trials), key=lambda t: abs(t["temperature"] - mid))
    near = [t for t in data if abs(t["temperature"] - mid) <= window]
    if len(near) < 4:
        near = data[:max(4, len(near))]
    T = np.array([t["temperature"] for t in near])
    r = np.array([t["rate"] for t in near])
    # a floor on the error keeps one very quiet trial from owning the fit
    e = np.maximum(np.array([t["rate_error"] for t in near]), 1e-3 * (np.abs(r).max() + 1e-12))
    n = len(T)
    X = np.vstack([T - mid, np.ones_like(T)]).T
    if np.ptp(T) == 0 or n < 3:
        return RateLine(mid, 0.0, 0.0, np.full((2, 2), np.inf), T.tolist(), 1.0)
    w = 1.0 / e**2
    cov = np.linalg.inv(X.T @ (X * w[:, None]))
    residual = r - X @ (cov @ (X.T @ (w * r)))
    hat = (w[:, None] * X) @ cov @ (X.T * w)
    tau2 = max(0.0, (np.sum(w * residual**2) - (n - 2)) / (np.sum(w) - np.trace(hat)))
    w = 1.0 / (e**2 + tau2)
    cov = np.linalg.inv(X.T @ (X * w[:, None]))
    slope, intercept = cov @ (X.T @ (w * r))
    spread = np.sum(w * (r - X @ np.array([slope, intercept])) ** 2) / (n - 2)
    learnt = tau2 > 0 or spread > 1.0
    return RateLine(float(mid), float(slope), float(intercept), cov * max(1.0, spread), T.tolist(),
                    float(student_t.ppf(0.8413, n - 2)) if learnt else 1.0)


def melting_point(trials: list[dict], window: float | None = None) -> tuple[float, float]:
    """T_m, the zero of rate_line, and its standard error (delta method, with the line's t factor)."""
    line = rate_line(trials, window)
    low, high = bracket(trials)
    if not line.slope < 0:  # rates must fall with T; a flat or rising fit carries no information on the zero
        return float(line.mid), float(max(abs(high - low), np.ptp(line.temperatures) / 2))
    Tm = line.mid - line.intercept / line.slope
    grad = np.array([line.intercept / line.slope**2, -1.0 / line.slope])  # delta method on Tm = mid - b/a
    return float(Tm), float(np.sqrt(grad @ line.cov @ grad) * line.t_factor)


def unsupported(trials: list[dict], target_error: float) -> str | None:
    """Why the T_m of melting_point is not supported by the trials (a sentence), or None when it is: a bracket,
    every trial where the solid grew below T_m and every one where it melted above it (a line through rates
    placed its zero outside its own evidence, or trials contradict each other), and an error of at most
    `target_error`."""
    low, high = bracket(trials)
    if low is None or high is None:
        return "no bracket: need a trial where the solid grows and one where it melts"
    Tm, err = melting_point(trials)
    grew_above = [t["temperature"] for t in trusted(trials) if t["verdict"] == GROWS and t["temperature"] >= Tm]
    melted_below = [t["temperature"] for t in trusted(trials) if t["verdict"] == MELTS and t["temperature"] <= Tm]
    if grew_above or melted_below:
        which = (f"the solid grew at {max(grew_above):g}" if grew_above else f"melted at {min(melted_below):g}")
        return (f"the fitted T_m {Tm:.1f} +- {err:.1f} contradicts the trials ({which}, on the wrong side of it): "
                "more trials near it or longer --run-steps")
    if not err <= target_error:
        return (f"T_m {Tm:.1f} +- {err:.1f} is not known to the target {target_error:g}: more --max-trials, longer "
                "--run-steps, or a larger --target-error")
    return None


def both_sides(trials: list[dict], Tm: float, count: int = 2) -> bool:
    """At least `count` trials with a verdict on each side of T_m: a fit through one side only extrapolates."""
    below = sum(t["temperature"] < Tm and t["verdict"] != UNDECIDED for t in trials)
    above = sum(t["temperature"] > Tm and t["verdict"] != UNDECIDED for t in trials)
    return below >= count and above >= count


def molecules_lost(trials: list[dict], at_least: int = 4) -> bool:
    """Molecules broke in most of `at_least` or more trials. Their liquid half is then fragments, which do not
    recrystallize at any temperature: more trials cannot bracket T_m (a limit of the potential, not of the search)."""
    checked = [t["molecules_intact"] for t in trials if "molecules_intact" in t]
    return len(checked) >= at_least and sum(not c for c in checked) > len(checked) / 2


def next_temperatures(trials: list[dict], lower: float, upper: float, count: int,
                      resolution: float = 0.5) -> list[float]:
    """`count` temperatures to run next, inside the current bracket (or [lower, upper] where a side is missing):
    first the fitted zero of the growth rate once the bracket exists (kept off its ends, where a fit through one
    side is least reliable), then repeatedly the midpoint of the widest gap between temperatures already run
    or chosen. Nothing closer than `resolution` to a temperature already run."""
    low, high = bracket(trials)
    lo = low if low is not None else lower
    hi = high if high is not None else upper
    lo, hi = min(lo, hi), max(lo, hi)  # a trial that went the "wrong" way by chance can invert the bracket
    taken = sorted({lo, hi} | {t["temperature"] for t in trials if lo < t["temperature"] < hi})
    chosen: list[float] = []
    if low is not None and high is not None and len(trials) >= 3:
        width = hi - lo
        center = float(np.clip(melting_point(trials)[0], lo + 0.2 * width, hi - 0.2 * width))
        if min(abs(center - t) for t in taken) >= resolution:
            chosen.append(center)
    while len(chosen) < count:
        points = sorted(taken + chosen)
        gaps = np.diff(points)
        k = int(np.argmax(gaps))
        if gaps[k] < 2 * resolution:
            break
        chosen.append(0.5 * (points[k] + points[k + 1]))
    return [float(round(p, 1)) for p in chosen]
