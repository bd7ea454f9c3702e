"""mlipprops: materials properties from (machine-learned) interatomic potentials through LAMMPS.

    import mlipprops as mp
    atoms = mp.read_structure("urea.cif", supercell=(2, 2, 2))
    pot = mp.Potential.model("urea.nequip.pth")        # or mp.Potential.lammps("sw", "* * Si.sw Si")
    e = mp.elastic(atoms, pot)                         # e.C, e.C_err, e.stability, e.to_pymatgen(), e.plot()
    e.save("el_out"); mp.load("el_out")
"""
__version__ = "0.2.0"

from mlipprops.errors import InputError, LammpsError  # noqa: E402
from mlipprops.examples import example  # noqa: E402
from mlipprops.potential import Potential  # noqa: E402
from mlipprops.properties import load  # noqa: E402
from mlipprops.properties.elastic import elastic  # noqa: E402
from mlipprops.properties.evaluate import evaluate  # noqa: E402
from mlipprops.properties.melt import melt  # noqa: E402
from mlipprops.properties.relax import relax  # noqa: E402
from mlipprops.structure import read_structure  # noqa: E402

__all__ = ["InputError", "LammpsError", "Potential", "elastic", "evaluate", "example", "load", "melt",
           "read_structure", "relax"]
