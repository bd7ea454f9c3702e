"""Errors that speak to the user: one line, what was wrong and what to do."""


class InputError(Exception):
    """Bad user input (file, option, structure, potential). Reported as one line, no traceback."""


class LammpsError(Exception):
    """LAMMPS stopped with an error. Carries the tail of the LAMMPS log for the user."""

    def __init__(self, message: str, log_tail: str = "", log_path: str | None = None):
        super().__init__(message)
        self.log_tail = log_tail
        self.log_path = log_path


def report(exc: BaseException) -> str:
    """The one line a user sees for an expected failure."""
    if isinstance(exc, KeyboardInterrupt):
        return "mlipprops: interrupted (finished stages are checkpointed: rerun the same command to resume)"
    where = f" (LAMMPS log: {exc.log_path})" if isinstance(exc, LammpsError) and exc.log_path else ""
    return " ".join(f"mlipprops: error: {exc}{where}".split("\n"))  # one line, whatever the message holds


def warn(message: str) -> None:
    """A warning worth a scientist's attention, printed once (MPI rank 0) to standard error."""
    import sys
    from mlipprops.parallel import is_root
    if is_root():
        print(f"mlipprops: warning: {message}", file=sys.stderr, flush=True)
