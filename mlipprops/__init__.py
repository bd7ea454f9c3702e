"""mlipprops: materials properties from (machine-learned) interatomic potentials through LAMMPS.

    import mlipprops as mp
    atoms = mp.read_structure("urea.cif", supercell=(2, 2, 2))
    pot = mp.Potential.model("urea.nequip.pth")        # or mp.Potential.lammps("sw", "* * Si.sw Si")
    e = mp.elastic(atoms, pot)                         # e.C, e.C_err, e.stability, e.to_pymatgen(), e.plot()
    e.save("el_out"); mp.load("el_out")
"""
__version__ = "0.2.0"

from mlipprops.errors import InputError, LammpsError  # noqa: E402

# The API, imported on first use (PEP 562): numpy, ASE, pymatgen and the properties take a second or more to
# import, and the command line must be able to answer a Ctrl-C during that second with its one line.
_API = {"example": "mlipprops.examples", "Potential": "mlipprops.potential", "load": "mlipprops.properties",
        "elastic": "mlipprops.properties.elastic", "evaluate": "mlipprops.properties.evaluate",
        "melt": "mlipprops.properties.melt", "relax": "mlipprops.properties.relax",
        "read_structure": "mlipprops.structure"}

__all__ = ["InputError", "LammpsError", "Potential", "elastic", "evaluate", "example", "load", "melt",
           "read_structure", "relax"]


def __getattr__(name: str):
    import importlib
    if name not in _API:  # a submodule (mp.examples, mp.tensors), as an eager package would have it
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module 'mlipprops' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value  # once imported, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
