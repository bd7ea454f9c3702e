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


def relaunch_under_mpiexec(np_: int, argv: list[str]) -> int:
    """Re-run this command under the venv's mpiexec with np_ ranks (for --np)."""
    import subprocess

    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if not os.path.isfile(mpiexec):
        mpiexec = shutil.which("mpiexec") or "mpiexec"
    return subprocess.call([mpiexec, "-n", str(np_), sys.executable, "-m", "mlipprops", *argv])
