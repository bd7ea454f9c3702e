#!/usr/bin/env python3
"""Compile a nequip >= 0.7 checkpoint to a TorchScript ``.nequip.pth`` file, as
``nequip-compile CKPT OUT.nequip.pth --mode torchscript --device cpu`` does in nequip 0.19.1.

Why this script: nequip 0.19.1's ``nequip-compile`` refuses ``--mode torchscript`` when torch >= 2.10
(a version guard in ``nequip/scripts/compile.py``), yet ``torch.jit.script`` still works in torch 2.13.
This script runs the same steps as that command's TorchScript branch, through nequip's own functions,
with only the guard left out:

  1. ``set_workflow_state("compile")`` and ``set_global_state(allow_tf32=False)`` (``--tf32`` is off by
     default; this also sets float64 as torch's default dtype and seeds everything, as the command does);
  2. ``load_saved_model(ckpt, "eager", "sole_model")`` -- builds the model from the checkpoint; done
     inside ``conditional_torchscript_mode(True)``, which is what nequip's module-level default is on
     torch < 2.10 (where the command is allowed to run), so submodules that nequip scripts while
     building (cutoff functions, e3nn fx code) are scripted the same way;
  3. ``modify(model, [])`` (no ``--modifiers``);
  4. metadata = ``model.metadata`` (model_dtype, type_names, num_types, r_max and, when set,
     per_edge_type_cutoff) + the metadata-related global state (``allow_tf32``), bools written as "0"/"1";
  5. ``save_torchscript_model(model, metadata, out, "cpu")``: requires_grad off, eval(), e3nn
     ``script()``, ``torch.jit.save(..., _extra_files=metadata)`` (values ASCII-encoded).

Usage:  python compile_torchscript.py CKPT OUT.nequip.pth
"""
import argparse
import sys

import torch

from nequip.model.inference_models.torchscript import save_torchscript_model
from nequip.model.modify_utils import modify
from nequip.model.saved_models.load_utils import load_saved_model
from nequip.model.utils import _EAGER_MODEL_KEY
from nequip.scripts._workflow_utils import set_workflow_state
from nequip.train.lightning import _SOLE_MODEL_KEY
from nequip.utils.compile import conditional_torchscript_mode
from nequip.utils.global_state import get_latest_global_state, set_global_state


def compile_torchscript(ckpt_path: str, out_path: str, device: str = "cpu", tf32: bool = False) -> dict:
    assert str(out_path).endswith(".nequip.pth"), "output must end with .nequip.pth (as nequip-compile asks)"
    set_workflow_state("compile")
    set_global_state(allow_tf32=tf32)
    with conditional_torchscript_mode(True):
        model = load_saved_model(ckpt_path, _EAGER_MODEL_KEY, _SOLE_MODEL_KEY, return_data_dict=False)
        model = modify(model, [])
        metadata = model.metadata.copy()
        global_metadata = get_latest_global_state(only_metadata_related=True)
        assert set(metadata).isdisjoint(global_metadata)
        metadata.update(global_metadata)
        assert all(isinstance(v, (str, bool)) for v in metadata.values())
        metadata = {k: str(int(v)) if isinstance(v, bool) else v for k, v in metadata.items()}
        save_torchscript_model(model, metadata, str(out_path), torch.device(device))
    set_workflow_state(None)
    return metadata


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ckpt")
    p.add_argument("out")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    metadata = compile_torchscript(args.ckpt, args.out, args.device)
    print(f"wrote {args.out} with metadata:", file=sys.stderr)
    for k, v in metadata.items():
        print(f"  {k} = {v}", file=sys.stderr)


if __name__ == "__main__":
    main()
