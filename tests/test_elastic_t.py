"""Elastic constants at temperature through the CLI: the low-T limit, the SW Si 1477 K benchmark (reduced),
the thermalization check of the strain-fluctuation method, MPI task groups, and resuming."""
import numpy as np
import pytest

from conftest import C_of, load, run_cli

pytestmark = pytest.mark.slow

CU = ("--example", "cu-eam", "--supercell", "3", "3", "3", "--quiet")
# 0 K reference of the same potential at small strains (test_elastic.py): 169.92, 122.63, 76.21 GPa
CU_0K = {(0, 0): 169.92, (0, 1): 122.63, (3, 3): 76.21}


@pytest.mark.parametrize("method,np_", [("born", 1), ("deformation", 2)])
def test_low_temperature_limit_is_the_0K_tensor(tmp_path, method, np_):
    run_cli("elastic", *CU, "--temperature", "10", "--method", method, "--run-steps", "4000", "--equil-steps",
            "2000", "--md-strain", "0.005", "--out", tmp_path / method, np_=np_)
    r = load(tmp_path / method / "elastic.json")
    C = np.array(r["C"])
    for (i, j), ref in CU_0K.items():
        assert C[i, j] == pytest.approx(ref, rel=0.02)
    assert r["temperature"] == 10 and r["method"] == f"{method}_finite_T" and r["units"] == "GPa"
    assert r["provenance"]["task_groups"] == np_
    for key in ("C_err", "S", "moduli", "born_stable", "run_lengths", "md", "mean_cell_at_T"):
        assert key in r


def test_silicon_1477K_reduced(tmp_path):
    """Kluge, Ray & Rahman's benchmark as in LAMMPS examples/ELASTIC_T/BORN_MATRIX/Silicon (216 atoms, NVT at
    a = 5.457): C11 133.2, C12 73.9, C44 46.0 GPa. Reduced run: the cubic pattern and a loose range."""
    run_cli("elastic", "--example", "si-sw", "--supercell", "3", "3", "3", "--temperature", "1477",
            "--timestep", "0.000766", "--run-steps", "20000", "--equil-steps", "5000", "--quiet",
            "--out", tmp_path / "si")
    r = load(tmp_path / "si" / "elastic.json")
    C, err = np.array(r["C"]), np.array(r["C_err"])
    assert 125 < np.mean(np.diag(C)[:3]) < 141 and 68 < np.mean([C[0, 1], C[0, 2], C[1, 2]]) < 80
    assert 38 < np.mean(np.diag(C)[3:]) < 54
    off = [(i, j) for i in range(6) for j in range(6) if (i < 3) != (j < 3) or (i >= 3 and j >= 3 and i != j)]
    assert all(abs(C[i, j]) < 4 * err[i, j] + 1.0 for i, j in off)  # zero within the reported error
    assert r["mean_cell_at_T"]["lattice"][0] / 3 == pytest.approx(5.457, abs=0.02)  # thermal expansion
    assert r["born_stable"] and len(r["convergence"]) == 4


def test_unthermalized_strain_fluctuations_are_flagged(tmp_path):
    proc = run_cli("elastic", *CU, "--temperature", "10", "--method", "fluctuation", "--run-steps", "10000",
                   "--equil-steps", "1000", "--out", tmp_path / "f")
    assert "did not thermalize" in proc.stderr
    assert load(tmp_path / "f" / "elastic.json")["md"]["thermalized"] is False


def test_interrupted_run_resumes_from_the_last_stage(tmp_path):
    args = ("elastic", *CU, "--temperature", "300", "--run-steps", "2000", "--equil-steps", "1000",
            "--out", tmp_path / "r")
    run_cli(*args)
    C1 = C_of(tmp_path / "r")
    stages = tmp_path / "r" / "checkpoints" / "elastic_t"
    assert {p.stem for p in stages.glob("*.json")} == {"npt_equilibration", "npt", "nvt_equilibration", "nvt"}
    (stages / "nvt.json").unlink()  # as if killed during the last stage
    before = {p: p.stat().st_mtime_ns for p in stages.glob("*.json")}
    run_cli(*args)
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())  # finished stages not recomputed
    assert (stages / "nvt.json").is_file()
    # Langevin noise is drawn per atom in memory order, which a restored state does not keep: the rerun of the
    # last stage is another sample of the same ensemble, equal within the error bars
    err = np.array(load(tmp_path / "r" / "elastic.json")["C_err"])
    assert np.all(np.abs(C_of(tmp_path / "r") - C1) <= 5 * err + 1e-6)


def test_born_and_deformation_agree_under_pressure_in_one_convention(tmp_path):
    """Lennard-Jones fcc at P = 5 (reduced), T = 0.3: born measures the Brugger C, deformation the stress-strain
    coefficients B (B11 = C11 - P, B12 = C12 + P, B44 = C44 - P); both report C at the mean stress, and B."""
    from ase.build import bulk
    bulk("Ar", "fcc", a=1.5417, cubic=True).repeat((3, 3, 3)).write(tmp_path / "lj.extxyz")
    records = {}
    for method in ("born", "deformation"):
        run_cli("elastic", "--structure", tmp_path / "lj.extxyz", "--units", "lj", "--pair-style", "lj/cut 2.5",
                "--pair-coeff", "1 1 1.0 1.0", "--temperature", "0.3", "--pressure", "5", "--method", method,
                "--run-steps", "30000", "--equil-steps", "5000", "--quiet", "--out", tmp_path / method)
        records[method] = load(tmp_path / method / "elastic.json")
    cubic = {"C11": [(0, 0), (1, 1), (2, 2)], "C12": [(0, 1), (0, 2), (1, 2)], "C44": [(3, 3), (4, 4), (5, 5)]}

    def average(r, key):
        M, E = np.array(r[key]), np.array(r["C_err"])
        return {k: (np.mean([M[i, j] for i, j in v]), np.sqrt(np.sum([E[i, j] ** 2 for i, j in v])) / 3)
                for k, v in cubic.items()}
    born, deformation = average(records["born"], "C"), average(records["deformation"], "C")
    for k in cubic:
        assert abs(born[k][0] - deformation[k][0]) < 4 * np.hypot(born[k][1], deformation[k][1]), k
    # and the conversion is what makes them agree: B differs from C by the pressure, many error bars
    B = average(records["deformation"], "B")
    assert B["C44"][0] == pytest.approx(deformation["C44"][0] - 5.0, abs=0.05)
    assert abs(B["C44"][0] - born["C44"][0]) > 6 * np.hypot(born["C44"][1], deformation["C44"][1])
    for r in records.values():
        assert r["convention"] == "Brugger C at the mean stress"
        assert np.allclose(r["mean_stress_GPa"][:3], -5.0, atol=0.05)
