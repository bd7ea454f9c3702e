"""Elastic constants at finite temperature from MD time series: fluctuation formulas and their statistics. Pure numpy.

Conventions as in mlipprops.tensors: Voigt order xx yy zz yz xz xy, ENGINEERING shear strains (gamma_yz = 2 eps_yz),
stress tensile-positive, stress = C @ strain. Cells are (3, 3) with ROWS = lattice vectors (ASE; LAMMPS' triangular
cells included). Any consistent units: C comes out in energy/volume of the inputs.

Two routes, and what each one measures:
  strain fluctuations (NPT, flexible cell)  S = <V>/kT Cov(e)                          Parrinello & Rahman 1982
  stress fluctuations (NVT, fixed cell)     C = <B> - V/kT Cov(s) + N kT/V diag(2,2,2,1,1,1)   Ray & Rahman 1984
At zero stress both give the same isothermal C. Under a mean stress sigma they differ: the stress route gives the
second derivatives of the free energy with respect to Lagrangian strain (Brugger constants, C below), while the strain
route at hydrostatic pressure samples exp(-(A + PV)/kT) and gives the stress-strain coefficients
  B_ijkl = C_ijkl + 1/2 (s_ik d_jl + s_jk d_il + s_il d_jk + s_jl d_ik - 2 s_ij d_kl)   (Wallace, Thermodynamics
of Crystals, 1972), which tensors.stress_strain_coefficients converts to. Under hydrostatic pressure these B are what
+-deformation Cauchy-stress differences measure and what the Born stability criteria under load use.

Statistics: MD samples are correlated. statistical_inefficiency / detect_equilibration follow Chodera, JCTC 12, 1799
(2016); block_mean_error and jackknife work on contiguous blocks, which stay valid as long as a block is much longer
than the correlation time. jackknife is for non-linear estimators such as C = inv(S), whose block means are biased.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from mlipprops.tensors import VOIGT_PAIRS

# Voigt (engineering shear) representation of d_ik d_jl + d_il d_jk: 2 on normal, 1 on shear diagonal, 0 elsewhere.
KINETIC_VOIGT = np.diag([2.0, 2.0, 2.0, 1.0, 1.0, 1.0])


# ----------------------------------------------------------------------------------------------- correlation
def _normalized_autocorrelation(x: np.ndarray) -> np.ndarray:
    """C(t) = <dx_0 dx_t> / <dx^2> for t = 0..N-1, each lag averaged over its N - t pairs (FFT, O(N log N))."""
    n = len(x)
    dx = x - x.mean()
    size = 1 << int(np.ceil(np.log2(2 * n)))  # zero padding to >= 2N turns the circular correlation into a linear one
    f = np.fft.rfft(dx, size)
    acov = np.fft.irfft(f * np.conj(f), size)[:n] / (n - np.arange(n))
    return acov / acov[0]


def _inefficiency_1d(x: np.ndarray, window: float = 5.0) -> float:
    n = len(x)
    if n < 3 or np.ptp(x) == 0.0:
        return 1.0  # no information on correlation: treat as uncorrelated rather than fail
    c = _normalized_autocorrelation(x)
    # Sokal's automatic window: sum C(t) up to the first M with M >= window * tau(M), tau = g / 2. Summing
    # to the first zero crossing instead fails for an oscillating C(t) (a barostat's volume: C(1) < 0 but
    # C(11) ~ 0.9), and summing all lags adds up noise.
    t = np.arange(1, n)
    partial = 1.0 + 2.0 * np.cumsum((1.0 - t / n) * c[1:])
    ok = np.flatnonzero(t >= window * np.maximum(partial, 1.0) / 2.0)
    g = partial[ok[0]] if ok.size else partial[-1]
    return float(max(g, 1.0))


def statistical_inefficiency(x: np.ndarray) -> float:
    """g = 1 + 2 sum_{t>=1} (1 - t/N) C(t), summed over Sokal's self-consistent window (M >= 5 g/2); g >= 1.

    N / g is the number of effectively independent samples: Var(mean) = g Var(x) / N. For a (T, k) array the
    largest g over the k columns is returned, so that every column's error is covered (conservative).
    """
    x = np.asarray(x, float)
    if x.ndim == 1:
        return _inefficiency_1d(x)
    if x.ndim != 2:
        raise ValueError(f"expected a (T,) or (T, k) array, got shape {x.shape}")
    return max(_inefficiency_1d(col) for col in x.T)


def detect_equilibration(x: np.ndarray, nskip: int = 1, *, max_points: int | None = 100
                         ) -> tuple[int, float, float]:
    """(t0, g, n_eff): the start index that maximizes N_eff = (N - t0) / g(x[t0:]) (Chodera, JCTC 12, 1799 (2016)).

    Discarding a transient both removes its bias and shrinks g (the transient looks like a long correlation), so
    N_eff first rises, then falls as good data are thrown away. t0 is searched on the grid 0, step, 2 step, ... with
    step = max(nskip, N // max_points) so that 1e5 samples cost ~100 FFTs; max_points=None searches every nskip.
    """
    x = np.asarray(x, float)
    n = len(x)
    if n < 4:
        return 0, statistical_inefficiency(x), float(n) / statistical_inefficiency(x)
    step = max(int(nskip), 1)
    if max_points:
        step = max(step, n // max_points)
    best = (0, 1.0, -1.0)
    for t0 in range(0, n - 3, step):  # keep a few samples: g of a 2-point series means nothing
        g = statistical_inefficiency(x[t0:])
        n_eff = (n - t0) / g
        if n_eff > best[2]:
            best = (t0, g, n_eff)
    return best


# ----------------------------------------------------------------------------------------------- strains
def lagrangian_strain(cells: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Voigt engineering Lagrangian strain of each cell relative to reference: (T, 3, 3) -> (T, 6), (3, 3) -> (6,).

    Rows are lattice vectors, so current = reference @ F^T with F the deformation gradient, F^T = inv(ref) @ cell,
    and E = 1/2 (F^T F - I). F^T F = inv(ref) (cell cell^T) inv(ref)^T depends on the cell only through the Gram
    matrix cell @ cell.T, which is unchanged by any rotation cell -> cell @ Q.T: E is rotation invariant, so LAMMPS'
    re-oriented triangular cells and general ones give the same strain.
    """
    cells = np.asarray(cells, float)
    single = cells.ndim == 2
    if single:
        cells = cells[None]
    ref_inv = np.linalg.inv(np.asarray(reference, float))
    ft = ref_inv @ cells                                   # F^T per frame
    E = 0.5 * (ft @ np.swapaxes(ft, -1, -2) - np.eye(3))   # F^T F = (F^T)(F^T)^T
    voigt = np.stack([E[:, i, j] * (1.0 if i == j else 2.0) for i, j in VOIGT_PAIRS], axis=-1)
    return voigt[0] if single else voigt


def strain_fluctuation_compliance(strains: np.ndarray, mean_volume: float, kT: float) -> np.ndarray:
    """S = <V>/kT Cov(e), e engineering Voigt strains (Parrinello & Rahman, J. Chem. Phys. 76, 2662 (1982)).

    Why: at zero applied stress the strain distribution is P(e) ~ exp(-V e.C.e / 2kT), a Gaussian with covariance
    kT/V C^-1. With engineering shear strains the energy is exactly 1/2 e.C.e in Voigt form, so S = C^-1 needs no
    factors of 2 or 4. Units: volume/energy (invert for C in energy/volume). The covariance removes the mean, so
    the O(e^2) offset of strains taken relative to the mean cell does not matter. Under hydrostatic pressure the
    inverse is the stress-strain coefficient matrix B, not the Brugger C (module docstring).
    """
    e = np.asarray(strains, float)
    if e.ndim != 2 or e.shape[1] != 6 or len(e) < 2:
        raise ValueError(f"strains must be (T >= 2, 6), got {e.shape}")
    return float(mean_volume) / float(kT) * np.cov(e, rowvar=False)


# ----------------------------------------------------------------------------------------------- stresses
def stress_fluctuation_stiffness(born: np.ndarray, stresses: np.ndarray, volume: float, kT: float, natoms: int,
                                 *, stress_includes_kinetic: bool = False) -> np.ndarray:
    """C = <B> - V/kT Cov(s) + N kT/V K, K = diag(2,2,2,1,1,1) (Ray & Rahman, J. Chem. Phys. 80, 4423 (1984);
    Clavier et al., Mol. Sim. 43, 1413 (2017); LAMMPS examples/ELASTIC_T/BORN_MATRIX).

    born: (6, 6) mean Born matrix (1/V) d2U/de_i de_j, second derivatives with respect to Lagrangian strain
          (LAMMPS compute born/matrix, energy/volume), or (T, 6, 6) samples, which are averaged.
    stresses: (T, 6) samples of the configurational (virial) stress, tensile positive: s = +(1/V) dU/de
          = -(LAMMPS 'compute pressure NULL virial'), reordered to Voigt xx yy zz yz xz xy.
    stress_includes_kinetic: set when the samples are the full stress (virial + kinetic, i.e. -pxx... of the
          thermo output); see the last paragraph.

    Derivation (why the fluctuation term is subtracted). At fixed cell h = (1 + eta) h0 the Helmholtz free energy is
    A(eta) = -kT ln Z,  Z = Z_p * integral over the cell of exp(-U/kT) d^{3N}q. Write q = h s:
      Z = Z_p * det(h)^N * integral ds exp(-U(h s)/kT),
    Z_p (momenta) does not depend on h. The Brugger constants are C = (1/V) d2A/deta2 at eta = 0. Then
      d2/deta2 [-kT ln integral ds exp(-U/kT)] = <d2U/deta2> - (1/kT) (<dU/deta dU/deta> - <dU/deta><dU/deta>),
    (averages at eta = 0, scaled coordinates s held fixed, i.e. affine derivatives); divided by V this is
    <B> - V/kT Cov(s) with s = (1/V) dU/deta. The minus sign: -kT ln <exp(-dU/kT)> <= <dU> (Jensen), so the
    free-energy curvature is the affine curvature minus the variance of the slope; fluctuations can only soften.
    For a harmonic crystal the fluctuation term is exactly its internal (non-affine) relaxation (see tests).
    The ideal-gas factor -N kT ln det h = -N kT/2 ln det(1 + 2 eta) + const has second derivative
    +N kT (d_ik d_jl + d_il d_jk), which is N kT/V K in Voigt form (first derivative -N kT/V d_ij: the kinetic
    pressure). Engineering Voigt strains give these tensors with no extra factors (d/de_4 = d/deta_23 symmetrized).
    Finite stress: C is the Brugger tensor; tensors.stress_strain_coefficients gives the stress-strain coefficients B.

    Kinetic stress samples: the instantaneous kinetic stress -(1/V) sum m v v is uncorrelated with positions and
    its covariance is (N kT/V^2) kT K, so it would add N kT/V K to V/kT Cov(s); with stress_includes_kinetic the
    kinetic term is doubled to 2 N kT/V K to compensate (exact for canonical velocities, up to O(1/N) from the
    fixed centre-of-mass momentum). Prefer virial-only samples: they have less noise.
    """
    b = np.asarray(born, float)
    if b.ndim == 3:
        b = b.mean(axis=0)
    s = np.asarray(stresses, float)
    if b.shape != (6, 6) or s.ndim != 2 or s.shape[1] != 6 or len(s) < 2:
        raise ValueError(f"born must be (6, 6) or (T, 6, 6) and stresses (T >= 2, 6); got {b.shape}, {s.shape}")
    fluct = float(volume) / float(kT) * np.cov(s, rowvar=False)
    kinetic = (2.0 if stress_includes_kinetic else 1.0) * natoms * float(kT) / float(volume) * KINETIC_VOIGT
    return b - fluct + kinetic


# ----------------------------------------------------------------------------------------------- error bars
def _block_slices(n: int, nblocks: int) -> list[slice]:
    if nblocks < 2 or n < nblocks:
        raise ValueError(f"need 2 <= nblocks <= number of samples, got nblocks={nblocks}, N={n}")
    edges = np.linspace(0, n, nblocks + 1).round().astype(int)  # contiguous, sizes differ by at most one
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


def jackknife(samples_fn: Callable[[np.ndarray], Any], data: np.ndarray, nblocks: int = 10
              ) -> tuple[np.ndarray, np.ndarray]:
    """(samples_fn(data), delete-one-block jackknife standard error), elementwise.

    se^2 = (n-1)/n sum_k (theta_{-k} - mean theta_{-k})^2 over n contiguous blocks left out one at a time. Unlike
    the spread of per-block estimates, this stays correct for non-linear functions such as inv(Cov) when a single
    block is too short for an unbiased estimate. Blocks must be longer than the correlation time.
    """
    data = np.asarray(data)
    slices = _block_slices(len(data), nblocks)
    idx = np.arange(len(data))
    partial = np.array([np.asarray(samples_fn(data[np.delete(idx, sl)]), float) for sl in slices])
    err = np.sqrt((nblocks - 1) / nblocks * np.sum((partial - partial.mean(axis=0)) ** 2, axis=0))
    return np.asarray(samples_fn(data), float), err


def jackknife_in_time(estimator: Callable[..., Any], series: Sequence[tuple[np.ndarray, np.ndarray]],
                      nblocks: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(estimator(*data), delete-one-block jackknife standard error) for several time series sampled at different
    times (each a pair: sample times, data along the first axis), cut into the same `nblocks` contiguous windows of
    time. One estimator of all of them, left out block by block together, carries their correlation: the Born
    term and the stress fluctuations of one run come from the same configurations, and their errors do not simply
    add. Blocks must be longer than the correlation time."""
    times = [np.asarray(t, float) for t, _ in series]
    data = [np.asarray(d) for _, d in series]
    edges = np.linspace(min(t.min() for t in times), max(t.max() for t in times), nblocks + 1)
    edges[-1] = np.inf
    labels = [np.clip(np.searchsorted(edges, t, side="right") - 1, 0, nblocks - 1) for t in times]
    if any(len(np.unique(lab)) < nblocks for lab in labels):
        raise ValueError(f"every series needs samples in each of the {nblocks} blocks of time")
    partial = np.array([np.asarray(estimator(*[d[lab != k] for d, lab in zip(data, labels)]), float)
                        for k in range(nblocks)])
    err = np.sqrt((nblocks - 1) / nblocks * np.sum((partial - partial.mean(axis=0)) ** 2, axis=0))
    return np.asarray(estimator(*data), float), err


def block_mean_error(x: np.ndarray, nblocks: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(mean over the first axis, standard error from the scatter of nblocks contiguous block means).

    Block means of blocks much longer than the correlation time are independent, so std(block means)/sqrt(n)
    includes the factor sqrt(g) that the naive std/sqrt(N) misses.
    """
    x = np.asarray(x, float)
    means = np.array([x[sl].mean(axis=0) for sl in _block_slices(len(x), nblocks)])
    return x.mean(axis=0), means.std(axis=0, ddof=1) / np.sqrt(nblocks)


def convergence(compute_fn: Callable[[np.ndarray], Any], data: np.ndarray,
                fractions: Sequence[float] = (0.25, 0.5, 0.75, 1.0)) -> list[dict]:
    """compute_fn on the first fraction of the data (first axis) for each fraction: a drift of the estimate beyond
    its error bar means the run is too short or not equilibrated. Each dict has 'fraction', 'n_samples' and
    'estimate'; when compute_fn returns an (estimate, error) pair, as jackknife and block_mean_error do, the pair is
    split into 'estimate' and 'error'.
    """
    data = np.asarray(data)
    report = []
    for f in fractions:
        n = max(int(round(f * len(data))), 1)
        result = compute_fn(data[:n])
        entry: dict = {"fraction": float(f), "n_samples": n}
        if isinstance(result, tuple) and len(result) == 2:
            entry["estimate"], entry["error"] = np.asarray(result[0]), np.asarray(result[1])
        else:
            entry["estimate"] = np.asarray(result)
        report.append(entry)
    return report
