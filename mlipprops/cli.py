"""Command line: parse -> Structure, Potential, Engine -> property -> files. Thin on purpose."""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict

import numpy as np

import mlipprops
from mlipprops import examples, parallel, tensors
from mlipprops.errors import InputError, LammpsError



def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("structure")
    g.add_argument("--structure", help="CIF, POSCAR, extxyz or LAMMPS data file")
    g.add_argument("--example", choices=sorted(examples.EXAMPLES),
                   help="a bundled structure + potential instead of --structure/--pair-style")
    g.add_argument("--supercell", nargs=3, type=int, metavar=("A", "B", "C"), help="repeat the cell")
    g.add_argument("--min-distance", type=float, default=0.5, help="refuse atoms closer than this (A; default 0.5)")
    g = p.add_argument_group("potential")
    g.add_argument("--model", help="a deployed NequIP/Allegro model (.pth from nequip-deploy, .nequip.pth)")
    g.add_argument("--backend", choices=("auto", "upstream", "plugin", "python"), default="auto",
                   help="how --model runs: upstream pair_style allegro, our plugin, or the Python fallback "
                        "(default: the first available)")
    g.add_argument("--pair-style", help="any LAMMPS pair style, e.g. 'sw' or 'eam/alloy'")
    g.add_argument("--pair-coeff", action="append", default=[],
                   help="a pair_coeff line without the keyword, e.g. '* * Si.sw Si' (repeatable)")
    g.add_argument("--units", help="LAMMPS units: metal (default), real or lj")
    g.add_argument("--types", help="elements of LAMMPS types 1, 2, ... comma separated (default: from pair_coeff)")
    g = p.add_argument_group("relaxation")
    g.add_argument("--pressure", type=float, default=0.0, help="target pressure, GPa (lj: reduced); default 0")
    g.add_argument("--relax-mode", choices=("iso", "aniso", "tri"),
                   help="cell degrees of freedom (default: tri for a triclinic cell, aniso otherwise)")
    g.add_argument("--stress-tol", type=float, default=1e-3, help="residual stress tolerance, GPa (default 1e-3)")
    g.add_argument("--force-tol", type=float, default=1e-4,
                   help="largest force tolerance, LAMMPS force units (default 1e-4 eV/A)")
    g.add_argument("--max-rounds", type=int, default=30, help="box/relax rounds at most (default 30)")
    g = p.add_argument_group("run")
    g.add_argument("--out", help="output folder (default: ./<command>_out)")
    g.add_argument("--np", type=int, help="relaunch under the environment's mpiexec with this many ranks")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlipprops", description="Materials properties from interatomic "
                                     "potentials through LAMMPS: relaxation, elastic constants.")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="what a deployed model is: format, species, cutoffs, dtype")
    info.add_argument("--model", required=True)
    info.add_argument("--json", action="store_true", help="print the description as JSON")
    build = sub.add_parser("build-plugin", help="compile the libtorch pair-style plugin for this environment")
    build.add_argument("--force", action="store_true", help="rebuild even if up to date")
    build.add_argument("--check", action="store_true", help="only say whether a (re)build is needed")
    build.add_argument("--verbose", action="store_true")
    ev = sub.add_parser("evaluate", help="energy, forces and stress of a structure (single point)")
    _common(ev)
    relax_p = sub.add_parser("relax", help="relax cell and ions at a target pressure")
    _common(relax_p)
    el = sub.add_parser("elastic", help="elastic constants C_ij by finite +-deformation (0 K)")
    _common(el)
    el.add_argument("--strains", type=lambda s: tuple(float(x) for x in s.split(",")), default=(0.005, 0.01),
                    help="strain amplitudes, comma separated; the smallest gives C, the next the truncation "
                         "error (default 0.005,0.01)")
    el.add_argument("--no-relax", action="store_true", help="use the cell as given (no box relaxation first)")
    el.add_argument("--clamped-ion", action="store_true", help="do not relax ions in strained cells")
    el.add_argument("--groups", type=int, help="MPI task groups (default: chosen from atoms and ranks)")
    el.add_argument("--no-resume", action="store_true", help="recompute everything, ignoring checkpoints of an earlier run")
    t = el.add_argument_group("finite temperature (with --temperature)")
    t.add_argument("--temperature", type=float, help="K (lj: reduced): elastic constants at T by MD instead of 0 K")
    t.add_argument("--method", choices=("born", "fluctuation", "deformation"), default="born",
                   help="born: stress fluctuations + Born term (default); fluctuation: NPT strain fluctuations; "
                        "deformation: +-strain NVT runs")
    t.add_argument("--timestep", type=float, help="MD step in LAMMPS time units (default 1 fs, 0.5 fs with H)")
    t.add_argument("--equil-steps", type=int, default=10000, help="equilibration steps per stage (10000)")
    t.add_argument("--run-steps", type=int, default=50000, help="production steps (50000; per strain for "
                                                                  "deformation)")
    t.add_argument("--sample-every", type=int, default=10, help="steps between stress/cell samples (10)")
    t.add_argument("--born-every", type=int, default=100, help="steps between Born-matrix samples (100)")
    t.add_argument("--md-strain", type=float, default=0.01, help="strain amplitude of the deformation method")
    t.add_argument("--seed", type=int, default=4928459, help="velocity and thermostat seed")
    m = sub.add_parser("melt", help="melting point from solid-liquid coexistence")
    _common(m)
    g = m.add_argument_group("melting")
    g.add_argument("--guess", type=float, help="a rough T_m (K; lj reduced): brackets the search at +-15 %%")
    g.add_argument("--tmin", type=float, help="lowest temperature to consider")
    g.add_argument("--tmax", type=float, help="highest temperature to consider")
    g.add_argument("--timestep", type=float, help="MD step (default 2 fs; with H 0.5 fs, or 1 fs with "
                                                   "--hydrogen-mass 4 or more; lj 0.005)")
    g.add_argument("--hydrogen-mass", type=float, help="give H this mass (amu) for a longer timestep: T_m of "
                                                        "classical nuclei does not depend on masses")
    g.add_argument("--cell-length", type=float, default=0.0,
                   help="target lateral cell length (A) when --supercell is not given (default: 3 x the "
                        "potential's reach, at least 14 A); the third axis, the interface normal, is 3x longer")
    g.add_argument("--run-steps", type=int, default=15000, help="coexistence steps per trial (15000)")
    g.add_argument("--prepare-steps", type=int, default=3000, help="steps to equilibrate the crystal at each "
                   "trial temperature, and to melt its upper half (3000 each)")
    g.add_argument("--ramp-steps", type=int, default=20000, help="steps of the heating and cooling ramps")
    g.add_argument("--nph-steps", type=int, default=20000, help="steps of the NPH two-phase run (0: skip)")
    g.add_argument("--max-trials", type=int, default=12, help="coexistence trials at most (12)")
    g.add_argument("--target-error", type=float, default=5.0, help="stop when T_m is known to this (K)")
    g.add_argument("--order-species", help="molecular crystals: an element with one atom per molecule, whose "
                                           "sublattice carries the order parameter (default: the one nearest "
                                           "the molecule's centre of mass, C of urea)")
    g.add_argument("--order-cutoff", type=float, default=0.0, help="neighbour cutoff of the order parameter")
    g.add_argument("--order-bonds", type=int, default=0, help="aligned neighbours that make an atom solid-like")
    g.add_argument("--groups", type=int, help="MPI task groups (default: as many trials as fit side by side)")
    g.add_argument("--seed", type=int, default=20260)
    g.add_argument("--no-relax", action="store_true", help="start from the cell as given (no 0 K relaxation)")
    g.add_argument("--no-resume", action="store_true", help="recompute, ignoring finished trials")
    return parser


