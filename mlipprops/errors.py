"""Errors that speak to the user: one line, what was wrong and what to do."""
import re

# Who reads the messages: "cli" (flags, --strains) or "api" (keywords, strains=). The CLI says so when it starts
# (cli.main, and the ranks it relaunches); a Python caller is the default.
_AUDIENCE = {"name": "api"}
_FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)(?: (?=([^\s]+)))?")


def speak_to(audience: str) -> None:
    _AUDIENCE["name"] = audience


def _keyword(match: re.Match) -> str:
    """--flag VALUE as the API writes it: flag=VALUE when a value follows, else the keyword's name."""
    name, following = match.group(1).replace("-", "_"), match.group(2)
    value_like = following is not None and (following[0] in "0123456789.+-/~'\"(" or following[0].isupper()
                                            or following.endswith((":", ",")))
    return f"{name}=" if value_like else f"{name} " if following is not None else name


def for_audience(message: str) -> str:
    """A message written with CLI flags, in the words of whoever reads it (keywords for a Python caller)."""
    return message if _AUDIENCE["name"] == "cli" else _FLAG.sub(_keyword, message)


class InputError(Exception):
    """Bad user input (file, option, structure, potential). Reported as one line, no traceback; messages name
    the CLI's flags, which a Python caller reads as the API's keywords."""

    def __init__(self, message: str = "", *args):
        super().__init__(for_audience(str(message)), *args)


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
        print(f"mlipprops: warning: {for_audience(message)}", file=sys.stderr, flush=True)
