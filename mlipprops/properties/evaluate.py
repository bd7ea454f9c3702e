"""Single point: energy, forces and stress of the structure as given (the check to run before trusting a model
on a new crystal)."""
from __future__ import annotations

from mlipprops import tensors
from mlipprops.system import System


def single_point(system: System, comm, log_path: str) -> dict:
    engine = system.open_engine(comm, log_path)
    engine.evaluate()
    frame = system.frame
    record = {
        "energy": engine.energy(),
        "forces": frame.vectors_to_input(engine.forces()),
        "stress_GPa": tensors.stress_to_voigt(frame.stress_to_input(engine.stress())),
        "backend": engine.backend, "lammps_version": engine.version(),
    }
    engine.close()
    return record