def build_system(args):
    from mlipprops.potential import Potential
    from mlipprops.structure import check_structure, make_supercell, read_structure
    from mlipprops.system import System

    types = [t.strip() for t in args.types.split(",")] if args.types else None
    example = examples.EXAMPLES[args.example] if args.example else None
    if args.model and (args.pair_style or args.pair_coeff or example):
        raise InputError("give either --model or --pair-style/--pair-coeff (or --example), not both")
    structure = args.structure or (example.structure_path() if example else None)
    model = args.model or (example.model_path() if example else None)
    if model:
        if not structure:
            raise InputError("give --structure FILE to go with --model")
        if args.units not in (None, "metal"):
            raise InputError(f"--units {args.units}: deployed models work in metal units (eV, Angstrom)")
        potential = Potential.from_model(model, args.backend)
        atoms = make_supercell(read_structure(structure, types), args.supercell)
        notes = check_structure(atoms, structure, args.min_distance) + potential.model.warnings()
        return System(atoms, potential.with_types_for(atoms.get_chemical_symbols(), structure), structure), notes
    if example:
        pair_style, pair_coeffs, units = example.pair_style, example.pair_coeffs, args.units or example.units
    else:
        if not structure:
            raise InputError("give --structure FILE (or --example NAME)")
        if not args.pair_style:
            raise InputError("give the potential: --pair-style STYLE --pair-coeff '...'")
        pair_style, pair_coeffs, units = args.pair_style, args.pair_coeff, args.units or "metal"
    potential = Potential.from_options(pair_style, pair_coeffs, units, types)
    atoms = make_supercell(read_structure(structure, types or list(potential.type_symbols) or None), args.supercell)
    notes = check_structure(atoms, structure, args.min_distance)
    potential = potential.with_types_for(atoms.get_chemical_symbols(), structure)
    return System(atoms, potential, structure), notes


