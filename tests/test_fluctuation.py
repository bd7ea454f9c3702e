"""Finite-temperature elastic constants from fluctuations: formulas against models whose answer is known exactly,
error bars against the true spread of repeated independent draws. Seeded, pure numpy, a few seconds in all."""
import numpy as np
import pytest
from scipy.signal import lfilter
from scipy.spatial.transform import Rotation

from mlipprops import fluctuation as fl
from mlipprops import tensors

V, KT = 1000.0, 0.025  # A^3 and eV (~290 K): C in eV/A^3, strains ~ 1e-2 as in a small MD cell


def cubic(c11, c12, c44):
    C = np.full((3, 3), c12) + np.eye(3) * (c11 - c12)
    return np.block([[C, np.zeros((3, 3))], [np.zeros((3, 3)), np.eye(3) * c44]])


def monoclinic():
    """Unique axis y: nonzero 11 12 13 15 22 23 25 33 35 44 46 55 66 (eV/A^3), positive definite."""
    C = cubic(1.1, 0.6, 0.45)
    C[0, 0], C[1, 1], C[2, 2], C[3, 3], C[4, 4], C[5, 5] = 1.3, 1.1, 0.9, 0.35, 0.45, 0.5
    for (i, j), v in {(0, 4): 0.08, (1, 4): -0.05, (2, 4): 0.1, (3, 5): 0.06, (0, 2): 0.5}.items():
        C[i, j] = C[j, i] = v
    assert np.all(np.linalg.eigvalsh(C) > 0)
    return C


def ar1(phi, n, rng, shape=()):
    """Stationary AR(1) x_t = phi x_{t-1} + N(0,1): C(t) = phi^t, g = (1+phi)/(1-phi), Var = 1/(1-phi^2)."""
    noise = rng.normal(size=(n, *shape))
    noise[0] /= np.sqrt(1.0 - phi**2)  # start in the stationary distribution
    return lfilter([1.0], [1.0, -phi], noise, axis=0)


# ----------------------------------------------------------------------------------------------- correlation
@pytest.mark.parametrize("phi", [0.0, 0.5, 0.8, 0.9])
def test_statistical_inefficiency_of_ar1(phi):
    g_true = (1 + phi) / (1 - phi)
    g = fl.statistical_inefficiency(ar1(phi, 50_000, np.random.default_rng(7)))
    assert g >= 1.0
    assert g == pytest.approx(g_true, rel=0.15)


def test_statistical_inefficiency_edge_cases_and_columns():
    assert fl.statistical_inefficiency(np.ones(100)) == 1.0
    rng = np.random.default_rng(3)
    x = np.column_stack([rng.normal(size=20_000), ar1(0.8, 20_000, rng)])
    # the most correlated column decides, so its error bar is not underestimated
    assert fl.statistical_inefficiency(x) == pytest.approx(fl.statistical_inefficiency(x[:, 1]))
    assert fl.statistical_inefficiency(x) == pytest.approx(9.0, rel=0.2)


def test_detect_equilibration_skips_transient():
    n, tau = 20_000, 300.0
    rng = np.random.default_rng(11)
    noise = ar1(0.9, n, rng)                             # sd 2.3, g = 19
    transient = 20.0 * np.exp(-np.arange(n) / tau)
    t0, g, n_eff = fl.detect_equilibration(noise + transient)
    # after the transient has decayed to ~ the noise level, and no later than necessary
    assert 2 * tau <= t0 <= 10 * tau
    assert n_eff == pytest.approx((n - t0) / g)
    assert g == pytest.approx(19.0, rel=0.25)            # the transient no longer inflates g
    # what is left of the transient biases the mean by less than its statistical error
    sem = np.sqrt(g / (n - t0)) * noise.std()
    assert transient[t0:].mean() < sem
    # keeping the transient would have been worse: the full series has fewer effective samples
    assert (n / fl.statistical_inefficiency(noise + transient)) < n_eff
    # a stationary series loses (almost) nothing
    t0_stat, _, _ = fl.detect_equilibration(ar1(0.9, n, np.random.default_rng(12)))
    assert t0_stat <= 0.05 * n


