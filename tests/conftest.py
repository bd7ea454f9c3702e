"""Shared test helpers: run the real CLI (optionally under the environment's mpiexec) and read its outputs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"
MPIEXEC = str(Path(sys.executable).parent / "mpiexec")


def run_cli(*args, np_: int = 1, cwd=None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "mlipprops", *map(str, args)]
    if np_ > 1:
        cmd = [MPIEXEC, "-n", str(np_), *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def load(path) -> dict:
    with open(path) as fh:
        return json.load(fh)


def C_of(out_dir) -> np.ndarray:
    return np.array(load(Path(out_dir) / "elastic.json")["C"])


def force_evaluations(*logs) -> int:
    """Force evaluations in LAMMPS logs (files, or folders of log*.lammps), as benchmarks/elastic_evaluations.py
    counts them: every minimize reports its own, every `run 0` is one."""
    import re
    n = 0
    for path in logs:
        path = Path(path)
        for log in sorted(path.glob("log*.lammps")) if path.is_dir() else [path]:
            text = log.read_text()
            n += sum(int(m) for m in re.findall(r"Iterations, force evaluations = \d+ (\d+)", text))
            n += len(re.findall(r"^run\s+0\b", text, re.M))
    return n


NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def execute_notebook(name: str, env: dict, monkeypatch) -> tuple[str, int]:
    """Run notebooks/<name> with env set (as the notebooks read their inputs), cwd = notebooks/; return the
    printed text and the number of figures. The stored notebook must carry no outputs."""
    import nbclient  # the [test] extra installs these: a missing one is a failure, not a skip
    import nbformat

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(c.outputs == [] and c.execution_count is None for c in nb.cells if c.cell_type == "code"), \
        "the notebook is stored with outputs: clear them before committing"
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=300,
                            resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    return text, sum("image/png" in o.get("data", {}) for o in outputs)


def execute_notebook_source(cells: list[str]) -> list[list[dict]]:
    """Run code cells in a fresh kernel (cwd = notebooks/); the outputs of each cell."""
    import nbclient
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=300,
                            resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return [list(c.outputs) for c in nb.cells]


@pytest.fixture
def datadir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def built_plugin():
    """The mlipprops/allegro plugin for this environment, built in the test run when missing or stale."""
    from mlipprops import plugin
    if plugin.stale_reason() is not None:
        plugin.build()
    assert plugin.stale_reason() is None
    return plugin.find()


SI_SW = ("--pair-style", "sw", "--pair-coeff", "* * Si.sw Si")
CU_EAM = ("--pair-style", "eam/alloy", "--pair-coeff", "* * Cu_mishin1.eam.alloy Cu")

os.environ.setdefault("OMP_NUM_THREADS", "1")
