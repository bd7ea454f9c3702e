"""The 0 K vs finite-T notebook computes both tensors through the Python API and prints softenings that agree
with the results it computed (saved for the test)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from conftest import execute_notebook

pytestmark = pytest.mark.slow

FLOAT = r"([-+]?\d+\.\d+(?:[eE][-+]?\d+)?)"


# born records convergence without error bars, fluctuation with them, deformation none at all
@pytest.mark.parametrize("method", ["born", "fluctuation", "deformation"])
def test_temperature_notebook(tmp_path, monkeypatch, method):
    env = {"MLIPPROPS_METHOD": method, "MLIPPROPS_RUN_STEPS": 3000, "MLIPPROPS_SAVE_DIR": tmp_path}
    for key in ("MLIPPROPS_ELASTIC_0K_DIR", "MLIPPROPS_ELASTIC_T_DIR"):
        monkeypatch.delenv(key, raising=False)
    text, figures = execute_notebook("elastic_temperature.ipynb", env, monkeypatch)
    json_0k, json_t = tmp_path / "0K" / "elastic.json", tmp_path / "T" / "elastic.json"
    r0, rT = json.loads(json_0k.read_text()), json.loads(json_t.read_text())
    C0, CT = np.array(r0["C"]), np.array(rT["C"])

    env = {"MLIPPROPS_ELASTIC_0K_DIR": json_0k.parent, "MLIPPROPS_ELASTIC_T_DIR": json_t.parent}  # read, not rerun
    text, figures = execute_notebook("elastic_temperature.ipynb", env, monkeypatch)

    assert f"method {rT['method']}" in text
    printed = {m.group(1): float(m.group(2)) for m in re.finditer(r"softening (\S+)\s+= " + FLOAT, text)}
    # cubic Cu: the nine nonzero upper-triangle components, and nothing that is zero by symmetry
    assert set(printed) >= {"C11", "C22", "C33", "C12", "C13", "C23", "C44", "C55", "C66"}
    assert not {"C14", "C15", "C16", "C45", "C46", "C56"} & set(printed)
    for name, (i, j) in {"C11": (0, 0), "C12": (0, 1), "C44": (3, 3), "C66": (5, 5)}.items():
        assert printed[name] == pytest.approx((CT[i, j] - C0[i, j]) / C0[i, j], rel=1e-6, abs=1e-9)
    for name in ("bulk_hill", "shear_hill", "young_hill"):
        m0, mT = r0["moduli"][name], rT["moduli"][name]
        assert printed[name] == pytest.approx((mT - m0) / m0, rel=1e-6, abs=1e-9)
    if method != "fluctuation":  # 3000 steps of strain fluctuations are noise: C11 comes out anywhere
        assert printed["C11"] < 0 and printed["C44"] < 0  # Cu softens between 0 and 300 K

    if rT["convergence"]:
        assert figures == 2  # bar chart and convergence
        last = np.diag(np.array(rT["convergence"][-1]["estimate"]))
        assert f"fraction 1.00: {rT['convergence'][-1]['n_samples']:6d} samples" in text
        assert " ".join(f"{v:8.2f}" for v in last) in text
    else:
        assert figures == 1 and "no convergence data" in text