# ----------------------------------------------------------------------------------------------- strains
def test_lagrangian_strain_hand_values():
    ref = np.array([[3.0, 0.0, 0.0], [0.4, 2.8, 0.0], [0.3, -0.2, 3.3]])  # triclinic, rows = vectors
    g = 0.03
    # simple shear x += g y: F = [[1,g,0],[0,1,0],[0,0,1]]; F^T F - I = [[0,g,0],[g,g^2,0],[0,0,0]]
    F = np.array([[1.0, g, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    e = fl.lagrangian_strain(ref @ F.T, ref)
    assert np.allclose(e, [0.0, g**2 / 2, 0.0, 0.0, 0.0, g], atol=1e-12, rtol=0)  # Voigt xy = 2 E_xy = g
    # uniaxial stretch 1.1: E_xx = (1.21 - 1)/2
    e = fl.lagrangian_strain(ref @ np.diag([1.1, 1.0, 1.0]), ref)
    assert np.allclose(e, [0.105, 0, 0, 0, 0, 0], atol=1e-12, rtol=0)


def test_lagrangian_strain_small_symmetric_strain():
    rng = np.random.default_rng(2)
    ref = np.array([[3.6, 0.0, 0.0], [1.8, 3.1, 0.0], [1.8, 1.0, 2.9]])
    for scale in (1e-2, 1e-4):
        A = rng.normal(size=(3, 3)) * scale
        eps = 0.5 * (A + A.T)
        e = fl.lagrangian_strain(ref @ (np.eye(3) + eps).T, ref)
        exact = eps + 0.5 * eps @ eps                     # E = 1/2((I+eps)^T (I+eps) - I), eps symmetric
        exact_voigt = [exact[0, 0], exact[1, 1], exact[2, 2], 2 * exact[1, 2], 2 * exact[0, 2], 2 * exact[0, 1]]
        assert np.allclose(e, exact_voigt, atol=1e-12, rtol=0)
        # to first order it is the engineering small strain of mlipprops.tensors
        small = np.array([eps[0, 0], eps[1, 1], eps[2, 2], 2 * eps[1, 2], 2 * eps[0, 2], 2 * eps[0, 1]])
        assert np.max(np.abs(e - small)) <= 2 * np.max(np.abs(eps)) ** 2


def test_lagrangian_strain_rotation_invariant_and_lammps_cells():
    rng = np.random.default_rng(4)
    ref = np.array([[3.6, 0.1, -0.2], [1.8, 3.1, 0.3], [1.7, 1.0, 2.9]])
    cells = ref[None] @ (np.eye(3) + 0.02 * rng.normal(size=(50, 3, 3))).transpose(0, 2, 1)
    e = fl.lagrangian_strain(cells, ref)
    assert e.shape == (50, 6)
    Q = Rotation.random(random_state=5).as_matrix()
    assert np.allclose(fl.lagrangian_strain(cells @ Q.T, ref), e, atol=1e-13)
    # LAMMPS stores a rotated, triangular copy of each cell (a along x, b in xy): same strain
    lammps = []
    for h in cells:
        q, r = np.linalg.qr(h.T)
        d = np.diag(np.sign(np.diag(r)))
        lammps.append((d @ r).T)                           # h = (d r)^T (q d)^T: rows of a lower-triangular matrix
    lammps = np.array(lammps)
    assert np.allclose(np.triu(lammps, 1), 0.0)
    assert np.allclose(fl.lagrangian_strain(lammps, ref), e, atol=1e-13)
    assert np.allclose(fl.lagrangian_strain(cells[3], ref), e[3])  # a single cell gives a 6-vector


def test_strain_fluctuation_recovers_C_with_honest_error_bars():
    C_true = monoclinic()
    cov = KT / V * np.linalg.inv(C_true)
    n, nblocks, repeats = 4000, 20, 100
    rng = np.random.default_rng(20)

    def stiffness(e):
        return np.linalg.inv(fl.strain_fluctuation_compliance(e, V, KT))

    estimates, errors = [], []
    for _ in range(repeats):
        e = rng.multivariate_normal(np.zeros(6), cov, size=n)
        C, err = fl.jackknife(stiffness, e, nblocks=nblocks)
        estimates.append(C)
        errors.append(err)
    estimates, errors = np.array(estimates), np.array(errors)
    iu = np.triu_indices(6)
    # one run: every constant (zeros of the monoclinic pattern included) within 4 jackknife sigma
    assert np.all(np.abs(estimates[0] - C_true)[iu] < 4 * errors[0][iu])
    # the jackknife error is the true run-to-run spread, within the precision of 100 repeats
    ratio = errors.mean(axis=0)[iu] / estimates.std(axis=0, ddof=1)[iu]
    assert np.all((ratio > 0.75) & (ratio < 1.33)), ratio
    # and the mean over repeats is unbiased at the level of its own error (kT/V scaling, no factors of 2 or 4)
    pull = (estimates.mean(axis=0) - C_true)[iu] / (estimates.std(axis=0, ddof=1)[iu] / np.sqrt(repeats))
    assert np.all(np.abs(pull) < 4), pull
    # the compliance itself, with the engineering-shear convention of mlipprops.tensors
    e = rng.multivariate_normal(np.zeros(6), cov, size=200_000)
    S = fl.strain_fluctuation_compliance(e, V, KT)
    assert np.allclose(S, tensors.compliance(C_true), atol=0.02 * np.abs(tensors.compliance(C_true)).max())


# ----------------------------------------------------------------------------------------------- stresses
def harmonic_model(rng, m=12):
    """U(e, x) = V/2 e.A.e + e.(Bm x) + 1/2 x.K.x: affine stiffness A coupled to m internal coordinates x
    (the harmonic crystal with non-affine relaxation). Exact free energy: the Gaussian integral over x gives
    A(e) = V/2 e.(A - Bm K^-1 Bm^T / V).e + const, so C = A - Bm K^-1 Bm^T / V, the relaxed-ion stiffness,
    at every temperature. Born matrix (1/V) d2U/de2 = A; stress (1/V) dU/de at e = 0 is Bm x / V, x ~ N(0, kT K^-1).
    """
    A = cubic(1.2, 0.5, 0.6)
    K = np.diag(rng.uniform(1.0, 3.0, m))
    Bm = rng.normal(size=(6, m)) * 5.0
    relax = Bm @ np.linalg.inv(K) @ Bm.T / V
    C_exact = A - relax
    assert np.all(np.linalg.eigvalsh(C_exact) > 0) and np.abs(relax).max() > 0.1  # a large, testable correction
    return A, K, Bm, C_exact


def test_stress_fluctuation_equals_exact_harmonic_free_energy():
    rng = np.random.default_rng(30)
    A, K, Bm, C_exact = harmonic_model(rng)
    x = rng.normal(size=(40_000, K.shape[0])) * np.sqrt(KT / np.diag(K))
    stresses = x @ Bm.T / V

    def stiffness(s):
        return fl.stress_fluctuation_stiffness(A, s, V, KT, natoms=0)

    C, err = fl.jackknife(stiffness, stresses, nblocks=20)
    assert np.all(np.abs(C - C_exact) < 4 * err + 1e-12)
    # the test can tell the sign: with + instead of - the error would be ~2 x relax, far beyond the error bars
    assert np.max(np.abs((A - C_exact) / np.maximum(err, 1e-12))) > 50
    # (T, 6, 6) Born samples are averaged; natoms adds exactly N kT/V diag(2,2,2,1,1,1)
    born_samples = np.repeat(A[None], 5, axis=0) + rng.normal(size=(5, 6, 6)) * 1e-3
    born_samples -= born_samples.mean(axis=0) - A
    C_kin = fl.stress_fluctuation_stiffness(born_samples, stresses, V, KT, natoms=500)
    assert np.allclose(C_kin - C, 500 * KT / V * np.diag([2, 2, 2, 1, 1, 1]), atol=1e-12)


def test_ideal_gas_kinetic_term_and_isotropic_limit():
    """Ideal gas: U = 0, so C is the kinetic term alone. Its stress-strain coefficients must give the isothermal
    bulk modulus of an ideal gas, K_T = P = N kT/V, and zero shear modulus."""
    n_atoms = 400
    P = n_atoms * KT / V
    C = fl.stress_fluctuation_stiffness(np.zeros((6, 6)), np.zeros((10, 6)), V, KT, natoms=n_atoms)
    assert np.allclose(C, P * np.diag([2, 2, 2, 1, 1, 1]))
    B = tensors.stress_strain_coefficients(C, -P * np.array([1, 1, 1, 0, 0, 0.0]))
    assert np.allclose(B, np.block([[np.full((3, 3), P), np.zeros((3, 3))], [np.zeros((3, 6))]]), atol=1e-15)
    assert (B[0, 0] + 2 * B[0, 1]) / 3 == pytest.approx(P)  # Voigt bulk modulus (B is singular: no Reuss)
    assert B[3, 3] == pytest.approx(0.0, abs=1e-15) and (B[0, 0] - B[0, 1]) / 2 == pytest.approx(0.0, abs=1e-15)
    # B = C at zero stress
    assert np.array_equal(tensors.stress_strain_coefficients(monoclinic(), np.zeros(6)), monoclinic())


def test_full_stress_samples_with_kinetic_part():
    """Samples of the total stress -(1/V) sum m v v of an ideal gas fluctuate by exactly N kT/V K (times V/kT);
    with stress_includes_kinetic the result is again the ideal-gas C = N kT/V K."""
    n_atoms, n_samples, mass = 50, 20_000, 2.0
    rng = np.random.default_rng(40)
    v = rng.normal(size=(n_samples, n_atoms, 3)) * np.sqrt(KT / mass)
    mvv = mass * np.einsum("tna,tnb->tab", v, v)
    s = -np.stack([mvv[:, i, j] for i, j in tensors.VOIGT_PAIRS], axis=1) / V
    assert np.allclose(s.mean(axis=0)[:3], -n_atoms * KT / V, rtol=0.01)  # the kinetic pressure

    def stiffness(samples):
        return fl.stress_fluctuation_stiffness(np.zeros((6, 6)), samples, V, KT, n_atoms, stress_includes_kinetic=True)

    C, err = fl.jackknife(stiffness, s, nblocks=20)
    expected = n_atoms * KT / V * np.diag([2, 2, 2, 1, 1, 1])
    assert np.all(np.abs(C - expected) < 4 * err + 1e-12)
    assert err.max() < 0.05 * expected.max()


# ----------------------------------------------------------------------------------------------- error bars
def test_block_mean_error_of_correlated_data():
    phi, n, series = 0.8, 20_000, 200
    g = (1 + phi) / (1 - phi)
    x = ar1(phi, n, np.random.default_rng(50), shape=(series,))  # 200 independent series as columns
    mean, err = fl.block_mean_error(x, nblocks=10)
    assert mean.shape == err.shape == (series,)
    true_spread = mean.std(ddof=1)                                 # spread of the mean over independent runs
    assert err.mean() == pytest.approx(true_spread, rel=0.12)
    naive = x.std(axis=0, ddof=1) / np.sqrt(n)
    assert (err / naive).mean() == pytest.approx(np.sqrt(g), rel=0.12)  # naive error misses sqrt(g) = 3


def test_jackknife_of_the_mean_is_the_block_error():
    x = ar1(0.5, 1000, np.random.default_rng(60), shape=(3,))
    est, err = fl.jackknife(lambda d: d.mean(axis=0), x, nblocks=10)
    mean, berr = fl.block_mean_error(x, nblocks=10)
    assert np.allclose(est, mean) and np.allclose(err, berr)  # equal blocks: the two are identical
    with pytest.raises(ValueError):
        fl.jackknife(np.mean, x[:5], nblocks=10)


def test_convergence_report():
    x = np.arange(100.0)
    report = fl.convergence(lambda d: d.mean(), x)
    assert [r["n_samples"] for r in report] == [25, 50, 75, 100]
    assert [float(r["estimate"]) for r in report] == [12.0, 24.5, 37.0, 49.5]
    report = fl.convergence(lambda d: fl.block_mean_error(d, 5), x, fractions=(0.5, 1.0))
    assert report[1]["fraction"] == 1.0 and "error" in report[1] and float(report[1]["estimate"]) == 49.5