def _relax_settings(args, system):
    from mlipprops.properties.relax import RelaxSettings
    from mlipprops.structure import is_orthogonal

    mode = args.relax_mode or ("aniso" if is_orthogonal(system.atoms.cell[:]) else "tri")
    return RelaxSettings(args.pressure, mode, args.stress_tol, args.force_tol, args.max_rounds)


def run_evaluate(args, system, out: str, started: float) -> None:
    from mlipprops import results
    from mlipprops.properties.evaluate import single_point

    world = parallel.world()
    record = single_point(system, world, os.path.join(out, "log.lammps"))
    if world.Get_rank() != 0:
        return
    units = system.potential.units
    record.update({"property": "evaluate", "units": units.stress_unit, "energy_unit": units.energy_unit,
                   "force_unit": units.force_unit, "natoms": system.natoms, "symbols": system.atoms.get_chemical_symbols(),
                   "cell": system.atoms.cell[:], "source": system.source})
    record["provenance"] = results.provenance(system.potential.describe(), world.Get_size(), 1, started,
                                              record.pop("lammps_version"))
    results.write_json(os.path.join(out, "evaluate.json"), record)
    print(f"energy = {record['energy']:.8f} {units.energy_unit} ({record['energy'] / system.natoms:.6f} per atom), "
          f"backend {record['backend']}")
    print("stress (" + units.stress_unit + ", xx yy zz yz xz xy) = " +
          " ".join(f"{v:.5f}" for v in record["stress_GPa"]))
    print(f"written: {os.path.join(out, 'evaluate.json')}")


def run_info(args) -> None:
    import json

    from mlipprops.models import format_info, inspect_model
    info = inspect_model(args.model)
    print(json.dumps(info.describe(), indent=2) if args.json else format_info(info))


def run_build_plugin(args) -> None:
    from mlipprops import plugin
    if args.check:
        reason = plugin.stale_reason()
        print(f"rebuild needed: {reason}" if reason else f"up to date: {plugin.find()}")
        return
    print(f"built: {plugin.build(verbose=args.verbose, force=args.force)}")


def run_relax(args, system, out: str, started: float) -> None:
    from mlipprops import outputs, results
    from mlipprops.properties.relax import relax

    comm = parallel.world()
    settings = _relax_settings(args, system)
    engine = system.open_engine(comm, os.path.join(out, "log.lammps"))
    outcome = relax(engine, settings)
    state = engine.save_state()
    version = engine.version()
    engine.close()
    if comm.Get_rank() != 0:
        return
    atoms = system.atoms_from_state(state)
    frame = system.frame
    record = outputs.relax_record(
        atoms, system.potential.units, outcome.energy,
        tensors.stress_to_voigt(frame.stress_to_input(outcome.stress)),
        tensors.stress_to_voigt(frame.stress_to_input(outcome.residual_stress)),
        outcome.max_force, outcome.rounds, outcome.converged, asdict(settings))
    record["structure_files"] = outputs.write_structures(out, "relaxed", atoms, system.potential.type_symbols)
    record["source"] = system.source
    record["provenance"] = results.provenance(system.potential.describe(), comm.Get_size(), 1, started, version)
    results.write_json(os.path.join(out, "relax.json"), record)
    _report_relax(record, out)


