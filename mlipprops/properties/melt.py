"""Melting point from solid and liquid in contact, by one of two methods.

Interface pinning (method "pinning", the default for molecular crystals; mlipprops/pinning.py): at each of a few
temperatures the two-phase cell below is held at about half crystal by a harmonic bias on a density mode of the
crystal; the mean bias force is the chemical-potential difference of liquid and solid, and T_m is where it changes
sign. An equilibrium measurement: no front has to move, so tens of picoseconds per temperature suffice.

Coexistence (method "coexistence", the default for atomic crystals), the growth-rate search:
1. Bracket: a heating ramp of the bulk solid (superheats: an upper bound) and a cooling ramp of the liquid (an
   undercooled lower bound when it recrystallizes, else the ramp's start); --guess or --tmin/--tmax replace it.
2. Each trial temperature T: NPT of the bulk solid gives its lattice at T; the upper half (along the cell's third
   axis) is melted while the lower half is held (a molecular crystal's molecules held rigid while it melts, so
   that no bond breaks, then set free); then solid and liquid in contact run with the barostat on the
   normal axis only (the interface area stays the solid's at T) and a Langevin thermostat that carries away the
   latent heat. The count of solid-like atoms (bond orientational order) grows below T_m and shrinks above.
3. Trials run side by side on MPI task groups; the search narrows around the zero of the growth rate, and T_m
   with its error comes from a weighted straight-line fit of rate(T) (coexistence.melting_point).
4. A second estimate: the same two-phase cell run NPH (no thermostat) settles at T_m.
Every trial is checkpointed; a rerun of the same command skips finished trials.
"""
from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, replace

import numpy as np

from mlipprops import coexistence, outputs, pinning
from mlipprops.engine import Engine, State, encode_images, template
from mlipprops.errors import InputError
from mlipprops.fluctuation import block_mean_error
from mlipprops.order import shell_gap_cutoff, solid_like
from mlipprops.parallel import Groups
from mlipprops.properties.relax import RelaxSettings, relax_in_place
from mlipprops.results import Checkpoints, write_json
from mlipprops.system import System

COLUMNS = ("step", "temp", "pe", "vol", "lx", "ly", "lz", "press", "nsolid")
PINNING_COLUMNS = COLUMNS + ("q",)
METHODS = ("pinning", "coexistence")


@dataclass(frozen=True)
class MeltSettings:
    method: str | None = None      # "pinning" or "coexistence"; None: pinning for a molecular crystal, else coexistence
    pressure: float = 0.0          # report units (GPa, lj), compressive positive
    timestep: float | None = None  # None: 2 fs; with H 0.5 fs, or 1 fs when H weighs 4 amu or more; lj 0.01
    tmin: float | None = None
    tmax: float | None = None
    guess: float | None = None
    ramp_steps: int = 20000        # heating and cooling ramps
    prepare_steps: int = 3000      # NPT of the bulk solid at each trial temperature, and melting its upper half
    run_steps: int = 15000         # coexistence run per trial
    nph_steps: int = 20000
    sample_every: int = 50
    max_trials: int = 12
    target_error: float = 5.0      # K (reduced units for lj): stop when T_m is known this well
    seed: int = 20260
    order_cutoff: float = 0.0      # 0: between the first and second neighbour shells of the crystal
    order_bonds: int = 0           # 0: 60 % of the crystal's coordination (7 of 12 for fcc)
    order_species: str | None = None  # molecular crystals: one atom per molecule; None: decided from the crystal
    # heavier H (amu) allows a longer timestep: T_m is an equilibrium property of classical nuclei, so the
    # masses change how fast coexistence evolves, not the temperature at which neither phase grows
    hydrogen_mass: float | None = None
    # lateral length of the two-phase cell (the interface normal, the third axis, is 3 times longer); None: 3 x
    # the potential's reach, at least 14 A (5 sigma in lj units); 0: the cell as given
    cell_length: float | None = None
    no_relax: bool = False
    relax_mode: str | None = None
    stress_tol: float = 1e-3
    force_tol: float = 1e-4
    max_rounds: int = 30
    minimizer: str = "lbfgs"

    def relax(self) -> RelaxSettings | None:
        return None if self.no_relax else RelaxSettings(self.pressure, self.relax_mode, self.stress_tol,
                                                        self.force_tol, self.max_rounds, self.minimizer)

    def for_system(self, system) -> "MeltSettings":
        """Defaults decided from the crystal: the MD step from its elements, the sublattice of a molecular crystal
        (the element nearest the molecules' centre of mass), the relaxation mode."""
        from mlipprops import molecules

        units = system.potential.units
        if "H" in system.atoms.get_chemical_symbols():
            timestep = units.default_timestep * (1.0 if (self.hydrogen_mass or 0) >= 4.0 else 0.5)
        else:
            timestep = 2 * units.default_timestep
        mode = RelaxSettings(relax_mode=self.relax_mode).for_system(system).relax_mode
        # pinning needs no front to move: the only route for molecular crystals, whose fronts move less than a
        # molecular layer in the hundreds of picoseconds a CPU affords; atomic crystals keep the growth-rate search,
        # measured against their published melting points (pinning is offered, and compared, in benchmarks/)
        method = self.method or ("pinning" if molecules.is_molecular(system.atoms) else "coexistence")
        return replace(self, timestep=timestep if self.timestep is None else self.timestep, relax_mode=mode,
                       order_species=self.order_species or molecules.centre_species(system.atoms), method=method)

    def check(self, system) -> None:
        self.relax().check(system) if not self.no_relax else None
        if self.method is not None and self.method not in METHODS:
            raise InputError(f"--method {self.method}: one of {', '.join(METHODS)}")
        positive = {"--run-steps": self.run_steps, "--ramp-steps": self.ramp_steps,
                    "--prepare-steps": self.prepare_steps, "--max-trials": self.max_trials}
        for flag, value in positive.items():
            if value < 1:
                raise InputError(f"{flag} {value}: must be at least 1")
        if not self.timestep > 0:
            raise InputError(f"--timestep {self.timestep:g}: must be positive (in LAMMPS time units: ps for metal)")
        if self.nph_steps < 0 or not self.target_error > 0:
            raise InputError("--nph-steps must be >= 0 and --target-error positive")
        if self.run_steps < 10 * self.sample_every:
            raise InputError(f"--run-steps {self.run_steps}: at least {10 * self.sample_every} steps (10 samples)")
        if self.method == "pinning" and self.run_steps < 25 * self.sample_every:
            raise InputError(f"--run-steps {self.run_steps}: pinning needs at least {25 * self.sample_every} steps "
                             "(20 samples of the bias force after equilibration)")
        if self.tmin is not None and self.tmax is not None and not 0 < self.tmin < self.tmax:
            raise InputError(f"--tmin {self.tmin:g} --tmax {self.tmax:g}: need 0 < tmin < tmax")
        if self.guess is not None and not self.guess > 0:
            raise InputError(f"--guess {self.guess:g}: a temperature, positive")
        if self.hydrogen_mass is not None and not self.hydrogen_mass > 0:
            raise InputError(f"--hydrogen-mass {self.hydrogen_mass:g}: a mass in amu, positive")

    def two_phase_repeat(self, system) -> tuple[int, int, int] | None:
        """How to repeat the crystal into the elongated two-phase cell (area ~ cell_length^2, normal along the
        third axis); None: use it as given."""
        if self.cell_length == 0:
            return None
        lateral = self.cell_length or (5.0 if system.potential.units.reduced else 14.0)
        a, b, c = system.atoms.cell.lengths()
        return (max(1, int(np.ceil(lateral / a))), max(1, int(np.ceil(lateral / b))),
                max(2, int(np.ceil(3 * lateral / c))))

    def per_trial(self) -> dict:
        """What a finished trial depends on (its checkpoint's key): how long the search goes on does not, nor the
        method (a trial and a pinning run are checkpointed under other names)."""
        return {k: v for k, v in asdict(self).items() if k not in ("max_trials", "target_error", "nph_steps", "tmin",
                                                                   "tmax", "guess", "method")}

    def per_ramp(self) -> dict:
        """What the heating and cooling ramps depend on: not the trials' own lengths."""
        return {k: v for k, v in self.per_trial().items() if k not in ("run_steps", "prepare_steps")}


