"""Elastic constants at temperature, three ways, all starting from NPT at (T, P) with a fully flexible cell:

- fluctuation: strain fluctuations of that NPT run, S = <V>/kT <de de> (Parrinello & Rahman 1982), C = S^-1;
- born: NVT at the mean NPT cell, C = <B>/V - V/kT Cov(sigma) + N kT/V K (stress fluctuations + Born term,
  Ray & Rahman 1984; compute born/matrix numdiff);
- deformation: NVT at the mean cell strained +-d along each Voigt direction, time-averaged stresses,
  C = (<s(+d)> - <s(-d)>) / 2d; the 12 runs go side by side on groups of MPI ranks.

Equilibration is detected on the volume (NPT) or the stress (NVT) series (Chodera 2016), errors come from a block
jackknife (fluctuation; born: one jackknife of Born and fluctuation terms together) or block averages of the +d - -d
stress difference (deformation: both runs start from one state with one seed, so their noise is correlated). The
NVT cell is the NPT mean cell with the crystal's symmetry imposed on its metric. Every finished stage is
checkpointed: a rerun resumes after the last one.

One convention for the result: C is the Brugger tensor (second derivatives of the free energy in Lagrangian
strain) at the mean stress of the NPT run. born measures it directly; deformation and fluctuation measure the
stress-strain coefficients B, converted with tensors.brugger_constants (B = C at zero stress). Both are reported.
"""
from __future__ import annotations

import os
from dataclasses import asdict

import numpy as np

from mlipprops import fluctuation as fl
from mlipprops import outputs, symmetry, tensors
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
    n_eff = record["md"].get("npt", {}).get("strain_products_effective_samples")
    if s.method == "fluctuation" and n_eff is not None and n_eff < FLUCTUATION_SAMPLES:
        from mlipprops.errors import warn
        warn(f"the strain fluctuations hold {n_eff:.0f} independent samples (their products decorrelate every "
             f"{record['md']['npt']['strain_products_statistical_inefficiency']:.0f} samples): C = S^-1 of so few "
             f"is biased high by about 7/{n_eff:.0f} and its error is rough; run at least "
             f"{FLUCTUATION_SAMPLES / n_eff:.0f}x longer (--run-steps), or use --method born")
    atoms = system.atoms.copy()
    atoms.set_cell(result["mean_cell"], scale_atoms=True)
    return ElasticResult(record, atoms)


# independent samples of the strain products below which the inverse of their covariance (6 x 6) is biased by more
# than 10 %: for Gaussian samples E[S^-1] = C n / (n - 7)
FLUCTUATION_SAMPLES = 70


def _run(engine: Engine, system, s, relax_settings, groups: Groups, out_dir: str, checkpoints: Checkpoints):
    units = system.potential.units
    kT = units.boltzmann * s.temperature
    if relax_settings is not None:
        relax_in_place(engine, relax_settings)  # start MD from the 0 K structure at the target pressure
    # the crystal's symmetry, as operations on fractional coordinates of the cell (the MD cell's too)
    state = engine.save_state()
    rotations = symmetry.lattice_rotations(state.cell, state.positions, system.atoms.get_atomic_numbers())
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
        # S is the mean of the products de_i de_j (product_mean_error): where a tenth of the run holds few of their
        # correlation times the jackknife's blocks are not independent and its error comes out several times too
        # small (Cu, 300 K, 20000 steps: 7 GPa on C11 against 34 between seeds). Their own error, propagated by
        # dC = -C dS C, is kept where it is larger
        err_S, g = product_mean_error(strains, inefficiency=True)
        Cs = np.linalg.inv(fl.strain_fluctuation_compliance(strains, volume, kT))
        C_err = np.maximum(C_err, np.sqrt(np.einsum("ai,jb,ij->ab", Cs**2, Cs**2, (err_S * volume / kT) ** 2)))
        record["npt"]["strain_products_statistical_inefficiency"] = float(g.max())
        record["npt"]["strain_products_effective_samples"] = float(len(strains) / g.max())
        record["convergence"] = fl.convergence(lambda e: fl.jackknife(stiffness, e), strains)
        born_bound = born_matrices(stages.samples("npt_born"), volume).mean(axis=0)
        born_bound += natoms_kinetic(system.natoms, kT, volume)
        violated = [i for i in range(6) if C[i, i] - 3 * C_err[i, i] > born_bound[i, i]]
        record["born_upper_bound"] = np.diag(born_bound) * units.gpa_per_energy_density
        record["thermalized"] = not violated
        record["production_steps"] = npt_steps
    else:
        # the mean cell's shape carries the NPT run's statistical error, and C follows the cell through the
        # third-order constants: Cu (108 atoms, 300 K, 6666 NPT steps) came out tetragonal by up to 2e-3, which
        # left 0.1-0.17 GPa of anisotropic stress in NVT and set C44, C55 and C66 up to 1.4 GPa (5 error bars)
        # apart. The crystal's symmetry fixes the shape: only the metric it allows is kept (the volume stays)
        symmetric = symmetry.symmetrize_cell(mean_cell, rotations)
        record["npt"]["symmetrized"] = {"operations": len(rotations), "strain_removed": float(np.abs(
            fl.lagrangian_strain(symmetric, lammps_cell(mean_cell))).max())}
        mean_cell = symmetric
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


