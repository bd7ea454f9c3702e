"""The elastic notebook computes through the Python API and prints numbers that agree with the CLI's elastic.json
for the same crystal, potential and settings."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nbclient  # the [test] extra installs these: a missing one is a failure, not a skip
import nbformat

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
FLOAT = r"([-+]?\d+\.\d+(?:[eE][-+]?\d+)?)"


def stream_text(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.outputs if o.output_type == "stream")


def test_elastic_notebook(tmp_path, monkeypatch):
    out = tmp_path / "si"
    subprocess.run([sys.executable, "-m", "mlipprops", "elastic", "--example", "si-sw", "--out", str(out),
                    "--quiet", "--strains", "0.005"], check=True)
    json_path = out / "elastic.json"
    rec = json.loads(json_path.read_text())
    S = np.array(rec["S"])

    nb = nbformat.read(NOTEBOOKS / "elastic.ipynb", as_version=4)
    assert all(c.outputs == [] and c.execution_count is None for c in nb.cells if c.cell_type == "code"), \
        "the notebook is stored with outputs: clear them before committing"
    # Not saved: shows which interpreter the kernel ran on.
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print('KERNEL_PYTHON=' + sys.executable)"))

    monkeypatch.delenv("MLIPPROPS_ELASTIC_DIR", raising=False)  # compute, not read
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=300,
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError if any cell fails

    text = stream_text(nb)
    kernel_python = re.search(r"KERNEL_PYTHON=(.+)", text).group(1).strip()
    assert os.path.realpath(kernel_python) == os.path.realpath(sys.executable)
    assert "computed: Stillinger-Weber Si" in text and "python: mlipprops API" in text
    assert "Born stable: True" in text
    k_vrh = float(re.search(r"K_VRH = " + FLOAT, text).group(1))
    assert k_vrh == pytest.approx(rec["moduli"]["bulk_hill"], abs=1e-3)  # cubic: Voigt = Reuss = Hill

    # E along [100] is 1/S11 for cubic Si (~104 GPa); along [111] 1/E = S11 - 2 (S11 - S12 - S44/2) / 3.
    e100 = float(re.search(r"E\[100\] = " + FLOAT, text).group(1))
    e111 = float(re.search(r"E\[111\] = " + FLOAT, text).group(1))
    assert e100 == pytest.approx(1.0 / S[0, 0], rel=1e-6)
    assert 95.0 < e100 < 110.0  # SW Si: (C11 - C12)(C11 + 2 C12) / (C11 + C12) ~ 100 GPa
    s11, s12, s44 = S[0, 0], S[0, 1], S[3, 3]
    assert e111 == pytest.approx(1.0 / (s11 - 2.0 * (s11 - s12 - 0.5 * s44) / 3.0), rel=1e-6)
    assert e111 > e100  # Si is stiffest along <111>

    figures = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert figures >= 3  # heat map, polar plots, 3D surface
