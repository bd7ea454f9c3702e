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


@pytest.fixture
def datadir() -> Path:
    return DATA


SI_SW = ("--pair-style", "sw", "--pair-coeff", "* * Si.sw Si")
CU_EAM = ("--pair-style", "eam/alloy", "--pair-coeff", "* * Cu_mishin1.eam.alloy Cu")

os.environ.setdefault("OMP_NUM_THREADS", "1")
