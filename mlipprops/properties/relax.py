"""Box relaxation at a target pressure: rounds of fix box/relax + ion minimization until the residual stress
and the largest force are below the user's tolerances."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
from ase import Atoms

from mlipprops import minimize, outputs
from mlipprops.engine import Engine
from mlipprops.errors import InputError, LammpsError
from mlipprops.tensors import stress_to_voigt

# Which stress components each box/relax mode can bring to the target (Voigt indices).
MODE_COMPONENTS = {"iso": (), "aniso": (0, 1, 2), "tri": (0, 1, 2, 3, 4, 5)}
# Far beyond any crystal's stability (diamond's bulk modulus is 440 GPa): a pressure in these units is a mistake
MAX_PRESSURE_GPA = 1000.0
MINIMIZERS = ("lbfgs", "cg")


@dataclass(frozen=True)
class RelaxSettings:
    pressure: float = 0.0          # target, report units (GPa or lj), compressive positive
    relax_mode: str | None = None  # iso | aniso | tri; None: tri for a triclinic cell, aniso otherwise
    stress_tol: float = 1e-3       # report units
    force_tol: float = 1e-4        # LAMMPS force units
    max_rounds: int = 30
    # lbfgs: L-BFGS driven from Python, one force evaluation per step (mlipprops/minimize.py); cg: LAMMPS' CG with
    # fix box/relax. Force evaluations, cg -> lbfgs: urea with its model, the relaxation 165 -> 42, a strained
    # cell's ions 372 -> 59, the minimum check's walk 1194 -> 276; Cu3Au, CuAu float32 model: relax 247 -> 41
    minimizer: str = "lbfgs"
    skip_minimum_check: bool = False  # else: rattle the relaxed ions and relax again (minimum_check)

    def for_system(self, system) -> "RelaxSettings":
        from mlipprops.structure import is_orthogonal
        mode = self.relax_mode or ("aniso" if is_orthogonal(system.atoms.cell[:]) else "tri")
        return replace(self, relax_mode=mode)

    def fingerprint(self) -> dict:
        """What a relaxation inside another property depends on (that property's checkpoints keep it): the
        minimum check is the relax property's own."""
        record = asdict(self)
        del record["skip_minimum_check"]
        return record

    def check(self, system) -> None:
        if self.minimizer not in MINIMIZERS:
            raise InputError(f"--minimizer {self.minimizer}: choose {' or '.join(MINIMIZERS)}")
        if self.relax_mode not in MODE_COMPONENTS:
            raise InputError(f"--relax-mode {self.relax_mode}: choose iso, aniso or tri")
        if not (self.stress_tol > 0 and self.force_tol > 0 and self.max_rounds >= 1):
            raise InputError("--stress-tol and --force-tol must be positive and --max-rounds at least 1")
        if not system.potential.units.reduced and abs(self.pressure) > MAX_PRESSURE_GPA:
            raise InputError(f"--pressure {self.pressure:g} GPa is beyond any crystal's stability: the pressure "
                             "is in GPa (1 bar = 1e-4 GPa)")


@dataclass
class RelaxOutcome:
    rounds: int
    converged: bool
    energy: float
    stress: np.ndarray           # 3x3, LAMMPS frame, tensile positive
    residual_stress: np.ndarray  # stress minus the target, 3x3, LAMMPS frame
    max_force: float


def residual_measure(residual: np.ndarray, mode: str) -> float:
    """The part of the residual stress that `mode` can remove: the mean for iso, components otherwise."""
    if mode == "iso":
        return abs(np.trace(residual) / 3.0)
    return float(np.max(np.abs(stress_to_voigt(residual)[list(MODE_COMPONENTS[mode])])))


def measure(engine: Engine, target: np.ndarray, mode: str, rounds: int, settings: RelaxSettings) -> RelaxOutcome:
    """Read the current state; forces, energy and virial must be current (after evaluate() or minimize())."""
    stress = engine.stress()
    residual = stress - target
    fmax = engine.max_force()
    ok = residual_measure(residual, mode) <= settings.stress_tol and fmax <= settings.force_tol
    return RelaxOutcome(rounds, ok, engine.energy(), stress, residual, fmax)


def relax_in_place(engine: Engine, settings: RelaxSettings, vmax: float = 1e-3) -> RelaxOutcome:
    """Relax cell and ions in place. Returns the final state's numbers; the engine holds the relaxed state.
    vmax (cg): box/relax's largest fractional change of the cell per minimizer iteration (L-BFGS: its trust radius,
    1 % per step)."""
    target = -settings.pressure * np.eye(3)
    p_lammps = engine.units.pressure_from_stress(-settings.pressure)
    engine.evaluate()
    start = (engine.energy() / engine.natoms, abs(np.linalg.det(engine.cell())))
    outcome = measure(engine, target, settings.relax_mode, 0, settings)

    def done(forces, residual):  # L-BFGS: the 2-norm of all forces, as LAMMPS' ftol (a max-force criterion
        # stops a soft mode half relaxed)
        return (residual_measure(residual, settings.relax_mode) <= settings.stress_tol
                and np.linalg.norm(forces) <= settings.force_tol)

    for rounds in range(1, settings.max_rounds + 1):
        if outcome.converged:
            break
        previous = outcome
        try:
            if settings.minimizer == "lbfgs":
                minimize.relax_cell_and_ions(engine, settings.relax_mode, settings.pressure, done)
            else:
                engine.relax_box(settings.relax_mode, p_lammps, ftol=settings.force_tol, vmax=vmax)
                engine.minimize(settings.force_tol)
        except LammpsError:
            runaway(engine, *start, failed=True)
            raise
        runaway(engine, *start)
        outcome = measure(engine, target, settings.relax_mode, rounds, settings)
        if stalled(previous, outcome, settings.relax_mode, engine.natoms):
            break
    return outcome


def stalled(before: RelaxOutcome, after: RelaxOutcome, mode: str, natoms: int) -> bool:
    """A round that changed nothing: at the noise floor of a float32 model (forces good to ~1e-5 eV/A) the line
    search stops at once, and every further round would repeat it (Cu3Au: 30 rounds of 30 force evaluations)."""
    from mlipprops.stiffness import energy_noise
    return (not after.converged and abs(after.energy - before.energy) <= energy_noise(before.energy, natoms)
            and after.max_force > 0.5 * before.max_force
            and residual_measure(after.residual_stress, mode) > 0.5 * residual_measure(before.residual_stress, mode))


def runaway(engine: Engine, energy0: float, volume0: float, failed: bool = False) -> None:
    """A potential outside its training domain can collapse a crystal: the energy falls without end, the cell
    shrinks or blows up, atoms run into each other, and LAMMPS stops on a neighbour list overflow. Say so, with
    the numbers, instead of a message about neighbour lists."""
    from ase import Atoms
    from ase.neighborlist import neighbor_list

    try:
        state = engine.save_state()
        energy = engine.energy() / engine.natoms
    except Exception:  # noqa: BLE001 - LAMMPS may be past answering after its own error
        return
    volume = abs(np.linalg.det(state.cell))
    i, j, d = neighbor_list("ijd", Atoms(positions=state.positions, cell=state.cell, pbc=True), 0.6)
    ratio = volume / volume0
    # far beyond what relaxing even a poor start does (a sparse random packing of Cu: -1.1 eV/atom, volume x0.77)
    if energy < energy0 - 5.0 or not 0.3 < ratio < 3.0 or len(d) or failed and energy < energy0 - 1.0:
        contact = f", atoms {i[np.argmin(d)] + 1} and {j[np.argmin(d)] + 1} {d.min():.2f} A apart" if len(d) else ""
        raise InputError(runaway_message(energy0, energy, engine.units.energy_unit, ratio, contact))


def runaway_message(energy0: float, energy: float, energy_unit: str, ratio: float, contact: str = "") -> str:
    """What happened to the crystal, in the words that fit: a cell that grew 4.5 times did not collapse."""
    what = "blows this crystal apart" if ratio > 1.0 and not contact else "collapses this crystal"
    return (f"the relaxation ran away: energy {energy0:.3f} -> {energy:.3f} {energy_unit}/atom, volume x{ratio:.2f}"
            f"{contact}. The potential {what} (a model outside its training domain does this): check it on the "
            "structure with `mlipprops evaluate`, and the structure itself")


@dataclass
class IonRelaxation:
    """How an ion relaxation in a fixed cell ended: the largest force and the 2-norm of all forces left (the
    criterion), whether it met force_tol, the force evaluations it took (cg: not counted), the energy its
    quasi-Newton model says is left to gain (g.H.g / 2; cg: |g|^2 / 2 over minimize.CURVATURE, a rough guess) and
    the stress of the state it started from (report units, LAMMPS frame; cg: None)."""
    max_force: float
    force_norm: float
    converged: bool
    evaluations: int | None = None
    remaining_energy: float = 0.0
    start_stress: np.ndarray | None = None


def relax_ions(engine: Engine, force_tol: float, minimizer: str = "lbfgs", max_rounds: int = 5,
               dmax: float = 0.1) -> IonRelaxation:
    """Minimize the ions in a fixed cell until the 2-norm of the forces is below force_tol (or no progress).
    dmax: the largest move of an atom in one step (cg: in one line search)."""
    if minimizer == "lbfgs":
        outcome = minimize.relax_ions(engine, force_tol, max_step=dmax)
        forces = engine.forces()
        return IonRelaxation(float(np.linalg.norm(forces, axis=1).max(initial=0.0)), float(np.linalg.norm(forces)),
                             outcome.converged, outcome.evaluations, outcome.remaining_energy, outcome.start_stress)
    fmax = np.inf
    for _ in range(max_rounds):
        engine.minimize(force_tol, dmax=dmax)
        new = engine.max_force()
        if new <= force_tol or new >= 0.999 * fmax:
            fmax = new
            break
        fmax = new
    norm = float(np.linalg.norm(engine.forces()))
    return IonRelaxation(fmax, norm, norm <= force_tol, None, 0.5 * norm**2 / minimize.CURVATURE)


# The minimum check's rattle (length units, seeded): it breaks any symmetry that holds a saddle, and a harmonic well
# pulls the ions back from it
MINIMUM_CHECK_RATTLE = 0.01
MINIMUM_CHECK_SEED = 20261202
# cg: a saddle's slide can take the cell far (urea_al4: 9.8 %); at box/relax's usual 0.1 % per iteration that walk
# is most of the check's cost. Measured there (force evaluations of the check): vmax 0.001 757, 0.003 626, 0.01 598,
# 0.03 646; the state reached the same to 1e-7 eV/atom (urea_al6: 1102 at 0.001, 958 at 0.01).
MINIMUM_CHECK_VMAX = 0.01


def minimum_check(engine: Engine, settings: RelaxSettings, relaxed: RelaxOutcome,
                  stiff_cell: bool = False) -> dict:
    """Is the relaxed state a minimum? A structure can be a saddle held by its symmetry: its forces vanish by
    symmetry, so a minimizer started on it cannot leave it. Rattled ions break the symmetry; relaxed again (cell
    too, as before), they return to it from inside a well, or slide off a saddle into a state below it. Compared:
    the enthalpy E + P V at the target pressure, allowed the energy noise of two relaxations. The engine is left
    in the relaxed state.

    stiff_cell: the relaxed-ion stiffness of the cell is known to be positive definite (elastic: every eigenvalue
    of B above three error bars). The energy's Hessian in ions and strain is positive definite exactly when the
    ions' Hessian in the fixed cell and its Schur complement, the relaxed-ion stiffness, both are; so the ions are
    relaxed in the fixed cell only, and the cell follows only if they slide off. That skips the walk of the cell,
    most of the check's cost (urea_al6 rattled: 1140 force evaluations with the cell, 176 for the ions alone)."""
    from mlipprops import stiffness
    units = engine.units
    pressure = settings.pressure / units.gpa_per_energy_density  # energy per volume
    volume = abs(np.linalg.det(engine.cell()))
    state = engine.save_state()
    natoms = len(state.positions)
    allowed = stiffness.energy_noise(relaxed.energy, natoms)
    rng = np.random.default_rng(MINIMUM_CHECK_SEED)
    engine.restore_state(replace(state, positions=state.positions +
                                 rng.normal(0.0, MINIMUM_CHECK_RATTLE, state.positions.shape)))
    cell_relaxed = not stiff_cell
    if stiff_cell:
        relax_ions(engine, settings.force_tol, settings.minimizer)
        again = measure(engine, -settings.pressure * np.eye(3), settings.relax_mode, 0, settings)
        # off a saddle in the ions: the cell follows them down, for the depth that decides shallow or not
        cell_relaxed = again.energy - relaxed.energy < -allowed
    if cell_relaxed:
        again = relax_in_place(engine, settings, vmax=MINIMUM_CHECK_VMAX)
    after = engine.save_state()
    change = float(again.energy - relaxed.energy + pressure * (abs(np.linalg.det(after.cell)) - volume))
    # how far the ions went: fractional displacements (the drift of the whole crystal removed) in the relaxed cell
    moved = after.positions @ np.linalg.inv(after.cell) - state.positions @ np.linalg.inv(state.cell)
    moved = (moved - moved.mean(axis=0)) @ state.cell
    engine.restore_state(state)
    engine.evaluate()
    is_minimum = change >= -allowed
    # the state it slid into: written as minimum.* for the user to go on from (take_lower_structure pops it)
    lower = None if is_minimum else {"state": after, "energy": float(again.energy)}
    return {"rattle": MINIMUM_CHECK_RATTLE, "seed": MINIMUM_CHECK_SEED, "energy_change": change,
            "energy_change_per_atom": change / natoms, "allowed": allowed, "energy_unit": units.energy_unit,
            "length_unit": "sigma" if units.reduced else "A",
            "max_ion_displacement": float(np.linalg.norm(moved, axis=1).max()),
            "cell_change": float(np.abs(np.linalg.solve(state.cell, after.cell) - np.eye(3)).max()),
            "cell_relaxed": bool(cell_relaxed), "converged": again.converged, "is_minimum": bool(is_minimum),
            "shallow": None if is_minimum else bool(-change / natoms < stiffness.shallow_energy(units)),
            "lower_state": lower}


def take_lower_structure(system, check: dict | None, relaxed: Atoms) -> Atoms | None:
    """The lower structure the minimum check found (input frame), popped from `check`, which gains what a user
    needs to go on from it: its energy, its space group beside the relaxed one's, the files it is written to."""
    lower = check.pop("lower_state", None) if check is not None else None
    if lower is None:
        return None
    atoms = system.atoms_from_state(lower["state"])
    check["lower_structure"] = {
        "energy": lower["energy"], "energy_per_atom": lower["energy"] / len(atoms),
        "space_group": space_group(atoms), "relaxed_space_group": space_group(relaxed),
        "files": outputs.structure_files(MINIMUM_STEM),
        "continue": f"--structure {MINIMUM_STEM}.cif (the same potential and settings: relax it, or its elastic "
                    "constants)"}
    return atoms


MINIMUM_STEM = "minimum"
# spglib's tolerance (A) for naming a space group: the distortion a saddle slides into can be 0.01 A or less
SPACE_GROUP_SYMPREC = 1e-3


def space_group(atoms: Atoms) -> str:
    import spglib
    cell = (atoms.cell[:], atoms.get_scaled_positions(), atoms.get_atomic_numbers())
    return spglib.get_spacegroup(cell, symprec=SPACE_GROUP_SYMPREC) or "not found"


def continue_from(check: dict | None, run) -> str:
    """The sentence a warning about a saddle ends with: where the lower structure is, and how to go on."""
    lower = (check or {}).get("lower_structure")
    if lower is None:
        return ""
    import os
    where = os.path.join(run.out, f"{MINIMUM_STEM}.cif") if run.options.out else \
        f"the result's minimum_atoms ({MINIMUM_STEM}.cif where it is saved)"
    return (f". The lower structure ({lower['space_group']}, the relaxed one {lower['relaxed_space_group']}; "
            f"{lower['energy_per_atom']:.6f} {check['energy_unit']}/atom) is {where}: go on from it with "
            f"--structure {where if run.options.out else MINIMUM_STEM + '.cif'}")


def write_lower_structure(out_dir: str, atoms: Atoms | None, record: dict) -> None:
    """minimum.cif, .extxyz, .data beside the record (rank 0), when the minimum check found a lower state."""
    from mlipprops.parallel import is_root
    if atoms is not None and is_root():
        outputs.write_structures(out_dir, MINIMUM_STEM, atoms, record["provenance"]["potential"]["types"])


def read_lower_structure(folder: str, record: dict) -> Atoms | None:
    lower = (record.get("minimum_check") or {}).get("lower_structure")
    return None if lower is None else outputs.read_atoms(folder, {"structure_files": lower["files"]})


def outcome_record(system, outcome: RelaxOutcome) -> dict:
    """The relaxation in the input frame (Voigt), for elastic.json's `relaxed.relaxation`."""
    return {"rounds": outcome.rounds, "converged": outcome.converged, "max_force": outcome.max_force,
            "residual_stress": stress_to_voigt(system.frame.stress_to_input(outcome.residual_stress))}


@dataclass
class RelaxResult:
    """relax.json (`to_dict()`), and the relaxed structure in the input frame (`atoms`); when the relaxed
    structure is a saddle, the lower one the minimum check found (`minimum_atoms`, minimum.* in the folder)."""
    record: dict
    atoms: Atoms
    minimum_atoms: Atoms | None = None

    energy = property(lambda self: self.record["energy"])
    stress_GPa = property(lambda self: np.array(self.record["stress_GPa"]))
    residual_stress_GPa = property(lambda self: np.array(self.record["residual_stress_GPa"]))
    converged = property(lambda self: self.record["converged"])
    rounds = property(lambda self: self.record["rounds"])
    max_force = property(lambda self: self.record["max_force"])
    lattice = property(lambda self: self.record["lattice"])
    density_g_cm3 = property(lambda self: self.record["density_g_cm3"])
    minimum_check = property(lambda self: self.record.get("minimum_check"))

    def to_dict(self) -> dict:
        return self.record

    def save(self, out_dir: str) -> None:
        """relax.json and the relaxed structure (relaxed.cif, relaxed.extxyz, relaxed.data)."""
        outputs.save(out_dir, "relax.json", self.record, atoms=self.atoms)
        write_lower_structure(out_dir, self.minimum_atoms, self.record)

    @classmethod
    def from_files(cls, record: dict, folder: str) -> "RelaxResult":
        return cls(record, outputs.read_atoms(folder, record), read_lower_structure(folder, record))


def compute(system, settings: RelaxSettings, run) -> RelaxResult | None:
    with system.open_engine(run.world, run.log_path()) as engine:
        outcome = relax_in_place(engine, settings)
        state = engine.save_state()
        check = None if settings.skip_minimum_check or not outcome.converged else \
            minimum_check(engine, settings, outcome)
        version = engine.version()
    if run.world.Get_rank() != 0:
        return None
    atoms = system.atoms_from_state(state)
    frame, units = system.frame, system.potential.units
    record = outputs.relax_record(
        atoms, units, outcome.energy, stress_to_voigt(frame.stress_to_input(outcome.stress)),
        stress_to_voigt(frame.stress_to_input(outcome.residual_stress)), outcome.max_force, outcome.rounds,
        outcome.converged, _settings_record(settings))
    record["structure_files"] = outputs.structure_files("relaxed")
    record["source"] = system.source
    lower = take_lower_structure(system, check, atoms)
    record["minimum_check"] = check
    run.stamp(record, system.potential, 1, version)
    from mlipprops.errors import warn
    if check is not None and not check["is_minimum"]:
        warn(f"the relaxed structure is not a minimum of the potential: rattled by {check['rattle']:g} and relaxed "
             f"again, the ions moved {check['max_ion_displacement']:.3g} {check['length_unit']} into a state "
             f"{-check['energy_change_per_atom']:.3g} {check['energy_unit']}/atom lower"
             f"{' (a shallow double well)' if check['shallow'] else ''}: it is a saddle held by its symmetry "
             "(minimum_check in relax.json)" + continue_from(check, run))
    if not outcome.converged:
        how = ("raise --max-rounds, or loosen --stress-tol/--force-tol" if outcome.rounds >= settings.max_rounds
               else "its last round changed nothing, so the tolerances are below what this potential resolves: "
                    "loosen --force-tol/--stress-tol")
        warn(f"the relaxation did not converge in {outcome.rounds} rounds (max force {outcome.max_force:.2e}, "
             f"residual stress in relax.json): {how}")
    return RelaxResult(record, atoms, lower)


def _settings_record(settings: RelaxSettings) -> dict:
    """As relax.json has always named them."""
    record = asdict(settings)
    record["mode"] = record.pop("relax_mode")
    return record


def relax(atoms, potential, *, out: str | None = None, np: int | None = None, quiet: bool = False,
          **settings) -> RelaxResult:
    """Relax cell and ions at a target pressure. Keywords as the CLI flags: pressure (GPa, default 0),
    relax_mode (iso/aniso/tri; default tri for a triclinic cell, else aniso), stress_tol (1e-3 GPa), force_tol
    (1e-4 eV/A), max_rounds (30), skip_minimum_check (False: the relaxed ions are rattled and relaxed again to
    find out whether the structure is a minimum or a saddle held by its symmetry; relax.json `minimum_check`).
    `out`: keep logs there; `np`: MPI ranks."""
    import sys

    from mlipprops.run import Options, execute, settings_from
    return execute(sys.modules[__name__], atoms, potential, settings_from(RelaxSettings, settings),
                   Options(out=out, np=np, quiet=quiet))