def _task_setup(args, system, out: str, kind: str, ntasks: int, *settings):
    """Task groups for `ntasks` independent runs, this group's LAMMPS log, and checkpoints valid for exactly
    these inputs and settings."""
    from mlipprops import results

    world = parallel.world()
    try:
        count = parallel.choose_group_count(world.Get_size(), ntasks, system.natoms, args.groups)
    except ValueError as exc:
        raise InputError(str(exc))
    groups = parallel.split(count)
    log = os.path.join(out, "log.lammps" if groups.index == 0 else f"log.group{groups.index}.lammps")
    key = results.fingerprint(mlipprops.__version__, system.atoms.cell[:], system.atoms.positions,
                              system.atoms.get_chemical_symbols(), system.potential.describe(), *settings, count)
    return groups, log, results.Checkpoints(out, kind, key, resume=not args.no_resume)


def run_elastic_t(args, system, out: str, started: float) -> None:
    from mlipprops import outputs, results
    from mlipprops.properties.elastic_t import FiniteTSettings, elastic_at_temperature

    units = system.potential.units
    settings = FiniteTSettings(args.temperature, args.method, args.pressure, args.timestep, args.equil_steps,
                               args.run_steps, args.sample_every, args.born_every, args.md_strain,
                               args.seed).for_system(system)
    if settings.temperature <= 0 or settings.run_steps < 20 * settings.sample_every:
        raise InputError("--temperature must be positive and --run-steps at least 20 samples long")
    relax_settings = None if args.no_relax else _relax_settings(args, system)
    groups, log, checkpoints = _task_setup(args, system, out, "elastic_t", 12 if settings.method == "deformation"
                                           else 1, asdict(settings), asdict(relax_settings) if relax_settings
                                           else None)
    result = elastic_at_temperature(system, settings, relax_settings, groups, log, out, checkpoints)
    if result is None:
        return
    record = outputs.elastic_t_record(result, system, units)
    if record["md"].get("thermalized") is False:
        print("mlipprops: warning: the strain-fluctuation C exceeds the Born term on the diagonal: the cell "
              "fluctuations did not thermalize (typical of a nearly harmonic crystal at low T); use --method born "
              "or deformation, or run longer at higher T", file=sys.stderr)
    record["provenance"] = results.provenance(system.potential.describe(), groups.world.Get_size(), groups.count,
                                              started, result["lammps_version"])
    outputs.elastic_files(out, record)
    _report_elastic(record, out)


def run_melt(args, system, out: str, started: float) -> None:
    from mlipprops import outputs, results
    from mlipprops import molecules
    from mlipprops.properties.melt import MeltSettings, melting_point
    from mlipprops.structure import make_supercell
    from mlipprops.system import System

    units = system.potential.units
    if not args.supercell:  # an elongated cell: interface area ~ cell_length^2, normal along the third axis
        lateral = args.cell_length or (5.0 if units.reduced else 14.0)
        lengths = system.atoms.cell.lengths()
        repeat = [max(1, int(np.ceil(lateral / lengths[0]))), max(1, int(np.ceil(lateral / lengths[1]))),
                  max(2, int(np.ceil(3 * lateral / lengths[2])))]
        system = System(make_supercell(system.atoms, tuple(repeat)), system.potential, system.source)
    has_h = "H" in system.atoms.get_chemical_symbols()
    heavy_h = (args.hydrogen_mass or 0) >= 4.0
    timestep = args.timestep or (units.default_timestep * (1 if heavy_h else 0.5) if has_h
                                 else 2 * units.default_timestep)
    settings = MeltSettings(args.pressure, timestep, args.tmin, args.tmax, args.guess, args.ramp_steps,
                            lattice_steps=args.prepare_steps, melt_steps=args.prepare_steps,
                            run_steps=args.run_steps, nph_steps=args.nph_steps, max_trials=args.max_trials,
                            target_error=args.target_error, seed=args.seed, order_cutoff=args.order_cutoff,
                            order_bonds=args.order_bonds,
                            order_species=args.order_species or molecules.centre_species(system.atoms),
                            hydrogen_mass=args.hydrogen_mass)
    # how long the search goes on does not change a finished trial: a rerun with more trials reuses them
    trial_settings = {k: v for k, v in asdict(settings).items() if k not in ("max_trials", "target_error",
                                                                             "nph_steps", "tmin", "tmax", "guess")}
    groups, log, checkpoints = _task_setup(args, system, out, "melt", 4, trial_settings)
    progress = _progress(settings.max_trials, "coexistence trials", args.quiet)
    relax_settings = None if args.no_relax else _relax_settings(args, system)
    result = melting_point(system, settings, relax_settings, groups, log, out, checkpoints, progress)
    if progress is not None:
        progress.close()
    if result is None:
        return
    record = outputs.melt_record(result, system, units)
    record["provenance"] = results.provenance(system.potential.describe(), groups.world.Get_size(), groups.count,
                                              started,
                                              result["lammps_version"])
    outputs.melt_files(out, record)
    _report_melt(record, out)


