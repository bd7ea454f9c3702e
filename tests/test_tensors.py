"""Pure tensor algebra against known closed forms."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mlipprops import stiffness, tensors


def cubic(c11, c12, c44):
    C = np.full((3, 3), c12) + np.eye(3) * (c11 - c12)
    return np.block([[C, np.zeros((3, 3))], [np.zeros((3, 3)), np.eye(3) * c44]])


def isotropic(K, G):
    return cubic(K + 4 * G / 3, K - 2 * G / 3, G)


def test_voigt_round_trip_and_minor_symmetry():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(6, 6))
    C = A + A.T
    T = tensors.voigt_to_tensor(C)
    assert np.allclose(T, T.transpose(1, 0, 2, 3)) and np.allclose(T, T.transpose(2, 3, 0, 1))
    assert np.allclose(tensors.tensor_to_voigt(T), C)


def test_stress_equals_C_times_engineering_strain():
    C = cubic(150, 75, 55)
    for j in range(6):
        eps = tensors.voigt_strain_tensor(j, 1e-3)
        sigma = np.einsum("ijkl,kl->ij", tensors.voigt_to_tensor(C), eps)
        assert np.allclose(tensors.stress_to_voigt(sigma), C[:, j] * 1e-3)


def test_isotropic_tensor_is_rotation_invariant_and_moduli_exact():
    C = isotropic(100.0, 40.0)
    R = Rotation.random(random_state=3).as_matrix()
    assert np.allclose(tensors.rotate_stiffness(C, R), C)
    m = tensors.moduli(C)
    for key in ("bulk_voigt", "bulk_reuss", "bulk_hill"):
        assert m[key] == pytest.approx(100.0)
    for key in ("shear_voigt", "shear_reuss", "shear_hill"):
        assert m[key] == pytest.approx(40.0)
    assert m["young_hill"] == pytest.approx(9 * 100 * 40 / (300 + 40))
    assert m["poisson_hill"] == pytest.approx((300 - 80) / (2 * 340))
    E = tensors.directional_young(tensors.compliance(C), Rotation.random(5, random_state=4).as_matrix()[:, 0])
    assert np.allclose(E, m["young_hill"])


def test_cubic_rotation_45_degrees_about_z():
    """Known result: rotating a cubic crystal by 45 deg about z gives C11' = (C11+C12)/2 + C44, C66' = (C11-C12)/2."""
    c11, c12, c44 = 151.4, 76.4, 56.4
    R = Rotation.from_euler("z", 45, degrees=True).as_matrix()
    Cr = tensors.rotate_stiffness(cubic(c11, c12, c44), R)
    assert Cr[0, 0] == pytest.approx((c11 + c12) / 2 + c44)
    assert Cr[0, 1] == pytest.approx((c11 + c12) / 2 - c44)
    assert Cr[5, 5] == pytest.approx((c11 - c12) / 2)
    assert Cr[2, 2] == pytest.approx(c11) and Cr[3, 3] == pytest.approx(c44)
    back = tensors.rotate_stiffness(Cr, R.T)
    assert np.allclose(back, cubic(c11, c12, c44))
    # an improper rotation (inversion) changes nothing for a rank-4 tensor
    assert np.allclose(tensors.rotate_stiffness(Cr, -np.eye(3)), Cr)


def test_cubic_reuss_and_young_closed_forms():
    c11, c12, c44 = 169.9, 122.6, 76.2
    C = cubic(c11, c12, c44)
    m = tensors.moduli(C)
    assert m["bulk_reuss"] == pytest.approx((c11 + 2 * c12) / 3)
    assert m["shear_voigt"] == pytest.approx((c11 - c12 + 3 * c44) / 5)
    assert m["shear_reuss"] == pytest.approx(5 * (c11 - c12) * c44 / (4 * c44 + 3 * (c11 - c12)))
    S = tensors.compliance(C)
    E100 = (c11 - c12) * (c11 + 2 * c12) / (c11 + c12)
    assert tensors.directional_young(S, np.array([1.0, 0, 0]))[0] == pytest.approx(E100)
    E111 = 1.0 / (S[0, 0] - 2 * (S[0, 0] - S[0, 1] - S[3, 3] / 2) / 3)
    assert tensors.directional_young(S, np.array([1.0, 1, 1]))[0] == pytest.approx(E111)


def test_born_stability():
    assert tensors.born_eigenvalues(cubic(150, 75, 55)).min() > 0
    assert tensors.born_eigenvalues(cubic(100, 110, 55)).min() < 0  # C11 < C12: tetragonal shear unstable
    assert tensors.born_eigenvalues(cubic(100, -60, 55)).min() < 0  # C11 + 2 C12 < 0: bulk unstable


def tetragonal(c11, c12, c13, c33, c44, c66):
    C = np.zeros((6, 6))
    C[0, 0] = C[1, 1] = c11
    C[0, 1] = C[1, 0] = c12
    C[0, 2] = C[2, 0] = C[1, 2] = C[2, 1] = c13
    C[2, 2], C[3, 3], C[4, 4], C[5, 5] = c33, c44, c44, c66
    return C


def test_stability_names_the_soft_strain_and_weighs_its_error():
    err = np.full((6, 6), 0.2)
    # urea-like: C11 - C12 = 0.3 GPa, inside 3 error bars of zero -> marginal along e1 - e2
    s = tensors.stability(tetragonal(20.0, 19.7, 25.0, 50.0, 6.0, 1.5), err)
    assert s["verdict"] == "marginal"
    assert s["softest_eigenvalue"] == pytest.approx(0.3)
    assert s["softest_strain_text"] == "0.71 e1 - 0.71 e2"
    # first-order error of the eigenvalue along (1, -1)/sqrt(2): sqrt(4 * (0.5 * 0.2)^2) = 0.2
    assert s["softest_eigenvalue_err"] == pytest.approx(0.2)
    # the same crystal with C11 - C12 = -2 GPa: unstable; with 8 GPa and C66 = 5.5: stable, softest along e6
    assert tensors.stability(tetragonal(20.0, 22.0, 25.0, 50.0, 6.0, 1.5), err)["verdict"] == "unstable"
    stable = tensors.stability(tetragonal(28.0, 20.0, 25.0, 50.0, 6.0, 5.5), err)
    assert stable["verdict"] == "stable" and stable["softest_strain_text"] == "1.00 e6"
    # a positive eigenvalue far outside its error but 20x below the stiffest (~90 here) is still marginal
    soft = tensors.stability(tetragonal(25.0, 20.0, 25.0, 50.0, 6.0, 1.5), err)
    assert soft["verdict"] == "marginal" and soft["softest_strain_text"] == "1.00 e6"
    # the stable crystal with C11 and C12 badly determined (+-10): C11 - C12 = 8 is not the smallest eigenvalue
    # (C66 = 5.5 is) but it is within its error of zero: marginal, and that strain is the one named
    vague = err.copy()
    vague[:2, :2] = 10.0
    s = tensors.stability(tetragonal(28.0, 20.0, 25.0, 50.0, 6.0, 5.5), vague)
    assert s["verdict"] == "marginal" and s["softest_strain_text"] == "0.71 e1 - 0.71 e2"
    assert s["softest_eigenvalue"] == pytest.approx(8.0) and s["softest_eigenvalue_err"] == pytest.approx(10.0)


def test_tetragonal_combinations_reuss_bulk_is_the_hydrostatic_modulus():
    C = tetragonal(20.0, 19.7, 25.0, 50.0, 6.0, 1.5)
    c = tensors.tetragonal_combinations(C)
    S = tensors.compliance(C)
    assert c["bulk_reuss"] == pytest.approx(1.0 / S[:3, :3].sum())  # 1 / (dV/V per unit pressure)
    assert c["bulk_voigt"] == pytest.approx(C[:3, :3].sum() / 9.0)
    assert c["C11+C12"] == pytest.approx(39.7) and c["C11-C12"] == pytest.approx(0.3)
    # C11 - C12 -> 0 makes S blow up, but not the Reuss bulk modulus
    c0 = tensors.tetragonal_combinations(tetragonal(19.85, 19.85, 25.0, 50.0, 6.0, 1.5))
    assert c0["bulk_reuss"] == pytest.approx(c["bulk_reuss"])


def _synthetic_stresses(C, amplitudes, c3=0.0, c4=0.0):
    """sigma_i(e_j = d) = C_ij d + c3 d^2 + c4 d^3: a nonlinear stress-strain law with known C."""
    out = {}
    for d in amplitudes:
        plus = np.array([C[:, j] * d + c3 * d**2 + c4 * d**3 for j in range(6)])
        minus = np.array([-C[:, j] * d + c3 * d**2 - c4 * d**3 for j in range(6)])
        out[d] = (plus, minus)
    return out


def test_stiffness_estimate_exact_for_linear_and_cancels_even_terms():
    C = cubic(150, 75, 55)
    est = stiffness.estimate(_synthetic_stresses(C, [0.005], c3=-500.0), np.zeros(6))
    assert np.allclose(est.C, C)  # central differences cancel the quadratic term
    # the asymmetry part sees the quadratic term: |c3| d
    assert np.allclose(est.parts["asymmetry"], 500.0 * 0.005)


def test_stiffness_amplitude_error_bounds_the_cubic_truncation():
    C = cubic(150, 75, 55)
    c4 = 2.0e4
    est = stiffness.estimate(_synthetic_stresses(C, [0.005, 0.01], c4=c4), np.zeros(6))
    true_error = c4 * 0.005**2
    assert np.allclose(est.C - C, true_error)
    assert np.all(est.C_err >= true_error * 0.999)
    assert np.all(est.C_err <= true_error * 3.001)


def test_stiffness_symmetry_part():
    C = cubic(150, 75, 55)
    Cbad = C.copy()
    Cbad[0, 1] += 2.0
    est = stiffness.estimate(_synthetic_stresses(Cbad, [0.01]), np.zeros(6))
    assert est.parts["symmetry"][0, 1] == pytest.approx(1.0)
    assert est.C[0, 1] == pytest.approx(C[0, 1] + 1.0)


def test_brugger_and_stress_strain_coefficients_are_inverse_and_hydrostatic_exact():
    C = cubic(150, 75, 55) + 3.0 * np.eye(6)
    P = 2.5
    B = tensors.stress_strain_coefficients(C, -P * np.array([1, 1, 1, 0, 0, 0.0]))
    assert B[0, 0] == pytest.approx(C[0, 0] - P) and B[0, 1] == pytest.approx(C[0, 1] + P)
    assert B[3, 3] == pytest.approx(C[3, 3] - P) and np.allclose(B, B.T)
    stress = np.array([1.0, -2.0, 0.5, 0.3, -0.2, 0.1])  # non-hydrostatic: B is not symmetric, C is
    B = tensors.stress_strain_coefficients(C, stress)
    assert not np.allclose(B, B.T) and np.allclose(tensors.brugger_constants(B, stress), C)


def test_stiffness_estimate_removes_the_reference_stress_terms():
    """+-strain stress differences at a stressed reference measure B; the estimate reports C, and only the
    asymmetry that the stress does not explain counts as symmetry error."""
    C = cubic(150, 75, 55)
    s0 = np.array([1.0, -2.0, 0.5, 0.3, -0.2, 0.1])
    B = tensors.stress_strain_coefficients(C, s0)
    stresses = {0.005: (np.array([s0 + B[:, j] * 0.005 for j in range(6)]),
                        np.array([s0 - B[:, j] * 0.005 for j in range(6)]))}
    est = stiffness.estimate(stresses, s0)
    assert np.allclose(est.C, C) and np.allclose(est.parts["symmetry"], 0.0)


def test_one_amplitude_truncation_estimate_from_the_asymmetry():
    """s(e) = C e + D e^2/2 + E e^3/6 with one scale of nonlinearity (E = D^2/C on the diagonal, E_ij = D_ij D_jj
    / C_jj): the central difference is off by E d^2/6, which the estimate from the asymmetry recovers."""
    C = cubic(150, 75, 55)
    D = -6.0 * np.abs(C)  # a typical third-order constant: several times C
    E = D * np.diag(D)[None, :] / np.diag(C)[None, :]
    d = 0.005
    stresses = {d: (np.array([C[:, j] * d + D[:, j] * d**2 / 2 + E[:, j] * d**3 / 6 for j in range(6)]),
                    np.array([-C[:, j] * d + D[:, j] * d**2 / 2 - E[:, j] * d**3 / 6 for j in range(6)]))}
    est = stiffness.estimate(stresses, np.zeros(6))
    true = np.abs(est.C - C)
    big = true > 1e-6
    assert np.allclose(est.parts["truncation"][big], np.maximum(true, true.T)[big], rtol=1e-3)
    assert np.allclose(est.C_err, est.parts["truncation"])  # no symmetry error: only truncation


SHALLOW = 8.617333262e-5 * stiffness.SHALLOW_SADDLE_TEMPERATURE[False]  # eV per atom


def test_saddle_check_finds_strained_cells_below_the_reference():
    """A minimum: the +-d pair averages above E0 by V C d^2 / 2. A saddle held by symmetry: the strain lets the
    ions slide down, both signs end below E0 (urea's first bundled model: -3.2 meV/atom under e4, ions moved
    0.43 A). A reference stress allows an O(|s0| V d^2) drop; float noise 2e-7 |E0|."""
    E0, natoms, V = -768.0, 16, 150.0 / 160.2  # eV, atoms, volume in eV per GPa
    d = 0.005
    minimum = 0.5 * V * 10.0 * d ** 2  # C_jj = 10 GPa
    cells = [("e1", d, 1, E0 + minimum, 0.01), ("e1", d, -1, E0 + minimum, 0.01),
             ("e4", d, 1, E0 - 0.0515, 0.43), ("e4", d, -1, E0 - 0.0512, 0.42)]
    found = stiffness.saddle_check(E0, cells, V, np.zeros(6), natoms, SHALLOW)
    assert not found["reference_is_minimum"]
    assert [r["below_reference"] for r in found["strains"]] == [False, True]
    low = found["lowest"]
    assert low["strain"] == "e4" and low["max_ion_displacement"] == 0.43
    assert low["energy_change_per_atom"] == pytest.approx(-0.05135 / natoms)
    assert found["shallow"] is False  # 3.2 meV/atom: deeper than k_B x 10 K
    # 1 meV below: a saddle at zero stress; under 50 GPa the second-order stress term (|s0| V d^2) explains it
    small = [("e1", d, 1, E0 - 1e-3, 0.0), ("e1", d, -1, E0 - 1e-3, 0.0)]
    assert not stiffness.saddle_check(E0, small, V, np.zeros(6), natoms, SHALLOW)["reference_is_minimum"]
    assert stiffness.saddle_check(E0, small, V, np.array([-50.0, -50, -50, 0, 0, 0]), natoms,
                                  SHALLOW)["reference_is_minimum"]
    # float32 noise on a large cell: 2e-7 |E0| is not a saddle
    noisy = [("e3", d, 1, E0 - 1e-4, 0.0), ("e3", d, -1, E0 - 1e-4, 0.0)]
    assert stiffness.saddle_check(E0, noisy, V, np.zeros(6), natoms, SHALLOW)["reference_is_minimum"]


def test_a_saddle_makes_the_verdict_unstable_or_marginal_by_its_depth():
    """Deeper than k_B x 10 K per atom: unstable (another structure); shallower (GFN2-xTB urea's ~0.1 meV/atom):
    marginal, with the saddle named either way; a minimum keeps the Born verdict."""
    from ase.build import bulk

    from mlipprops import outputs
    from mlipprops.units import UNITS

    C = cubic(150.0, 75.0, 55.0)
    strains = np.eye(6) * 0.005
    est = stiffness.estimate({0.005: (strains @ C, -strains @ C)}, np.zeros(6))
    verdicts = []
    for drop in (-1e-4, 5e-5, 2e-3):  # eV/atom below the reference (a minimum first: 1e-4 above)
        cells = [("e4", 0.005, sign, -40.0 - 8 * drop, 0.3) for sign in (1, -1)]
        saddle = stiffness.saddle_check(-40.0, cells, 20.0 / 160.2, np.zeros(6), 8, SHALLOW)
        record = outputs.elastic_record({"estimate": est, "energy": -40.0, "reference_stress": np.zeros(6),
                                         "relax": None, "max_force_strained": 1e-5, "saddle": saddle,
                                         "settings": {"amplitudes": (0.005,), "relaxed_ions": True}},
                                        bulk("Si", cubic=True), UNITS["metal"], "x")
        verdicts.append((record["stability"]["verdict"], record["stability"].get("saddle", {}).get("shallow")))
    assert verdicts == [("stable", None), ("marginal", True), ("unstable", False)]


def test_symmetry_plans_the_strains_a_crystal_needs():
    from ase.build import bulk

    from mlipprops import symmetry
    cubic_cell = symmetry.plan(symmetry.point_group(bulk("Si", "diamond", a=5.43, cubic=True)))[0]
    tetragonal = symmetry.plan(symmetry.point_group(bulk("Sn", "bct", a=5.8, c=3.2)))[0]
    mono = bulk("Si", "diamond", a=5.43, cubic=True)
    mono.set_cell(mono.cell[:] + [[0, 0, 0], [0, 0, 0], [0.4, 0, 0]], scale_atoms=True)  # a monoclinic shear
    assert cubic_cell == [0, 3] and tetragonal == [0, 2, 3, 5]
    assert symmetry.plan(symmetry.point_group(mono))[0] == [0, 1, 2, 3, 4, 5]
    # completion: the stresses of the run strains give the others exactly (an isotropic response to check)
    lam, mu = 60.0, 40.0
    def sigma(j, sign):
        e = tensors.voigt_strain_tensor(j, sign * 0.01)
        return tensors.stress_to_voigt(lam * np.trace(e) * np.eye(3) + 2 * mu * e)
    run, derived = symmetry.plan(symmetry.point_group(bulk("Si", "diamond", a=5.43, cubic=True)))
    stresses = {(j, s): sigma(j, s) for j in run for s in (1, -1)}
    symmetry.complete(stresses, derived)
    for j in range(6):
        assert np.allclose(stresses[(j, 1)], sigma(j, 1)) and np.allclose(stresses[(j, -1)], sigma(j, -1))


def test_the_report_flags_averages_of_a_tensor_that_is_not_positive_definite():
    """Reuss (and so Hill, E, nu) inverts C: with a negative eigenvalue the printed averages are no moduli, and the
    text says so; a positive-definite C prints them plainly."""
    from mlipprops import cli, outputs
    for C, flagged in ((cubic(150.0, 75.0, 55.0), False), (cubic(10.0, 16.0, 15.0), True)):  # C11 - C12 < 0
        summary = outputs.stiffness_summary(C)
        record = {"units": "GPa", "C": C, "C_err": np.zeros((6, 6)), "moduli": summary["moduli"],
                  "stability": summary["stability"]}
        assert ("not positive definite" in cli._report_elastic(record)) == flagged


def test_the_deeper_of_the_strain_and_rattle_checks_decides_the_verdict():
    """elastic runs both checks: the strained cells find a saddle whose soft mode a strain couples to, the rattled
    relaxation finds a lower structure elsewhere (the first urea models: a shallow drop under e1, and an
    orthorhombic cell 7 meV/atom lower). The deeper one decides the verdict and is the one reported."""
    from ase.build import bulk

    from mlipprops import cli, outputs
    from mlipprops.units import UNITS

    C = cubic(150.0, 75.0, 55.0)
    strains = np.eye(6) * 0.005
    est = stiffness.estimate({0.005: (strains @ C, -strains @ C)}, np.zeros(6))
    cells = [("e4", 0.005, sign, -40.0 - 8 * 5e-5, 0.1) for sign in (1, -1)]  # 5e-5 eV/atom below: shallow
    saddle = stiffness.saddle_check(-40.0, cells, 20.0 / 160.2, np.zeros(6), 8, SHALLOW)

    def record(minimum):
        return outputs.elastic_record({"estimate": est, "energy": -40.0, "reference_stress": np.zeros(6),
                                       "relax": None, "max_force_strained": 1e-5, "saddle": saddle,
                                       "minimum": minimum, "settings": {"amplitudes": (0.005,), "relaxed_ions": True}},
                                      bulk("Si", cubic=True), UNITS["metal"], "x")
    deep = {"is_minimum": False, "energy_change": -0.056, "energy_change_per_atom": -0.007,
            "max_ion_displacement": 0.24, "cell_change": 0.19, "shallow": False}
    r = record(deep)
    assert r["stability"]["verdict"] == "unstable" and r["stability"]["saddle"]["found_by"] == "rattle"
    assert r["minimum_check"] == deep
    text = cli.stability_text(r["stability"], "GPa")
    assert "UNSTABLE" in text and "Rattled and relaxed again (the cell changed by up to 19 %)" in text
    r = record({**deep, "is_minimum": True, "energy_change": 0.0, "energy_change_per_atom": 0.0, "shallow": None})
    assert r["stability"]["verdict"] == "marginal" and r["stability"]["saddle"]["found_by"] == "strain"
    assert "Under the strain e4 (+-0.5 %)" in cli.stability_text(r["stability"], "GPa")
