"""One property calculation, however it was started (a Python call, the CLI, `mpiexec`, or `np=N` relaunched
under mpiexec): the output folder, LAMMPS logs, task groups, checkpoints valid for exactly these inputs,
progress, provenance, errors, and the result handed back to every rank.

A property module (properties/) provides Settings (with `for_system` and `check`), a Result and
`compute(system, settings, run)`, which every rank calls and which returns the Result on world rank 0.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, fields

from mlipprops import parallel
from mlipprops.errors import InputError
from mlipprops.results import SCHEMA_VERSION, Checkpoints, fingerprint, provenance


@dataclass
class Options:
    """How to run, not what to compute: none of these changes a result."""
    out: str | None = None       # folder for logs, checkpoints, time series; None: a temporary one
    np: int | None = None        # run on this many MPI ranks (relaunched under mpiexec)
    groups: int | None = None    # MPI task groups (default: chosen from atoms and ranks)
    resume: bool = True          # reuse the checkpoints of an earlier run of the same inputs in `out`
    quiet: bool = False          # no progress bar
    command_line: str | None = None


@dataclass
class Run:
    """What a property's compute() gets besides the system and its settings."""
    out: str
    options: Options
    started: float
    world: object
    estimate: dict | None = None  # footprint.estimate: what the run was expected to take

    def groups(self, ntasks: int, natoms: int) -> parallel.Groups:
        try:
            count = parallel.choose_group_count(self.world.Get_size(), ntasks, natoms, self.options.groups)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        return parallel.split(count)

    def log_path(self, groups: parallel.Groups | None = None) -> str:
        index = groups.index if groups is not None else 0
        return os.path.join(self.out, "log.lammps" if index == 0 else f"log.group{index}.lammps")

    def checkpoints(self, kind: str, system, groups: parallel.Groups, *settings) -> Checkpoints:
        """Checkpoints valid for exactly this structure, potential (its files' contents included), these settings
        and this split into groups."""
        key = fingerprint(_version(), system.atoms.cell[:], system.atoms.positions, system.atoms.get_chemical_symbols(),
                          system.potential.describe(), system.potential.content_hash(), *settings, groups.count)
        return Checkpoints(self.out, kind, key, resume=self.options.resume)

    def progress(self, total: int, what: str, unit: str = "cell"):
        if self.options.quiet or self.world.Get_rank() != 0:
            return None
        from tqdm.auto import tqdm  # a widget in a Jupyter kernel, text on a terminal
        return tqdm(total=total, desc=what, unit=unit, file=sys.stderr, leave=False)

    def stamp(self, record: dict, potential, groups: int, lammps_version: int) -> dict:
        """The record's schema version and provenance (what ran, where, how long): what makes it a result. The
        potential's `backend` is the one that ran (`backend_requested`: what was asked, e.g. auto)."""
        from mlipprops.engine import LAST_RUN
        described = {**potential.describe(), "content_sha256": potential.content_hash()}
        if "backend" in described and LAST_RUN:
            described["backend_requested"], described["backend"] = described["backend"], LAST_RUN["backend"]
        record["schema_version"] = SCHEMA_VERSION
        record["provenance"] = provenance(described, self.world.Get_size(), groups, self.started, lammps_version,
                                          self.options.command_line or "python: mlipprops API")
        record["provenance"].update(dict(LAST_RUN))
        record["provenance"]["estimate"] = self.estimate
        return record


def _version() -> str:
    import mlipprops
    return mlipprops.__version__


