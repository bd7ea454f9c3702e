"""Error bars of the 0 K elastic tensor: every part on its own (pure numpy), and their coverage of real scatter in
LAMMPS runs with stress noise of known size injected (a fix external virial, drawn anew at every evaluation)."""
from __future__ import annotations

import numpy as np
import pytest

import mlipprops as mp
from mlipprops import engine as engine_module
from mlipprops import stiffness
from mlipprops.tensors import voigt_strain_tensor


def cubic(c11, c12, c44):
    C = np.zeros((6, 6))
    C[:3, :3] = c12
    np.fill_diagonal(C[:3, :3], c11)
    C[3:, 3:] = np.diag([c44] * 3)
    return C


def _linear(C, d):
    return np.array([C[:, j] * d for j in range(6)]), np.array([-C[:, j] * d for j in range(6)])


def test_stress_variances_reach_C_through_the_central_difference():
    C, d = cubic(150, 75, 55), 0.005
    var = np.full((6, 6), 1e-6)  # (1e-3)^2 in every stress of every cell
    est = stiffness.estimate({d: _linear(C, d)}, np.zeros(6), {"stress_noise": {d: (var, var)}})
    # sqrt(2) sigma / 2d: the Cu case, 1e-3 GPa noise at d = 0.5 %, scatters C by 0.14 GPa
    assert np.allclose(est.parts["stress_noise"], np.sqrt(2e-6) / (2 * d))
    assert np.allclose(est.C_err, est.parts["stress_noise"])  # linear, noiseless data: nothing else
    assert np.allclose(est.C, C)


def test_a_shear_diagonal_gets_a_truncation_error():
    """Cubic shear e4: s4 odd in e4 (A44 = 0 by symmetry), the normal stresses even (A14 = D d/2). One scale of
    nonlinearity e0: D = sqrt(C11 C44)/e0, E4444 = C44/e0^2. The old estimate (2/3 A44 A44/C44) was zero; the
    error E d^2/6 is not, and the estimate finds it; couplings that vanish by symmetry get none."""
    C, d, e0 = cubic(150, 75, 55), 0.005, 0.2
    D, E = np.sqrt(150 * 55) / e0, 55 / e0**2
    plus, minus = _linear(C, d)
    for sign, s in ((1, plus), (-1, minus)):
        s[3, 3] += sign * E * d**3 / 6
        s[3, :3] += D * d**2 / 2
    est = stiffness.estimate({d: (plus, minus)}, np.zeros(6))
    true = abs(est.C[3, 3] - 55)
    assert true == pytest.approx(E * d**2 / 6)
    assert est.parts["truncation"][3, 3] == pytest.approx(true, rel=1e-6)
    assert est.parts["truncation"][3, 4] == 0.0 and est.parts["truncation"][4, 5] == 0.0


def test_relaxation_error_bounds_the_stress_a_remaining_force_stands_for():
    """Harmonic ions: stress change still to come (1/V) L_i.K^-1.g, bounded by sqrt(dC_ii 2 E_left / V) with
    dC = L^T K^-1 L / V and E_left = g.K^-1.g / 2; equal when g lies along the coupling. A soft mode (tiny
    eigenvalue of K) makes a tiny force a large stress error, and the bound follows it."""
    rng = np.random.default_rng(3)
    n, V = 24, 100.0
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    K = Q @ np.diag(np.r_[1e-3, rng.uniform(1, 10, n - 1)]) @ Q.T
    L = rng.normal(size=(n, 6))
    Kinv = np.linalg.inv(K)
    dC = np.diag(L.T @ Kinv @ L) / V
    for g in [rng.normal(size=n) * 1e-4 for _ in range(20)] + [1e-4 * Q[:, 0], K @ Kinv @ L[:, 2] * 1e-6]:
        exact = L.T @ Kinv @ g / V
        bound = stiffness.relaxation_error(dC, 0.5 * g @ Kinv @ g, V)
        assert np.all(np.abs(exact) <= bound * (1 + 1e-12))
    assert abs(exact[2]) == pytest.approx(bound[2])  # the last g lies along strain 3's coupling
    # the soft mode: a force of 1e-4 along it moves the stress as much as a force 1000x larger along a stiff one
    soft = stiffness.relaxation_error(dC, 0.5 * 1e-8 / 1e-3, V)
    assert np.all(soft > 30 * stiffness.relaxation_error(dC, 0.5 * 1e-8 / 10, V))


