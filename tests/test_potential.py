"""Potential options: the LAMMPS type order is derived, never assumed, and files are checked up front."""
import pytest

from mlipprops.errors import InputError
from mlipprops.potential import Potential


def test_type_order_from_manybody_pair_coeff():
    pot = Potential.lammps("tersoff", ["* * SiCGe.tersoff Si C"])
    assert pot.type_symbols == ("Si", "C")
    assert pot.with_types_for(["C", "Si", "Si"], "x").type_symbols == ("Si", "C")


def test_missing_element_is_named():
    pot = Potential.lammps("sw", ["* * Si.sw Si"])
    with pytest.raises(InputError, match="Cu .*not covered"):
        pot.with_types_for(["Si", "Cu"], "mix.cif")


def test_pair_styles_without_elements_need_types_for_several_elements():
    pot = Potential.lammps("lj/cut 2.5", ["1 1 1.0 1.0", "2 2 1.0 1.1", "1 2 1.0 1.05"])
    assert pot.with_types_for(["Ar"], "x").type_symbols == ("Ar",)
    with pytest.raises(InputError, match="types=Ar,Kr"):
        pot.with_types_for(["Ar", "Kr"], "x")
    ok = Potential.lammps("lj/cut 2.5", ["1 1 1.0 1.0"], types=["Kr", "Ar"])
    assert ok.with_types_for(["Ar", "Kr"], "x").type_symbols == ("Kr", "Ar")


def test_types_must_agree_with_pair_coeff():
    with pytest.raises(InputError, match="disagrees"):
        Potential.lammps("tersoff", ["* * SiCGe.tersoff Si C"], types=["C", "Si"])


def test_potential_file_not_found_and_bad_units():
    with pytest.raises(InputError, match="Si.swx.*not found"):
        Potential.lammps("sw", ["* * Si.swx Si"])
    with pytest.raises(InputError, match="units=si"):
        Potential.lammps("sw", ["* * Si.sw Si"], units="si")
    with pytest.raises(InputError, match="not an element"):
        Potential.lammps("lj/cut 2.5", ["1 1 1.0 1.0"], types=["Xx"])