def settings_from(cls, keywords: dict):
    """The property's settings from keyword arguments named as the CLI flags; an unknown one is an InputError."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(keywords) - names)
    if unknown:
        raise InputError(f"unknown setting(s) {', '.join(unknown)}: choose from {', '.join(sorted(names))}")
    for name, value in keywords.items():
        _check_finite(name, value)
    return cls(**keywords)


def _check_finite(name: str, value) -> None:
    """NaN passes every comparison a check makes (nan <= 0 and nan > 0.05 are both False) and fails much later
    inside LAMMPS; infinity is no setting either."""
    import math
    values = value if isinstance(value, (tuple, list)) else [value]
    if any(isinstance(v, float) and not math.isfinite(v) for v in values):
        shown = ",".join(map(str, values))
        raise InputError(f"--{name.replace('_', '-')} {shown}: give finite numbers")


def execute(module, atoms, potential, settings, options: Options):
    """Run a property module on every rank of this process' MPI world (or relaunched on options.np ranks) and
    return its Result on every rank."""
    if options.np is not None and options.np < 1:
        raise InputError(f"--np {options.np}: the number of MPI ranks must be at least 1")
    if options.groups is not None and options.groups < 1:
        raise InputError(f"--groups {options.groups}: the number of MPI task groups must be at least 1 (leave it out "
                         "to have it chosen)")
    if options.np is not None and options.np > 1 and not parallel.under_mpiexec():
        from mlipprops import relaunch
        return relaunch.under_mpiexec(module.__name__, atoms, potential, settings, options)
    from mlipprops.system import System

    world = parallel.world()
    parallel.prepare_for_errors()
    source = atoms.info.get("source", "structure")
    system = System(atoms, potential.with_types_for(atoms.get_chemical_symbols(), source), source)
    settings = settings.for_system(system)
    settings.check(system)  # every rank alike: a bad setting ends the call here, on every rank
    estimate = _footprint(system, world)
    with _folder(options.out, world) as out:
        run = Run(out, options, time.time(), world, estimate)
        try:
            result = module.compute(system, settings, run)
        except BaseException as exc:
            parallel.settle_error(exc)  # one rank alone with its error, the others waiting: all are aborted
            raise
        if options.out is not None and world.Get_rank() == 0:
            result.save(out)  # the API's out= holds what the CLI's --out holds: mlipprops.load reads either
        return world.bcast(result, root=0)


def _footprint(system, world) -> dict:
    """Memory and time the run will take, measured on rank 0 and judged on every rank alike (a run that cannot
    fit is refused here, before LAMMPS fills the memory)."""
    from mlipprops import footprint
    record, problem = None, None
    if world.Get_rank() == 0:
        try:
            record = footprint.estimate(system, world.Get_size())
        except Exception as exc:  # noqa: BLE001 - raised on every rank below: the others wait in bcast for it
            problem = exc
    record, problem = world.bcast((record, problem), root=0)
    if problem is not None:
        raise problem
    footprint.judge(record, system.source)
    return record


class _folder:
    """The output folder (created by rank 0), or a temporary one removed afterwards; locked for this run, so
    that a second run on the same folder is refused instead of mixing its files with this one's. A folder that
    holds files mlipprops did not write is refused: a run would overwrite them (log.lammps, C.csv, ...)."""

    LOCK = ".mlipprops.lock"
    # left in every folder mlipprops writes: later runs may write there again (a lock file left by older
    # versions says the same)
    MARK = ".mlipprops"

    def __init__(self, out: str | None, world):
        self.world, self.temporary, self.lock = world, out is None, None
        if self.temporary:
            out = tempfile.mkdtemp(prefix="mlipprops-") if world.Get_rank() == 0 else None
            out = world.bcast(out, root=0)
        self.path = os.path.abspath(out)

    def __enter__(self) -> str:
        problem = None
        if self.world.Get_rank() == 0:
            problem = self._claim()
        problem = self.world.bcast(problem, root=0)
        if problem:
            raise InputError(problem)
        return self.path

    def _claim(self) -> str | None:
        if any(c in self.path for c in '\n\r"'):
            return f"output folder {self.path!r} contains a newline or a double quote: choose another name"
        try:
            os.makedirs(self.path, exist_ok=True)
            foreign = self._foreign_files()
            if foreign:
                return (f"--out {self.path} holds files mlipprops did not write ({', '.join(foreign[:3])}"
                        f"{', ...' if len(foreign) > 3 else ''}), which a run would overwrite: give a new or empty "
                        "folder")
            return self._lock()
        except OSError as exc:
            return (f"cannot use {self.path} as the output folder ({exc.strerror}): give --out a folder you can "
                    "write to")

    def _foreign_files(self) -> list[str]:
        names = sorted(os.listdir(self.path))
        return [] if self.MARK in names or self.LOCK in names else names

    def _lock(self) -> str | None:
        """flock on the lock file. It is removed at the end, so a run that opened it just before may hold a lock
        on a removed file: the lock counts only while the path still names the file locked."""
        import fcntl
        path = os.path.join(self.path, self.LOCK)
        for _ in range(10):
            handle = open(path, "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                owner = handle.read().strip() or "another process"
                handle.close()
                return f"{self.path} is in use by another mlipprops run ({owner}): wait for it, or give another --out"
            try:
                same = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            handle.close()  # the previous run removed it meanwhile: lock the new one
        else:
            return f"cannot lock {path}: it keeps being replaced; is another run starting there?"
        self.lock = handle
        handle.truncate(0)
        handle.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
        handle.flush()
        with open(os.path.join(self.path, self.MARK), "w") as fh:
            fh.write("A folder written by mlipprops: its runs may write here again (and overwrite their files).\n")
        return None

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:  # after an error the ranks did not all reach here (settle_error)
            self.world.Barrier()
        if self.lock is not None:
            try:
                os.unlink(self.lock.name)  # before the lock is released: a run waiting on it then finds it gone
            except OSError:
                pass
            self.lock.close()
        if self.temporary and self.world.Get_rank() == 0:
            shutil.rmtree(self.path, ignore_errors=True)