# -- real LAMMPS: SW silicon with Gaussian stress noise of known size -----------------------------------------
@pytest.fixture
def noisy_stress(monkeypatch):
    """Every engine gets a fix external that adds a Gaussian virial of `sigma` GPa per Voigt component, drawn anew
    at every evaluation (set state["sigma"] = 0 for none); forces are untouched."""
    state = {"sigma": 0.0, "rng": np.random.default_rng(20261207)}
    original = engine_module.Engine.set_potential

    def set_potential(self, potential):
        original(self, potential)

        def noise(_step, nlocal, _tag, _x, f):
            f[:nlocal] = 0.0
            volume = abs(np.linalg.det(self.cell()))
            virial = state["rng"].normal(0.0, state["sigma"], 6) * volume / self.units.gpa_per_energy_density
            self.lmp.fix_external_set_virial_global("test_noise", [float(v) for v in virial])

        self.add_callback("test_noise", 1, noise)
        self.command("fix_modify test_noise virial yes")

    monkeypatch.setattr(engine_module.Engine, "set_potential", set_potential)
    return state


def test_error_bars_cover_injected_stress_noise_and_are_not_inflated(noisy_stress):
    atoms, pot = mp.example("si-sw")
    relaxed = mp.relax(atoms, pot, quiet=True).atoms
    # truth: the d -> 0 tensor, noiseless (two small amplitudes)
    truth = mp.elastic(relaxed, pot, no_relax=True, strains=(0.0005, 0.001), quiet=True)
    assert truth.record["stress_noise"]["per_evaluation"] < 1e-10  # a deterministic potential: no noise found
    sigma, d = 1e-3, 0.005
    noisy_stress["sigma"] = sigma
    runs = [mp.elastic(relaxed, pot, no_relax=True, strains=(d,), quiet=True) for _ in range(24)]
    C, err = np.array([r.C for r in runs]), np.array([r.C_err for r in runs])
    covered = np.abs(C - truth.C) <= 2 * err
    assert covered.mean() >= 0.9, covered.mean(axis=0)
    scatter = C.std(axis=0, ddof=1)
    # the entries the noise reaches (C45 of a cubic crystal is the difference of one cell's stress and its own
    # symmetric image, which cancels its noise: it scatters by 1e-4 GPa, from the reference stress alone)
    measured = scatter > 0.1 * sigma / d
    ratio = err.mean(axis=0)[measured] / scatter[measured]
    assert ratio.max() <= 3, (ratio, scatter)
    # the noise each run estimated from its repeated evaluations, and the scatter of C it implies
    found = np.array([r.record["stress_noise"]["per_evaluation"] for r in runs])
    assert np.median(found) == pytest.approx(sigma, rel=0.3)
    # C11 comes from one strained cell: sqrt(2) sigma / 2d, on average over the runs (each estimates sigma anew)
    assert err.mean(axis=0)[0, 0] == pytest.approx(sigma / np.sqrt(2) / d, rel=0.15)
    assert set(runs[0].record["C_err_parts"]) >= {"stress_noise", "relaxation", "symmetry", "truncation"}


def test_mirrored_start_of_the_minus_cell_saves_its_relaxation(tmp_path):
    """The -d cell starts from the +d cell's ion displacements mirrored: for diamond's e4 (internal strain, linear
    in the strain) that is its minimum to within the force tolerance, so it needs a single evaluation (it took
    three when it started from the +d displacements); counted in the LAMMPS log as well."""
    from conftest import force_evaluations
    atoms, pot = mp.example("si-sw")
    relaxed = mp.relax(atoms, pot, quiet=True).atoms
    out = tmp_path / "si"
    r = mp.elastic(relaxed, pot, no_relax=True, strains=(0.005,), out=str(out), quiet=True)
    cells = r.record["strained_cells"]["evaluations"]
    assert cells["e4+0.005"] >= 2 and cells["e4-0.005"] == 1 and r.record["unconverged_cells"] == []
    # 1 for the reference, NOISE_REPEATS more, then the four cells (e1: forces vanish by symmetry)
    assert force_evaluations(out) == 3 + sum(cells.values())


def test_an_unconverged_strained_cell_is_named_with_its_residual(tmp_path, capsys):
    """A force tolerance below what float64 SW resolves: the ions of a cell that must relax (e4) cannot meet it;
    the run warns with the cell and its residual force, and the record lists it."""
    atoms, pot = mp.example("si-sw")
    relaxed = mp.relax(atoms, pot, quiet=True).atoms
    r = mp.elastic(relaxed, pot, no_relax=True, strains=(0.005,), force_tol=1e-18, quiet=True)
    names = [c["cell"] for c in r.record["unconverged_cells"]]
    assert "e4+0.005" in names and all(c["force_norm"] > 1e-18 for c in r.record["unconverged_cells"])
    err = capsys.readouterr().err
    assert "strained cell e4+0.005 did not relax" in err and "2-norm" in err


