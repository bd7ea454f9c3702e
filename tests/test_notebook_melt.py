"""The melting-point notebook runs on a real melt.json and its sample files, and prints numbers that agree with
them: T_m, one line per plotted trial read from that trial's samples file, the refitted zero of the growth rate,
the heating ramp's superheating."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import execute_notebook, run_cli

pytestmark = pytest.mark.slow

FLOAT = r"([-+]?\d+\.\d+)"
# a 324-atom cell and short runs (about 30 s): T_m comes out some 50 K high, but the bracket is reliable: the
# first trial is the middle of the range, and a run 100 K or more from T_m always grows or melts outright; the
# ramps go up to 1800 K so that the heating ramp melts (superheating) within 8 ps
SMALL = ("melt", "--example", "cu-eam", "--quiet", "--cell-length", "10", "--run-steps", "3000",
         "--ramp-steps", "6000", "--nph-steps", "0", "--tmin", "1000", "--tmax", "2000", "--max-trials", "4",
         "--target-error", "500")  # a demonstration: T_m is refused when its error exceeds the target


@pytest.fixture(scope="module")
def melt_json(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("melt")
    run_cli(*SMALL, "--out", out)
    return out / "melt.json"


def test_melt_notebook(monkeypatch, melt_json):
    rec = json.loads(melt_json.read_text())
    trials = rec["trials"]
    text, figures = execute_notebook("melt.ipynb", {"MLIPPROPS_MELT_DIR": melt_json.parent}, monkeypatch)

    assert f"read {melt_json.parent}" in text
    m = re.search(r"T_m = " + FLOAT + r" ± " + FLOAT + " K", text)
    assert m, text
    assert float(m.group(1)) == pytest.approx(rec["T_m"], abs=0.051)
    assert float(m.group(2)) == pytest.approx(rec["T_m_err"], abs=0.051)
    assert "NPH two-phase estimate: not run" in text

    # one line per plotted trial, from its own samples file: the fractions at both ends are the record's
    assert re.search(r"plotted (\d+) trials", text).group(1) == str(len(trials))
    lines = {float(g[0]): g[1:] for g in re.findall(
        r"trial " + FLOAT + r" K: (\d+) samples from (\S+), solid fraction " + FLOAT + " -> " + FLOAT, text)}
    assert sorted(lines) == sorted(t["temperature"] for t in trials)
    for t in trials:
        n, name, start, end = lines[t["temperature"]]
        assert name == t["samples_file"]
        data = np.loadtxt(melt_json.parent / name, comments="#", ndmin=2)
        assert int(n) == len(data)
        assert float(start) == pytest.approx(t["start_fraction"], abs=6e-4)
        assert float(end) == pytest.approx(t["end_fraction"], abs=6e-4)

    # the notebook's fit is coexistence.rate_line: its zero is melt.json's T_m
    grows = [t["temperature"] for t in trials if t["verdict"] == "solid grows"]
    melts = [t["temperature"] for t in trials if t["verdict"] == "solid melts"]
    low, high = max(grows), min(melts)
    assert f"bracket: solid grows at {low:.1f}, melts at {high:.1f} K" in text
    z = re.search(r"zero of the fitted line: " + FLOAT + r" ± " + FLOAT, text)
    assert z, text
    zero, zero_err = float(z.group(1)), float(z.group(2))
    assert zero == pytest.approx(rec["T_m"], abs=0.051) and zero_err == pytest.approx(rec["T_m_err"], abs=0.051)

    ramp = rec["heating_ramp"]
    assert ramp["melts_at"] is not None, "the heating ramp should melt by 1800 K: the test does not cover it"
    h = re.search(r"heating ramp melts at " + FLOAT + r" K: " + FLOAT + r" K above T_m, superheating "
                  + FLOAT + " %", text)
    assert h, text
    assert float(h.group(1)) == pytest.approx(ramp["melts_at"], abs=0.051)
    assert float(h.group(2)) == pytest.approx(ramp["melts_at"] - rec["T_m"], abs=0.051)
    assert float(h.group(3)) == pytest.approx(100 * ramp["overshoot"], abs=0.051)
    assert float(h.group(3)) > 0  # a bulk crystal heated at MD rates superheats
    assert figures == 3  # trials (solid fraction + temperature), growth rate vs T, ramps
