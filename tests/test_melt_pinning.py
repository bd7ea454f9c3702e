"""Interface pinning with Cu_mishin1 (published T_m 1315-1327 K, REFERENCES.md) in a reduced cell: delta_mu has
the sign and the size of the latent heat's on both sides of T_m; an unsupported T_m is refused."""
import json

import pytest

from conftest import load, run_cli

pytestmark = pytest.mark.slow

# 3 x 3 x 9 cells (324 atoms), 8 ps of pinning per temperature: seconds each
REDUCED = ("melt", "--example", "cu-eam", "--method", "pinning", "--quiet", "--cell-length", "10",
           "--prepare-steps", "1000", "--run-steps", "4000")


def test_delta_mu_has_the_sign_and_size_of_the_latent_heat_on_both_sides_of_t_m(tmp_path):
    """6 % below and above the published T_m, in the default cell (4 x 4 x 12, 768 atoms; the 324-atom cell
    scattered 3x more than its errors between runs), 24 ps each: delta_mu = dH_m (T_m - T) / T_m with dH_m = 0.13
    eV per atom (copper's fusion enthalpy; this potential's is close) gives about +-8 meV. Signs beyond two errors
    and a size within a factor 2.5 hold the sign, the scale (Q_s / N) and the units of the bias force. (Below T_m
    the liquid half may crystallize out of register, unseen by Q: such a point is left out of the fit, but the
    bias force still says which phase is stable.)"""
    args = [a for a in REDUCED if a not in ("--cell-length", "10")]
    run_cli(*args, "--run-steps", "12000", "--tmin", "1245", "--tmax", "1405", "--max-trials", "3",
            "--target-error", "1000", "--out", tmp_path / "m", check=False)
    kept = tmp_path / "m" / "melt.json"
    r = load(kept if kept.exists() else tmp_path / "m" / "melt_no_bracket.json")
    points = {p["temperature"]: p for p in r["pinning"]["temperatures"]}
    assert set(points) == {1245, 1325, 1405}
    for T, p in points.items():
        assert {"temperature", "delta_mu", "delta_mu_err", "order_parameter", "samples", "crystal_fraction"} <= set(p)
    for T in (1245, 1405):
        expected, p = 0.13 * (1321 - T) / 1321, points[T]
        assert p["delta_mu"] * expected > 0 and abs(p["delta_mu"]) > 2 * p["delta_mu_err"], p
        assert abs(expected) / 2.5 < abs(p["delta_mu"]) < 2.5 * abs(expected), p
    assert r["method"] == "pinning" and r["pinning"]["particle"] == "atom"


@pytest.mark.mpi
def test_a_range_where_delta_mu_keeps_its_sign_is_refused_and_kept(tmp_path):
    """Well below T_m the solid is stable at every temperature: no crossing, exit 1 in one line that says which
    way to look, the temperatures kept in melt_no_bracket.json, no melt.json. On one LAMMPS over 2 ranks (space
    decomposed), where each run's check that fix rhok's |rho_k| equals the Q gathered in Python must hold too."""
    out = tmp_path / "m"
    proc = run_cli(*REDUCED, "--tmin", "900", "--tmax", "1000", "--max-trials", "3", "--groups", "1", "--out", out,
                   np_=2, check=False)
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert "no T_m supported by 3 pinning temperatures" in lines[0] and "melt_no_bracket.json" in lines[0]
    kept = json.loads((out / "melt_no_bracket.json").read_text())
    assert all(p["delta_mu"] > 0 for p in kept["pinning"]["temperatures"])
    assert kept["ramps"] is None  # the temperatures were given: no ramps
    assert not (out / "melt.json").exists()


def test_an_interrupted_temperature_resumes_from_its_last_segment(tmp_path):
    """Each pinning run is saved segment by segment: with its finished record gone (as after a kill in the last
    segment), a rerun rebuilds it from the saved samples without running it again: the same delta_mu."""
    out = tmp_path / "m"
    args = (*REDUCED, "--tmin", "900", "--tmax", "1000", "--max-trials", "3", "--out", out)
    run_cli(*args, check=False)
    folder = out / "checkpoints" / "melt"
    first = {p.name: json.loads(p.read_text())["delta_mu"] for p in folder.glob("pinning_*.json")
             if "partial" not in p.name}
    assert len(first) == 3 and len(list(folder.glob("pinning_*_partial.json"))) == 3
    for name in first:
        (folder / name).unlink()
    run_cli(*args, check=False)
    again = {p.name: json.loads(p.read_text())["delta_mu"] for p in folder.glob("pinning_*.json")
             if "partial" not in p.name}
    assert again == first
    assert "rhok" not in (out / "log.lammps").read_text()  # no pinning MD ran the second time
