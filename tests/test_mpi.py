"""The same tensor on 1 and 2 MPI ranks: task groups side by side, and spatial decomposition in one group."""
import numpy as np
import pytest

from conftest import C_of, load, run_cli

pytestmark = [pytest.mark.mpi, pytest.mark.slow]


def test_two_task_groups_equal_one_rank(tmp_path):
    run_cli("elastic", "--example", "si-sw", "--strains", "0.005", "--out", tmp_path / "serial", "--quiet")
    run_cli("elastic", "--example", "si-sw", "--strains", "0.005", "--out", tmp_path / "mpi", "--quiet", np_=2)
    r = load(tmp_path / "mpi" / "elastic.json")
    assert r["provenance"]["mpi_ranks"] == 2 and r["provenance"]["task_groups"] == 2
    assert (tmp_path / "mpi" / "log.group1.lammps").is_file()
    assert np.abs(C_of(tmp_path / "mpi") - C_of(tmp_path / "serial")).max() < 1e-9


def test_spatial_decomposition_equals_one_rank(tmp_path):
    args = ("elastic", "--example", "cu-eam", "--supercell", "3", "3", "3", "--strains", "0.005", "--quiet")
    run_cli(*args, "--out", tmp_path / "serial")
    run_cli(*args, "--out", tmp_path / "mpi", "--groups", "1", np_=2)
    assert load(tmp_path / "mpi" / "elastic.json")["provenance"]["task_groups"] == 1
    assert np.abs(C_of(tmp_path / "mpi") - C_of(tmp_path / "serial")).max() < 1e-6


def test_np_option_relaunches_under_mpiexec(tmp_path):
    run_cli("relax", "--example", "si-sw", "--np", "2", "--out", tmp_path / "r")
    assert load(tmp_path / "r" / "relax.json")["provenance"]["mpi_ranks"] == 2
