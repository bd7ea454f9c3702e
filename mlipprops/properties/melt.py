"""Melting point from solid-liquid coexistence.

1. Bracket: a heating ramp of the bulk solid (superheats: an upper bound) and a cooling ramp of the liquid (an
   undercooled lower bound when it recrystallizes, else the ramp's start); --guess or --tmin/--tmax replace it.
2. Each trial temperature T: NPT of the bulk solid gives its lattice at T; the upper half (along the cell's third
   axis) is melted while the lower half is held; then solid and liquid in contact run with the barostat on the
   normal axis only (the interface area stays the solid's at T) and a Langevin thermostat that carries away the
   latent heat. The count of solid-like atoms (bond orientational order) grows below T_m and shrinks above.
3. Trials run side by side on MPI task groups; the search narrows around the zero of the growth rate, and T_m
   with its error comes from a weighted straight-line fit of rate(T) (coexistence.melting_point).
4. A second estimate: the same two-phase cell run NPH (no thermostat) settles at T_m.
Every trial is checkpointed; a rerun of the same command skips finished trials.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace

import numpy as np

from mlipprops import coexistence
from mlipprops.order import shell_gap_cutoff, solid_like
from mlipprops.engine import Engine, State, template
from mlipprops.errors import InputError
from mlipprops.parallel import Groups
from mlipprops.properties.relax import RelaxSettings, relax
from mlipprops.results import Checkpoints
from mlipprops.system import System

COLUMNS = ("step", "temp", "pe", "vol", "lx", "ly", "lz", "press", "nsolid")


@dataclass(frozen=True)
class MeltSettings:
    pressure: float = 0.0          # report units (GPa, lj), compressive positive
    timestep: float = 0.002
    tmin: float | None = None
    tmax: float | None = None
    guess: float | None = None
    ramp_steps: int = 20000        # heating and cooling ramps
    lattice_steps: int = 3000      # NPT of the bulk solid at each trial temperature
    melt_steps: int = 3000         # melting the upper half, then as many /2 to bring it to T
    run_steps: int = 15000         # coexistence run per trial
    nph_steps: int = 20000
    sample_every: int = 50
    max_trials: int = 12
    target_error: float = 5.0      # K (reduced units for lj): stop when T_m is known this well
    seed: int = 20260
    order_cutoff: float = 0.0      # 0: between the first and second neighbour shells of the crystal
    order_bonds: int = 0           # 0: 60 % of the crystal's coordination (7 of 12 for fcc)
    order_species: str | None = None  # molecular crystals: one atom per molecule (e.g. C of urea)
    # heavier H (amu) allows a longer timestep: T_m is an equilibrium property of classical nuclei, so the
    # masses change how fast coexistence evolves, not the temperature at which neither phase grows
    hydrogen_mass: float | None = None


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

    def __init__(self, engine: Engine, system: System, settings: MeltSettings, order: dict, out_dir: str, tag: str):
        self.engine, self.system, self.s, self.order = engine, system, settings, order
        self.out_dir, self.tag = out_dir, tag
        self.units = system.potential.units
        from mlipprops import molecules
        # a molecular crystal must still be the same molecules after melting: checked after every trial
        self.molecules = molecules.composition(system.atoms) if molecules.is_molecular(system.atoms) else None
        if order["sublattice"]:  # neighbours from the sublattice alone: counted in Python (mlipprops/order.py)
            cutoff, bonds = order["cutoff"], order["min_bonds"]
            ids = np.flatnonzero(np.array(system.atoms.get_chemical_symbols()) == order["sublattice"]) + 1
            engine.observe("mlp_nsolid", settings.sample_every, ids,
                           lambda positions, cell: solid_like(positions, cell, cutoff, bonds).sum())
        else:
            engine.command(template("melt_order", cutoff=order["cutoff"], min_bonds=order["min_bonds"]))
        self.p_lammps = self.units.pressure_from_stress(-settings.pressure)
        if settings.hydrogen_mass and "H" in system.potential.type_symbols:
            engine.command(f"mass {system.potential.type_symbols.index('H') + 1} {settings.hydrogen_mass!r}")
        self.dt = settings.timestep
        engine.command(f"timestep {self.dt!r}")

    def sampled_run(self, name: str, steps: int, fixes: list[str]) -> np.ndarray:
        path = os.path.join(self.out_dir, f"{self.tag}{name}.txt")
        self.engine.command("reset_timestep 0\n" + "\n".join(f"fix {f}" for f in fixes))
        self.engine.command(template("melt_sampling", every=self.s.sample_every, path=path))
        self.engine.command(f"run {int(steps)}")
        self.engine.command("unfix mlp_melt_samples\n" + "\n".join(f"unfix {f.split()[0]}" for f in fixes))
        return self.engine.read_samples(path)

    def langevin(self, t0: float, t1: float, seed: int) -> str:
        return f"mlp_lang all langevin {t0!r} {t1!r} {100 * self.dt!r} {seed} zero yes"

    def ramp(self, name: str, t0: float, t1: float) -> np.ndarray:
        return self.sampled_run(name, self.s.ramp_steps, [
            f"mlp_baro all nph aniso {self.p_lammps!r} {self.p_lammps!r} {1000 * self.dt!r}",
            self.langevin(t0, t1, self.s.seed)])

    def coexistence(self, reference: State, temperature: float, seed: int, name: str, nph: bool = False):
        """Prepare a two-phase cell at `temperature` from the solid reference, run it, return its samples."""
        e, s = self.engine, self.s
        e.restore_state(reference)
        e.set_velocities(temperature, seed)
        # a fast barostat (100 steps): the lattice must be averaged over many cell oscillations
        lattice = self.sampled_run(name + "_solid", s.lattice_steps, [
            f"mlp_baro all nph aniso {self.p_lammps!r} {self.p_lammps!r} {100 * self.dt!r}",
            self.langevin(temperature, temperature, seed)])
        # the solid's mean cell at T (last 60 % of the run): scale x, y, z of the cell vectors to it
        cell = e.cell()
        tail = lattice[int(0.4 * len(lattice)):]
        mean = np.array([tail[:, COLUMNS.index(k)].mean() for k in ("lx", "ly", "lz")])
        e.set_cell(cell * (mean / np.diag(cell)))
        solid = e.save_state(velocities=True)
        hot = 1.5 * temperature
        for _ in range(3):  # melt the upper half; hotter if it did not melt (a held crystal templates it)
            e.command(template("melt_split", hot=float(hot), temperature=float(temperature), tdamp=100 * self.dt,
                               seed=seed, z_half=float(0.5 * e.cell()[2, 2]), melt_steps=s.melt_steps,
                               cool_steps=max(s.melt_steps // 2, 1), pressure=self.p_lammps,
                               pdamp=1000 * self.dt))
            fraction = e.variable("mlp_nsolid") / self.order["n_order"]
            if fraction < 0.7:
                break
            e.restore_state(solid)
            hot *= 1.3
        fixes = [f"mlp_baro all nph z {self.p_lammps!r} {self.p_lammps!r} {1000 * self.dt!r}"]
        if not nph:  # NPH alone is the adiabatic two-phase estimate: the temperature settles at T_m
            fixes.append(self.langevin(temperature, temperature, seed))
        return self.sampled_run(name, s.nph_steps if nph else s.run_steps, fixes)


def times_ps(samples: np.ndarray, timestep: float) -> np.ndarray:
    return samples[:, 0] * timestep


def ramp_crossing(samples: np.ndarray, n_order: int, rising: bool) -> float | None:
    """Temperature at which the solid fraction crosses 1/2 during a ramp (first crossing), or None."""
    frac = samples[:, COLUMNS.index("nsolid")] / n_order
    temp = samples[:, COLUMNS.index("temp")]
    hits = np.flatnonzero(frac > 0.5) if rising else np.flatnonzero(frac < 0.5)
    if not hits.size:
        return None
    k = hits[0]
    window = temp[max(k - 5, 0):k + 5]  # the instantaneous temperature is noisy: average around the crossing
    return float(window.mean())


def melting_point(system: System, settings: MeltSettings, relax_settings: RelaxSettings | None, groups: Groups,
                  log_path: str, out_dir: str, checkpoints: Checkpoints, progress=None) -> dict | None:
    """Run on every rank; returns the result record on world rank 0, None elsewhere."""
    s = settings
    order = order_parameter(system, s)
    model = system.potential.model
    if model is not None and order["cutoff"] > model.r_max and not order["sublattice"]:
        # LAMMPS' orientorder/atom takes neighbours from the pair style's list: widen that list, not the model
        system = replace(system, potential=replace(system.potential, neighbor_cutoff=order["cutoff"]))
    engine = system.open_engine(groups.comm, log_path)
    if relax_settings is not None:
        relax(engine, relax_settings)
    reference = engine.save_state()
    runner = MeltEngine(engine, system, s, order, out_dir, f"g{groups.index}_" if groups.count > 1 else "")
    units = system.potential.units
    default_lo, default_hi = (0.1, 3.0) if units.reduced else (100.0, 3000.0)
    record = {"order_parameter": order}

    # 1. bracket -----------------------------------------------------------------------------------------------
    lower, upper = s.tmin, s.tmax
    if s.guess is not None:
        lower = lower if lower is not None else 0.85 * s.guess
        upper = upper if upper is not None else 1.15 * s.guess
    t0 = s.tmin if s.tmin is not None else (0.5 * s.guess if s.guess else default_lo)
    t1 = s.tmax if s.tmax is not None else (2.0 * s.guess if s.guess else default_hi)
    ramps = _shared(groups, checkpoints, f"ramps_{t0:g}_{t1:g}", lambda: _ramps(runner, reference, order, s, t0, t1))
    record["ramps"] = ramps
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
    record["bracket_start"] = [lower, upper]

    # 2. coexistence trials, side by side ---------------------------------------------------------------------
    trials: list[dict] = []
    while len(trials) < s.max_trials:
        todo = coexistence.next_temperatures(trials, lower, upper, groups.count)[:groups.count]
        if not todo:
            break
        mine = todo[groups.index] if groups.index < len(todo) else None
        result = None
        if mine is not None:
            result = _trial(runner, reference, mine, s, order, checkpoints, groups)
            if progress is not None:
                progress.update(1)
        new = [r for r in groups.world.allgather(result if groups.leader else None) if r is not None]
        trials += sorted(new, key=lambda r: r["temperature"])
        lo, hi = coexistence.bracket(trials)
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
    lo, hi = coexistence.bracket(trials)
    if lo is None or hi is None:
        raise InputError(f"no bracket found within {s.max_trials} trials (solid grows at {lo}, melts at {hi}); "
                         "finished trials are kept: rerun with --guess, --tmin/--tmax or more --max-trials")
    Tm, err = coexistence.melting_point(trials)

    # 3. NPH two-phase estimate ------------------------------------------------------------------------------
    nph = _shared(groups, checkpoints, f"nph_{Tm:.1f}",
                  lambda: _nph(runner, reference, Tm, s)) if s.nph_steps else None
    version = engine.version()
    engine.close()
    if groups.world.Get_rank() != 0:
        return None
    checked = [t["molecules_intact"] for t in trials if "molecules_intact" in t]
    record.update({"T_m": Tm, "T_m_err": err, "nph": nph, "settings": asdict(s), "lammps_version": version,
                   "molecules_intact": all(checked) if checked else None})
    return record


def _shared(groups: Groups, checkpoints: Checkpoints, name: str, compute):
    """A step every group needs the result of: group 0 runs it (or loads its checkpoint), all receive it."""
    result = checkpoints.load(name) if groups.world.Get_rank() == 0 else None
    result = groups.world.bcast(result, root=0)
    if result is None:
        if groups.index == 0:
            result = compute()
            if groups.leader:
                checkpoints.save(name, result)
        result = groups.world.bcast(result if groups.world.Get_rank() == 0 else None, root=0)
    result.pop("fingerprint", None)
    return result


def _ramps(runner: MeltEngine, reference: State, order: dict, s: MeltSettings, t0: float, t1: float) -> dict:
    e = runner.engine
    e.restore_state(reference)
    e.set_velocities(t0, s.seed)
    heat = runner.ramp("heating_ramp", t0, t1)
    melts_at = ramp_crossing(heat, order["n_order"], rising=False)
    cool = runner.ramp("cooling_ramp", t1, t0)  # from the melt just made
    # freezing means something only if the heating ramp made a liquid
    freezes_at = ramp_crossing(cool, order["n_order"], rising=True) if melts_at is not None else None
    nsolid = COLUMNS.index("nsolid")
    return {"t_start": t0, "t_end": t1, "heating_melts_at": melts_at, "cooling_crystallizes_at": freezes_at,
            "start_solid_fraction": float(heat[:5, nsolid].mean() / order["n_order"]),
            "liquid_solid_fraction": float(cool[:5, nsolid].mean() / order["n_order"])}


def _trial(runner: MeltEngine, reference: State, temperature: float, s: MeltSettings, order: dict,
           checkpoints: Checkpoints, groups: Groups) -> dict:
    name = f"trial_{temperature:.1f}"
    done = checkpoints.load(name) if groups.leader else None
    done = groups.comm.bcast(done, root=0)
    if done is not None:
        done.pop("fingerprint", None)
        return done
    seed = s.seed + int(round(temperature * 10))
    samples = runner.coexistence(reference, temperature, seed, name)
    g = coexistence.growth_rate(times_ps(samples, s.timestep), samples[:, COLUMNS.index("nsolid")], order["n_order"])
    record = {"temperature": temperature, "seed": seed, "rate": g.rate, "rate_error": g.error, "verdict": g.verdict,
              "start_fraction": g.start_fraction, "end_fraction": g.end_fraction,
              "mean_temperature": float(samples[:, COLUMNS.index("temp")].mean()),
              "samples_file": f"{runner.tag}{name}.txt"}
    if runner.molecules is not None:
        from mlipprops import molecules
        after = runner.system.atoms_from_state(runner.engine.save_state())
        record["molecules_intact"] = molecules.intact(runner.molecules, after)
    if groups.leader:
        checkpoints.save(name, record)
    return record


def _nph(runner: MeltEngine, reference: State, Tm: float, s: MeltSettings) -> dict:
    from mlipprops.fluctuation import block_mean_error

    samples = runner.coexistence(reference, Tm, s.seed + 7, "nph", nph=True)
    temp = samples[len(samples) // 2:, COLUMNS.index("temp")]
    frac = samples[:, COLUMNS.index("nsolid")] / runner.order["n_order"]
    mean, err = block_mean_error(temp, nblocks=5)
    two_phase = bool(0.1 < frac[-1] < 0.9)
    return {"T": float(mean), "T_err": float(err), "end_solid_fraction": float(frac[-1]),
            "two_phase_at_end": two_phase}
