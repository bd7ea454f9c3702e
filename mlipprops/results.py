"""Result files: versioned JSON written atomically, provenance, and per-task checkpoints for resuming."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
import time

import numpy as np

import mlipprops

SCHEMA_VERSION = 1


def _plain(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def write_atomic(path: str, text: str) -> None:
    """Write through a temporary file and rename, so a reader never sees half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-" + os.path.basename(path))
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private (0600): a result is for colleagues too
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    """The process' umask (it can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json(path: str, record: dict) -> None:
    write_atomic(path, json.dumps({"schema_version": SCHEMA_VERSION, **record}, indent=2, default=_plain) + "\n")


def read_json(path: str) -> dict:
    with open(path) as fh:
        return json.load(fh)


def provenance(potential: dict, ranks: int, groups: int, started: float, lammps_version: int,
               command_line: str) -> dict:
    return {
        "mlipprops_version": mlipprops.__version__,
        "lammps_version": lammps_version,
        "python": platform.python_version(),
        "host": platform.node(),
        "command_line": command_line,
        "potential": potential,
        "mpi_ranks": ranks,
        "task_groups": groups,
        "wall_time_s": time.time() - started,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def checksum(record: dict) -> str:
    """SHA-256 of a checkpoint's contents (its schema_version aside): a hand-edited or damaged checkpoint would
    otherwise be taken as a computed result (one strained cell's stress edited by 1 GPa moves C by 100 GPa)."""
    body = {k: v for k, v in record.items() if k != "schema_version"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=_plain).encode()).hexdigest()


def fingerprint(*parts) -> str:
    """A short hash of everything that determines a result; checkpoints are valid only for the same one."""
    text = json.dumps(parts, sort_keys=True, default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Checkpoints:
    """One small JSON file per finished task under DIR/checkpoints/<kind>/, valid for one fingerprint.
    With resume=False earlier files are ignored (and overwritten as tasks finish)."""

    def __init__(self, out_dir: str, kind: str, key: str, resume: bool = True):
        self.folder = os.path.join(out_dir, "checkpoints", kind)
        self.key = key
        self.resume = resume

    def _path(self, name: str) -> str:
        return os.path.join(self.folder, f"{name}.json")

    def load(self, name: str) -> dict | None:
        if not self.resume:
            return None
        try:
            record = read_json(self._path(name))
        except (OSError, ValueError):
            return None
        if record.get("fingerprint") != self.key:
            return None
        saved = record.pop("checksum", None)
        if saved is None:
            return None  # written before checkpoints carried a checksum: recomputed rather than trusted
        if saved != checksum(record):
            from mlipprops.errors import warn
            warn(f"checkpoint {self._path(name)} was changed after it was written (its checksum does not match): "
                 "recomputing that task")
            return None
        return record

    def save(self, name: str, record: dict) -> None:
        record = {"fingerprint": self.key, **record}
        # written as it will be read back (JSON), so that the checksum covers exactly what a resume gets
        record = json.loads(json.dumps(record, default=_plain))
        write_json(self._path(name), {**record, "checksum": checksum(record)})

    def once(self, name: str, comm, compute, still_valid=None):
        """The record of task `name`: from its checkpoint when a valid one exists (and still_valid(record) says
        what it stands for is intact: files it refers to, say), else compute() (called by every rank of comm,
        which share the result of its rank 0) and checkpointed. The one resume helper."""
        record = self.load(name) if comm.Get_rank() == 0 else None
        if record is not None and still_valid is not None and not still_valid(record):
            record = None
        record = comm.bcast(record, root=0)
        if record is None:
            record = comm.bcast(compute(), root=0)
            if comm.Get_rank() == 0:
                self.save(name, record)
        record.pop("fingerprint", None)
        return record
