"""Turn property results into the documented output files: JSON records, CSV, PNG, structures."""
from __future__ import annotations

import os

import numpy as np
from ase import Atoms

from mlipprops import tensors
from mlipprops.results import write_json
from mlipprops.structure import lattice_parameters
from mlipprops.units import AMU_PER_A3_TO_G_CM3, Units


def cell_record(atoms: Atoms, units: Units) -> dict:
    volume = abs(atoms.cell.volume)
    record = {"cell": atoms.cell[:], "lattice": lattice_parameters(atoms.cell[:]), "volume": volume,
              "natoms": len(atoms), "number_density": len(atoms) / volume}
    record["density_g_cm3"] = None if units.reduced else float(sum(atoms.get_masses())) / volume * AMU_PER_A3_TO_G_CM3
    return record


_STRUCTURE_FORMATS = ((".cif", "cif"), (".extxyz", "extxyz"), (".data", "lammps-data"))


def structure_files(stem: str) -> list[str]:
    return [stem + suffix for suffix, _ in _STRUCTURE_FORMATS]


def write_structures(out_dir: str, stem: str, atoms: Atoms, type_symbols: list[str]) -> list[str]:
    """Relaxed structure as CIF and extxyz (input frame) and LAMMPS data (LAMMPS frame, types as in the run)."""
    from ase.io import write

    for suffix, fmt in _STRUCTURE_FORMATS:
        path = os.path.join(out_dir, stem + suffix)
        tmp = path + ".part"
        kwargs = {"specorder": list(type_symbols), "masses": True} if fmt == "lammps-data" else {}
        # parallel=False: under MPI ase's write is a collective (rank 0 broadcasts), and only rank 0 is here
        write(tmp, atoms, format=fmt, parallel=False, **kwargs)
        os.replace(tmp, path)
    return structure_files(stem)


def save(out_dir: str, name: str, record: dict, atoms: Atoms | None = None) -> None:
    """A result's JSON record, and its structure files when it has any (`structure_files`). Rank 0 writes."""
    from mlipprops.parallel import is_root

    if not is_root():
        return
    os.makedirs(out_dir, exist_ok=True)
    if atoms is not None and record.get("structure_files"):
        stem = record["structure_files"][0].rsplit(".", 1)[0]
        write_structures(out_dir, stem, atoms, record["provenance"]["potential"]["types"])
    write_json(os.path.join(out_dir, name), record)


def read_atoms(folder: str, record: dict) -> Atoms | None:
    """The structure a saved result wrote beside its JSON (input frame), if it is there."""
    from ase.io import read

    files = [f for f in record.get("structure_files", []) if f.endswith(".extxyz")]
    path = os.path.join(folder, files[0]) if files else None
    return read(path, parallel=False) if path and os.path.isfile(path) else None


def relax_record(atoms: Atoms, units: Units, energy: float, stress_voigt, residual_voigt, max_force: float,
                 rounds: int, converged: bool, settings: dict) -> dict:
    return {
        "property": "relax", "units": units.stress_unit, "energy": energy, "energy_unit": units.energy_unit,
        **cell_record(atoms, units),
        "stress_GPa": stress_voigt, "residual_stress_GPa": residual_voigt, "max_force": max_force,
        "force_unit": units.force_unit, "converged": converged, "rounds": rounds, "settings": settings,
    }


CONVENTION = "Brugger C at the mean stress"


def elastic_record(result: dict, atoms: Atoms, units: Units, source: str) -> dict:
    """The elastic.json record from properties.elastic.elastic_constants' result and the relaxed structure."""
    est = result["estimate"]
    summary = stiffness_summary(est.C, est.C_err, result["reference_stress"])
    saddle = {**result["saddle"], "energy_unit": units.energy_unit}
    minimum = result.get("minimum")
    # C of a structure that is not a minimum is not a linear response: the deepest state found below it, by the
    # strained cells (stiffness.saddle_check) or by the rattled relaxation (relax.minimum_check), decides
    found = []
    if not saddle["reference_is_minimum"]:
        found.append({**saddle["lowest"], "shallow": saddle["shallow"], "found_by": "strain"})
    if minimum is not None and not minimum["is_minimum"]:
        found.append({"strain": None, "amplitude": None, **{k: minimum[k] for k in (
            "energy_change", "energy_change_per_atom", "max_ion_displacement", "cell_change", "shallow")},
            "found_by": "rattle"})
    if found:
        low = min(found, key=lambda d: d["energy_change_per_atom"])
        summary["stability"] = {**summary["stability"], "verdict": "marginal" if low["shallow"] else "unstable",
                                "saddle": {**low, "energy_unit": units.energy_unit}}
    return {
        "property": "elastic", "method": "finite_deformation_0K", "units": units.stress_unit,
        "convention": CONVENTION, "C": est.C, "C_err": est.C_err, **summary, "saddle_check": saddle,
        "minimum_check": minimum,
        "C_err_parts": est.parts, "C_unsymmetrized": est.C_raw,
        "C_by_amplitude": {f"{d:g}": c for d, c in est.by_amplitude.items()},
        "strain_amplitudes": result["settings"]["amplitudes"], "relaxed_ions": result["settings"]["relaxed_ions"],
        "max_force_strained": result["max_force_strained"],
        "reference_stress_GPa": result["reference_stress"], "energy": result["energy"],
        "relaxed": {**cell_record(atoms, units), "relaxation": result["relax"]},
        "frame": "input structure (Cartesian axes of the input file)", "source": source,
    }


