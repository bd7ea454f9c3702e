"""The L-BFGS minimizer: the pure algorithm on functions with known minima, and the enthalpy of a crystal in LAMMPS
(its gradient against finite differences; its minimum against LAMMPS' own box/relax + CG)."""
import numpy as np
import pytest

import mlipprops as mp
from conftest import force_evaluations
from mlipprops import minimize
from mlipprops.properties.relax import RelaxSettings, relax_in_place
from mlipprops.system import System

GPA = 160.21766208  # GPa per eV/A^3


def quadratic(n=30, condition=100.0, seed=0):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    A = Q @ np.diag(np.geomspace(1.0, condition, n)) @ Q.T
    b = rng.normal(size=n)
    return A, b, np.linalg.solve(A, b)


def test_lbfgs_finds_the_minimum_of_an_ill_conditioned_quadratic():
    A, b, exact = quadratic()
    last = {}

    def f(x):
        last["g"] = A @ x - b
        return 0.5 * x @ A @ x - b @ x, last["g"]

    x, out = minimize.lbfgs(f, np.zeros(len(b)), lambda: np.linalg.norm(last["g"]) < 1e-8,
                            lambda d: np.abs(d).max() / 10.0, noise=1e-14, uphill=1e-12)
    assert out.converged and np.allclose(x, exact, atol=1e-7)
    # steepest descent needs ~condition x ln(1e8) ~ 2000 here, L-BFGS 84 (memory 20)
    assert out.evaluations < 120


def test_lbfgs_recovers_from_steps_that_go_uphill():
    """Rosenbrock's valley: the first steps overshoot (rejected, the trust radius shrinks), then it follows the
    curved valley to (1, 1)."""
    last = {}

    def f(x):
        a, b = x
        last["g"] = np.array([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)])
        return (1 - a) ** 2 + 100 * (b - a * a) ** 2, last["g"]

    x, out = minimize.lbfgs(f, np.array([-1.2, 1.0]), lambda: np.linalg.norm(last["g"]) < 1e-8,
                            lambda d: np.abs(d).max() / 0.5, noise=1e-15, uphill=1e-12)
    assert out.converged and np.allclose(x, [1.0, 1.0], atol=1e-6) and out.evaluations < 300


def test_lbfgs_stops_at_a_noise_floor_instead_of_running_on():
    """Energy and gradient carry noise (a float32 model): below the noise floor no step makes progress, and the
    minimizer stops, unconverged, after `patience` steps instead of spending max_evaluations; the state it returns
    is the one it evaluated last."""
    A, b, exact = quadratic(n=10, condition=10.0)
    rng = np.random.default_rng(1)
    seen = []

    def f(x):
        seen.append(x.copy())
        return 0.5 * x @ A @ x - b @ x + 1e-9 * rng.normal(), A @ x - b + 1e-5 * rng.normal(size=len(x))

    x, out = minimize.lbfgs(f, np.zeros(len(b)), lambda: False, lambda d: np.abs(d).max(), noise=1e-8,
                            uphill=1e-8, patience=20)
    assert not out.converged and out.evaluations < 200
    assert np.allclose(x, exact, atol=1e-3) and np.array_equal(seen[-1], x)


@pytest.fixture
def si_engine(tmp_path):
    atoms, potential = mp.example("si-sw")
    atoms.rattle(0.03, seed=3)
    engines = []

    def open_one(shear=True):
        """Si, strained (sheared too unless shear=False: aniso is for orthogonal cells) and rattled."""
        strained = atoms.copy()
        strained.set_cell(atoms.cell[:] @ np.array([[1.01, 0.004 * shear, 0.0], [0.004 * shear, 0.985, 0.003 * shear],
                                                    [0.0, 0.003 * shear, 1.02]]), scale_atoms=True)
        system = System(strained, potential.with_types_for(strained.get_chemical_symbols(), "si"), "si")
        engines.append(system.open_engine(None, str(tmp_path / f"log{len(engines)}.lammps")))
        return engines[-1]
    yield open_one
    for e in engines:
        e.close()


@pytest.mark.parametrize("mode", ["iso", "aniso", "tri"])
def test_enthalpy_gradient_is_the_derivative_of_the_enthalpy(si_engine, mode):
    engine = si_engine()
    H = minimize.Enthalpy(engine, mode, pressure=3.0)
    rng = np.random.default_rng(2)
    x = H.start + np.concatenate([rng.normal(0, 0.02, 3 * H.natoms), rng.normal(0, 0.01, len(H.start) - 3 * H.natoms)
                                  * H.scale])
    _, g = H(x)
    for k in list(range(0, 3 * H.natoms, 7)) + list(range(3 * H.natoms, len(x))):
        h = 1e-5 * (H.scale if k >= 3 * H.natoms else 1.0)
        step = np.zeros_like(x)
        step[k] = h
        numeric = (H(x + step)[0] - H(x - step)[0]) / (2 * h)
        assert g[k] == pytest.approx(numeric, rel=1e-5, abs=1e-7), k


@pytest.mark.parametrize("mode", ["aniso", "tri"])
def test_lbfgs_relaxation_reaches_the_state_of_box_relax_with_fewer_evaluations(si_engine, mode):
    """Same crystal, same pressure and tolerances: the cell, energy and stress of LAMMPS' box/relax + CG, in fewer
    force evaluations."""
    reached = {}
    for minimizer in ("cg", "lbfgs"):
        engine = si_engine(shear=mode == "tri")
        settings = RelaxSettings(pressure=2.0, relax_mode=mode, stress_tol=1e-4, force_tol=1e-5, minimizer=minimizer)
        outcome = relax_in_place(engine, settings)
        assert outcome.converged, minimizer
        reached[minimizer] = (engine.cell(), outcome, force_evaluations(engine.log_path))
    (cell_cg, cg, n_cg), (cell_lb, lb, n_lb) = reached["cg"], reached["lbfgs"]
    assert np.allclose(cell_lb, cell_cg, atol=2e-5)
    # the enthalpy, stationary at the target pressure (the energy moves with P dV: 2e-5 eV for 2e-5 A)
    enthalpy = {m: o.energy + 2.0 / GPA * abs(np.linalg.det(c)) for m, (c, o, _) in reached.items()}
    assert enthalpy["lbfgs"] == pytest.approx(enthalpy["cg"], abs=1e-7)
    assert np.allclose(lb.stress, cg.stress, atol=2e-4) and np.allclose(lb.stress.diagonal(), -2.0, atol=1e-4)
    assert n_lb < n_cg



def test_a_model_that_breaks_down_stops_the_minimization_with_a_clear_error():
    """NaN passes every energy comparison (a rejected step needs E_new > E + allowed): without a check the minimizer
    would walk on through a broken model for its whole budget."""
    calls = []

    def f(x):
        calls.append(1)
        bad = len(calls) > 3
        return (np.nan if bad else x @ x), (np.full_like(x, np.nan) if bad else 2 * x)

    with pytest.raises(mp.InputError, match="non-finite energy or force after 4 evaluations"):
        minimize.lbfgs(f, np.ones(3), lambda: False, lambda d: np.abs(d).max(), noise=1e-12, uphill=1e-12)