def _report_melt(record: dict, out: str) -> None:
    unit = "K" if record["temperature_unit"] == "K" else "(reduced)"
    print(f"T_m = {record['T_m']:.1f} +- {record['T_m_err']:.1f} {unit} at {record['pressure']:g} "
          f"{record['pressure_unit']} ({len(record['trials'])} coexistence trials, {record['natoms']} atoms)")
    for t in record["trials"]:
        print(f"  T = {t['temperature']:8.1f}  growth {t['rate']:+9.3f} +- {t['rate_error']:.3f} solid atoms/ps"
              f"  {t['verdict']}")
    if record.get("nph"):
        n = record["nph"]
        print(f"NPH two-phase estimate: {n['T']:.1f} +- {n['T_err']:.1f} {unit}"
              + ("" if n["two_phase_at_end"] else " (one phase left at the end: not reliable)"))
    if record["molecules_intact"] is False:
        print("mlipprops: warning: molecules broke apart in some trials (molecules_intact in melt.json): the "
              "potential is not trustworthy for the liquid, and T_m is not that of the molecular crystal",
              file=sys.stderr)
    ramp = record["heating_ramp"]
    if ramp["melts_at"]:
        print(f"heating ramp melts at {ramp['melts_at']:.0f} {unit}: {100 * ramp['overshoot']:+.0f} % (superheating)")
    print(f"written: {os.path.join(out, 'melt.json')}, melt_trials.png, melt_rates.png")


def run_elastic(args, system, out: str, started: float) -> None:
    from mlipprops import outputs, results
    from mlipprops.properties.elastic import ElasticSettings, elastic_constants, strain_tasks

    settings = ElasticSettings(tuple(sorted(set(args.strains))), not args.clamped_ion, args.force_tol)
    if min(settings.amplitudes) <= 0:
        raise InputError(f"--strains {args.strains}: amplitudes must be positive")
    relax_settings = None if args.no_relax else _relax_settings(args, system)
    ntasks = len(strain_tasks(settings.amplitudes))
    groups, log, checkpoints = _task_setup(args, system, out, "elastic", ntasks, asdict(settings),
                                           asdict(relax_settings) if relax_settings else None)
    progress = _progress(len(groups.my_tasks(list(range(ntasks)))), "strained cells", args.quiet)
    result = elastic_constants(system, settings, relax_settings, groups, log, checkpoints, progress)
    if progress is not None:
        progress.close()
    if result is None:
        return
    atoms = system.atoms_from_state(result["state"])
    record = outputs.elastic_record(result, atoms, system.potential.units, system.source)
    record["structure_files"] = outputs.write_structures(out, "relaxed", atoms, system.potential.type_symbols)
    record["provenance"] = results.provenance(system.potential.describe(), groups.world.Get_size(), groups.count,
                                              started,
                                              result["lammps_version"])
    outputs.elastic_files(out, record)
    _report_elastic(record, out)


def _progress(total: int, what: str, quiet: bool):
    if quiet or not parallel.is_root():
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=what, unit="cell", file=sys.stderr, leave=False)


