"""The elastic constant tensor C_ij: at 0 K by finite +-deformation of the relaxed cell, or at temperature by
molecular dynamics (properties/elastic_t.py: born, fluctuation, deformation).

0 K: strains are defined in the input frame, mapped into LAMMPS' frame, applied in place (a restored reference
state, strained with change_box remap), ions relaxed, and the stress mapped back; so C comes out directly in the
frame of the input file (Engine.deform removes the spurious rotation an upper-triangular shear would add).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace

import numpy as np
from ase import Atoms

from mlipprops import outputs, stiffness, tensors
from mlipprops.errors import InputError
from mlipprops.parallel import is_root
from mlipprops.properties.relax import (RelaxSettings, continue_from, minimum_check, outcome_record,
                                        read_lower_structure, relax_in_place, relax_ions, take_lower_structure,
                                        write_lower_structure)

METHODS = ("born", "fluctuation", "deformation")
RELAX_FIELDS = ("pressure", "relax_mode", "stress_tol", "force_tol", "max_rounds", "minimizer")


@dataclass(frozen=True)
class ElasticSettings:
    # 0.5 % is large enough that float32 models' stress noise (~1e-4 GPa) is < 1 % of the stress change even for
    # a soft molecular crystal (C ~ 5 GPa), and small enough that the O(d^2) error of central differences is
    # small. None: decided from the potential (for_system): one amplitude for a deployed model (smooth: its
    # truncation error follows from the +- asymmetry, stiffness.py), 0.5 % and 1 % for a LAMMPS pair style (a
    # tabulated one has an O(d) error that only a second amplitude measures).
    strains: tuple[float, ...] | None = None
    # strains related by the crystal's point group give each other's stresses: run one of each set (cubic 2 of
    # the 6 directions, tetragonal 4) and complete C by symmetry
    use_symmetry: bool = True
    clamped_ion: bool = False
    no_relax: bool = False
    # box relaxation first (and the pressure of the MD at temperature)
    pressure: float = 0.0
    relax_mode: str | None = None
    stress_tol: float = 1e-3
    force_tol: float = 1e-4
    max_rounds: int = 30
    minimizer: str = "lbfgs"  # lbfgs or cg (RelaxSettings): the box relaxation, the strained cells' ions
    # at temperature (molecular dynamics) when temperature is set
    temperature: float | None = None
    method: str = "born"
    timestep: float | None = None   # None: 1 fs, 0.5 fs with hydrogen (lj 0.005)
    equil_steps: int = 10000
    run_steps: int = 50000
    sample_every: int = 10
    born_every: int = 100
    md_strain: float = 0.01         # deformation method
    seed: int = 4928459
    born_delta: float | None = None  # None: what the potential's precision resolves

    def relax(self) -> RelaxSettings | None:
        return None if self.no_relax else RelaxSettings(**{k: getattr(self, k) for k in RELAX_FIELDS})

    def for_system(self, system) -> "ElasticSettings":
        """The defaults that depend on the system: the relaxation mode from the cell; at temperature 1 fs steps
        (0.5 fs with hydrogen), and a Born finite-difference step that the potential's precision resolves: 1e-6 in
        float64, 1e-3 for a float32 model (measured, CuAu Allegro: 1e-6 leaves 2 % noise on C11, 1e-3 0.02 %;
        truncation 0.2 % at 1e-2)."""
        mode = RelaxSettings(relax_mode=self.relax_mode).for_system(system).relax_mode
        strains = self.strains or ((0.005,) if system.potential.model_info is not None else (0.005, 0.01))
        if self.temperature is None:
            return replace(self, relax_mode=mode, strains=tuple(sorted(set(strains))))
        units, model = system.potential.units, system.potential.model_info
        has_h = "H" in system.atoms.get_chemical_symbols()
        timestep = units.default_timestep / (2 if has_h else 1) if self.timestep is None else self.timestep
        if self.born_delta is not None:
            delta = self.born_delta
        else:
            delta = 1e-3 if model is not None and model.model_dtype == "float32" else 1e-6
        return replace(self, relax_mode=mode, timestep=timestep, born_delta=delta, strains=tuple(sorted(set(strains))))

    def check(self, system) -> None:
        RelaxSettings(**{k: getattr(self, k) for k in RELAX_FIELDS}).check(system)
        if not self.strains or min(self.strains) <= 0:
            raise InputError(f"--strains {','.join(map(str, self.strains))}: amplitudes must be positive")
        if max(self.strains) > 0.05:
            raise InputError(f"--strains {','.join(map(str, self.strains))}: amplitudes are fractions, not per cent "
                             "(0.005 is 0.5 %); above 5 % the response is not linear")
        if self.temperature is None:
            return
        if self.method not in METHODS:
            raise InputError(f"--method {self.method}: choose one of {', '.join(METHODS)}")
        if not self.temperature > 0:
            raise InputError(f"--temperature {self.temperature:g}: must be positive (omit it for 0 K)")
        if not self.timestep > 0:
            raise InputError(f"--timestep {self.timestep:g}: must be positive (in LAMMPS time units: ps for metal)")
        if not 0 < self.born_delta < 0.1:
            raise InputError(f"born_delta={self.born_delta:g}: the Born matrix's finite-difference strain step "
                             "must lie in (0, 0.1) (default: 1e-6, 1e-3 for a float32 model)")
        if not (self.sample_every >= 1 and self.born_every >= 1 and self.equil_steps >= 1):
            raise InputError("--sample-every, --born-every and --equil-steps must be at least 1")
        if self.run_steps < 20 * self.sample_every:
            raise InputError(f"--run-steps {self.run_steps}: at least 20 samples long (20 x --sample-every)")
        if self.method in ("born", "fluctuation") and self.run_steps < 20 * self.born_every:
            raise InputError(f"--run-steps {self.run_steps} gives fewer than 20 Born matrices: lower --born-every "
                             f"(now {self.born_every}) or run longer")
        if not 0 < self.md_strain <= 0.05:
            raise InputError(f"--md-strain {self.md_strain:g}: a fraction in (0, 0.05] (0.01 is 1 %)")

    def at_zero_kelvin(self) -> dict:
        """What a 0 K result depends on (the checkpoints' key): the MD settings do not change it."""
        return {"amplitudes": self.strains, "relaxed_ions": not self.clamped_ion, "force_tol": self.force_tol,
                "use_symmetry": self.use_symmetry, "minimizer": self.minimizer}


@dataclass
class ElasticResult:
    """elastic.json (`to_dict()`), with C and what follows from it as arrays; `atoms`: the relaxed structure (0 K)
    or the crystal in its mean cell at T."""
    record: dict
    atoms: Atoms | None = None
    minimum_atoms: Atoms | None = None  # a saddle: the lower structure relax's minimum check found (minimum.*)

    C = property(lambda self: np.array(self.record["C"]))
    C_err = property(lambda self: np.array(self.record["C_err"]))
    B = property(lambda self: np.array(self.record["B"]))
    S = property(lambda self: None if self.record["S"] is None else np.array(self.record["S"]))
    moduli = property(lambda self: self.record["moduli"])
    stability = property(lambda self: self.record["stability"])
    units = property(lambda self: self.record["units"])
    temperature = property(lambda self: self.record.get("temperature"))

    def to_dict(self) -> dict:
        return self.record

    def to_pymatgen(self):
        """pymatgen ElasticTensor (Voigt, the units of C, the input frame)."""
        from pymatgen.analysis.elasticity.elastic import ElasticTensor
        return ElasticTensor.from_voigt(self.C)

    def plot(self):
        """Heat map of C with its errors (matplotlib Figure; in Jupyter shown at the end of the cell)."""
        from mlipprops.plots import shown, stiffness_heatmap
        return shown(stiffness_heatmap(self.C, self.C_err, self.units))

    def plot_young(self):
        """Directional Young's modulus in three planes (matplotlib Figure; in Jupyter shown too)."""
        from mlipprops.plots import directional_young, shown
        if self.S is None:
            raise InputError("C is singular: no compliance, so no directional Young's modulus")
        return shown(directional_young(self.S, self.units))

    def save(self, out_dir: str) -> None:
        """elastic.json, C.csv, C.png (and the relaxed structure of a 0 K run)."""
        from mlipprops.results import write_atomic

        outputs.save(out_dir, "elastic.json", self.record, atoms=self.atoms)
        write_lower_structure(out_dir, self.minimum_atoms, self.record)
        if is_root():
            header = "# C_ij (" + self.units + "), Voigt order xx yy zz yz xz xy, frame of the input structure\n"
            rows = "\n".join(",".join(f"{v:.6f}" for v in row) for row in self.C)
            write_atomic(os.path.join(out_dir, "C.csv"), header + rows + "\n")
            from mlipprops.plots import stiffness_heatmap  # not plot(): saving shows nothing in Jupyter
            stiffness_heatmap(self.C, self.C_err, self.units).savefig(os.path.join(out_dir, "C.png"), dpi=120)

    @classmethod
    def from_files(cls, record: dict, folder: str) -> "ElasticResult":
        return cls(record, outputs.read_atoms(folder, record), read_lower_structure(folder, record))


# -- 0 K ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StrainPair:
    """+d and -d along one Voigt strain (input frame): run by one group, the -d cell starting from the mirror of
    the +d cell's ion relaxation (to first order the ions move linearly with the strain, so it starts close)."""
    component: int
    amplitude: float

    def name(self, sign: int) -> str:
        return f"e{self.component + 1}{'+' if sign > 0 else '-'}{self.amplitude:g}"


def strain_pairs(amplitudes, components) -> list[StrainPair]:
    return [StrainPair(j, d) for d in sorted(amplitudes) for j in components]


def strained_stress(engine, frame, reference, component: int, strain: float, settings: ElasticSettings,
                    guess: np.ndarray | None = None) -> dict:
    """The reference state under a strain, its ions relaxed: its Voigt stress (input frame); how the relaxation
    ended (largest force, 2-norm of the forces, converged, evaluations, the energy left to gain: the relaxation
    error, stiffness.relaxation_error) and the stress it started from (input frame); how the relaxation moved the ions (input frame, per
    atom) from the affinely strained positions, which the opposite strain starts from (`guess`: the displacements
    to start from, mirrored by the caller); and the energy of the strained cell (the saddle check)."""
    from mlipprops.engine import State
    from mlipprops.properties.relax import IonRelaxation

    eps = tensors.voigt_strain_tensor(component, strain)
    R = engine.deform(reference, frame.Q @ eps @ frame.Q.T)
    affine = engine.save_state()
    to_run = frame.Q.T @ R.T  # input frame -> this strained cell's LAMMPS frame (rows: x @ to_run)
    if guess is not None and not settings.clamped_ion:
        engine.restore_state(State(affine.cell, affine.positions + guess @ to_run, affine.images))
    start = None
    if settings.clamped_ion:
        engine.evaluate()
        forces = engine.forces()
        relaxation = IonRelaxation(float(np.linalg.norm(forces, axis=1).max(initial=0.0)),
                                   float(np.linalg.norm(forces)), True, 1)
    else:
        if settings.minimizer == "cg" and guess is None:  # the affine cell's stress (L-BFGS's first step has it)
            engine.evaluate()
            start = engine.stress()
        # cg: a strained cell starts within hundredths of an A of its minimum, and short line searches save
        # evaluations (measured on urea with its model, minimizer evaluations of the tensor: dmax 0.1 1264, 0.05
        # 1143, 0.02 1103; FIRE 3764, backtracking line search 3768)
        relaxation = relax_ions(engine, settings.force_tol, settings.minimizer,
                                dmax=0.02 if settings.minimizer == "cg" else 0.1)
        start = relaxation.start_stress if start is None else start
    moved = (engine.save_state().positions - affine.positions) @ np.linalg.inv(to_run)

    def to_input(stress: np.ndarray) -> np.ndarray:
        return tensors.stress_to_voigt(frame.stress_to_input(R.T @ stress @ R))

    return {"stress": to_input(engine.stress()), "max_force": relaxation.max_force,
            "force_norm": relaxation.force_norm, "converged": relaxation.converged,
            "evaluations": relaxation.evaluations, "remaining_energy": relaxation.remaining_energy,
            "start_stress": None if start is None else to_input(start), "ion_displacements": moved,
            "energy": engine.energy()}


# Repeated evaluations of the relaxed reference (besides the one that relaxation ends with): their scatter is the
# stress noise of one evaluation (zero for a potential that is a deterministic function of the positions). Two give
# 12 degrees of freedom, so an error bar of two of them covers 93 % (Student's t), for 2 of some 600 evaluations.
NOISE_REPEATS = 2


def reference_stresses(engine, frame, repeats: int = NOISE_REPEATS) -> np.ndarray:
    """The Voigt stress (input frame) of the engine's state, evaluated 1 + repeats times (the state as it is, then
    again)."""
    rows = [tensors.stress_to_voigt(frame.stress_to_input(engine.stress()))]
    for _ in range(repeats):
        engine.evaluate()
        rows.append(tensors.stress_to_voigt(frame.stress_to_input(engine.stress())))
    return np.array(rows)


def _at_zero_kelvin(system, settings: ElasticSettings, run) -> ElasticResult | None:
    from mlipprops import symmetry

    groups = run.groups(6 * len(settings.strains), system.natoms)
    relax_settings = settings.relax()
    checkpoints = run.checkpoints("elastic", system, groups, settings.at_zero_kelvin(),
                                  relax_settings.fingerprint() if relax_settings else None)
    with system.open_engine(groups.comm, run.log_path(groups)) as engine:
        if relax_settings is not None:
            outcome = relax_in_place(engine, relax_settings)
            relax_record = outcome_record(system, outcome)
        else:
            engine.evaluate()
            relax_record = None
        reference = engine.save_state()
        energy = engine.energy()
        units = system.potential.units
        repeated = reference_stresses(engine, system.frame)
        s0 = repeated.mean(axis=0)
        # stress noise of one evaluation: pooled over the six components (the repeats' degrees of freedom)
        noise_variance = float(((repeated - s0) ** 2).sum() / (6 * (len(repeated) - 1)))
        atoms = system.atoms_from_state(reference)
        # the symmetry of the relaxed crystal (every group relaxed the same crystal: the same plan)
        components, derived = symmetry.plan(symmetry.point_group(atoms)) if settings.use_symmetry else \
            (list(range(6)), [])
        mine = groups.my_tasks(strain_pairs(settings.strains, components))
        progress = run.progress(2 * len(mine), "strained cells")
        done = []
        for pair in mine:
            guess = None
            for sign in (1, -1):
                def strain_it():
                    return strained_stress(engine, system.frame, reference, pair.component, sign * pair.amplitude,
                                           settings, guess)
                # (a checkpoint from before the relaxation error was recorded has no remaining_energy: recomputed)
                saved = checkpoints.once(pair.name(sign), groups.comm, strain_it, lambda r: "remaining_energy" in r)
                moved = np.asarray(saved["ion_displacements"])
                # the -d cell starts from the mirror image: its ions move the opposite way to first order
                guess = -moved
                done.append({"pair": pair, "sign": sign, "name": pair.name(sign), "moved": float(
                    np.linalg.norm(moved, axis=1).max(initial=0.0)), **{k: saved[k] for k in (
                        "stress", "max_force", "force_norm", "converged", "evaluations", "remaining_energy", "start_stress",
                        "energy")}})
                if progress is not None:
                    progress.update(1)
        if progress is not None:
            progress.close()
        everything = groups.share(done)
        # what the ions' relaxation takes off each C_jj (clamped minus relaxed): from the +d cells, which start
        # affine; a strain the symmetry derives has its source's
        relaxation_stiffness = np.zeros(6)
        for c in everything:
            if c["sign"] > 0 and c["start_stress"] is not None:
                j = c["pair"].component
                drop = abs(float(np.asarray(c["start_stress"])[j] - np.asarray(c["stress"])[j])) / c["pair"].amplitude
                relaxation_stiffness[j] = max(relaxation_stiffness[j], drop)
        for eq in derived:
            relaxation_stiffness[eq.component] = relaxation_stiffness[eq.source]
        per_volume = units.gpa_per_energy_density / atoms.get_volume()  # energy -> report stress units
        stresses, variances, of_C = {}, {"stress_noise": {}, "relaxation": {}}, {"stress_noise": {}, "relaxation": {}}
        for amplitude in settings.strains:
            cells = {(c["pair"].component, c["sign"]): c for c in everything if c["pair"].amplitude == amplitude}
            by_strain = {key: np.asarray(c["stress"]) for key, c in cells.items()}
            noise = {key: np.full(6, noise_variance) for key in cells}
            relax = {key: stiffness.relaxation_error(relaxation_stiffness, c["remaining_energy"], 1.0 / per_volume)
                     ** 2 for key, c in cells.items()}
            for (j, sign), c in cells.items():
                # a cell that started at its minimum (the mirrored guess can land there) took no step to learn its
                # curvature from: its partner, the same modes under the opposite strain, stands in
                if (c["evaluations"] or 0) <= 1 and (j, -sign) in cells:
                    relax[(j, sign)] = np.maximum(relax[(j, sign)], relax[(j, -sign)])
            symmetry.complete(by_strain, derived)
            stresses[amplitude] = tuple(np.array([by_strain[(j, sign)] for j in range(6)]) for sign in (1, -1))
            for name, var in (("stress_noise", noise), ("relaxation", relax)):
                of_C[name][amplitude] = symmetry.stiffness_variance(var, derived, amplitude)
                symmetry.complete_variances(var, derived)
                variances[name][amplitude] = tuple(np.array([var[(j, sign)] for j in range(6)]) for sign in (1, -1))
        estimate = stiffness.estimate(stresses, s0, variances, np.full(6, noise_variance / len(repeated)), of_C)
        # the strains find a saddle whose soft mode they couple to; a rattled relaxation finds the others (one
        # group runs it, knowing from C whether the cell must relax too)
        minimum = None
        if relax_settings is not None and outcome.converged and groups.index == 0:
            engine.restore_state(reference)
            engine.evaluate()
            minimum = minimum_check(engine, relax_settings, outcome,
                                    stiff_cell=tensors.certainly_positive_definite(
                                        tensors.stress_strain_coefficients(estimate.C, s0), estimate.C_err))
        version = engine.version()
    if not is_root():
        return None
    saddle = stiffness.saddle_check(energy, [(f"e{c['pair'].component + 1}", c["pair"].amplitude, c["sign"],
                                              c["energy"], c["moved"]) for c in everything],
                                    atoms.get_volume() / units.gpa_per_energy_density, s0, len(atoms),
                                    stiffness.shallow_energy(units))
    unconverged = [{"cell": c["name"], "force_norm": c["force_norm"], "max_force": c["max_force"],
                    "evaluations": c["evaluations"]} for c in everything if not c["converged"]]
    lower = take_lower_structure(system, minimum, atoms)  # before the record, which holds `minimum`
    record = outputs.elastic_record({
        "estimate": estimate, "energy": energy, "reference_stress": s0,
        "relax": relax_record, "max_force_strained": max(c["max_force"] for c in everything), "saddle": saddle,
        "minimum": minimum,
        "settings": {"amplitudes": settings.strains, "relaxed_ions": not settings.clamped_ion}},
        atoms, units, system.source)
    record["stress_noise"] = {"per_evaluation": float(np.sqrt(noise_variance)), "evaluations": len(repeated),
                              "unit": units.stress_unit}
    record["unconverged_cells"] = unconverged
    record["strained_cells"] = {"run": [f"e{j + 1}" for j in components],
                                "by_symmetry": {f"e{eq.component + 1}": f"{'-' if eq.sign < 0 else ''}R e{eq.source + 1} R^T"
                                                for eq in derived},
                                "count": 2 * len(components) * len(settings.strains),
                                # force evaluations of each cell's ion relaxation (cg: not counted)
                                "evaluations": {c["name"]: c["evaluations"] for c in everything}}
    record["structure_files"] = outputs.structure_files("relaxed")
    run.stamp(record, system.potential, groups.count, version)
    from mlipprops.errors import warn
    for cell in unconverged:
        warn(f"the strained cell {cell['cell']} did not relax to --force-tol {settings.force_tol:g}: the forces left "
             f"have a 2-norm of {cell['force_norm']:.3g} (largest {cell['max_force']:.3g}) {units.force_unit}; its "
             "stress carries that error (unconverged_cells, C_err_parts.relaxation in elastic.json)")
    low = record["stability"].get("saddle")
    if low is not None:
        how = f"the {low['strain']} strain" if low["found_by"] == "strain" else "rattled and relaxed again, it"
        warn(f"the relaxed structure is not a minimum of the potential: {how} let the ions move "
             f"{low['max_ion_displacement']:.3g} A into a state {-low['energy_change_per_atom']:.3g} "
             f"{units.energy_unit}/atom lower; C is not a linear response (saddle_check, minimum_check in "
             "elastic.json)" + continue_from(minimum, run))
    return ElasticResult(record, atoms, lower)


def compute(system, settings: ElasticSettings, run) -> ElasticResult | None:
    if settings.temperature is None:
        return _at_zero_kelvin(system, settings, run)
    from mlipprops.properties.elastic_t import at_temperature
    return at_temperature(system, settings, run)


def elastic(atoms, potential, *, out: str | None = None, np: int | None = None, groups: int | None = None,
            resume: bool = True, quiet: bool = False, **settings) -> ElasticResult:
    """C_ij (GPa, Voigt, input frame) with error bars. Keywords as the CLI flags: strains ((0.005, 0.01)),
    clamped_ion, no_relax, pressure, relax_mode, stress_tol, force_tol, max_rounds; temperature (K) for MD with
    method ("born", "fluctuation", "deformation"), timestep, equil_steps, run_steps, sample_every, born_every,
    md_strain, seed. `out` keeps logs, checkpoints (a rerun resumes) and time series; `np` runs on that many MPI
    ranks; `groups` sets the MPI task groups."""
    from mlipprops.run import Options, execute, settings_from
    if "strains" in settings:
        settings["strains"] = tuple(sorted(set(settings["strains"])))
    return execute(sys.modules[__name__], atoms, potential, settings_from(ElasticSettings, settings),
                   Options(out=out, np=np, groups=groups, resume=resume, quiet=quiet))
