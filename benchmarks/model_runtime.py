"""What one call of a deployed Allegro model costs, by runtime and by input graph.

In an MD step through our plugin the model's forward and backward (forces by autograd) are nearly the whole cost,
and nequip's ASE calculator calls the same model: the plugin can beat ASE only by ASE's own overheads (Python, its
neighbor list, the data conversion), unless some runtime makes the model itself faster. This script measures that,
on the same random fcc CuAu cells as allegro_md_speed.py, in one process, one case after the other:

  ts-loaded      the TorchScript file as torch.jit.load gives it (eval mode)
  ts-frozen      frozen (torch.jit.freeze): what the plugin runs
  ts-frozen-opt  frozen, with TorchScript's graph optimizer (profiling executor) on: the plugin's
                 MLIPPROPS_TORCH_JIT_OPTIMIZE=1
  aoti           an AOTInductor package of the same weights (--pt2; `nequip-compile CKPT M.nequip.pt2 --mode
                 aotinductor --device cpu --target pair_allegro`, from the checkpoint the TorchScript file came from)

each on the plugin's graph ("local": local atoms + the ghost atoms they see, edges from local centres, no cell) and,
for TorchScript, on ASE's ("periodic": the atoms of the cell, edges with cell shifts). Every call sees a different
rattled frame (the edge count changes, as in MD). The cases are timed in rounds, each round in a rotated order, and
the median round is reported. As a check, every case's energy and forces on frame 0 are compared with ts-frozen on
the periodic graph (ghost forces folded back onto their atoms).

    .venv/bin/python benchmarks/model_runtime.py --model tests/models/cuau_current_f64.nequip.pth
    .venv/bin/python benchmarks/model_runtime.py --model M.nequip.pth --pt2 M.nequip.pt2 --sizes 4 6 --threads 1
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from allegro_md_speed import DEFAULT_MODEL, REPO, cpu_model, machine_busy, make_input, versions
from report import write_report

GHOST, PERIODIC = "local", "periodic"
sys.path.insert(0, str(REPO / "tests" / "models"))
from reference import ghost_inputs, load_model, periodic_inputs  # noqa: E402  (the tests' independent graphs)


def frames(n: int, count: int, meta: dict, seed: int) -> list[dict]:
    """`count` rattled copies (0.05 A) of the n x n x n CuAu cell, each as both input graphs."""
    from ase import Atoms

    with tempfile.TemporaryDirectory() as tmp:
        make_input(n, 0.5, 300.0, seed, Path(tmp) / "cell.npz")
        cell_data = np.load(Path(tmp) / "cell.npz")
        atoms = Atoms(cell_data["symbols"], positions=cell_data["positions"], cell=cell_data["cell"], pbc=True)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        rattled = atoms.copy()
        rattled.positions += rng.normal(0.0, 0.05, atoms.positions.shape)
        local, owner, natoms = ghost_inputs(meta, rattled)
        out.append({PERIODIC: periodic_inputs(meta, rattled), GHOST: local, "owner": owner, "natoms": natoms})
    return out


def torchscript_case(torch, module, optimize: bool):
    def call(inputs: dict):
        with torch.jit.optimized_execution(optimize):
            out = module(inputs)
        return out["atomic_energy"], out["forces"]
    return call


def aoti_case(torch, path: str):
    """An AOTInductor package takes and returns flat tensor lists, in the order its nequip metadata names."""
    package = torch._inductor.aoti_load_package(path)
    meta = package.get_metadata()
    names_in = meta["nequip_aoti_inputs"].split()
    names_out = meta["nequip_aoti_outputs"].split()
    convention = PERIODIC if "cell" in names_in else GHOST

    def call(inputs: dict):
        out = dict(zip(names_out, package([inputs[k] if k != "atom_types" else inputs[k].reshape(-1)
                                           for k in names_in])))
        return out["atomic_energy"], out["forces"]
    return call, convention


def energy_forces(frame: dict, convention: str, atomic_energy, forces) -> tuple[float, np.ndarray]:
    """The cell's energy and its atoms' forces from a call's outputs (ghost forces folded onto their atoms)."""
    e = atomic_energy.detach().double().numpy().reshape(-1)[: frame["natoms"]].sum()
    f = forces.detach().double().numpy()
    if convention == GHOST:
        folded = np.zeros((frame["natoms"], 3))
        np.add.at(folded, frame["owner"], f)
        f = folded
    return float(e), f


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="a TorchScript .nequip.pth or legacy .pth")
    p.add_argument("--pt2", help="an AOTInductor .nequip.pt2 of the same weights (optional)")
    p.add_argument("--sizes", type=int, nargs="+", default=[4, 6], help="fcc cells per side (default 4 6)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--calls", type=int, default=10, help="timed calls per case and round (default 10)")
    p.add_argument("--rounds", type=int, default=5, help="timing rounds (default 5)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", default=str(Path(__file__).parent / "results" / "model_runtime.json"))
    args = p.parse_args(argv)

    import torch

    from mlipprops.torch_model import keep_freed_memory

    keep_freed_memory()                              # as the plugin does, for every case alike
    torch.set_num_threads(args.threads)
    module, meta = load_model(args.model)
    # the two frozen cases get a copy each: TorchScript keeps its profiled plans per module
    cases = {}
    for name, case_module, optimize in [("ts-loaded", module, False),
                                        ("ts-frozen", torch.jit.freeze(module), False),
                                        ("ts-frozen-opt", torch.jit.freeze(module), True)]:
        call = torchscript_case(torch, case_module, optimize)
        cases[f"{name} {GHOST}"] = (call, GHOST)
        cases[f"{name} {PERIODIC}"] = (call, PERIODIC)
    if args.pt2:
        call, convention = aoti_case(torch, args.pt2)
        cases[f"aoti {convention}"] = (call, convention)
    reference = f"ts-frozen {PERIODIC}"

    busy = machine_busy(1.0)
    if busy is not None and busy > 0.2:
        print(f"warning: other processes keep {busy:.0%} of the cores busy: the timings will be disturbed")
    results = {"model": args.model, "pt2": args.pt2, "model_dtype": str(meta["model_dtype"]),
               "threads": args.threads, "calls": args.calls, "rounds": args.rounds, "cpu": cpu_model(),
               "versions": versions(), "busy_before": busy, "sizes": {}}
    for n in args.sizes:
        data = frames(n, args.calls + 1, meta, args.seed)
        inputs = {c: [f[c] for f in data] for c in (GHOST, PERIODIC)}
        natoms = data[0]["natoms"]
        print(f"\n{natoms} atoms: {data[0][PERIODIC]['edge_index'].shape[1]} edges, "
              f"{len(data[0][GHOST]['pos'])} nodes in the local graph; {torch.get_num_threads()} thread(s)")
        check = {}
        for name, (call, convention) in cases.items():            # warm-up: TorchScript profiles its first calls
            for k in range(3):
                call(inputs[convention][k % len(data)])
            check[name] = energy_forces(data[0], convention, *call(inputs[convention][0]))
        times = {name: [] for name in cases}
        names = list(cases)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:
                call, convention = cases[name]
                t0 = time.perf_counter()
                for frame in inputs[convention][1:]:
                    call(frame)
                times[name].append((time.perf_counter() - t0) / args.calls * 1e3)
        e_ref, f_ref = check[reference]
        rows = {}
        print(f"{'case':<26} {'ms/call':>8} {'min':>8} {'vs ts-frozen local':>19} {'|dE| eV':>9} {'max|dF| eV/A':>13}")
        base = statistics.median(times[f"ts-frozen {GHOST}"])
        for name in names:
            med = statistics.median(times[name])
            de = abs(check[name][0] - e_ref)
            df = float(np.abs(check[name][1] - f_ref).max())
            rows[name] = {"ms_median": med, "ms_min": min(times[name]), "ms_rounds": times[name],
                          "speedup_vs_ts_frozen_local": base / med, "dE": de, "max_dF": df}
            print(f"{name:<26} {med:8.2f} {min(times[name]):8.2f} {base / med:19.2f} {de:9.1e} {df:13.1e}")
            if de > 1e-6 * natoms or df > 1e-5:
                print(f"warning: {name} disagrees with {reference}")
        results["sizes"][natoms] = {"edges": int(data[0][PERIODIC]["edge_index"].shape[1]),
                                    "local_graph_nodes": len(data[0][GHOST]["pos"]), "cases": rows}
    write_report(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
