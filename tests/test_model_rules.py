"""One table of model-metadata cases, held against both readers of a deployed model: mlipprops.models (Python,
which chooses backends and warns) and the LAMMPS plugin (C++, which evaluates the model). They must agree on
the format, the dtype the positions go in, and the architecture (which decides the input graph)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from mlipprops import plugin
from mlipprops.models import CURRENT, LEGACY, inspect_model
from test_plugin import ManyBodyToy, open_lammps

MODELS = Path(__file__).parent / "models"


def toy(path, extra: dict, pos_dtype: str = "float64", dtype: str = "float64") -> str:
    module = torch.jit.script(ManyBodyToy(4.5, getattr(torch, pos_dtype), getattr(torch, dtype)))
    torch.jit.save(module, str(path), _extra_files={"r_max": "4.5", "type_names": "Cu Au", **extra})
    return str(path)


LEGACY_META = {"n_species": "2", "nequip_version": "0.6.2", "allow_tf32": "0"}
CURRENT_META = {"num_types": "2", "allow_tf32": "0"}

# name: (how to make it, format, positions dtype, model precision, architecture)
CASES = {
    "legacy f64": (lambda p: toy(p, {**LEGACY_META, "default_dtype": "float64", "model_dtype": "float64"}),
                   LEGACY, "float64", "float64", "unknown"),
    "legacy f32": (lambda p: toy(p, {**LEGACY_META, "default_dtype": "float32", "model_dtype": "float32"},
                                 "float32", "float32"), LEGACY, "float32", "float32", "unknown"),
    # nequip 0.6's common mixed set-up: float64 data, a float32 network inside
    "legacy data f64 model f32": (lambda p: toy(p, {**LEGACY_META, "default_dtype": "float64",
                                                    "model_dtype": "float32"}, "float64", "float32"),
                                  LEGACY, "float64", "float32", "unknown"),
    "legacy model_dtype only": (lambda p: toy(p, {**LEGACY_META, "model_dtype": "torch.float64"}),
                                LEGACY, "float64", "float64", "unknown"),
    "legacy no dtype": (lambda p: toy(p, dict(LEGACY_META), "float32", "float32"),
                        LEGACY, "float32", "float32", "unknown"),
    "current f32": (lambda p: toy(p, {**CURRENT_META, "model_dtype": "float32"}, "float64", "float32"),
                    CURRENT, "float64", "float32", "unknown"),
    "trained legacy Allegro f32": (lambda p: str(MODELS / "cuau_legacy_f32.pth"),
                                   LEGACY, "float32", "float32", "allegro"),
    "trained current Allegro f64": (lambda p: str(MODELS / "cuau_current_f64.nequip.pth"),
                                    CURRENT, "float64", "float64", "allegro"),
    "trained NequIP f64": (lambda p: str(MODELS / "cuau_nequip_f64.nequip.pth"),
                           CURRENT, "float64", "float64", "nequip"),
}


def plugin_reading(model: str, log) -> dict:
    """What the plugin logs when it loads the model."""
    lmp = open_lammps_with_log(log)
    try:
        plugin.load_into(lmp)
        lmp.commands_string("units metal\nregion b block 0 5 0 5 0 5\ncreate_box 2 b\nmass * 1.0\n"
                            f"pair_style {plugin.STYLE}\npair_coeff * * {model} Cu Au")
    finally:
        lmp.close()
    text = Path(log).read_text()
    loaded = re.search(r"loaded .* \((legacy nequip-deploy|nequip >= 0.7) model.*positions (float\d+)", text)
    graph = re.search(r"architecture (\w+), input graph (\w+)", text)
    return {"format": LEGACY if loaded.group(1).startswith("legacy") else CURRENT, "positions": loaded.group(2),
            "architecture": graph.group(1), "graph": graph.group(2)}


def open_lammps_with_log(log):
    from mpi4py import MPI  # noqa: F401
    import lammps
    return lammps.lammps(cmdargs=["-screen", "none", "-nocite", "-log", str(log)])


@pytest.mark.parametrize("case", sorted(CASES))
def test_python_and_plugin_read_a_model_alike(case, tmp_path, built_plugin):
    make, fmt, positions, precision, architecture = CASES[case]
    path = make(tmp_path / ("m.nequip.pth" if fmt == CURRENT else "m.pth"))
    info = inspect_model(path)
    assert (info.format, info.pos_dtype, info.model_dtype, info.architecture) == (fmt, positions, precision,
                                                                                   architecture)
    assert info.local == (architecture == "allegro")
    read = plugin_reading(path, tmp_path / "log.lammps")
    assert (read["format"], read["positions"], read["architecture"]) == (fmt, positions, architecture)
    assert read["graph"] == ("local" if info.local else "periodic")
