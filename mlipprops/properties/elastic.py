"""Elastic constants at 0 K by finite +-deformation of the relaxed cell.

Strains are defined in the input frame, mapped into LAMMPS' frame, applied in place (change_box remap from a
restored reference state), ions relaxed, and the stress mapped back; so C comes out directly in the frame of the
input file. A strained cell is no longer LAMMPS-shaped: it is rotated back into shape, and the stress rotated
back with it, which removes the spurious rotation that an upper-triangular shear would add.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from mlipprops import stiffness, tensors
from mlipprops.engine import Engine, State
from mlipprops.parallel import Groups
from mlipprops.properties.relax import RelaxSettings, relax, relax_ions
from mlipprops.results import Checkpoints
from mlipprops.structure import lammps_cell, LammpsFrame
from mlipprops.system import System


@dataclass(frozen=True)
class ElasticSettings:
    # Two amplitudes by default: the smaller one gives C, the pair gives a measured truncation error. 0.5 % is
    # large enough that float32 models' stress noise (~1e-4 GPa) is < 1 % of the stress change even for a soft
    # molecular crystal (C ~ 5 GPa), and small enough that the O(d^2) error of central differences is ~0.01 %.
    amplitudes: tuple[float, ...] = (0.005, 0.01)
    relaxed_ions: bool = True
    force_tol: float = 1e-4


@dataclass(frozen=True)
class StrainTask:
    component: int  # Voigt index, input frame
    sign: int
    amplitude: float

    @property
    def name(self) -> str:
        return f"e{self.component + 1}{'+' if self.sign > 0 else '-'}{self.amplitude:g}"


def strain_tasks(amplitudes) -> list[StrainTask]:
    return [StrainTask(j, s, d) for d in sorted(amplitudes) for j in range(6) for s in (1, -1)]


def strained_stress(engine: Engine, frame: LammpsFrame, reference: State, task: StrainTask,
                    settings: ElasticSettings) -> tuple[np.ndarray, float]:
    """Voigt stress (input frame) of the reference state under the task's strain; and the largest force left."""
    eps = frame.Q @ tensors.voigt_strain_tensor(task.component, task.sign * task.amplitude) @ frame.Q.T
    deformed = reference.cell @ (np.eye(3) + eps)
    R = LammpsFrame.for_cell(deformed).Q  # the rotation that makes the deformed cell LAMMPS-shaped
    engine.restore_state(reference)
    engine.set_cell(lammps_cell(deformed), remap=True)
    if settings.relaxed_ions:
        fmax = relax_ions(engine, settings.force_tol)
    else:
        engine.evaluate()
        fmax = engine.max_force()
    sigma = frame.stress_to_input(R.T @ engine.stress() @ R)
    return tensors.stress_to_voigt(sigma), fmax


def elastic_constants(system: System, settings: ElasticSettings, relax_settings: RelaxSettings | None,
                      groups: Groups, log_path: str, checkpoints: Checkpoints,
                      progress=None) -> dict | None:
    """Run on every rank; returns the result record on world rank 0, None elsewhere."""
    engine = system.open_engine(groups.comm, log_path)
    if relax_settings is not None:
        outcome = relax(engine, relax_settings)
        relax_record = {"rounds": outcome.rounds, "converged": outcome.converged,
                        "residual_stress": tensors.stress_to_voigt(system.frame.stress_to_input(outcome.residual_stress)),
                        "max_force": outcome.max_force}
    else:
        engine.evaluate()
        relax_record = None
    reference = engine.save_state()
    energy = engine.energy()
    s0 = tensors.stress_to_voigt(system.frame.stress_to_input(engine.stress()))

    done = []
    for task in groups.my_tasks(strain_tasks(settings.amplitudes)):
        saved = checkpoints.load(task.name) if groups.leader else None
        saved = groups.comm.bcast(saved, root=0)
        if saved is None:
            stress, fmax = strained_stress(engine, system.frame, reference, task, settings)
            saved = {"stress": stress, "max_force": fmax}
            if groups.leader:
                checkpoints.save(task.name, saved)
        done.append((task, np.asarray(saved["stress"]), float(saved["max_force"])))
        if progress is not None:
            progress.update(1)
    version = engine.version()
    engine.close()

    everything = groups.gather(done)
    if everything is None:
        return None
    stresses = {}
    for task, stress, _ in everything:
        plus, minus = stresses.setdefault(task.amplitude, (np.zeros((6, 6)), np.zeros((6, 6))))
        (plus if task.sign > 0 else minus)[task.component] = stress
    est = stiffness.estimate(stresses, s0)
    return {
        "state": reference, "energy": energy, "reference_stress": s0, "relax": relax_record,
        "estimate": est, "max_force_strained": max(f for _, _, f in everything),
        "settings": asdict(settings), "lammps_version": version,
    }