def order_parameter(system: System, settings: MeltSettings) -> dict:
    """Cutoff and bond threshold of the solid-like criterion from the crystal itself."""
    from ase.neighborlist import neighbor_list

    atoms = system.atoms
    mask = np.ones(len(atoms), bool)
    if settings.order_species:
        mask = np.array(atoms.get_chemical_symbols()) == settings.order_species
        if not mask.any():
            raise InputError(f"--order-species {settings.order_species}: no such atoms in {system.source}")
    sub = atoms[mask]
    i, d = neighbor_list("id", sub, 12.0)
    cutoff = settings.order_cutoff or shell_gap_cutoff(i, d)
    z = np.bincount(i[d < cutoff], minlength=len(sub)).min()
    bonds = settings.order_bonds or max(3, int(round(0.6 * z)))
    return {"cutoff": float(cutoff), "min_bonds": int(bonds), "coordination": int(z),
            "sublattice": settings.order_species, "n_order": int(mask.sum())}


class MeltEngine:
    """The melting runs over one Engine: sampled MD with the solid-like count."""

    def __init__(self, engine: Engine, system, settings: MeltSettings, order: dict, out_dir: str, tag: str):
        self.engine, self.system, self.s, self.order = engine, system, settings, order
        self.out_dir, self.tag = out_dir, tag
        self.units = system.potential.units
        from mlipprops import molecules
        # a molecular crystal must still be the same molecules after melting: checked after every trial
        self.molecules = molecules.composition(system.atoms) if molecules.is_molecular(system.atoms) else None
        # ... and its liquid half is made with the molecules rigid: their molecule ids, for fix rigid/small
        self.labels = molecules.molecule_labels(system.atoms) if self.molecules is not None else None
        if self.labels is not None:
            engine.label_molecules(self.labels + 1)
        self.half_fixes = ""  # the fixes that hold the lower half and melt or cool the upper one, while they act
        if order["sublattice"]:  # neighbours from the sublattice alone: counted in Python (mlipprops/order.py)
            cutoff, bonds = order["cutoff"], order["min_bonds"]
            ids = np.flatnonzero(np.array(system.atoms.get_chemical_symbols()) == order["sublattice"]) + 1
            engine.observe("mlp_nsolid", settings.sample_every, ids,
                           lambda positions, cell: solid_like(positions, cell, cutoff, bonds).sum())
        else:
            engine.command(template("melt_order", cutoff=order["cutoff"], min_bonds=order["min_bonds"]))
        # interface pinning: the density mode Q of the order parameter's particles, sampled as v_mlp_q (the same
        # numbers fix rhok biases: checked before each pinning run), at the in-plane wave vector chosen later
        self.pinning = settings.method == "pinning"
        self.wavevector: tuple[int, int] | None = None
        if self.pinning:
            ids = (np.flatnonzero(np.array(system.atoms.get_chemical_symbols()) == order["sublattice"]) + 1
                   if order["sublattice"] else np.arange(1, system.natoms + 1))
            self.order_ids = ids
            engine.command(f"group mlp_order id {id_ranges(ids)}")
            engine.observe("mlp_q", settings.sample_every, ids, self.density_mode)
        self.p_lammps = self.units.pressure_from_stress(-settings.pressure)
        if settings.hydrogen_mass and "H" in system.potential.type_symbols:
            engine.set_mass(system.potential.type_symbols.index("H") + 1, settings.hydrogen_mass)
        self.dt = settings.timestep
        engine.set_timestep(self.dt)
        self.superheated = None  # where the heating ramp melted the bulk crystal, once known
        self.superheated_volume = None  # and the crystal's volume as it melted

    def density_mode(self, positions: np.ndarray, cell: np.ndarray) -> float:
        return pinning.density_mode(positions, pinning.rhok_vector(*self.wavevector, cell)) if self.wavevector else 0.0

    def sampled_run(self, name: str, steps: int, fixes: str, **values) -> np.ndarray:
        """`steps` of MD with the fixes of template `fixes`, sampled every sample_every steps into <name>.txt
        (columns COLUMNS, PINNING_COLUMNS for pinning)."""
        path = os.path.join(self.out_dir, f"{self.tag}{name}.txt")
        values = {"pressure": self.p_lammps, "tdamp": 100 * self.dt, **values}
        self.engine.run_with(steps, template(fixes, **values),
                             template("melt_sampling", every=self.s.sample_every, path=path,
                                      extra=" v_mlp_q" if self.pinning else ""))
        return self.engine.read_samples(path)

    def ramp(self, name: str, t0: float, t1: float) -> np.ndarray:
        return self.sampled_run(name, self.s.ramp_steps, "melt_ramp", t0=t0, t1=t1, pdamp=1000 * self.dt,
                                seed=self.s.seed)

    def melt_upper_half(self, hot: float, seed: int, expansion: float | None) -> float:
        """Melt the upper half of the cell at `hot`, the lower half held, up to `expansion` x its volume (None: no
        limit); returns the solid-like fraction. Atoms: the half free to expand along z up to that, then at fixed
        volume. Molecules: rigid, in the half expanded that much beforehand (melt_upper_half_molecules)."""
        if self.labels is not None:
            return self.melt_upper_half_molecules(hot, expansion or LIQUID_EXPANSION)
        e, steps = self.engine, self.s.prepare_steps
        volume_limit = 0.5 * (1 + expansion) * abs(np.linalg.det(e.cell())) if expansion else None
        self.half_fixes = template("melt_split", hot=float(hot), tdamp=100 * self.dt, seed=seed,
                                   z_half=float(0.5 * e.cell()[2, 2]), pressure=self.p_lammps, pdamp=1000 * self.dt)
        e.command(self.half_fixes)
        done, chunk = 0, max(steps // 30, 1)
        while done < steps:
            if volume_limit is not None and abs(np.linalg.det(e.cell())) >= volume_limit:
                e.command(template("melt_hold"))
                chunk, volume_limit = steps - done, None
            n = min(chunk, steps - done)
            e.command(f"run {n}")
            done += n
        e.command("reset_timestep 0\nrun 0 post no")
        return e.variable("mlp_nsolid") / self.order["n_order"]

    def melt_upper_half_molecules(self, hot: float, expansion: float) -> float:
        """The molecules whose centre lies in the upper half (along the third cell vector) moved apart to
        `expansion` x that half's volume, each one whole, then run rigid at `hot` (Nose-Hoover chains) for
        prepare_steps; returns the solid-like fraction."""
        e = self.engine
        state = e.save_state(velocities=True)
        top, cell, positions = expanded_upper_half(state.positions, state.cell, self.labels,
                                                   self.system.atoms.get_masses(), expansion)
        shifts = np.floor(positions @ np.linalg.inv(cell) + 1e-9)  # images that put every atom in the new cell
        e.restore_state(State(cell, positions, np.array(encode_images(shifts)), state.velocities))
        self.half_fixes = template("melt_split_molecules", ids=id_ranges(np.flatnonzero(top) + 1), hot=float(hot),
                                   tdamp=100 * self.dt)
        e.command(self.half_fixes)
        e.command(f"run {self.s.prepare_steps}\nreset_timestep 0\nrun 0 post no")
        return e.variable("mlp_nsolid") / self.order["n_order"]

    def cool_upper_half(self, temperature: float, seed: int) -> None:
        """The melted upper half brought to `temperature` (its molecules free), the lower half set moving: the
        two-phase cell of a trial."""
        self.engine.unfix(self.half_fixes)
        self.half_fixes = template("melt_cool", temperature=float(temperature), tdamp=100 * self.dt, seed=seed,
                                   cool_steps=max(self.s.prepare_steps // 2, 1), pressure=self.p_lammps,
                                   pdamp=1000 * self.dt)
        self.engine.command(self.half_fixes)
        self.split_off()

    def split_off(self) -> None:
        """Undo melt_upper_half's fixes and groups."""
        self.engine.unfix(self.half_fixes)
        self.engine.command(template("melt_unsplit"))

    def coexistence(self, reference: State, temperature: float, seed: int, name: str, nph: bool = False):
        """Prepare a two-phase cell at `temperature` from the solid reference, run it, return its samples."""
        self.two_phase(reference, temperature, seed, name)
        if nph:  # NPH alone is the adiabatic two-phase estimate: the temperature settles at T_m
            return self.sampled_run(name, self.s.nph_steps, "melt_nph", pdamp=1000 * self.dt)
        return self.sampled_run(name, self.s.run_steps, "melt_coexistence", temperature=temperature,
                                pdamp=1000 * self.dt, seed=seed)

    def pinned(self, reference: State, temperature: float, seed: int, name: str, partial) -> dict:
        """A pinning run at `temperature`: the two-phase cell held at half the crystal's density mode by a harmonic
        bias; delta_mu from the mean bias force (mlipprops/pinning.py). The run goes in ten segments, each saved
        with `partial` (load/save of one record): a run of hours (a molecular crystal with a model) resumes after
        the last finished segment. (Each segment restarts the barostat's own velocity at zero: a small kick ten
        times per run, which the equilibration cut and the error estimate absorb.)"""
        e, s, n = self.engine, self.s, self.order["n_order"]
        saved = partial.load()
        if saved is None:
            lattice = self.two_phase(reference, temperature, seed, name)
            tail = lattice[int(0.4 * len(lattice)):]
            q_solid, q_solid_err = (float(v) for v in block_mean_error(tail[:, PINNING_COLUMNS.index("q")], 5))
            solid_volume = float(tail[:, PINNING_COLUMNS.index("vol")].mean())
            kT = self.units.boltzmann * temperature
            kappa = pinning.spring_constant(kT, q_solid, (solid_volume / n) ** (1 / 3), e.cell()[2, 2])
            values = {"group": "mlp_order", "nx": self.wavevector[0], "ny": self.wavevector[1], "kappa": kappa,
                      "anchor": 0.5 * q_solid, "temperature": float(temperature), "seed": seed,
                      "pdamp": 1000 * self.dt, "pressure": self.p_lammps, "tdamp": 100 * self.dt}
            self.check_rhok(template("melt_pinning", **values))
            saved = {"values": values, "q_solid": [q_solid, q_solid_err], "done": 0, "samples": []}
        else:
            e.restore_state(State(*(np.array(saved["state"][k]) for k in ("cell", "positions", "images",
                                                                          "velocities"))))
        values, (q_solid, q_solid_err) = saved["values"], saved["q_solid"]
        kappa = values["kappa"]
        segment = max(-(-s.run_steps // 10), s.sample_every)
        while saved["done"] < s.run_steps:
            steps = min(segment, s.run_steps - saved["done"])
            part = self.sampled_run(name + "_segment", steps, "melt_pinning", **{**values, "seed": seed + saved["done"]})
            part[:, 0] += saved["done"]
            saved["samples"] += part[0 if not saved["samples"] else 1:].tolist()  # a segment's first row: the last's end
            saved["done"] += steps
            state = e.save_state(velocities=True)
            saved["state"] = {k: getattr(state, k).tolist() for k in ("cell", "positions", "images", "velocities")}
            partial.save(saved)
        samples = np.array(saved["samples"])
        if e.comm.Get_rank() == 0:
            np.savetxt(os.path.join(self.out_dir, f"{self.tag}{name}.txt"), samples, fmt="%.10g",
                       header=" ".join(PINNING_COLUMNS))
            segment_file = os.path.join(self.out_dir, f"{self.tag}{name}_segment.txt")
            if os.path.isfile(segment_file):  # the last segment's samples, now in the file above
                os.remove(segment_file)
        d = pinning.chemical_potential_difference(samples[:, PINNING_COLUMNS.index("q")], values["anchor"], kappa,
                                                  q_solid, q_solid_err, n)
        fraction = float(samples[int(0.2 * len(samples)):, COLUMNS.index("nsolid")].mean() / n)
        record = {"temperature": temperature, "seed": seed, "delta_mu": d.value, "delta_mu_err": d.error,
                  "order_parameter": d.q_mean, "order_parameter_err": d.q_error, "anchor": values["anchor"],
                  "kappa": kappa, "q_solid": q_solid, "q_solid_err": q_solid_err, "samples": d.samples,
                  "independent_samples": d.independent, "stationary": d.stationary, "crystal_fraction": fraction,
                  "mean_temperature": float(samples[:, COLUMNS.index("temp")].mean()),
                  "samples_file": f"{self.tag}{name}.txt"}
        if self.molecules is not None:
            from mlipprops import molecules
            record["molecules_whole"] = molecules.intact(self.molecules, self.system.atoms_from_state(e.save_state()))
        # a point belongs in the fit when the bias held a two-phase cell in a steady state of whole molecules
        problems = [why for bad, why in ((not d.stationary, "Q still drifting"),
                                         (not 0.15 < fraction < 0.85, f"crystal fraction {fraction:.2f}: the bias did "
                                                                      "not hold the interface"),
                                         (record.get("molecules_whole") is False, "molecules broke"))
                    if bad]
        record["used"] = not problems
        record["problems"] = problems
        return record

    def check_rhok(self, fixes: str) -> None:
        """fix rhok's |rho_k| equals the Q sampled from Python (pinning.density_mode) on the current state: the
        bias acts on the order parameter whose mean is read."""
        e = self.engine
        e.command(fixes + "\nvariable mlp_rhok_q equal f_mlp_rhok[3]\nrun 0 post no")
        lammps_q = e.variable("mlp_rhok_q")
        e.unfix(fixes)
        e.command("variable mlp_rhok_q delete")
        state = e.save_state()
        ours = self.density_mode(state.positions[self.order_ids - 1], state.cell)
        if not abs(lammps_q - ours) <= 1e-6 * max(1.0, ours):
            raise RuntimeError(f"fix rhok's |rho_k| {lammps_q:.8g} differs from the sampled Q {ours:.8g}: the wave "
                               "vector or the group is not the one analysed")

    def two_phase(self, reference: State, temperature: float, seed: int, name: str) -> np.ndarray:
        """The two-phase cell at `temperature` from the solid reference (solid lattice at T, upper half melted and
        brought to T); returns the samples of the bulk solid's NPT run."""
        e, s = self.engine, self.s
        e.restore_state(reference)
        e.set_velocities(temperature, seed)
        # a fast barostat (100 steps): the lattice must be averaged over many cell oscillations
        lattice = self.sampled_run(name + "_solid", s.prepare_steps, "melt_ramp", t0=temperature, t1=temperature,
                                   pdamp=100 * self.dt, seed=seed)
        # the solid's mean cell at T (last 60 % of the run): scale x, y, z of the cell vectors to it
        cell = e.cell()
        tail = lattice[int(0.4 * len(lattice)):]
        mean = np.array([tail[:, COLUMNS.index(k)].mean() for k in ("lx", "ly", "lz")])
        e.set_cell(cell * (mean / np.diag(cell)))
        solid = e.save_state(velocities=True)
        # above the temperature where the bulk crystal melted on heating: below it, a crystal (a molecular one
        # above all) may keep its order for longer than the melting stage lasts
        # Without ramps (pinning at given temperatures) rigid molecules start at 3 T: urea's half, expanded 1.4x,
        # stayed ordered for 3000 steps at 630, 819 and 1065 K (solid-like 0.75; from 420 K); rigid, they cannot
        # break however hot
        hot = max((3.0 if self.labels is not None and self.superheated is None else 1.5) * temperature,
                  1.2 * (self.superheated or 0.0))
        volume = abs(np.linalg.det(e.cell()))
        # the upper half expands no further than to the density at which the heating ramp melted the crystal
        expansion = max(self.superheated_volume / volume, 1.0) if self.superheated_volume else None
        for _ in range(3):  # melt the upper half; hotter if it did not melt (a held crystal templates it)
            fraction = self.melt_upper_half(hot, seed, expansion)
            if fraction < 0.7:
                break
            self.split_off()
            e.restore_state(solid)
            hot *= 1.3
        else:  # a trial whose liquid half is still crystal would report a growing solid: never silently
            raise InputError(f"the upper half of the two-phase cell did not melt at up to {hot / 1.3:.0f} in "
                             f"{s.prepare_steps} steps (solid-like fraction {fraction:.2f} at {temperature:g}): raise "
                             "--prepare-steps (molecular crystals melt slowly)")
        # (far below T_m the liquid may recrystallize while it cools: the trial then shows a growing solid)
        self.cool_upper_half(temperature, seed)
        return lattice


# Volume of the upper half of a molecular crystal, melted with rigid molecules, over the solid's, where the heating
# ramp did not say at what density the crystal melts. Measured on urea (2x2x4, bundled model, 1.5 ps at 1150 K):
# expanded 1.25x its rigid molecules stayed ordered (solid-like 0.75 of the cell), 1.4x melted in 2 of 3 runs (0.59,
# 0.50; the third 0.91, then 0.75 and 0.56 on two more tries); the liquid at the trial temperature finds its density.
LIQUID_EXPANSION = 1.4


def expanded_upper_half(positions: np.ndarray, cell: np.ndarray, labels: np.ndarray, masses: np.ndarray,
                        factor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The atoms of the molecules whose centre of mass lies in the upper half of the cell along its third vector
    (a mask), and the cell and positions after that half is stretched by `factor` along it: each of its molecules
    moved whole, by (u - 1/2)(factor - 1) c at centre fraction u; the lower half unchanged, the third cell vector
    (1 + factor)/2 times as long. Every molecule comes out whole, its centre inside the new cell."""
    from mlipprops import molecules

    x = molecules.whole(positions, cell, labels)
    u = molecules.centres(x, cell, labels, masses, made_whole=True) @ np.linalg.inv(cell)[:, 2]
    shift = -np.floor(u)  # whole cells that bring each centre into [0, 1)
    u += shift
    upper = u >= 0.5
    shift += np.where(upper, (u - 0.5) * (factor - 1), 0.0)
    stretched = np.array(cell, float)
    stretched[2] *= 0.5 * (1 + factor)
    return upper[labels], stretched, x + shift[labels, None] * cell[2]


def id_ranges(ids: np.ndarray) -> str:
    """Sorted atom ids as LAMMPS group ranges: 1:4 7 9:10."""
    breaks = np.flatnonzero(np.diff(ids) != 1) + 1
    return " ".join(f"{r[0]}:{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in np.split(ids, breaks))


def times_ps(samples: np.ndarray, timestep: float) -> np.ndarray:
    return samples[:, 0] * timestep


def ramp_crossing(samples: np.ndarray, n_order: int, rising: bool, column: str = "temp") -> float | None:
    """Temperature (or another column) at which the solid fraction crosses 1/2 during a ramp (first crossing), or
    None."""
    frac = samples[:, COLUMNS.index("nsolid")] / n_order
    value = samples[:, COLUMNS.index(column)]
    hits = np.flatnonzero(frac > 0.5) if rising else np.flatnonzero(frac < 0.5)
    if not hits.size:
        return None
    k = hits[0]
    window = value[max(k - 5, 0):k + 5]  # the instantaneous temperature is noisy: average around the crossing
    return float(window.mean())


def compute(system, settings: MeltSettings, run) -> "MeltResult | None":
    """Run on every rank; returns the MeltResult on world rank 0, None elsewhere."""
    from mlipprops.structure import make_supercell

    repeat = settings.two_phase_repeat(system)
    if repeat is not None:
        system = System(make_supercell(system.atoms, repeat), system.potential, system.source)
    order = order_parameter(system, settings)
    model = system.potential.model_info
    if model is not None and order["cutoff"] > model.r_max and not order["sublattice"]:
        # LAMMPS' orientorder/atom takes neighbours from the pair style's list: widen that list, not the model
        system = replace(system, potential=replace(system.potential, neighbor_cutoff=order["cutoff"]))
    groups = run.groups(4, system.natoms)
    checkpoints = run.checkpoints("melt", system, groups, settings.per_trial())
    ramp_checkpoints = run.checkpoints("melt_ramps", system, groups, settings.per_ramp())
    what = "pinning temperatures" if settings.method == "pinning" else "coexistence trials"
    progress = run.progress(settings.max_trials, what, unit="T")
    try:
        with system.open_engine(groups.comm, run.log_path(groups)) as engine:
            version = engine.version()
            try:
                record = _search(engine, system, settings, order, groups, run.out, checkpoints, ramp_checkpoints,
                                 progress)
            except NoBracket as exc:  # the trials are the user's evidence: kept in one file beside the error
                if not run.options.out:  # a temporary folder: nothing to keep
                    raise
                path = os.path.join(run.out, NoBracket.FILE)
                message = f"{exc}; the trials are in {path}"
                if groups.world.Get_rank() == 0:
                    write_json(path, run.stamp({"property": "melting point", "error": message, **exc.record,
                                                "settings": asdict(settings)}, system.potential, groups.count, version))
                raise NoBracket(message, exc.record) from None
    finally:
        if progress is not None:
            progress.close()
    if groups.world.Get_rank() != 0:
        return None
    record = outputs.melt_record(record, system, system.potential.units)
    run.stamp(record, system.potential, groups.count, version)
    if record["molecules_intact"] is False:
        from mlipprops.errors import warn
        warn("molecules broke apart in some trials (molecules_intact in melt.json): the potential is not "
             "trustworthy for the liquid, and T_m is not that of the molecular crystal")
    return MeltResult(record, {f: np.loadtxt(os.path.join(run.out, f), ndmin=2) for f in _series_files(record)})


def _search(engine, system, s: MeltSettings, order: dict, groups: Groups, out_dir: str, checkpoints: Checkpoints,
            ramp_checkpoints: Checkpoints, progress) -> dict:
    relax_settings = s.relax()
    if relax_settings is not None:
        relax_in_place(engine, relax_settings)
    reference = engine.save_state()
    runner = MeltEngine(engine, system, s, order, out_dir, f"g{groups.index}_" if groups.count > 1 else "")
    record = {"method": s.method, "order_parameter": order}
    lower, upper = s.tmin, s.tmax
    if s.guess is not None:
        lower = lower if lower is not None else 0.85 * s.guess
        upper = upper if upper is not None else 1.15 * s.guess
    # pinning with the temperatures given needs no ramps: its liquid half is made hot enough by retries
    if s.method == "pinning" and lower is not None and upper is not None:
        record["ramps"] = None
    else:
        lower, upper = _bracket_from_ramps(runner, reference, system, s, order, groups, ramp_checkpoints, progress,
                                           record, lower, upper)
    record["bracket_start"] = [lower, upper]
    search = _pinning_search if s.method == "pinning" else _coexistence_search
    record.update(search(runner, reference, system, s, order, groups, checkpoints, progress, lower, upper, record))
    checked = [t.get("molecules_intact", t.get("molecules_whole")) for t in record["trials"]]
    checked = [c for c in checked if c is not None]
    record.update({"settings": asdict(s), "molecules_intact": all(checked) if checked else None})
    return record


def _bracket_from_ramps(runner, reference, system, s, order, groups, ramp_checkpoints, progress, record, lower,
                        upper) -> tuple[float, float]:
    """Heating and cooling ramps of the bulk crystal: where it melts and at what density (each two-phase cell's
    liquid half is made from them), and the bracket where none was given."""
    units = system.potential.units
    default_lo, default_hi = (0.1, 3.0) if units.reduced else (100.0, 3000.0)
    t0 = s.tmin if s.tmin is not None else (0.5 * s.guess if s.guess else default_lo)
    t1 = s.tmax if s.tmax is not None else (2.0 * s.guess if s.guess else default_hi)
    if progress is not None:
        progress.set_postfix_str(f"heating and cooling ramps ({2 * s.ramp_steps} steps)")
    ramps = _shared(groups, ramp_checkpoints, f"ramps_{t0:g}_{t1:g}",
                    lambda: _ramps(runner, reference, order, s, t0, t1))
    record["ramps"] = ramps
    runner.superheated, runner.superheated_volume = ramps["heating_melts_at"], ramps.get("volume_at_melting")
    if ramps["start_solid_fraction"] < 0.7:
        raise InputError(f"{system.source} does not look crystalline at {ramps['t_start']:g} (solid-like fraction "
                         f"{ramps['start_solid_fraction']:.2f}): give a crystal, or check --order-species")
    if upper is None and ramps["heating_melts_at"] is None:
        raise InputError(f"the solid did not melt on heating to {ramps['t_end']:g}: raise --tmax")
    if ramps["heating_melts_at"] is not None and ramps["liquid_solid_fraction"] > 0.3:
        raise InputError(f"the solid-like criterion does not tell the liquid from the crystal (liquid: "
                         f"{ramps['liquid_solid_fraction']:.2f} solid-like): set --order-cutoff/--order-bonds")
    if lower is None:  # an undercooled liquid that froze bounds T_m from below; else half the superheated melting
        lower = ramps["cooling_crystallizes_at"] or max(ramps["t_start"], 0.5 * (ramps["heating_melts_at"] or 0))
    if upper is None:
        upper = ramps["heating_melts_at"]
    return lower, upper


def _side_by_side(groups: Groups, temperatures: list[float], run_one, progress) -> list[dict]:
    """Run `run_one(T)` for each temperature, as many at a time as there are task groups; every group gets all
    results, sorted by temperature."""
    results: list[dict] = []
    for first in range(0, len(temperatures), groups.count):
        batch = temperatures[first:first + groups.count]
        mine = batch[groups.index] if groups.index < len(batch) else None
        result = run_one(mine) if mine is not None else None
        if progress is not None and mine is not None:
            progress.update(1)
        results += [r for r in groups.world.allgather(result if groups.leader else None) if r is not None]
    return sorted(results, key=lambda r: r["temperature"])


def _coexistence_search(runner, reference, system, s, order, groups, checkpoints, progress, lower, upper,
                        record) -> dict:
    """Growth-rate trials side by side, narrowing around the zero of the rate, until T_m is known to the target."""
    trials: list[dict] = []
    while len(trials) < s.max_trials:
        todo = coexistence.next_temperatures(trials, lower, upper, groups.count)[:groups.count]
        if not todo:
            break
        new = _side_by_side(groups, todo, lambda T: _trial(runner, reference, T, s, order, checkpoints, groups),
                            progress)
        trials = sorted(trials + new, key=lambda r: r["temperature"])
        lo, hi = coexistence.bracket(trials)
        if (lo is None or hi is None) and coexistence.molecules_lost(trials):
            break  # the reason is given below
        if lo is None and all(t["verdict"] == coexistence.MELTS for t in trials) and min(
                t["temperature"] for t in trials) <= lower + 1e-9:
            lower = max(lower - (upper - lower), 0.3 * lower)  # melts everywhere: look lower
        if hi is None and all(t["verdict"] == coexistence.GROWS for t in trials) and max(
                t["temperature"] for t in trials) >= upper - 1e-9:
            raise InputError(f"the solid still grows at {upper:g}, the top of the bracket: raise --tmax")
        if progress is not None:
            progress.set_postfix_str(", ".join(f"{r['temperature']:g}: {r['verdict']}" for r in new))
        # done when T_m is known to the target and trials sit close on both sides of it, two at least on each
        # (the rate is linear in T only near T_m, so a fit through far trials alone is not trusted)
        if lo is not None and hi is not None:
            Tm, err = coexistence.melting_point(trials)
            if err <= s.target_error and abs(hi - lo) <= 4 * s.target_error and coexistence.both_sides(trials, Tm):
                break
    record["trials"] = trials
    unit = "" if system.potential.units.reduced else " K"
    lo, hi = coexistence.bracket(trials)
    if lo is None or hi is None:
        broken = sum(t.get("molecules_intact") is False for t in trials)
        hot = f"{runner.superheated or 0:.0f}{unit}"
        why = (f"; molecules broke in {broken} of {len(trials)} trials: the potential does not hold them together in "
               f"the liquid half (made above {hot}, where the heating ramp melted the crystal), and such a liquid "
               "cannot recrystallize: a limit of the model, not of the settings" if broken else "")
        if coexistence.molecules_lost(trials) and len(trials) < s.max_trials:
            why += " (stopped there: more trials cannot help)"
        grew = "the solid grew in no trial" if lo is None else f"the solid grew up to {lo:g}{unit}"
        melted = "melted in none" if hi is None else f"melted from {hi:g}{unit} up"
        raise NoBracket(f"no bracket found within {len(trials)} trials ({grew}, {melted}; the others undecided "
                        f"within their errors){why}; finished trials are kept: rerun with --guess, --tmin/--tmax, "
                        "more --max-trials or longer --run-steps", record)
    reason = coexistence.unsupported(trials, s.target_error)
    if reason is not None:
        raise NoBracket(f"no T_m supported by {len(trials)} trials: {reason}; finished trials are kept", record)
    Tm, err = coexistence.melting_point(trials)
    nph = _shared(groups, checkpoints, f"nph_{Tm:.1f}",
                  lambda: _nph(runner, reference, Tm, s)) if s.nph_steps else None
    return {"method": "coexistence", "T_m": Tm, "T_m_err": err, "nph": nph, "trials": trials}


def _pinning_search(runner, reference, system, s, order, groups, checkpoints, progress, lower, upper,
                    record) -> dict:
    """delta_mu at three temperatures across [lower, upper], then more where the fit needs them (beyond the end
    towards the zero, or on both sides of it), until T_m is supported and known to the target."""
    nx, ny, q0 = pinning.choose_wavevector(reference.positions[runner.order_ids - 1], reference.cell)
    runner.wavevector = (nx, ny)
    record["pinning"] = {"wavevector_indices": [nx, ny], "q_at_0K": q0, "particles": order["n_order"],
                         "particle": f"molecule ({order['sublattice']} atom)" if order["sublattice"] else "atom"}
    points: list[dict] = []
    while len(points) < s.max_trials:
        # two at a time at least: one on each side of the fitted zero
        todo = pinning.next_temperatures(points, lower, upper, 3 if not points else max(2, groups.count),
                                         s.target_error)
        todo = todo[:s.max_trials - len(points)]
        if not todo:
            break
        new = _side_by_side(groups, todo, lambda T: _pinned(runner, reference, T, s, checkpoints, groups), progress)
        points = sorted(points + new, key=lambda r: r["temperature"])
        if progress is not None:
            progress.set_postfix_str(", ".join(f"{p['temperature']:g}: {p['delta_mu']:+.2g}" for p in new))
        if _pinning_verdict(points, s.target_error)[1] is None:
            break
    record["trials"] = record["pinning"]["temperatures"] = points
    crossing, reason = _pinning_verdict(points, s.target_error)
    if crossing is not None:
        record["pinning"]["fit"] = asdict(crossing)
    if reason is not None:
        skipped = [f"{p['temperature']:g} ({'; '.join(p['problems'])})" for p in points if not p["used"]]
        left_out = f"; left out of the fit: {', '.join(skipped)}" if skipped else ""
        raise NoBracket(f"no T_m supported by {len(points)} pinning temperatures: {reason}{left_out}; finished "
                        "temperatures are kept: rerun with --tmin/--tmax, more --max-trials or longer --run-steps",
                        record)
    return {"method": "pinning", "T_m": crossing.T_m, "T_m_err": crossing.T_m_err, "nph": None}


def _pinning_verdict(points: list[dict], target_error: float):
    """(the crossing of delta_mu(T) or None, why it is not supported or None)."""
    used = [p for p in points if p["used"]]
    crossing = pinning.fit_crossing(used) if len(used) >= 2 else None
    return crossing, pinning.unsupported(used, crossing, target_error)


def _pinned(runner: MeltEngine, reference: State, temperature: float, s: MeltSettings, checkpoints: Checkpoints,
            groups: Groups) -> dict:
    name = f"pinning_{temperature:.1f}"
    seed = s.seed + int(round(temperature * 10))
    partial = Partial(checkpoints, name + "_partial", groups.comm)
    return checkpoints.once(name, groups.comm, lambda: runner.pinned(reference, temperature, seed, name, partial))


class Partial:
    """The checkpoint of an unfinished task: read on the group's rank 0 and shared, written by it."""

    def __init__(self, checkpoints: Checkpoints, name: str, comm):
        self.checkpoints, self.name, self.comm = checkpoints, name, comm

    def load(self) -> dict | None:
        return self.comm.bcast(self.checkpoints.load(self.name) if self.comm.Get_rank() == 0 else None, root=0)

    def save(self, record: dict) -> None:
        if self.comm.Get_rank() == 0:
            self.checkpoints.save(self.name, record)


class NoBracket(InputError):
    """The trials did not bracket T_m. Carries the record so far (ramps, trials), written as melt_no_bracket.json."""

    FILE = "melt_no_bracket.json"

    def __init__(self, message: str, record: dict):
        super().__init__(message)
        self.record = record


def _shared(groups: Groups, checkpoints: Checkpoints, name: str, compute):
    """A step every group needs the result of: group 0 runs it (or its checkpoint is read), all receive it."""
    def on_group_zero():
        return groups.world.bcast(compute() if groups.index == 0 else None, root=0)
    return checkpoints.once(name, groups.world, on_group_zero)


def _ramps(runner: MeltEngine, reference: State, order: dict, s: MeltSettings, t0: float, t1: float) -> dict:
    e = runner.engine
    e.restore_state(reference)
    e.set_velocities(t0, s.seed)
    heat = runner.ramp("heating_ramp", t0, t1)
    if s.tmax is not None and ramp_crossing(heat, order["n_order"], rising=False) is None:
        # a --tmax below where the crystal melts when heated (a molecular crystal superheats far: urea 960 K on a
        # 4 ps ramp): heat on to twice it, since every trial makes its liquid half from the melt's temperature and
        # density (without them urea's half did not melt at 410 K, even 2.5x hotter)
        heat = np.vstack([heat, runner.ramp("heating_ramp_continued", t1, 2.0 * t1)])
        t1 = 2.0 * t1
    melts_at = ramp_crossing(heat, order["n_order"], rising=False)
    volume = ramp_crossing(heat, order["n_order"], rising=False, column="vol")
    cool = runner.ramp("cooling_ramp", t1, t0)  # from the melt just made
    # freezing means something only if the heating ramp made a liquid
    freezes_at = ramp_crossing(cool, order["n_order"], rising=True) if melts_at is not None else None
    nsolid = COLUMNS.index("nsolid")
    return {"t_start": t0, "t_end": t1, "heating_melts_at": melts_at, "volume_at_melting": volume,
            "cooling_crystallizes_at": freezes_at,
            "start_solid_fraction": float(heat[:5, nsolid].mean() / order["n_order"]),
            "liquid_solid_fraction": liquid_fraction(cool, order["n_order"])}


def liquid_fraction(cooling: np.ndarray, n_order: int, window: int = 5) -> float:
    """Solid-like fraction of the liquid the heating ramp made: the least ordered stretch (`window` samples) of the
    cooling ramp. Not its first samples: a crystal that melted late in the heating ramp goes on melting at the
    start of the cooling ramp, and a criterion that cannot tell liquid from crystal stays high throughout."""
    frac = cooling[:, COLUMNS.index("nsolid")] / n_order
    k = min(window, len(frac))
    return float(np.convolve(frac, np.ones(k) / k, mode="valid").min())


def _trial(runner: MeltEngine, reference: State, temperature: float, s: MeltSettings, order: dict,
           checkpoints: Checkpoints, groups: Groups) -> dict:
    name = f"trial_{temperature:.1f}"
    return checkpoints.once(name, groups.comm, lambda: _run_trial(runner, reference, temperature, s, order, name))


def _run_trial(runner: MeltEngine, reference: State, temperature: float, s: MeltSettings, order: dict,
               name: str) -> dict:
    seed = s.seed + int(round(temperature * 10))
    samples = runner.coexistence(reference, temperature, seed, name)
    times, n_solid = times_ps(samples, s.timestep), samples[:, COLUMNS.index("nsolid")]
    g = coexistence.growth_rate(times, n_solid, order["n_order"])
    drifting, drift = coexistence.volume_drifting(times, samples[:, COLUMNS.index("vol")], n_solid, order["n_order"])
    record = {"temperature": temperature, "seed": seed, "rate": g.rate, "rate_error": g.error, "verdict": g.verdict,
              "volume_drift": drift, "volume_drifting": drifting,
              "start_fraction": g.start_fraction, "end_fraction": g.end_fraction,
              "mean_temperature": float(samples[:, COLUMNS.index("temp")].mean()),
              "samples_file": f"{runner.tag}{name}.txt"}
    if runner.molecules is not None:
        from mlipprops import molecules
        after = runner.system.atoms_from_state(runner.engine.save_state())
        record["molecules_intact"] = molecules.intact(runner.molecules, after)
    return record


def _nph(runner: MeltEngine, reference: State, Tm: float, s: MeltSettings) -> dict:
    samples = runner.coexistence(reference, Tm, s.seed + 7, "nph", nph=True)
    temp = samples[len(samples) // 2:, COLUMNS.index("temp")]
    frac = samples[:, COLUMNS.index("nsolid")] / runner.order["n_order"]
    mean, err = block_mean_error(temp, nblocks=5)
    two_phase = bool(0.1 < frac[-1] < 0.9)
    return {"T": float(mean), "T_err": float(err), "end_solid_fraction": float(frac[-1]),
            "two_phase_at_end": two_phase}


def _series_files(record: dict) -> list[str]:
    return [t["samples_file"] for t in record["trials"]]


@dataclass
class MeltResult:
    """melt.json (`to_dict()`) and the time series of the trials (by file name)."""
    record: dict
    series: dict

    T_m = property(lambda self: self.record["T_m"])
    T_m_err = property(lambda self: self.record["T_m_err"])
    trials = property(lambda self: self.record["trials"])
    molecules_intact = property(lambda self: self.record["molecules_intact"])

    def to_dict(self) -> dict:
        return self.record

    method = property(lambda self: self.record["method"])

    def plot(self):
        """delta_mu (pinning) or the growth rate (coexistence) against temperature, with T_m and its error
        (matplotlib Figure; in Jupyter shown at the end of the cell)."""
        from mlipprops.plots import shown
        return shown(self._figure())

    def _figure(self):
        from mlipprops.plots import melt_pinning, melt_rates
        return melt_pinning(self.record) if self.method == "pinning" else melt_rates(self.record)

    def plot_trials(self):
        """Solid fraction and temperature of every trial against time (matplotlib Figure)."""
        from mlipprops.plots import melt_trials, shown
        return shown(melt_trials(self.record, self.series))

    def save(self, out_dir: str) -> None:
        """melt.json, melt_trials.png, melt_pinning.png or melt_rates.png and the trials' time series."""
        from mlipprops.parallel import is_root

        outputs.save(out_dir, "melt.json", self.record)
        if not is_root():
            return
        for name, data in self.series.items():
            path = os.path.join(out_dir, name)
            if not os.path.isfile(path):  # a run's own files are already there
                columns = PINNING_COLUMNS if self.method == "pinning" else COLUMNS
                np.savetxt(path, data, fmt="%.10g", header=" ".join(columns))
        from mlipprops.plots import melt_trials
        melt_trials(self.record, self.series).savefig(os.path.join(out_dir, "melt_trials.png"), dpi=110)
        name = "melt_pinning.png" if self.method == "pinning" else "melt_rates.png"
        self._figure().savefig(os.path.join(out_dir, name), dpi=110)

    @classmethod
    def from_files(cls, record: dict, folder: str) -> "MeltResult":
        series = {f: np.loadtxt(os.path.join(folder, f), ndmin=2) for f in _series_files(record)
                  if os.path.isfile(os.path.join(folder, f))}
        return cls(record, series)


def melt(atoms, potential, *, out: str | None = None, np: int | None = None, groups: int | None = None,
         resume: bool = True, quiet: bool = False, **settings) -> MeltResult:
    """T_m from solid and liquid in contact. Keywords as the CLI flags: method ("pinning" or "coexistence"; None:
    pinning for a molecular crystal, else coexistence), tmin, tmax or guess (else heating and cooling ramps
    bracket it), pressure, timestep, hydrogen_mass, cell_length (0: the cell as given), run_steps,
    prepare_steps, ramp_steps, nph_steps, max_trials, target_error, order_species, order_cutoff, order_bonds,
    seed, no_relax and the relaxation's. `out` keeps logs, checkpoints (a rerun resumes) and time series; `np`
    runs on that many MPI ranks (trials side by side on task groups)."""
    from mlipprops.run import Options, execute, settings_from
    return execute(sys.modules[__name__], atoms, potential, settings_from(MeltSettings, settings),
                   Options(out=out, np=np, groups=groups, resume=resume, quiet=quiet))
