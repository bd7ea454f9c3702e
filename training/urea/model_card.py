#!/usr/bin/env python3
"""Write the machine-readable model card mlipprops/data/urea_allegro.json from the pipeline's records: what data
(make_data.py's manifest), how trained (train.py's size and the best validation epoch), held-out errors through
LAMMPS (evaluate_model.py), the direct GFN2-xTB reference with the comparison (check_elastic_xtb.py: --xtb, ions
relaxed freely as mlipprops does; --xtb-symmetric, ions kept in each strained cell's symmetry) and the melting run
of the README's urea melt command (--melt: its output folder). The prose card, urea_allegro.md, quotes these numbers.

The training history is the chain of runs in runs.json that led to NAME (each warm-started from the deployed
model of the one before).

Usage:  python model_card.py NAME [--size small] [--xtb data/xtb_elastic_free.json]
                                   [--xtb-symmetric data/xtb_elastic.json] [--melt ../../tests/data/urea_melt]
                                   [--out ../../mlipprops/data/urea_allegro.json]
"""
from __future__ import annotations

import argparse
import csv
import glob
import json
import os

from ase.io import read


def best_validation(name: str) -> dict | None:
    """The best validation epoch of run NAME from its training log (None when outputs/NAME is gone: the runs.json
    record then carries what was kept)."""
    found = sorted(glob.glob(f"outputs/{name}/csv/*/metrics.csv"))
    if not found:
        return None
    f = found[-1]
    rows = [r for r in csv.DictReader(open(f)) if r.get("val0_epoch/weighted_sum")]
    best = min(rows, key=lambda r: float(r["val0_epoch/weighted_sum"]))
    keys = ("per_atom_energy_mae", "forces_mae", "stress_mae")
    return {"epochs": int(rows[-1]["epoch"]) + 1, "best_epoch": int(best["epoch"]),
            **{k: float(best[f"val0_epoch/{k}"]) for k in keys}}


def history(name: str) -> list[dict]:
    """The runs.json records from the first run to NAME, following warm_start_from (NAME.nequip.pth)."""
    runs = {r["name"]: r for r in json.load(open("runs.json"))}
    chain = [runs[name]]
    while chain[0].get("warm_start_from"):
        chain.insert(0, runs[chain[0]["warm_start_from"].removesuffix(".nequip.pth")])
    return chain


def melting(folder: str) -> dict:
    """The melting run's result (melt.json) or its reason for having none (melt_no_bracket.json), in brief."""
    done = os.path.join(folder, "melt.json")
    record = json.load(open(done if os.path.exists(done) else os.path.join(folder, "melt_no_bracket.json")))
    trials = sorted(record["trials"], key=lambda t: t["temperature"])
    brief = {"command": record["provenance"]["command_line"], "mpi_ranks": record["provenance"]["mpi_ranks"],
             "T_m_K": record.get("T_m"), "T_m_err_K": record.get("T_m_err"), "error": record.get("error"),
             "order_parameter": record["order_parameter"],
             "heating_ramp_melts_at_K": record.get("ramps", record.get("heating_ramp"))["heating_melts_at"],
             "molecules_intact": record.get("molecules_intact"),
             "trials": [{k: t.get(k) for k in ("temperature", "verdict", "rate", "rate_error", "molecules_intact")}
                        for t in trials]}
    return brief


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name")
    p.add_argument("--size", default="small")
    p.add_argument("--xtb", default="data/xtb_elastic_free.json", help="check_elastic_xtb.py --free output")
    p.add_argument("--xtb-symmetric", default="data/xtb_elastic.json", help="check_elastic_xtb.py output")
    p.add_argument("--melt", default="../../tests/data/urea_melt", help="the README's urea melt run")
    p.add_argument("--out", default="../../mlipprops/data/urea_allegro.json")
    args = p.parse_args()
    from train import SIZES

    relaxed = read("data/relaxed.extxyz")
    a, _, c = relaxed.cell.lengths() / 2  # the 2x2x2 supercell
    xtb, symmetric = json.load(open(args.xtb)), json.load(open(args.xtb_symmetric))
    card = {
        "model": "urea_allegro.nequip.pth",
        "architecture": {"code": "nequip 0.19.1 + nequip-allegro 0.8.3, TorchScript", "r_max_A": 5.0,
                         **SIZES[args.size], "model_dtype": "float64", "species": ["C", "H", "N", "O"]},
        "reference_method": "GFN2-xTB (tblite 0.8.0, Gamma point, 2x2x2 supercells of 128 atoms)",
        "data": json.load(open("data/urea_gfn2.json")),
        "data_note": "the pipeline's GFN2-xTB frames as they stand; the frames each training run of this model "
                     "saw are in training.runs (a later stage may postdate the model)",
        "training": {"runs": history(args.name), "last_run_validation": best_validation(args.name)},
        "heldout_errors": json.load(open("data/test_metrics.json")),
        "gfn2_xtb": {"relaxed_cell_A": {"a": a, "c": c}, "elastic_method": xtb["method"],
                     "elastic_C_GPa": xtb["C_GPa"], "elastic_combinations_GPa": xtb["combinations_GPa"],
                     "saddle_check": xtb.get("saddle_check"),
                     "symmetric": {"elastic_method": symmetric["method"], "elastic_C_GPa": symmetric["C_GPa"],
                                   "elastic_combinations_GPa": symmetric["combinations_GPa"]}},
        "mlipprops_vs_gfn2_xtb": xtb.get("comparison"),
        "mlipprops_vs_gfn2_xtb_symmetric": symmetric.get("comparison"),
        # the verdict of the README's main job and whether its relaxed structure is a minimum of the model
        "mlipprops_elastic": {k: xtb["mlipprops"].get(k) for k in ("stability", "saddle_check", "minimum_check")},
        "melting": melting(args.melt),
        "limits": ["GFN2-xTB level of theory, not experiment", "urea only (C, H, N, O in urea's bonding)",
                   "classical nuclei", "interactions beyond 5 A (dispersion tail) only effectively"],
    }
    with open(args.out + ".tmp", "w") as f:
        json.dump(card, f, indent=1)
    os.replace(args.out + ".tmp", args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
