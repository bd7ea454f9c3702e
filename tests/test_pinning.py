"""Interface pinning analysis (mlipprops/pinning.py) on crystals and synthetic series with known answers."""
import numpy as np
import pytest
from ase.build import bulk

from mlipprops import pinning


def _fcc_cell(n=(4, 4, 12)):
    atoms = bulk("Cu", "fcc", a=3.615, cubic=True).repeat(n)
    return atoms.positions, np.array(atoms.cell)


def test_the_strongest_in_plane_reflection_of_fcc_is_200_with_the_full_amplitude():
    x, cell = _fcc_cell()
    nx, ny, q = pinning.choose_wavevector(x, cell)
    assert {abs(nx), abs(ny)} == {8, 0}  # (200) of the 4-cell repeat: k = 2 pi 8 / (4 a)
    assert q == pytest.approx(np.sqrt(len(x)), rel=1e-9)  # every atom in phase: |rho_k| = N / sqrt(N)
    # an index that is no reflection of fcc: the atoms cancel
    assert pinning.density_mode(x, pinning.rhok_vector(4, 0, cell)) < 1e-6


def test_a_liquid_like_random_cell_has_a_mode_of_order_one():
    rng = np.random.default_rng(1)
    _, cell = _fcc_cell()
    x = rng.uniform(0, 1, (768, 3)) @ cell
    assert pinning.density_mode(x, pinning.rhok_vector(8, 0, cell)) < 4  # sqrt(768) = 27.7 for the crystal


def test_only_periodic_wave_vectors_are_offered_in_a_tilted_cell():
    cell = np.array([[10.0, 0, 0], [3.0, 9.0, 0], [0, 0, 30.0]])
    for nx, ny in pinning.periodic_indices(cell, 6):
        turns = cell @ pinning.rhok_vector(nx, ny, cell) / (2 * np.pi)
        assert np.allclose(turns, np.round(turns))
    assert (1, 0) not in pinning.periodic_indices(cell, 6)  # k.b = 2 pi 0.3: not periodic
    assert (0, 1) in pinning.periodic_indices(cell, 6)


def _ou(n, mean, sigma, tau, rng):
    """Ornstein-Uhlenbeck samples (correlation time tau samples)."""
    x = np.empty(n)
    x[0] = mean
    c = np.exp(-1 / tau)
    for i in range(1, n):
        x[i] = mean + c * (x[i - 1] - mean) + sigma * np.sqrt(1 - c * c) * rng.normal()
    return x


def test_delta_mu_has_the_sign_of_the_pull_and_an_error_that_covers_correlated_noise():
    rng = np.random.default_rng(7)
    kappa, qs, n, anchor = 0.3, 20.0, 768, 10.0
    truth = kappa * (10.4 - anchor) * qs / n
    inside = 0
    for _ in range(60):
        d = pinning.chemical_potential_difference(_ou(2000, 10.4, 0.6, 20, rng), anchor, kappa, qs, 0.0, n,
                                                  equilibration=0.0)
        inside += abs(d.value - truth) <= d.error
        assert d.value > 0  # pulled above the anchor: the crystal wants to grow
    # one-sigma errors: about 68 % coverage; white-noise errors (g = 1) would cover about 25 %
    assert 0.55 <= inside / 60 <= 0.95
    below = pinning.chemical_potential_difference(_ou(2000, 9.5, 0.6, 20, rng), anchor, kappa, qs, 0.0, n)
    assert below.value < 0


def test_a_drifting_series_is_not_stationary():
    q = np.linspace(8, 12, 2000) + np.random.default_rng(0).normal(0, 0.3, 2000)
    assert not pinning.chemical_potential_difference(q, 10, 0.3, 20, 0, 768).stationary


def _points(temperatures, tm=1320.0, dh=0.13, err=4e-4, seed=3):
    rng = np.random.default_rng(seed)
    return [{"temperature": t, "delta_mu": dh * (tm - t) / tm + rng.normal(0, err), "delta_mu_err": err}
            for t in temperatures]


def test_the_crossing_and_the_latent_heat_come_back_within_their_errors():
    hits_t, hits_h, n = 0, 0, 200
    for seed in range(n):
        c = pinning.fit_crossing(_points([1250, 1290, 1330, 1370], seed=seed))
        hits_t += abs(c.T_m - 1320) <= c.T_m_err
        hits_h += abs(c.latent_heat - 0.13) <= c.latent_heat_err
    assert 0.6 <= hits_t / n <= 0.95 and 0.6 <= hits_h / n <= 0.97


def test_no_crossing_inside_the_data_is_refused():
    below = _points([1100, 1150, 1200])  # all delta_mu > 0: T_m is above the data
    reason = pinning.unsupported(below, pinning.fit_crossing(below), target_error=1000)
    assert reason and "does not change sign" in reason and "above" in reason
    good = _points([1250, 1290, 1330, 1370], err=1e-4)
    crossing = pinning.fit_crossing(good)
    assert pinning.unsupported(good, crossing, target_error=5) is None
    assert "target" in pinning.unsupported(good, crossing, target_error=crossing.T_m_err / 2)
    two = _points([1250, 1370])
    assert "3 or more" in pinning.unsupported(two, pinning.fit_crossing(two), 5)
    flat = [{"temperature": t, "delta_mu": 1e-4 * (-1) ** i, "delta_mu_err": 1e-3} for i, t in
            enumerate([1200, 1300, 1400])]
    assert "does not fall" in pinning.unsupported(flat, pinning.fit_crossing(flat), 1000)


def test_next_temperatures_walk_towards_the_zero_and_then_surround_it():
    assert pinning.next_temperatures([], 1000, 1600, 3, 5) == [1000, 1300, 1600]
    up = pinning.next_temperatures(_points([1000, 1100, 1200]), 1000, 1200, 2, 5)
    assert min(up) > 1200  # all positive: T_m lies above
    around = pinning.next_temperatures(_points([1200, 1300, 1400]), 1200, 1400, 2, 5)
    assert len(around) == 2 and min(around) < 1320 < max(around)
