"""Elastic constants at temperature, three ways, all starting from NPT at (T, P) with a fully flexible cell:

- fluctuation: strain fluctuations of that NPT run, S = <V>/kT <de de> (Parrinello & Rahman 1982), C = S^-1;
- born: NVT at the mean NPT cell, C = <B>/V - V/kT Cov(sigma) + N kT/V K (stress fluctuations + Born term,
  Ray & Rahman 1984; compute born/matrix numdiff);
- deformation: NVT at the mean cell strained +-d along each Voigt direction, time-averaged stresses,
  C = (<s(+d)> - <s(-d)>) / 2d; the 12 runs go side by side on groups of MPI ranks.

Equilibration is detected on the volume (NPT) or the stress (NVT) series (Chodera 2016), errors come from a block
jackknife (fluctuation, born) or block averages (deformation). Every finished stage is checkpointed: a rerun
resumes after the last one.

One convention for the result: C is the Brugger tensor (second derivatives of the free energy in Lagrangian
strain) at the mean stress of the NPT run. born measures it directly; deformation and fluctuation measure the
stress-strain coefficients B, converted with tensors.brugger_constants (B = C at zero stress). Both are reported.
"""
from __future__ import annotations

import os
from dataclasses import asdict

import numpy as np

from mlipprops import fluctuation as fl
from mlipprops import outputs, tensors
from mlipprops.engine import SAMPLE_COLUMNS, Engine, State
from mlipprops.parallel import Groups
from mlipprops.properties.relax import relax_in_place
from mlipprops.results import Checkpoints
from mlipprops.structure import lammps_cell

_COL = {name: i for i, name in enumerate(SAMPLE_COLUMNS)}
_CELL = [_COL[k] for k in ("lx", "ly", "lz", "xy", "xz", "yz")]
_PRESS = [_COL[k] for k in ("pxx", "pyy", "pzz", "pyz", "pxz", "pxy")]  # Voigt order


def _rows(path: str) -> int:
    """Data rows of a sample file (0 when it is missing)."""
    try:
        with open(path) as fh:
            return sum(1 for line in fh if line.strip() and not line.startswith("#"))
    except OSError:
        return 0


def cells_from_samples(samples: np.ndarray) -> np.ndarray:
    lx, ly, lz, xy, xz, yz = samples[:, _CELL].T
    zero = np.zeros_like(lx)
    return np.stack([np.stack([lx, zero, zero], 1), np.stack([xy, ly, zero], 1), np.stack([xz, yz, lz], 1)], 1)


def stresses_from_samples(samples: np.ndarray, units) -> np.ndarray:
    """Voigt virial stresses (tensile positive) in energy/volume: the units fluctuation formulas need."""
    return units.stress_from_pressure(samples[:, _PRESS]) / units.gpa_per_energy_density


def born_matrices(born_samples: np.ndarray, volumes: np.ndarray | float) -> np.ndarray:
    """(T, 6, 6) Born matrices per volume (energy/volume) from compute born/matrix rows (step + 21 values)."""
    return tensors.born_from_rows(born_samples[:, 1:]) / np.reshape(volumes, (-1, 1, 1))


def natoms_kinetic(natoms: int, kT: float, volume: float) -> np.ndarray:
    return natoms * kT / volume * fl.KINETIC_VOIGT