def elastic_t_record(result: dict, system, units: Units) -> dict:
    """elastic.json for a finite-temperature run: the 0 K contract plus temperature, method, run lengths,
    equilibration and convergence data."""
    settings = result["settings"]
    atoms = system.atoms.copy()
    atoms.set_cell(result["mean_cell"], scale_atoms=True)
    details = result["details"]
    convergence = details.pop("convergence", [])
    return {
        "property": "elastic", "method": f"{settings['method']}_finite_T", "units": units.stress_unit,
        "temperature": settings["temperature"], "pressure": settings["pressure"],
        "convention": CONVENTION, "mean_stress_GPa": result["mean_stress"],
        "C": result["C"], "C_err": result["C_err"],
        **stiffness_summary(result["C"], result["C_err"], result["mean_stress"]),
        "timestep": settings["timestep"], "run_lengths": {
            "equilibration_steps": settings["equil_steps"], "production_steps": settings["run_steps"],
            "sample_every": settings["sample_every"], "born_every": settings["born_every"]},
        "mean_cell_at_T": cell_record(atoms, units), "md": details,
        "convergence": convergence,
        "settings": settings, "frame": "input structure (Cartesian axes of the input file)", "source": system.source,
    }


def stiffness_summary(C: np.ndarray, C_err: np.ndarray | None = None, stress: np.ndarray | None = None) -> dict:
    """S = C^-1 and the moduli of C; the stress-strain coefficients B at the (Voigt, tensile-positive) stress,
    and Born stability from B's eigenvalues (under load, the criteria of Wang, Yip et al., PRB 52, 12627 (1995);
    at zero stress B = C). S and the Reuss/Hill moduli are null if C is singular."""
    B = tensors.symmetrize(tensors.stress_strain_coefficients(C, np.zeros(6) if stress is None else stress))
    eig = tensors.born_eigenvalues(B)
    summary = {"B": B, "born_eigenvalues": eig, "born_stable": bool(eig.min() > 0),
               "stability": tensors.stability(B, C_err)}
    try:
        summary["S"] = tensors.compliance(C)
        summary["moduli"] = tensors.moduli(C)
    except np.linalg.LinAlgError:
        summary["S"] = None
        summary["moduli"] = None
    return summary


def melt_record(result: dict, system, units: Units) -> dict:
    """melt.json: T_m with its error, every trial, the NPH and heating-ramp estimates."""
    ramps = result["ramps"] or {}
    melts_at = ramps.get("heating_melts_at")
    pinning = result.get("pinning")
    return {
        "property": "melt", "method": result["method"],
        "method_description": "interface pinning: the zero of delta_mu(T) from the mean bias force"
        if result["method"] == "pinning" else "solid-liquid coexistence, growth-rate fit",
        "T_m": result["T_m"], "T_m_err": result["T_m_err"],
        "temperature_unit": "lj" if units.reduced else "K",
        "pressure": result["settings"]["pressure"], "pressure_unit": units.stress_unit,
        "natoms": system.natoms, "cell": system.atoms.cell[:], "trials": result["trials"],
        "nph": result["nph"], **({"pinning": pinning} if pinning else {}),
        "heating_ramp": {"melts_at": melts_at, "overshoot": None if melts_at is None
                         else melts_at / result["T_m"] - 1.0, "cooling_crystallizes_at":
                         ramps.get("cooling_crystallizes_at"), **ramps},
        "bracket_start": result["bracket_start"], "order_parameter": result["order_parameter"],
        "molecules_intact": result["molecules_intact"],
        "settings": result["settings"], "source": system.source,
    }
