"""Errors that speak to the user: one line, what was wrong and what to do."""


class InputError(Exception):
    """Bad user input (file, option, structure, potential). Reported as one line, no traceback."""


class LammpsError(Exception):
    """LAMMPS stopped with an error. Carries the tail of the LAMMPS log for the user."""

    def __init__(self, message: str, log_tail: str = "", log_path: str | None = None):
        super().__init__(message)
        self.log_tail = log_tail
        self.log_path = log_path
