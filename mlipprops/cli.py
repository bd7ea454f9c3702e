"""Command line: a table of properties, argument parsing and printing. The physics and its defaults live in the
properties (mlipprops.properties); every setting flag is passed on only when given, so the CLI and a Python call
get the same defaults."""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields

from mlipprops import examples, parallel
from mlipprops.errors import InputError, LammpsError, report, speak_to


def _properties() -> dict:
    """The property table, imported when first needed (inside main's handling of Ctrl-C): the properties pull in
    numpy, ASE and pymatgen, a second or more."""
    from mlipprops.properties import PROPERTIES
    return PROPERTIES


def _default(prop: str, name: str):
    settings = _properties()[prop][2]
    return {f.name: f.default for f in fields(settings)}[name]


def _strains(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of numbers, e.g. 0.005,0.01")


# property -> its setting flags: (flag, type, help); the keyword is the flag's name, the default the Settings'
RELAX_FLAGS = [
    ("--pressure", float, "target pressure, GPa (lj: reduced)"),
    ("--relax-mode", str, "cell degrees of freedom: iso, aniso or tri (default: tri for a triclinic cell, aniso "
                          "otherwise)"),
    ("--stress-tol", float, "residual stress tolerance, GPa"),
    ("--force-tol", float, "force tolerance, LAMMPS force units (eV/A): on the 2-norm of all atoms' forces "
                           "together (LAMMPS' ftol), which bounds the largest force too"),
    ("--max-rounds", int, "relaxation rounds at most"),
    ("--minimizer", str, "lbfgs (L-BFGS from Python: fewest force evaluations) or cg (LAMMPS' CG and box/relax)"),
]
SETTING_FLAGS = {
    "evaluate": [],
    "relax": RELAX_FLAGS + [
        ("--skip-minimum-check", "flag", "do not check that the relaxed structure is a minimum (the check rattles "
                                         "the ions and relaxes again: a saddle held by symmetry ends lower)"),
    ],
    "elastic": RELAX_FLAGS + [
        ("--strains", _strains, "strain amplitudes, comma separated; the smallest gives C, the next the truncation "
                                "error"),
        ("--no-relax", "flag", "use the cell as given (no box relaxation first)"),
        ("--clamped-ion", "flag", "do not relax ions in strained cells"),
        ("--temperature", float, "K (lj: reduced): elastic constants at T by MD instead of 0 K"),
        ("--method", str, "at T: born (stress fluctuations + Born term), fluctuation (NPT strain fluctuations) or "
                          "deformation (+-strain NVT runs)"),
        ("--timestep", float, "MD step in LAMMPS time units (default 1 fs, 0.5 fs with H)"),
        ("--equil-steps", int, "equilibration steps per stage"),
        ("--run-steps", int, "production steps (per strain for deformation)"),
        ("--sample-every", int, "steps between stress/cell samples"),
        ("--born-every", int, "steps between Born-matrix samples"),
        ("--md-strain", float, "strain amplitude of the deformation method"),
        ("--seed", int, "velocity and thermostat seed"),
    ],
    "melt": RELAX_FLAGS + [
        ("--method", str, "pinning (interface pinning: delta_mu(T) from a biased two-phase cell; the default for "
                          "molecular crystals) or coexistence (growth rates of free two-phase cells; the default "
                          "for atomic crystals)"),
        ("--guess", float, "a rough T_m (K; lj reduced): brackets the search at +-15 %%"),
        ("--tmin", float, "lowest temperature to consider"),
        ("--tmax", float, "highest temperature to consider"),
        ("--timestep", float, "MD step (default 2 fs; with H 0.5 fs, or 1 fs with --hydrogen-mass 4 or more; lj "
                              "0.01)"),
        ("--hydrogen-mass", float, "give H this mass (amu) for a longer timestep: T_m of classical nuclei does not "
                                   "depend on masses"),
        ("--cell-length", float, "lateral cell length (A) of the two-phase cell (default: 14 A, lj 5; with "
                                 "--supercell the cell as given); the third axis, the interface normal, is 3x "
                                 "longer"),
        ("--run-steps", int, "coexistence steps per trial"),
        ("--prepare-steps", int, "steps to equilibrate the crystal at each trial temperature, and to melt its "
                                 "upper half"),
        ("--ramp-steps", int, "steps of the heating and cooling ramps"),
        ("--nph-steps", int, "steps of the NPH two-phase run (0: skip)"),
        ("--max-trials", int, "coexistence trials at most"),
        ("--target-error", float, "stop when T_m is known to this (K)"),
        ("--order-species", str, "molecular crystals: an element with one atom per molecule, whose sublattice "
                                 "carries the order parameter (default: the one nearest the molecule's centre of "
                                 "mass, C of urea)"),
        ("--order-cutoff", float, "neighbour cutoff of the order parameter (0: in the widest gap between shells)"),
        ("--order-bonds", int, "aligned neighbours that make an atom solid-like (0: 60 %% of the coordination)"),
        ("--seed", int, "velocity and thermostat seed"),
        ("--no-relax", "flag", "start from the cell as given (no 0 K relaxation)"),
    ],
}
HELP = {"evaluate": "energy, forces and stress of a structure (single point)",
        "relax": "relax cell and ions at a target pressure",
        "elastic": "elastic constants C_ij by finite +-deformation (0 K) or molecular dynamics (--temperature)",
        "melt": "melting point from solid-liquid coexistence"}


def _keyword(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _inputs(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("structure")
    g.add_argument("--structure", help="CIF, POSCAR, extxyz or LAMMPS data file")
    g.add_argument("--example", choices=sorted(examples.EXAMPLES),
                   help="a bundled structure + potential instead of --structure/--pair-style")
    g.add_argument("--cif-block", metavar="NAME", help="the data block (data_NAME) of a CIF that holds several "
                                                       "structures")
    g.add_argument("--supercell", nargs=3, type=int, metavar=("A", "B", "C"), help="repeat the cell")
    g.add_argument("--min-distance", type=float, default=0.5, help="refuse atoms closer than this (A; default 0.5)")
    g = p.add_argument_group("potential")
    g.add_argument("--model", help="a deployed NequIP/Allegro model (.pth from nequip-deploy, .nequip.pth)")
    g.add_argument("--backend", choices=("auto", "upstream", "plugin", "python"), default="auto",
                   help="how --model runs: upstream pair_style allegro, our plugin, or the Python fallback "
                        "(default: the first available)")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where --model runs: a CUDA GPU when torch has one (auto), the CPU, or a GPU (cuda)")
    g.add_argument("--pair-style", help="any LAMMPS pair style, e.g. 'sw' or 'eam/alloy'")
    g.add_argument("--pair-coeff", action="append", default=[],
                   help="a pair_coeff line without the keyword, e.g. '* * Si.sw Si' (repeatable)")
    g.add_argument("--units", help="LAMMPS units: metal (default), real or lj")
    g.add_argument("--types", help="elements of LAMMPS types 1, 2, ... comma separated (default: from pair_coeff)")
    g = p.add_argument_group("run")
    g.add_argument("--out", help="output folder (default: ./<command>_out)")
    g.add_argument("--np", type=int, help="relaunch under the environment's mpiexec with this many ranks")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlipprops", description="Materials properties from interatomic "
                                     "potentials through LAMMPS: relaxation, elastic constants, melting point.")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="what a deployed model is: format, species, cutoffs, dtype")
    info.add_argument("--model", required=True)
    info.add_argument("--json", action="store_true", help="print the description as JSON")
    build = sub.add_parser("build-plugin", help="compile the libtorch pair-style plugin for this environment")
    build.add_argument("--force", action="store_true", help="rebuild even if up to date")
    build.add_argument("--check", action="store_true", help="only say whether a (re)build is needed")
    build.add_argument("--verbose", action="store_true")
    for name in _properties():
        p = sub.add_parser(name, help=HELP[name])
        _inputs(p)
        g = p.add_argument_group(name)
        for flag, kind, text in SETTING_FLAGS[name]:
            default = _default(name, _keyword(flag))
            if kind == "flag":
                g.add_argument(flag, action="store_true", default=None, help=text)
            else:
                shown = "" if default is None or "(default" in text else \
                    f" (default {','.join(map(str, default)) if isinstance(default, tuple) else default})"
                g.add_argument(flag, type=kind, default=None, help=text + shown)
        if name in ("elastic", "melt"):
            g.add_argument("--groups", type=int, help="MPI task groups (default: chosen from atoms and ranks)")
            g.add_argument("--no-resume", action="store_true", help="recompute, ignoring checkpoints of an earlier run")
    return parser


def read_inputs(args):
    """The structure and the potential the command names (an --example, or files and a pair style/model)."""
    import mlipprops as mp

    types = [t.strip() for t in args.types.split(",")] if args.types else None
    example = examples.EXAMPLES[args.example] if args.example else None
    if args.model and (args.pair_style or args.pair_coeff or example):
        raise InputError("give either --model or --pair-style/--pair-coeff (or --example), not both")
    structure = args.structure or (example.structure_path() if example else None)
    model = args.model or (example.model_path() if example else None)
    if not structure:
        raise InputError("give --structure FILE" + (" to go with --model" if model else " (or --example NAME)"))
    if model:
        if args.units not in (None, "metal"):
            raise InputError(f"--units {args.units}: deployed models work in metal units (eV, Angstrom)")
        potential = mp.Potential.model(model, args.backend, args.device)
    elif example:
        potential = mp.Potential.lammps(example.pair_style, list(example.pair_coeffs), args.units or example.units,
                                        types)
    else:
        if not args.pair_style:
            raise InputError("give the potential: --pair-style STYLE --pair-coeff '...' (or --model FILE)")
        potential = mp.Potential.lammps(args.pair_style, args.pair_coeff, args.units or "metal", types)
    atoms = mp.read_structure(structure, args.supercell, types or list(potential.type_symbols) or None,
                              args.min_distance, args.cif_block)
    return atoms, potential


def settings_of(args) -> dict:
    """The setting keywords given on the command line (only those: the rest are the property's defaults)."""
    given = {}
    for flag, _, _ in SETTING_FLAGS[args.command]:
        value = getattr(args, _keyword(flag))
        if value is not None:
            given[_keyword(flag)] = value
    if args.command == "elastic" and "strains" in given:
        given["strains"] = tuple(sorted(set(given["strains"])))
    if args.command == "melt" and args.supercell and "cell_length" not in given:
        given["cell_length"] = 0.0  # --supercell: the two-phase cell as given
    return given


def run_property(args):
    from mlipprops.run import Options, execute, settings_from

    module, _, settings_class, _ = _properties()[args.command]
    atoms, potential = read_inputs(args)
    settings = settings_from(settings_class, settings_of(args))
    out = os.path.abspath(args.out or f"{args.command}_out")
    options = Options(out=out, np=args.np, groups=getattr(args, "groups", None),
                      resume=not getattr(args, "no_resume", False), quiet=args.quiet,
                      command_line=" ".join(["mlipprops", *sys.argv[1:]]))
    result = execute(module, atoms, potential, settings, options)
    if parallel.is_root():  # execute() saved the result in `out`
        print(REPORTS[args.command](result.to_dict()))
        print(f"written: {os.path.join(out, _properties()[args.command][1])}")


# -- printing ----------------------------------------------------------------------------------------------------
def _report_evaluate(r: dict) -> str:
    return (f"energy = {r['energy']:.8f} {r['energy_unit']} ({r['energy'] / r['natoms']:.6f} per atom), backend "
            f"{r['backend']}\nstress ({r['units']}, xx yy zz yz xz xy) = " + " ".join(f"{v:.5f}" for v in r["stress_GPa"]))


def _report_relax(r: dict) -> str:
    a, b, c, al, be, ga = r["lattice"]
    dens = r["density_g_cm3"]
    return (f"relaxed in {r['rounds']} round(s){'' if r['converged'] else ' (NOT converged)'}: "
            f"a b c = {a:.5f} {b:.5f} {c:.5f}  angles = {al:.3f} {be:.3f} {ga:.3f}"
            + (f"  density = {dens:.4f} g/cm3" if dens else "") +
            f"\nenergy = {r['energy']:.6f} {r['energy_unit']}, max |residual stress| = "
            f"{max(abs(x) for x in r['residual_stress_GPa']):.2e} {r['units']}, max force = {r['max_force']:.2e}"
            + _report_minimum(r.get("minimum_check")))


def _report_minimum(m: dict | None) -> str:
    if m is None:
        return ""
    head = "a minimum" if m["is_minimum"] else \
        f"NOT a minimum ({'a shallow double well' if m['shallow'] else 'a saddle held by its symmetry'})"
    what = "cell and ions" if m.get("cell_relaxed", True) else "ions in the cell, the relaxed-ion C being stable"
    lower = m.get("lower_structure")
    go_on = "" if lower is None else (
        f"\n  the lower structure ({lower['space_group']}; relaxed: {lower['relaxed_space_group']}) is written as "
        f"minimum.cif (.extxyz, .data): go on from it with --structure minimum.cif")
    return (f"\nminimum check: {head}: rattled by {m['rattle']:g} {m['length_unit']} and relaxed again ({what}), "
            f"the ions moved up to {m['max_ion_displacement']:.3g} {m['length_unit']}, the enthalpy changed by "
            f"{m['energy_change_per_atom']:+.3g} {m['energy_unit']}/atom" + go_on)


def _report_elastic(r: dict) -> str:
    import numpy as np

    from mlipprops import tensors
    unit = r["units"]
    lines = [f"C_ij ({unit}), input frame, +- estimated error:"]
    for row, err in zip(r["C"], r["C_err"]):
        lines.append("  " + "  ".join(f"{v:9.3f}±{e:<7.2g}" for v, e in zip(row, err)))
    m = r["moduli"]
    if m:
        lines.append(f"bulk (V/R/H) = {m['bulk_voigt']:.2f}/{m['bulk_reuss']:.2f}/{m['bulk_hill']:.2f}  "
                     f"shear (V/R/H) = {m['shear_voigt']:.2f}/{m['shear_reuss']:.2f}/{m['shear_hill']:.2f}  "
                     f"E_Hill = {m['young_hill']:.2f} {unit}  nu_Hill = {m['poisson_hill']:.3f}")
        if np.linalg.eigvalsh(tensors.symmetrize(np.asarray(r["C"]))).min() <= 0:
            # the Reuss average inverts C: with a negative eigenvalue it (and Hill's, E, nu) is no modulus at all
            lines.append("  (C is not positive definite: the Reuss and Hill averages, E and nu are not physical)")
    lines.append(stability_text(r["stability"], unit))
    lower = (r.get("minimum_check") or {}).get("lower_structure")
    if lower is not None:
        lines.append(f"The lower structure ({lower['space_group']}) is written as minimum.cif (.extxyz, .data): go on "
                     "from it with --structure minimum.cif")
    return "\n".join(lines) + "\n(also C.csv, C.png)"


def stability_text(s: dict, unit: str) -> str:
    """Born stability in words, with the soft strain named when it is not plainly stable."""
    lam = f"{s['softest_eigenvalue']:.3f} ± {s['softest_eigenvalue_err']:.2g} {unit}"
    if s.get("saddle"):  # stiffness.saddle_check: before any eigenvalue, the structure itself
        d = s["saddle"]
        head = "MARGINAL: a shallow saddle" if d["shallow"] else "UNSTABLE"
        if d["found_by"] == "strain":
            how = f"Under the strain {d['strain']} (+-{100 * d['amplitude']:g} %)"
            so = "C is\n  measured across a change of structure, not as a linear response"
        else:
            how = f"Rattled and relaxed again (the cell changed by up to {100 * d['cell_change']:.3g} %),"
            so = "C is that\n  of a structure this potential does not hold, not of its crystal"
        return (f"Born stability: {head}: the relaxed structure is not a minimum of this potential. {how}\n  the "
                f"ions moved up to {d['max_ion_displacement']:.3g} A into a state {-d['energy_change_per_atom']:.3g} "
                f"{d['energy_unit']}/atom below it: it is a saddle held by its symmetry, and {so} "
                f"(softest eigenvalue {lam} along {s['softest_strain_text']}).")
    if s["verdict"] == "stable":
        return f"Born stability: stable (smallest eigenvalue {lam})"
    head = {"unstable": "UNSTABLE: the energy decreases", "marginal": "MARGINAL: the energy barely rises"}
    if s["verdict"] == "marginal" and s["softest_eigenvalue"] <= 3 * s["softest_eigenvalue_err"]:
        head["marginal"] = "MARGINAL: the curvature is within its error of zero"
    return (f"Born stability: {head[s['verdict']]} along the strain {s['softest_strain_text']} (eigenvalue {lam}, "
            f"stiffest {s['stiffest_eigenvalue']:.1f}).\n  A soft strain: the structure is at or near a "
            "symmetry-lowering instability of this potential. C along it depends on strain amplitude and ion "
            "relaxation,\n  and the compliance S, the Reuss/Hill moduli and Young's modulus along it inherit "
            "that; combinations orthogonal to it (see 'stability' in elastic.json) are well defined.")


def _report_melt(r: dict) -> str:
    unit = "K" if r["temperature_unit"] == "K" else "(reduced)"
    if r["method"] == "pinning":
        return _report_pinning(r, unit)
    lines = [f"T_m = {r['T_m']:.1f} +- {r['T_m_err']:.1f} {unit} at {r['pressure']:g} {r['pressure_unit']} "
             f"({len(r['trials'])} coexistence trials, {r['natoms']} atoms)"]
    for t in r["trials"]:
        lines.append(f"  T = {t['temperature']:8.1f}  growth {t['rate']:+9.3f} +- {t['rate_error']:.3f} solid "
                     f"atoms/ps  {t['verdict']}")
    if r.get("nph"):
        n = r["nph"]
        lines.append(f"NPH two-phase estimate: {n['T']:.1f} +- {n['T_err']:.1f} {unit}"
                     + ("" if n["two_phase_at_end"] else " (one phase left at the end: not reliable)"))
    ramp = r["heating_ramp"]
    if ramp["melts_at"]:
        lines.append(f"heating ramp melts at {ramp['melts_at']:.0f} {unit}: {100 * ramp['overshoot']:+.0f} % "
                     "(superheating)")
    return "\n".join(lines) + "\n(also melt_trials.png, melt_rates.png)"


def _report_pinning(r: dict, unit: str) -> str:
    p, energy = r["pinning"], "eV" if unit == "K" else "epsilon"
    fit = p["fit"]
    lines = [f"T_m = {r['T_m']:.1f} +- {r['T_m_err']:.1f} {unit} at {r['pressure']:g} {r['pressure_unit']} "
             f"(interface pinning, {len(r['trials'])} temperatures, {r['natoms']} atoms, {p['particles']} "
             f"{p['particle'].split()[0]}s in the order parameter)"]
    for t in r["trials"]:
        note = "" if t["used"] else "  not used: " + "; ".join(t["problems"])
        lines.append(f"  T = {t['temperature']:8.1f}  delta_mu {1000 * t['delta_mu']:+8.3f} +- "
                     f"{1000 * t['delta_mu_err']:.3f} m{energy}  crystal fraction {t['crystal_fraction']:.2f}{note}")
    lines.append(f"latent heat from the slope: {fit['latent_heat']:.4f} +- {fit['latent_heat_err']:.4f} {energy} per "
                 f"{p['particle'].split()[0]}")
    return "\n".join(lines) + "\n(also melt_pinning.png, melt_trials.png)"


REPORTS = {"evaluate": _report_evaluate, "relax": _report_relax, "elastic": _report_elastic, "melt": _report_melt}


# -- the other commands ------------------------------------------------------------------------------------------
def run_info(args) -> None:
    import json

    from mlipprops.models import format_info, inspect_model
    info = inspect_model(args.model)
    print(json.dumps(info.describe(), indent=2) if args.json else format_info(info))


def run_build_plugin(args) -> None:
    from mlipprops import plugin
    try:
        if args.check:
            reason = plugin.stale_reason()
            print(f"rebuild needed: {reason}" if reason else f"up to date: {plugin.find()}")
            return
        print(f"built: {plugin.build(verbose=args.verbose, force=args.force)}")
    except (RuntimeError, ImportError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"build-plugin: {first}") from None


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # while the modules load, before a command's own handling: one line, no traceback
        print(report(KeyboardInterrupt()), file=sys.stderr)
        return 130


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    speak_to("cli")  # messages name the flags the user typed (the API's callers read keywords)
    root = parallel.is_root()
    try:
        if args.command in ("info", "build-plugin"):
            if root:
                (run_info if args.command == "info" else run_build_plugin)(args)
            return 0
        run_property(args)
    except (InputError, LammpsError, KeyboardInterrupt) as exc:
        if getattr(args, "debug", False):
            raise
        if root:
            print(report(exc), file=sys.stderr)
        return 130 if isinstance(exc, KeyboardInterrupt) else 1
    except Exception as exc:  # a bug: one line, and the way to the traceback
        if getattr(args, "debug", False):
            raise
        if root:
            first = (str(exc).strip().splitlines() or [""])[0]
            print(f"mlipprops: error: unexpected {type(exc).__name__}: {first} (this is a bug of mlipprops; rerun "
                  "with --debug for the traceback and report it)", file=sys.stderr)
        return 1
    return 0

