"""The bundled urea model (mlipprops/data/urea_allegro.*): it reproduces its own held-out GFN2-xTB frames through
LAMMPS as well as its model card says, the README's main job runs on it and gives the tetragonal tensor the card
reports (and its stated accuracy against direct GFN2-xTB), finds out whether its relaxed structure is a minimum of
the model as the card says (the saddle check), and names the soft strain e1 - e2."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources

import numpy as np
import pytest
from ase.io import read
from ase import units
from ase.units import GPa

from conftest import DATA, load, run_cli
import mlipprops as mp
from mlipprops import examples, tensors

CARD = json.loads(resources.files("mlipprops.data").joinpath("urea_allegro.json").read_text())
MODEL = examples.EXAMPLES["urea"].model_path()


@pytest.mark.parametrize("backend", ["python", "plugin"])
def test_bundled_model_reproduces_gfn2_xtb_on_held_out_frames(backend, tmp_path):
    """Frames the model never saw in training (every seventh frame of its test set, all kinds: strained,
    rigid-molecule, near-equilibrium, MD, elastic-run cells, wrong minima, hot liquid, relaxation paths; GFN2-xTB
    labels): the deployed model, run by LAMMPS, must reproduce them as well as the model card says."""
    from mlipprops import plugin
    if backend == "plugin" and (plugin.find() is None or plugin.stale_reason()):
        pytest.skip("plugin not built here (CI builds it first)")
    frames = read(DATA / "urea_gfn2_heldout.extxyz", ":")
    potential = mp.Potential.model(MODEL, backend)
    dE, dF, dS = [], [], []
    for atoms in frames:
        record = mp.evaluate(atoms, potential).to_dict()
        assert record["backend"] == backend
        dE.append((record["energy"] - atoms.get_potential_energy()) / len(atoms))
        dF.append(np.asarray(record["forces"]) - atoms.get_forces())
        dS.append(np.asarray(record["stress_GPa"]) - tensors.stress_to_voigt(atoms.get_stress(voigt=False) / GPa))
    card = CARD["heldout_errors"]["all"]
    assert np.abs(dF).mean() < 1.5 * card["forces_mae_eV_per_A"]
    assert np.abs(dS).mean() < 2.0 * card["stress_mae_GPa"]
    assert 1000 * np.abs(dE).mean() < max(2.0 * card["energy_mae_meV_per_atom"], 1.0)
    # and on an absolute scale: a wrong type order or unit gives errors of eV/A and GPa
    assert np.abs(dF).mean() < 0.25 and np.abs(dS).mean() < 0.3


@pytest.mark.slow
def test_readme_main_job_gives_the_model_card_tensor(tmp_path):
    proc = run_cli("elastic", "--example", "urea", "--quiet", "--out", tmp_path)
    rec = load(tmp_path / "elastic.json")
    C, C_err, raw = np.array(rec["C"]), np.array(rec["C_err"]), np.array(rec["C_unsymmetrized"])
    # tetragonal (P-4 2_1 m, c along z): the symmetry-equivalent entries agree, the couplings that vanish do
    assert C[0, 0] == pytest.approx(C[1, 1], abs=3 * C_err[0, 0] + 0.05)
    assert C[0, 2] == pytest.approx(C[1, 2], abs=3 * C_err[0, 2] + 0.05)
    assert C[3, 3] == pytest.approx(C[4, 4], abs=3 * C_err[3, 3] + 0.05)
    assert np.abs(C[:3, 3:]).max() < 0.1 and abs(C[3, 4]) + abs(C[3, 5]) + abs(C[4, 5]) < 0.1
    # the card was made with this command: its numbers are this run's (strains that keep the symmetry: exact;
    # e1, which sets off the model's soft mode, to its error bar)
    model = tensors.tetragonal_combinations(C)
    model["C13_from_e3"] = 0.5 * (raw[0, 2] + raw[1, 2])
    card = CARD["mlipprops_vs_gfn2_xtb"]
    for key in ("C33", "C44", "C66", "C13_from_e3"):
        assert model[key] == pytest.approx(card[key]["mlipprops_model"], abs=0.02), key
    assert model["C11+C12"] == pytest.approx(card["C11+C12"]["mlipprops_model"], abs=2 * C_err[0, 0] + 0.1)
    # against direct GFN2-xTB: the accuracy the model card states (issue 13: 15 %; C44 is the card's known
    # exception, 62 % stiff): a worse model or a broken pipeline fails here
    xtb = {k: row["gfn2_xtb"] for k, row in card.items()}
    for key, bound in (("C33", 0.15), ("C13_from_e3", 0.15), ("C44", 0.7), ("C66", 0.15)):
        assert abs(model[key] / xtb[key] - 1) < bound, (key, model[key], xtb[key])
    # what comes from e1 (the model's ions relax differently under +e1 and -e1): within the card's accuracy or
    # else the run's own error bars (propagated by sampling C within C_err) must cover the difference
    rng = np.random.default_rng(0)
    draws = [tensors.tetragonal_combinations(C + rng.normal(size=C.shape) * C_err) for _ in range(400)]
    for key, bound in (("bulk_reuss", 0.15), ("bulk_voigt", 0.15), ("C11+C12", 0.15)):
        err = np.std([d[key] for d in draws])
        assert abs(model[key] - xtb[key]) < bound * xtb[key] + 2 * err, (key, model[key], err, xtb[key])
    cell = rec["relaxed"]["lattice"]
    ref = CARD["gfn2_xtb"]["relaxed_cell_A"]
    assert cell[0] == pytest.approx(ref["a"], rel=0.01) and cell[2] == pytest.approx(ref["c"], rel=0.01)
    # is the relaxed structure a minimum of the model? (strained cells relaxed below it, or its rattled ions: a
    # saddle held by symmetry) the run finds what the card says, strain by strain and rattled
    found, card_check = rec["saddle_check"], CARD["mlipprops_elastic"]["saddle_check"]
    assert found["reference_is_minimum"] == card_check["reference_is_minimum"]
    assert [(r["strain"], r["below_reference"]) for r in found["strains"]] == \
        [(r["strain"], r["below_reference"]) for r in card_check["strains"]]
    assert found["shallow"] == card_check["shallow"]
    rattled, card_rattled = rec["minimum_check"], CARD["mlipprops_elastic"]["minimum_check"]
    assert rattled["is_minimum"] == card_rattled["is_minimum"]
    assert rattled["energy_change"] == pytest.approx(card_rattled["energy_change"], abs=1e-4)
    stability, saddle = rec["stability"], rec["stability"].get("saddle")
    card_saddle = CARD["mlipprops_elastic"]["stability"].get("saddle")
    assert (saddle is None) == (card_saddle is None)
    if saddle is not None:  # the deeper of the two findings decides
        assert "not a minimum of this potential" in proc.stdout
        assert (saddle["found_by"], saddle["shallow"]) == (card_saddle["found_by"], card_saddle["shallow"])
        if saddle["shallow"]:  # a double well shallower than thermal motion (GFN2-xTB's own: ~0.1 meV/atom) along
            # the soft strain, which the verdict names
            assert stability["verdict"] == "marginal" and "MARGINAL: a shallow saddle" in proc.stdout
            assert stability["softest_strain_text"] == "0.71 e1 - 0.71 e2" and "0.71 e1 - 0.71 e2" in proc.stdout
        else:
            assert stability["verdict"] == "unstable" and "UNSTABLE" in proc.stdout
            assert saddle["max_ion_displacement"] > 0.05  # a change of structure, not a relaxation
    else:  # C11 - C12 is soft (GFN2-xTB: a shallow saddle): named with its strain, not a bare verdict
        assert stability["verdict"] in ("stable", "marginal")
        assert stability["softest_strain_text"] == "0.71 e1 - 0.71 e2"
        assert "soft strain" in proc.stdout and stability["verdict"].upper() in proc.stdout


@pytest.mark.slow
@pytest.mark.mpi
@pytest.mark.parametrize("backend", ["python", "plugin"])
def test_saddle_check_on_both_backends_and_two_ranks_matches_energies_evaluated_apart(backend, tmp_path):
    """The saddle check with the model on 2 ranks (strains split between task groups), on the plugin and on the
    Python fallback, finds the card's energies; and those energies are the model's: the strained, relaxed cells
    rebuilt from the checkpoints (relaxed cell, strain, ion displacements) and evaluated one by one give the same
    (E(+d) + E(-d)) / 2 - E0."""
    from mlipprops import plugin
    if backend == "plugin" and (plugin.find() is None or plugin.stale_reason()):
        pytest.skip("plugin not built here (CI builds it first)")
    out = tmp_path / "u"
    proc = run_cli("elastic", "--example", "urea", "--backend", backend, "--quiet", "--out", out, np_=2)
    rec = load(out / "elastic.json")
    # the rattled relaxation (minimum check) finds the card's state too, on this backend and rank count
    card_rattled = CARD["mlipprops_elastic"]["minimum_check"]
    assert rec["minimum_check"]["is_minimum"] == card_rattled["is_minimum"]
    assert rec["minimum_check"]["energy_change"] == pytest.approx(card_rattled["energy_change"], abs=1e-4)
    card = {r["strain"]: r for r in CARD["mlipprops_elastic"]["saddle_check"]["strains"]}
    for row in rec["saddle_check"]["strains"]:
        assert row["energy_change"] == pytest.approx(card[row["strain"]]["energy_change"], abs=1e-5), row
        assert row["below_reference"] == card[row["strain"]]["below_reference"]
    potential = mp.Potential.model(MODEL, backend)
    relaxed = read(out / "relaxed.extxyz")
    E0 = mp.evaluate(relaxed, potential).energy
    for row in rec["saddle_check"]["strains"]:
        energies = []
        for sign in "+-":
            name = f"{row['strain']}{sign}{row['amplitude']:g}"
            saved = load(out / "checkpoints" / "elastic" / f"{name}.json")
            F = np.eye(3) + tensors.voigt_strain_tensor(int(row["strain"][1]) - 1, float(f"{sign}{row['amplitude']}"))
            cell = relaxed.copy()
            cell.set_cell(relaxed.cell.array @ F.T, scale_atoms=True)
            cell.positions += np.array(saved["ion_displacements"])
            energies.append(mp.evaluate(cell, potential).energy)
        assert np.mean(energies) - E0 == pytest.approx(row["energy_change"], abs=2e-6), row
    if not rec["saddle_check"]["reference_is_minimum"]:
        assert "not a minimum of the potential" in proc.stderr  # the warning, besides the verdict


@pytest.mark.parametrize("backend", ["python", "plugin"])
def test_wider_neighbour_list_leaves_the_model_unchanged(backend, tmp_path):
    """The melting order parameter on urea's C sublattice needs neighbours to 6.7 A, past r_max = 5 A: the model is
    then overlaid with a zero pair style that far. Energy, forces and stress must not move."""
    from dataclasses import replace

    from mlipprops import plugin
    if backend == "plugin" and (plugin.find() is None or plugin.stale_reason()):
        pytest.skip("plugin not built here (CI builds it first)")
    atoms = read(DATA / "urea_gfn2_heldout.extxyz", "0")
    potential = mp.Potential.model(MODEL, backend)
    plain = mp.evaluate(atoms, potential, out=tmp_path / "a").to_dict()
    wide = mp.evaluate(atoms, replace(potential, neighbor_cutoff=6.7), out=tmp_path / "b").to_dict()
    assert "hybrid/overlay" in (tmp_path / "b" / "log.lammps").read_text() or backend == "python"
    assert wide["energy"] == pytest.approx(plain["energy"], abs=1e-8)
    assert np.abs(np.array(wide["forces"]) - plain["forces"]).max() < 1e-9
    assert np.abs(np.array(wide["stress_GPa"]) - plain["stress_GPa"]).max() < 1e-9


@pytest.mark.parametrize("backend", ["python", "plugin"])
def test_the_liquid_half_is_made_of_rigid_whole_molecules(backend, tmp_path):
    """A melting trial's preparation on urea 2x2x2 with the bundled model: the upper half, chosen molecule by
    molecule and expanded, runs with its molecules rigid (bond lengths kept exactly) at 1500 K while the lower half
    is held in place; after the cooling stage the molecules are free, and a short run at 300 K ends with every
    one whole. (The cell is too small to tell liquid from solid: periodic images order every neighbour shell.)"""
    from mlipprops import molecules, plugin
    from mlipprops.properties.melt import MeltEngine, MeltSettings, expanded_upper_half, order_parameter
    from mlipprops.system import System
    if backend == "plugin" and (plugin.find() is None or plugin.stale_reason()):
        pytest.skip("plugin not built here (CI builds it first)")
    atoms, _ = mp.example("urea")
    system = System(atoms.repeat((2, 2, 2)), mp.Potential.model(MODEL, backend), "urea 2x2x2")
    settings = MeltSettings(hydrogen_mass=4.0, no_relax=True, prepare_steps=200).for_system(system)
    order = order_parameter(system, settings)
    labels = molecules.molecule_labels(system.atoms)
    with system.open_engine() as engine:
        runner = MeltEngine(engine, system, settings, order, str(tmp_path), "")
        engine.set_velocities(300.0, 5)
        start = engine.save_state()
        upper, cell, expected = expanded_upper_half(start.positions, start.cell, labels, system.atoms.get_masses(),
                                                    1.4)
        fraction = runner.melt_upper_half(1500.0, 11, 1.4)
        hot = engine.save_state()
        assert np.allclose(hot.cell, cell) and 0 <= fraction <= 1
        assert np.abs(hot.positions[~upper] - expected[~upper]).max() < 1e-9  # held
        moved = np.linalg.norm(hot.positions[upper] - expected[upper], axis=1)
        assert moved.mean() > 0.05  # the upper half did run
        # and was heated: its rigid molecules' temperature (6 degrees of freedom each; H at mass 4), on the way from
        # 300 K to 1500 K after 2 thermostat times (914 K measured; a thermostat that heats nothing stays at 300)
        v = engine.save_state(velocities=True).velocities
        m = np.where(np.array(system.atoms.get_chemical_symbols()) == "H", 4.0, system.atoms.get_masses())
        kinetic = 0.5 * (m[upper, None] * (v[upper] / (1000 * units.fs)) ** 2).sum()  # A/ps -> ASE's, eV
        assert 750 < 2 * kinetic / (6 * len(np.unique(labels[upper])) * units.kB) < 1950
        whole = molecules.whole(hot.positions, hot.cell, labels)
        made = molecules.whole(expected, cell, labels)
        for label in np.unique(labels[upper]):  # rigid: every distance inside a molecule as it was
            m = labels == label
            d0 = np.linalg.norm(made[m][:, None] - made[m][None], axis=-1)
            d1 = np.linalg.norm(whole[m][:, None] - whole[m][None], axis=-1)
            assert np.abs(d1 - d0).max() < 1e-6
        runner.cool_upper_half(300.0, 13)
        samples = runner.sampled_run("trial", 500, "melt_coexistence", temperature=300.0, pdamp=1.0, seed=13)
        assert len(samples) == 11 and abs(samples[:, 1].mean() - 300) < 100
        assert molecules.intact(runner.molecules, system.atoms_from_state(engine.save_state()))


RIGID_STAGE = """
import sys
import numpy as np
import mlipprops as mp
from mlipprops.properties.melt import MeltEngine, MeltSettings, order_parameter
from mlipprops.system import System
atoms, _ = mp.example("urea")
system = System(atoms.repeat((2, 2, 2)), mp.Potential.model(sys.argv[1], sys.argv[2]), "urea 2x2x2")
settings = MeltSettings(hydrogen_mass=4.0, no_relax=True, prepare_steps=20).for_system(system)
with system.open_engine() as engine:
    runner = MeltEngine(engine, system, settings, order_parameter(system, settings), sys.argv[3], "")
    engine.set_velocities(300.0, 5)
    runner.melt_upper_half(1500.0, 11, 1.4)
    x = engine.save_state().positions
    print("atoms", engine.lmp.extract_global("nlocal"), "finite", bool(np.isfinite(x).all()))
"""


@pytest.mark.parametrize("backend", ["python", "plugin"])
def test_the_rigid_stage_reads_no_uninitialized_memory(backend, tmp_path):
    """glibc fills every fresh allocation with a byte pattern under MALLOC_PERTURB_, which turns a read of
    uninitialized memory from a chance event into a certain one: with rigid/small's langevin keyword, half of urea's
    atoms were lost on every seed this way (and runs stopped at random without it). With rigid/nvt/small the rigid
    stage must keep every atom, on both backends."""
    from mlipprops import plugin
    if backend == "plugin" and (plugin.find() is None or plugin.stale_reason()):
        pytest.skip("plugin not built here (CI builds it first)")
    proc = subprocess.run([sys.executable, "-c", RIGID_STAGE, str(MODEL), backend, str(tmp_path)],
                          capture_output=True, text=True, env=dict(os.environ, MALLOC_PERTURB_="165"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "atoms 128 finite True" in proc.stdout