def product_mean_error(x: np.ndarray, inefficiency: bool = False):
    """The standard error of the covariance of the columns of x, (T, k), element by element: the products
    p_ij = dx_i dx_j are a time series of their own, whose correlation time is that of the fluctuations' envelope
    (a barostat's oscillation integrates to nothing in the strains' own autocorrelation while its amplitude
    decorrelates slowly), so var(mean p_ij) = var(p_ij) g_ij / N with g_ij the statistical inefficiency of p_ij.
    With inefficiency: also the g_ij."""
    dx = np.asarray(x, float) - np.asarray(x, float).mean(axis=0)
    products = dx[:, :, None] * dx[:, None, :]
    k = dx.shape[1]
    g = np.array([[fl.statistical_inefficiency(products[:, i, j]) for j in range(k)] for i in range(k)])
    err = np.sqrt(products.var(axis=0) * g / len(dx))
    return (err, g) if inefficiency else err


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
    first = int(np.searchsorted(born[:, 0], samples[t0, 0]))
    B, born_steps = born_matrices(born, volume)[first:], born[first:, 0]
    stress = stress[t0:]

    def fluct(x):
        return fl.stress_fluctuation_stiffness(np.zeros((6, 6)), x, volume, kT, natoms)

    born_mean, F = B.mean(axis=0), fluct(stress)
    C = born_mean + F
    C_err = np.hypot(fl.block_mean_error(B)[1], fl.jackknife(fluct, stress)[1])  # the terms as if independent
    try:  # one jackknife of both terms over the same blocks of time: they come from the same configurations, and
        # their errors can add or cancel. Ten blocks leave the cancellation itself uncertain (SW Si at 1477 K: a
        # coupling that vanishes by symmetry came out at 5 joint errors): the larger of the two is kept
        C_err = np.maximum(C_err, fl.jackknife_in_time(lambda b, x: b.mean(axis=0) + fluct(x),
                                                       [(born_steps, B), (samples[t0:, 0], stress)])[1])
    except ValueError:  # too few Born samples for a block each
        pass
    # the fluctuation term is the mean of the stress products ds_i ds_j, which can decorrelate far slower than the
    # stresses (whose inefficiency sized the blocks): var(F_ij) = (V/kT)^2 var(p_ij) g_ij / N with g_ij that of
    # p_ij itself, added to the Born term's error; the larger error is kept (as for the strain fluctuations)
    C_err = np.maximum(C_err, np.hypot(fl.block_mean_error(B)[1], product_mean_error(stress) * volume / kT))
    parts = {"born_term": born_mean, "fluctuation_and_kinetic_terms": F}
    n = len(stress)
    convergence = []
    for frac in (0.25, 0.5, 0.75, 1.0):
        k, kb = max(int(frac * n), 2), max(int(frac * len(B)), 1)
        convergence.append({"fraction": frac, "n_samples": k, "estimate": B[:kb].mean(axis=0) + fluct(stress[:k])})
    # the errors hold while a block (a tenth of the run) is much longer than the correlation time: say how much
    blocks = {"count": 10, "samples_per_block": n // 10,
              "per_statistical_inefficiency": n / 10 / eq["statistical_inefficiency"]}
    return C, C_err, {"nvt": {**eq, "samples": n, "born_samples": len(B), "volume": volume, "blocks": blocks},
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
        samples = stages.samples(name)
        stress = stresses_from_samples(samples, units)
        t0, _ = equilibrated(stress[:, j])
        rotated = np.array([tensors.stress_to_voigt(R.T @ tensors.voigt_to_stress(x) @ R) for x in stress[t0:]])
        done.append((j, sign, samples[t0:, 0], rotated))
    everything = groups.gather(done)
    if everything is None:
        return None, None, None
    series = {(j, sign): (steps, rotated) for j, sign, steps, rotated in everything}
    C, C_err = np.zeros((6, 6)), np.zeros((6, 6))
    for j in range(6):
        # +d and -d start from one state with one thermostat seed, so their noise is correlated (it partly
        # cancels in the difference): the error is that of the difference, step by step, not of two means
        (steps_p, plus), (steps_m, minus) = series[(j, 1)], series[(j, -1)]
        _, ip, im = np.intersect1d(steps_p, steps_m, return_indices=True)
        mean, err = fl.block_mean_error(plus[ip] - minus[im])
        C[:, j], C_err[:, j] = mean / (2 * s.md_strain), err / (2 * s.md_strain)
    # the sampled stress is the virial part; the kinetic part -NkT/V I changes with volume too, which adds
    # NkT/V to every normal-normal constant (seen: SW Si 1477 K, 1.0 GPa on C11 and C12 without it)
    volume = abs(np.linalg.det(reference.cell))
    C[:3, :3] += natoms * kT / volume
    # C_ij and C_ji come from different runs: their difference counts where their errors cannot explain it
    asymmetry2, noise2 = ((C - C.T) / 2) ** 2, (C_err**2 + C_err.T**2) / 4
    C_err = np.sqrt(C_err**2 + np.where(asymmetry2 > 4 * noise2, asymmetry2 - noise2, 0.0))
    return C, C_err, {"strain": s.md_strain, "production_steps_per_strain": s.run_steps}