def test_a_bad_born_delta_is_named_as_itself():
    from mlipprops.errors import InputError
    atoms, pot = mp.example("si-sw")
    with pytest.raises(InputError, match="born_delta"):
        mp.elastic(atoms, pot, temperature=300, born_delta=-1.0, quiet=True)
    with pytest.raises(InputError, match="timestep"):
        mp.elastic(atoms, pot, temperature=300, timestep=-1.0, quiet=True)


def test_voigt_strain_of_shear_is_engineering():
    # the central difference divides by 2d of an engineering shear: e4 = d is eps_yz = d/2
    assert voigt_strain_tensor(3, 0.01)[1, 2] == pytest.approx(0.005)


# -- at temperature ------------------------------------------------------------------------------------------
def test_a_mean_cell_is_given_its_crystal_symmetry():
    """An MD-averaged cubic cell comes out slightly tetragonal (the statistical error of its shape); averaging its
    metric over the cubic lattice rotations makes it cubic again, keeping the volume to second order."""
    from ase.build import bulk

    from mlipprops.structure import lammps_cell
    from mlipprops.symmetry import lattice_rotations, symmetrize_cell
    cu = bulk("Cu", "fcc", a=3.615, cubic=True)
    rotations = lattice_rotations(cu.cell[:], cu.positions, cu.numbers)
    assert len(rotations) == 48
    noisy = lammps_cell(cu.cell[:] @ (np.eye(3) + np.diag([2e-3, -1e-3, 0.5e-3])) + 1e-4 * np.tri(3, k=-1))
    fixed = symmetrize_cell(noisy, rotations)
    lengths = np.linalg.norm(fixed, axis=1)
    assert np.allclose(lengths, lengths[0], rtol=1e-12) and np.allclose(fixed, np.diag(lengths), atol=1e-12)
    assert abs(np.linalg.det(fixed) / np.linalg.det(noisy) - 1) < 1e-5


def test_one_jackknife_over_both_terms_sees_their_correlation():
    """Two series sampled at different times whose fluctuations cancel in the estimator (b - x with b a
    subsample of x): errors added in quadrature would say sqrt(2) of each; the joint jackknife says zero."""
    from mlipprops import fluctuation as fl
    rng = np.random.default_rng(5)
    t = np.arange(2000.0)
    x = rng.normal(size=2000)
    b_times, b = t[::10], x[::10]
    value, err = fl.jackknife_in_time(lambda bb, xx: bb.mean() - xx[::10].mean(), [(b_times, b), (t, x)])
    assert value == pytest.approx(0.0, abs=1e-12) and err == pytest.approx(0.0, abs=1e-12)
    _, independent = fl.jackknife_in_time(lambda bb, xx: bb.mean() + xx.mean(), [(b_times, b), (t, x)])
    assert independent > 0.02


def test_born_at_300K_runs_in_a_symmetric_cell_and_equivalent_components_agree(tmp_path):
    """Cu (108 atoms) at 300 K: the NVT cell is the NPT mean cell given its cubic symmetry (a = b = c, right
    angles: before, it kept the mean's statistical shape error, up to 2e-3, and C44, C55, C66 came out up to 5
    error bars apart), and the symmetry-equivalent components agree within their errors."""
    atoms, pot = mp.example("cu-eam")
    r = mp.elastic(atoms.repeat((3, 3, 3)), pot, temperature=300.0, run_steps=12000, equil_steps=4000, seed=3,
                   quiet=True).to_dict()
    a, b, c, alpha, beta, gamma = r["mean_cell_at_T"]["lattice"]
    assert a == pytest.approx(b, rel=1e-12) and a == pytest.approx(c, rel=1e-12)
    assert [alpha, beta, gamma] == pytest.approx([90.0] * 3, abs=1e-9)
    assert r["md"]["npt"]["symmetrized"]["operations"] == 48 and r["md"]["npt"]["symmetrized"]["strain_removed"] > 0
    C, err = np.array(r["C"]), np.array(r["C_err"])
    for group in ([(0, 0), (1, 1), (2, 2)], [(0, 1), (0, 2), (1, 2)], [(3, 3), (4, 4), (5, 5)]):
        for (i, j), (k, l) in [(group[0], group[1]), (group[0], group[2]), (group[1], group[2])]:
            assert abs(C[i, j] - C[k, l]) < 2.5 * np.hypot(err[i, j], err[k, l]), (i, j, k, l)
