"""MPI: the world, rank-0 output, and groups of ranks that run independent tasks side by side.

Inside a group LAMMPS decomposes space; between groups tasks (strained states, temperatures) are dealt out.
"""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass

# Below this many atoms per rank, spatial decomposition spends more time on ghost atoms and messages than it
# saves, so independent tasks on separate ranks are faster.
ATOMS_PER_RANK = 1000


def world():
    from mpi4py import MPI
    return MPI.COMM_WORLD


def is_root() -> bool:
    return world().Get_rank() == 0


@dataclass
class Groups:
    """This rank's group: `comm` for its LAMMPS, `index` of `count` groups, and the world to gather results."""
    comm: object
    index: int
    count: int
    world: object

    @property
    def leader(self) -> bool:
        return self.comm.Get_rank() == 0

    def my_tasks(self, tasks: list) -> list:
        return tasks[self.index::self.count]

    def gather(self, items: list) -> list | None:
        """Collect every leader's items on world rank 0 (others get None)."""
        parts = self.world.gather(items if self.leader else [], root=0)
        return None if parts is None else [x for part in parts for x in part]

    def share(self, items: list) -> list:
        """Every leader's items, on every rank."""
        return [x for part in self.world.allgather(items if self.leader else []) for x in part]


def choose_group_count(nranks: int, ntasks: int, natoms: int, requested: int | None = None) -> int:
    """How many groups to split `nranks` into for `ntasks` independent tasks on `natoms` atoms."""
    if requested:
        if nranks % requested:
            raise ValueError(f"--groups {requested} does not divide the {nranks} MPI ranks")
        return requested
    ranks_per_task = max(1, min(nranks, -(-natoms // ATOMS_PER_RANK)))
    count = max(1, min(ntasks, nranks // ranks_per_task))
    while nranks % count:  # equal groups keep the runs identical in length
        count -= 1
    return count


def split(count: int) -> Groups:
    w = world()
    size, rank = w.Get_size(), w.Get_rank()
    per = size // count
    index = rank // per
    return Groups(w.Split(color=index, key=rank), index, count, w)


def under_mpiexec() -> bool:
    """Started by an MPI launcher (then the world is whatever it launched, and np=N is not relaunched)."""
    return any(k in os.environ for k in ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK"))


def mpiexec() -> str:
    """The launcher of the MPI that LAMMPS and mpi4py use: the one beside this Python (the mpich wheel)."""
    path = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return path if os.path.isfile(path) else (shutil.which("mpiexec") or "mpiexec")


_ERRORS = None  # a communicator of its own for agreeing on errors, never mixed with a run's collectives


def prepare_for_errors() -> None:
    """Collective: called by every rank before a run, so that settle_error can be used inside it."""
    global _ERRORS
    if _ERRORS is None and world().Get_size() > 1:
        _ERRORS = world().Dup()


def settle_error(exc: BaseException, wait: float = 5.0) -> None:
    """After an exception on this rank: return when every rank failed at the same point (a bad input, a LAMMPS
    error of all ranks: the caller reports it once and every rank exits alike); otherwise print the reason and
    abort every rank, since the others wait in a collective call for this one, forever."""
    w = world()
    if w.Get_size() == 1 or _ERRORS is None:
        return
    import time
    request = _ERRORS.Ibarrier()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if request.Test():
            return
        time.sleep(0.01)
    from mlipprops.errors import report
    rank = w.Get_rank()
    print(report(exc) + (f" [MPI rank {rank}]" if rank else ""), file=sys.stderr, flush=True)
    if os.environ.get("MLIPPROPS_ERROR_FILE"):  # for the process that relaunched this run (np=N)
        with open(os.environ["MLIPPROPS_ERROR_FILE"], "w") as fh:
            fh.write(f"{type(exc).__name__}\n{exc}\n")
    _quiet_abort(w, 130 if isinstance(exc, KeyboardInterrupt) else 1)


def _quiet_abort(w, code: int) -> None:
    """MPI_Abort without MPICH's "Abort(1) on node 0 ... application called MPI_Abort" line after the reason,
    which was printed already: standard error goes to /dev/null first."""
    sys.stdout.flush()
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    w.Abort(code)