def equilibrated(series: np.ndarray) -> tuple[int, dict]:
    """Start of the equilibrated part. Never more than half the run is discarded: a series that wants more was
    too short, which the record says (and the convergence data show)."""
    t0, g, n_eff = fl.detect_equilibration(series)
    capped = t0 > len(series) // 2
    t0 = min(t0, len(series) // 2)
    return t0, {"discarded_samples": int(t0), "statistical_inefficiency": float(g), "effective_samples": float(n_eff),
                "too_short": bool(capped)}


class Stages:
    """Runs MD stages once: a finished stage's state and samples come back from its checkpoint on a rerun."""
    STATE = ("cell", "positions", "images", "velocities")

    def __init__(self, engine: Engine, checkpoints: Checkpoints, out_dir: str, tag: str):
        self.engine, self.checkpoints, self.out_dir, self.tag = engine, checkpoints, out_dir, tag

    def path(self, name: str) -> str:
        return os.path.join(self.out_dir, f"{self.tag}{name}.txt")

    def run(self, name: str, **md) -> None:
        def stage():
            self.engine.md(**md)
            state = self.engine.save_state(velocities=True)
            return {k: getattr(state, k) for k in self.STATE}
        def files_intact(_record) -> bool:  # a finished stage whose time series was deleted or cut short reruns
            expected = md["steps"] // md["sample_every"]
            files = [(md["sample_path"], expected)]
            if md.get("born_every"):
                files.append((md["born_path"], md["steps"] // md["born_every"]))
            return all(_rows(path) >= rows for path, rows in files)
        done = self.checkpoints.once(self.tag + name, self.engine.comm, stage, files_intact)
        self.engine.restore_state(State(*(None if done[k] is None else np.asarray(done[k]) for k in self.STATE)))

    def samples(self, name: str) -> np.ndarray:
        return self.engine.read_samples(self.path(name))


def at_temperature(system, settings, run):
    """Run on every rank; returns the ElasticResult on world rank 0, None elsewhere."""
    from mlipprops.properties.elastic import ElasticResult

    s = settings
    groups = run.groups(12 if s.method == "deformation" else 1, system.natoms)
    relax_settings = s.relax()
    checkpoints = run.checkpoints("elastic_t", system, groups, asdict(s))
    with system.open_engine(groups.comm, run.log_path(groups)) as engine:
        result = _run(engine, system, s, relax_settings, groups, run.out, checkpoints)
        version = engine.version()
    if result is None:
        return None
    record = outputs.elastic_t_record(result, system, system.potential.units)
    run.stamp(record, system.potential, groups.count, version)
    if record["md"].get("thermalized") is False:
        from mlipprops.errors import warn
        warn("the strain-fluctuation C exceeds the Born term on the diagonal: the cell fluctuations did not "
             "thermalize (typical of a nearly harmonic crystal at low T); use --method born or deformation, or run "
             "longer at higher T")
    atoms = system.atoms.copy()
    atoms.set_cell(result["mean_cell"], scale_atoms=True)
    return ElasticResult(record, atoms)


def _run(engine: Engine, system, s, relax_settings, groups: Groups, out_dir: str, checkpoints: Checkpoints):
    units = system.potential.units
    kT = units.boltzmann * s.temperature
    if relax_settings is not None:
        relax_in_place(engine, relax_settings)  # start MD from the 0 K structure at the target pressure
    engine.set_velocities(s.temperature, s.seed)
    stages = Stages(engine, checkpoints, out_dir, f"g{groups.index}_" if groups.count > 1 else "")
    common = {"temperature": s.temperature, "timestep": s.timestep, "seed": s.seed,
              "pressure": units.pressure_from_stress(-s.pressure), "sample_every": s.sample_every}
    stages.run("npt_equilibration", steps=s.equil_steps, ensemble="npt", sample_path=stages.path("npt_equilibration"),
               **common)
    npt_steps = s.run_steps if s.method == "fluctuation" else max(s.equil_steps, s.run_steps // 5)
    # the fluctuation method also samples the Born term: C can never exceed it on the diagonal (the fluctuation
    # term only softens), which catches cell fluctuations that never thermalized (a nearly harmonic crystal)
    born = {"born_every": s.born_every, "born_path": stages.path("npt_born"), "born_delta": s.born_delta} \
        if s.method == "fluctuation" else {}
    stages.run("npt", steps=npt_steps, ensemble="npt", sample_path=stages.path("npt"), **born, **common)
    npt = stages.samples("npt")
    t0, npt_eq = equilibrated(npt[:, _COL["vol"]])
    npt = npt[t0:]
    cells = cells_from_samples(npt)
    mean_cell = cells.mean(axis=0)
    record = {"npt": {**npt_eq, "samples": len(npt), "mean_cell": mean_cell,
                      "mean_temperature": float(npt[:, _COL["temp"]].mean()),
                      # total stress: the sampled virial part plus the kinetic -NkT/V on the diagonal
                      "mean_stress_lammps_frame": units.stress_from_pressure(npt[:, _PRESS].mean(axis=0))
                      - np.r_[np.ones(3), np.zeros(3)] * system.natoms * kT / float(npt[:, _COL["vol"]].mean())
                      * units.gpa_per_energy_density}}

    # the mean total stress at (T, P), energy/volume: B and C differ by terms in it
    mean_stress = record["npt"]["mean_stress_lammps_frame"] / units.gpa_per_energy_density
    if s.method == "fluctuation":
        strains = fl.lagrangian_strain(cells, mean_cell)
        volume = float(npt[:, _COL["vol"]].mean())

        def stiffness(e):  # strain fluctuations under hydrostatic pressure: B, converted to the Brugger C
            return tensors.brugger_constants(np.linalg.inv(fl.strain_fluctuation_compliance(e, volume, kT)),
                                             mean_stress)
        C, C_err = fl.jackknife(stiffness, strains)
        record["convergence"] = fl.convergence(lambda e: fl.jackknife(stiffness, e), strains)
        born_bound = born_matrices(stages.samples("npt_born"), volume).mean(axis=0)
        born_bound += natoms_kinetic(system.natoms, kT, volume)
        violated = [i for i in range(6) if C[i, i] - 3 * C_err[i, i] > born_bound[i, i]]
        record["born_upper_bound"] = np.diag(born_bound) * units.gpa_per_energy_density
        record["thermalized"] = not violated
        record["production_steps"] = npt_steps
    else:
        # to the mean cell, then NVT: its stress samples the (T, P) state at fixed shape
        engine.set_cell(lammps_cell(mean_cell), remap=True)
        nvt = dict(common, pressure=0.0)
        stages.run("nvt_equilibration", steps=max(s.equil_steps // 2, 1), ensemble="nvt",
                   sample_path=stages.path("nvt_equilibration"), **nvt)
        if s.method == "born":
            C, C_err, extra = _born(stages, s, nvt, units, kT, system.natoms)
        else:
            C, C_err, extra = _deformation(stages, s, nvt, units, groups, kT, system.natoms)
            if C is None:
                return None
            C = tensors.brugger_constants(C, mean_stress)  # +-strain stress differences: B
        record.update(extra)
    if groups.world.Get_rank() != 0:
        return None
    # LAMMPS frame -> input frame; energy/volume -> report units
    Qt = system.frame.Q.T
    to_input = units.gpa_per_energy_density
    C_in = tensors.rotate_stiffness(tensors.symmetrize(C), Qt) * to_input
    err_in = tensors.rotate_stiffness_error(tensors.symmetrize(C_err), Qt) * to_input
    for row in record.get("convergence", []):
        row["estimate"] = tensors.rotate_stiffness(tensors.symmetrize(row["estimate"]), Qt) * to_input
        if "error" in row:
            row["error"] = tensors.rotate_stiffness_error(tensors.symmetrize(row["error"]), Qt) * to_input
    stress_in = tensors.stress_to_voigt(system.frame.stress_to_input(tensors.voigt_to_stress(mean_stress))) * to_input
    return {"C": C_in, "C_err": err_in, "mean_stress": stress_in, "details": record, "settings": _settings_record(s),
            "mean_cell": system.frame.vectors_to_input(mean_cell)}


def _settings_record(s) -> dict:
    """elastic.json's `settings` of a run at temperature, named as they have always been."""
    keys = ("temperature", "method", "pressure", "timestep", "equil_steps", "run_steps", "sample_every",
            "born_every", "seed", "born_delta")
    return {**{k: getattr(s, k) for k in keys}, "strain": s.md_strain}


def _born(stages: Stages, s, nvt: dict, units, kT: float, natoms: int):
    stages.run("nvt", steps=s.run_steps, ensemble="nvt", sample_path=stages.path("nvt"),
               born_every=s.born_every, born_path=stages.path("born"), born_delta=s.born_delta, **nvt)
    samples, born = stages.samples("nvt"), stages.samples("born")
    stress = stresses_from_samples(samples, units)
    t0, eq = equilibrated(stress[:, :3].sum(axis=1))
    volume = float(samples[0, _COL["vol"]])
    B = born_matrices(born, volume)
    B = B[int(np.searchsorted(born[:, 0], samples[t0, 0])):]
    stress = stress[t0:]
    born_mean, born_err = fl.block_mean_error(B)

    def fluct(x):
        return fl.stress_fluctuation_stiffness(np.zeros((6, 6)), x, volume, kT, natoms)
    F, F_err = fl.jackknife(fluct, stress)
    C = born_mean + F
    C_err = np.sqrt(born_err**2 + F_err**2)
    parts = {"born_term": born_mean, "fluctuation_and_kinetic_terms": F}
    n = len(stress)
    convergence = []
    for frac in (0.25, 0.5, 0.75, 1.0):
        k, kb = max(int(frac * n), 2), max(int(frac * len(B)), 1)
        convergence.append({"fraction": frac, "n_samples": k, "estimate": B[:kb].mean(axis=0) + fluct(stress[:k])})
    return C, C_err, {"nvt": {**eq, "samples": n, "born_samples": len(B), "volume": volume},
                      "terms": parts, "convergence": convergence, "production_steps": s.run_steps}


def _deformation(stages: Stages, s, nvt: dict, units, groups: Groups, kT: float, natoms: int):
    engine = stages.engine
    reference = engine.save_state(velocities=True)
    tasks = [(j, sign) for j in range(6) for sign in (1, -1)]
    done = []
    for j, sign in groups.my_tasks(tasks):
        # strains in LAMMPS' frame: rotated to the input frame with C at the end
        R = engine.deform(reference, tensors.voigt_strain_tensor(j, sign * s.md_strain))
        name = f"nvt_e{j + 1}{'+' if sign > 0 else '-'}"
        stages.run(name, steps=s.run_steps, ensemble="nvt", sample_path=stages.path(name), **nvt)
        stress = stresses_from_samples(stages.samples(name), units)
        t0, _ = equilibrated(stress[:, j])
        rotated = np.array([tensors.stress_to_voigt(R.T @ tensors.voigt_to_stress(x) @ R) for x in stress[t0:]])
        mean, err = fl.block_mean_error(rotated)
        done.append((j, sign, mean, err))
    everything = groups.gather(done)
    if everything is None:
        return None, None, None
    plus, minus = np.zeros((6, 6)), np.zeros((6, 6))
    ep, em = np.zeros((6, 6)), np.zeros((6, 6))
    for j, sign, mean, err in everything:
        (plus if sign > 0 else minus)[:, j] = mean
        (ep if sign > 0 else em)[:, j] = err
    # the sampled stress is the virial part; the kinetic part -NkT/V I changes with volume too, which adds
    # NkT/V to every normal-normal constant (seen: SW Si 1477 K, 1.0 GPa on C11 and C12 without it)
    volume = abs(np.linalg.det(reference.cell))
    C = (plus - minus) / (2 * s.md_strain)
    C[:3, :3] += natoms * kT / volume
    C_err = np.sqrt(ep**2 + em**2) / (2 * s.md_strain)
    C_err = np.sqrt(C_err**2 + ((C - C.T) / 2) ** 2)
    return C, C_err, {"strain": s.md_strain, "production_steps_per_strain": s.run_steps}
