"""Bad input: non-zero exit and one clear line that names the problem, never a traceback."""
import pytest
from ase.build import bulk

from conftest import SI_SW, run_cli


def _one_line_error(proc, *words):
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1, proc.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture
def si_file(tmp_path):
    path = tmp_path / "si.extxyz"
    bulk("Si", "diamond", a=5.431).write(path)
    return path


def test_missing_structure(tmp_path):
    _one_line_error(run_cli("elastic", "--structure", tmp_path / "nope.cif", *SI_SW, check=False),
                    "nope.cif", "not found")


def test_partial_occupancy(datadir, tmp_path):
    _one_line_error(run_cli("relax", "--structure", datadir / "disordered.cif", "--pair-style", "eam/alloy",
                            "--pair-coeff", "* * Cu_mishin1.eam.alloy Cu", "--out", tmp_path, check=False),
                    "disordered.cif", "partial occupancy")


def test_element_not_in_potential(datadir, tmp_path):
    _one_line_error(run_cli("elastic", "--structure", datadir / "urea.cif", *SI_SW, "--out", tmp_path, check=False),
                    "urea.cif", "not covered")


def test_potential_file_not_found(si_file, tmp_path):
    _one_line_error(run_cli("elastic", "--structure", si_file, "--pair-style", "sw", "--pair-coeff",
                            "* * Si.notthere Si", "--out", tmp_path, check=False), "Si.notthere", "not found")


def test_units_the_potential_file_refuses(si_file, tmp_path):
    proc = run_cli("relax", "--structure", si_file, *SI_SW, "--units", "lj", "--out", tmp_path / "o", check=False)
    _one_line_error(proc, "requires metal units", "log.lammps")


def test_unknown_units(si_file, tmp_path):
    _one_line_error(run_cli("relax", "--structure", si_file, *SI_SW, "--units", "cgs", "--out", tmp_path,
                            check=False), "--units cgs")


def test_no_potential_and_bad_groups(si_file, tmp_path):
    _one_line_error(run_cli("relax", "--structure", si_file, check=False), "--pair-style")
    _one_line_error(run_cli("elastic", "--structure", si_file, *SI_SW, "--groups", "3", "--np", "2",
                            "--out", tmp_path / "o", check=False), "--groups 3")


def test_every_help_renders(capsys):
    """`mlipprops CMD --help` must print, not crash: argparse formats help with %, so a literal % must be %%."""
    from mlipprops.cli import build_parser
    parser = build_parser()
    commands = next(a for a in parser._actions if a.choices and isinstance(a.choices, dict)).choices
    for name in [None, *commands]:
        with pytest.raises(SystemExit) as stop:
            parser.parse_args([name, "--help"] if name else ["--help"])
        assert stop.value.code == 0
        assert "usage: mlipprops" in capsys.readouterr().out
