"""np=N: a property run relaunched under the environment's mpiexec, its Result handed back to the calling process.

The call (property, structure, potential, settings, options) travels as a pickle through a private temporary
folder between this process and the ranks it starts (our own objects, never a user's file); the ranks run the
property as under `mpiexec -n N`, and rank 0 pickles the Result back. Signals reach the whole launched process
group (Ctrl-C stops the ranks, which keep their checkpoints), and no more ranks than cores are started unless
MLIPPROPS_OVERSUBSCRIBE=1.

    python -m mlipprops.relaunch FOLDER      (what the ranks run)
"""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import tempfile
from collections import deque

from mlipprops import parallel
from mlipprops.errors import InputError, LammpsError


def check_rank_count(np_: int) -> None:
    if np_ < 1:
        raise InputError(f"--np {np_}: the number of MPI ranks must be at least 1")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if np_ > cores and os.environ.get("MLIPPROPS_OVERSUBSCRIBE") != "1":
        raise InputError(f"--np {np_}: this machine has {cores} cores; more ranks than cores only slow the run "
                         "down (set MLIPPROPS_OVERSUBSCRIBE=1 to start them anyway)")


def run_ranks(command: list[str], np_: int, env: dict | None = None, echo: bool = True) -> tuple[int, str]:
    """Run `command` on np_ ranks under mpiexec, in a process group of its own that receives this process'
    SIGINT/SIGTERM; returns the exit code and the tail of its standard error (also passed on when echo)."""
    check_rank_count(np_)
    proc = subprocess.Popen([parallel.mpiexec(), "-n", str(np_), *command], stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=env)

    def forward(signum, _frame):
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass
    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    tail: deque[str] = deque(maxlen=40)
    try:
        for line in proc.stderr:
            tail.append(line)
            if echo:
                sys.stderr.write(line)
        return proc.wait(), "".join(tail)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if proc.poll() is None:  # this process is going away: take the ranks with it
            forward(signal.SIGTERM, None)
            proc.wait()


def under_mpiexec(module_name: str, atoms, potential, settings, options):
    from dataclasses import replace

    with tempfile.TemporaryDirectory(prefix="mlipprops-np-") as folder:
        with open(os.path.join(folder, "call.pkl"), "wb") as fh:
            pickle.dump((module_name, atoms, potential, settings, replace(options, np=None)), fh)
        error_file = os.path.join(folder, "error.txt")
        env = dict(os.environ, MLIPPROPS_ERROR_FILE=error_file)
        code, tail = run_ranks([sys.executable, "-m", "mlipprops.relaunch", folder], options.np, env,
                               echo=not options.quiet)
        result_file = os.path.join(folder, "result.pkl")
        if code == 0 and os.path.isfile(result_file):
            with open(result_file, "rb") as fh:
                return pickle.load(fh)
        if code in (130, -signal.SIGINT, 128 + signal.SIGINT):
            raise KeyboardInterrupt
        if os.path.isfile(error_file):
            kind, message = open(error_file).read().split("\n", 1)
            raise (LammpsError if kind == "LammpsError" else InputError)(message.strip())
        raise InputError(f"the run on {options.np} MPI ranks failed (exit code {code}) without a reason; its last "
                         f"words:\n{tail.strip()}")


def main(folder: str) -> int:
    import importlib

    from mlipprops.run import execute

    with open(os.path.join(folder, "call.pkl"), "rb") as fh:
        module_name, atoms, potential, settings, options = pickle.load(fh)
    if options.command_line:  # relaunched by the CLI (--np): its messages name flags
        from mlipprops.errors import speak_to
        speak_to("cli")
    try:
        result = execute(importlib.import_module(module_name), atoms, potential, settings, options)
    except (InputError, LammpsError) as exc:  # every rank alike (else settle_error has aborted them)
        if parallel.is_root():
            with open(os.environ["MLIPPROPS_ERROR_FILE"], "w") as fh:
                fh.write(f"{type(exc).__name__}\n{exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    if parallel.is_root():
        with open(os.path.join(folder, "result.pkl"), "wb") as fh:
            pickle.dump(result, fh)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
