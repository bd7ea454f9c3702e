"""The defaults that depend on the system are decided by each property's settings (for_system), in one place
that the CLI and a Python call share; bad settings are refused with a line that says what to do."""
from __future__ import annotations

from pathlib import Path

import pytest
from ase.build import bulk

import mlipprops as mp
from mlipprops import examples
from mlipprops.properties.elastic import ElasticSettings
from mlipprops.properties.melt import MeltSettings
from mlipprops.properties.relax import RelaxSettings
from mlipprops.system import System

MODELS = Path(__file__).parent / "models"


def system(atoms, potential):
    return System(atoms, potential.with_types_for(atoms.get_chemical_symbols(), "test"), "test")


@pytest.fixture(scope="module")
def cuau():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.symbols[0] = "Au"
    return atoms


def test_born_step_follows_the_precision_and_md_step_the_elements(cuau):
    for name, delta in (("cuau_legacy_f32.pth", 1e-3), ("cuau_current_f64.nequip.pth", 1e-6)):
        s = ElasticSettings(temperature=300.0).for_system(system(cuau, mp.Potential.model(MODELS / name)))
        assert s.born_delta == delta and s.timestep == 0.001 and s.relax_mode == "aniso"
    given = ElasticSettings(temperature=300.0, born_delta=1e-4, timestep=0.002)
    assert given.for_system(system(cuau, mp.Potential.model(MODELS / "cuau_legacy_f32.pth"))) == given.for_system(
        system(cuau, mp.Potential.model(MODELS / "cuau_legacy_f32.pth"))) and given.born_delta == 1e-4


def test_molecular_crystal_defaults():
    """Urea: hydrogen halves the MD step (1 fs at elastic, 0.5 fs in melt, 1 fs with H of 4 amu); the order
    parameter lives on the C sublattice."""
    ex = examples.EXAMPLES["urea"]
    urea = system(mp.read_structure(ex.structure_path()), mp.Potential.model(ex.model_path()))
    assert ElasticSettings(temperature=300).for_system(urea).timestep == 0.0005
    melt = MeltSettings().for_system(urea)
    assert melt.timestep == 0.0005 and melt.order_species == "C"
    assert MeltSettings(hydrogen_mass=4.0).for_system(urea).timestep == 0.001
    assert melt.two_phase_repeat(urea) == (3, 3, 9)  # 5.6 x 5.6 x 4.7 A cell -> about 14 x 14 x 42 A
    assert MeltSettings(cell_length=0).two_phase_repeat(urea) is None


def test_triclinic_cell_relaxes_all_six(cuau):
    sheared = cuau.copy()
    sheared.set_cell(cuau.cell[:] + [[0, 0, 0], [0.3, 0, 0], [0, 0, 0]], scale_atoms=True)
    pot = mp.Potential.lammps("eam/alloy", "* * Cu_zhou.eam.alloy Cu Au")
    assert RelaxSettings().for_system(system(sheared, pot)).relax_mode == "tri"
    assert RelaxSettings().for_system(system(cuau, pot)).relax_mode == "aniso"


@pytest.mark.parametrize("settings,words", [
    (ElasticSettings(strains=(0.5,)), "not per cent"),
    (ElasticSettings(strains=(-0.01,)), "positive"),
    (ElasticSettings(temperature=0.0), "temperature="),
    (ElasticSettings(temperature=300.0, timestep=0.0), "timestep="),
    (ElasticSettings(temperature=300.0, method="magic"), "method="),
    (ElasticSettings(pressure=1e6), "GPa"),
    (MeltSettings(max_trials=0), "max_trials="),
    (MeltSettings(timestep=-1.0), "timestep="),
    (MeltSettings(tmin=900, tmax=300), "tmin="),
])
def test_bad_settings_are_refused_in_words(cuau, settings, words):
    pot = mp.Potential.lammps("eam/alloy", "* * Cu_zhou.eam.alloy Cu Au")
    sys_ = system(cuau, pot)
    with pytest.raises(mp.InputError, match=words.replace("$", r"\$")):
        settings.for_system(sys_).check(sys_)