def _report_relax(record: dict, out: str) -> None:
    a, b, c, al, be, ga = record["lattice"]
    dens = record["density_g_cm3"]
    print(f"relaxed in {record['rounds']} round(s){'' if record['converged'] else ' (NOT converged)'}: "
          f"a b c = {a:.5f} {b:.5f} {c:.5f}  angles = {al:.3f} {be:.3f} {ga:.3f}"
          + (f"  density = {dens:.4f} g/cm3" if dens else ""))
    print(f"energy = {record['energy']:.6f} {record['energy_unit']}, max |residual stress| = "
          f"{max(abs(x) for x in record['residual_stress_GPa']):.2e} {record['units']}, "
          f"max force = {record['max_force']:.2e}")
    print(f"written: {os.path.join(out, 'relax.json')}")


def _report_elastic(record: dict, out: str) -> None:
    unit = record["units"]
    print(f"C_ij ({unit}), input frame, +- estimated error:")
    for row, err in zip(record["C"], record["C_err"]):
        print("  " + "  ".join(f"{v:9.3f}±{e:<7.2g}" for v, e in zip(row, err)))
    m = record["moduli"]
    if m:
        print(f"bulk (V/R/H) = {m['bulk_voigt']:.2f}/{m['bulk_reuss']:.2f}/{m['bulk_hill']:.2f}  "
              f"shear (V/R/H) = {m['shear_voigt']:.2f}/{m['shear_reuss']:.2f}/{m['shear_hill']:.2f}  "
              f"E_Hill = {m['young_hill']:.2f} {unit}  nu_Hill = {m['poisson_hill']:.3f}")
    print(stability_text(record["stability"], unit))
    print(f"written: {os.path.join(out, 'elastic.json')}, C.csv, C.png")


def stability_text(s: dict, unit: str) -> str:
    """Born stability in words, with the soft strain named when it is not plainly stable."""
    lam = f"{s['softest_eigenvalue']:.3f} ± {s['softest_eigenvalue_err']:.2g} {unit}"
    if s["verdict"] == "stable":
        return f"Born stability: stable (smallest eigenvalue {lam})"
    head = {"unstable": "UNSTABLE: the energy decreases", "marginal": "MARGINAL: the energy barely rises"}
    return (f"Born stability: {head[s['verdict']]} along the strain {s['softest_strain_text']} (eigenvalue {lam}, "
            f"stiffest {s['stiffest_eigenvalue']:.1f}).\n  A soft strain: the structure is at or near a "
            "symmetry-lowering instability of this potential. C along it depends on strain amplitude and ion "
            "relaxation,\n  and the compliance S, the Reuss/Hill moduli and Young's modulus along it inherit "
            "that; combinations orthogonal to it (see 'stability' in elastic.json) are well defined.")


def _strip_np(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--np":
            skip = True
        elif not a.startswith("--np="):
            out.append(a)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if getattr(args, "np", None) and args.np > 1 and "PMI_RANK" not in os.environ and "OMPI_COMM_WORLD_RANK" not in os.environ:
        return parallel.relaunch_under_mpiexec(args.np, _strip_np(argv))
    started = time.time()
    world = parallel.world()
    root = world.Get_rank() == 0
    try:
        if args.command in ("info", "build-plugin"):
            if root:
                (run_info if args.command == "info" else run_build_plugin)(args)
            return 0
        system, notes = build_system(args)
        out = os.path.abspath(args.out or f"{args.command}_out")
        if root:
            os.makedirs(out, exist_ok=True)
            for note in notes:
                print(f"mlipprops: warning: {note}", file=sys.stderr)
        world.Barrier()
        run = {"evaluate": run_evaluate, "relax": run_relax, "elastic": run_elastic, "melt": run_melt}[args.command]
        if args.command == "elastic" and args.temperature is not None:
            run = run_elastic_t
        run(args, system, out, started)
    except (InputError, LammpsError) as exc:
        if getattr(args, "debug", False):
            raise
        if root:
            where = f" (LAMMPS log: {exc.log_path})" if isinstance(exc, LammpsError) and exc.log_path else ""
            print(f"mlipprops: error: {exc}{where}", file=sys.stderr)
        if isinstance(exc, LammpsError) and world.Get_size() > 1:
            world.Abort(1)  # other groups may be waiting in a collective call
        return 1
    return 0
