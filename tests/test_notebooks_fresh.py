"""Every notebook in notebooks/ runs top to bottom as a fresh clone has it: no environment variables, no output
folders of earlier runs. The long computations are read from results that ship in tests/data (made by the
commands in their provenance); those are checked to be of the potentials that ship today."""
from __future__ import annotations

import json
import os
import time

import pytest

from conftest import DATA, NOTEBOOKS, execute_notebook

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebook_runs_on_a_fresh_clone(name, monkeypatch):
    for key in [k for k in os.environ if k.startswith("MLIPPROPS_")]:
        monkeypatch.delenv(key)
    started = time.monotonic()
    text, figures = execute_notebook(name, {}, monkeypatch)  # raises on the first cell that fails
    assert figures >= 1 and time.monotonic() - started < 300, (name, time.monotonic() - started)
    if name in ("melt.ipynb", "urea.ipynb"):
        assert f"read {DATA}" in text  # the bundled results, said so


@pytest.mark.parametrize("folder", ["urea_out/relax", "urea_out/elastic", "urea_out/elastic_300K", "cu_melt"])
def test_bundled_results_are_of_the_bundled_potentials(folder):
    import mlipprops as mp
    record = mp.load(str(DATA / folder)).to_dict()
    example = "cu-eam" if folder == "cu_melt" else "urea"
    _, potential = mp.example(example)
    assert record["provenance"]["potential"]["content_sha256"] == potential.content_hash(), \
        f"tests/data/{folder} is of another potential: remake it with {record['provenance']['command_line']}"
    assert f"--example {example}" in record["provenance"]["command_line"]
    json.dumps(record)
