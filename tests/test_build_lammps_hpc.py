"""build/build_lammps_hpc.py: its dry run (the plan it would execute) and its argument errors.

Nothing here clones, configures or compiles: every run is either --dry-run or stops at an argument check.
Most runs pass a fake --libtorch so they do not pay for `import torch`; two check the venv's torch itself.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "build/build_lammps_hpc.py"
VENV_BIN = Path(sys.executable).parent


def run(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=env)


def dry(*args, **kw) -> str:
    proc = run("--dry-run", *args, **kw)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return proc.stdout


def one_line_error(proc, *words):
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    for w in words:
        assert w in lines[0], lines[0]
    assert proc.stdout == ""  # nothing was planned, let alone run


def commands(out: str) -> list[list[str]]:
    """The printed steps, each parsed back into argv the way a shell would read it."""
    blocks, cur = [], None
    for line in out.splitlines():
        if line.startswith("# ["):
            cur = []
            blocks.append(cur)
        elif cur is not None and line.strip() and not line.startswith("#"):
            cur.append(line.rstrip("\\").strip())
    return [shlex.split(" ".join(b)) for b in blocks]


def cmake_args(out: str) -> list[str]:
    (cfg,) = [c for c in commands(out) if c[:2] == ["cmake", "-S"]]
    return cfg


@pytest.fixture
def libtorch(tmp_path) -> Path:
    d = tmp_path / "libtorch"
    (d / "share" / "cmake" / "Torch").mkdir(parents=True)
    (d / "share" / "cmake" / "Torch" / "TorchConfig.cmake").write_text(
        'set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=1")\nfind_package(Caffe2 REQUIRED)\n')
    return d


def make_lammps(path: Path, cmakelists="project(lammps CXX)\n") -> Path:
    (path / "cmake").mkdir(parents=True)
    (path / "src").mkdir()
    (path / "lib" / "kokkos" / "bin").mkdir(parents=True)
    (path / "lib" / "kokkos" / "bin" / "nvcc_wrapper").write_text("#!/bin/sh\n")
    (path / "cmake" / "CMakeLists.txt").write_text(cmakelists)
    return path


def make_pair(path: Path, marker="pair_allegro.cpp") -> Path:
    path.mkdir(parents=True)
    (path / "patch_lammps.sh").write_text("#!/bin/bash\n")
    (path / marker).write_text("// pair style\n")
    return path


@pytest.fixture
def lammps_src(tmp_path) -> Path:
    return make_lammps(tmp_path / "lammps-offline")


@pytest.fixture
def stress_src(tmp_path) -> Path:
    return make_pair(tmp_path / "pair-offline")


# ------------------------------------------------------------------------------------------------ dry run

def test_default_dry_run_with_venv_torch(tmp_path):
    import torch

    wd = tmp_path / "wd"
    out = dry("--workdir", wd)
    cmds = commands(out)
    assert ["git", "clone", "--depth", "1", "--branch", "stable_2Aug2023_update4",
            "https://github.com/lammps/lammps.git", str(wd / "lammps")] in cmds
    assert ["git", "clone", "--depth", "1", "--branch", "stress",
            "https://github.com/Hongyu-yu/pair_allegro.git", str(wd / "pair_allegro")] in cmds
    assert f"(cd {wd / 'pair_allegro'} && bash patch_lammps.sh {wd / 'lammps'})" in out
    cfg = cmake_args(out)
    assert cfg[1:5] == ["-S", str(wd / "lammps" / "cmake"), "-B", str(wd / "build")]
    assert f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}" in cfg
    abi = int(bool(torch._C._GLIBCXX_USE_CXX11_ABI))
    assert f"-DCMAKE_CXX_FLAGS=-D_GLIBCXX_USE_CXX11_ABI={abi}" in cfg
    assert f"C++11 ABI ({abi})" in out or f"pre-C++11 ABI ({abi})" in out   # recorded in the header
    for flag in ("-DBUILD_SHARED_LIBS=ON", "-DPKG_MANYBODY=ON", "-DPKG_EXTRA-COMPUTE=ON", "-DPKG_EXTRA-FIX=ON",
                 "-DPKG_MOLECULE=ON", "-DPKG_KSPACE=ON", "-DPKG_PLUGIN=ON", "-DPKG_PHONON=ON", "-DPKG_OPENMP=ON",
                 "-DBUILD_MPI=ON", f"-DMPI_CXX_COMPILER={VENV_BIN / 'mpicxx'}",
                 f"-DMPI_C_COMPILER={VENV_BIN / 'mpicc'}",
                 f"-DCMAKE_INSTALL_PREFIX={sys.prefix}", f"-DPython_EXECUTABLE={Path(sys.prefix) / 'bin' / 'python'}",
                 "-DCMAKE_CXX_STANDARD=17"):
        assert flag in cfg, flag
    assert not any(a.startswith(("-DPKG_KOKKOS", "-DKokkos_", "-DNEQUIP_AOT")) for a in cfg)
    # 2Aug2023 no longer has the LAMMPS_EXCEPTIONS option (LAMMPS PR #3736): not passed
    assert "-DLAMMPS_EXCEPTIONS=ON" not in cfg
    assert ["cmake", "--build", str(wd / "build"), "--parallel", str(os.cpu_count())] in cmds
    assert ["env", "-u", "VIRTUAL_ENV", "cmake", "--build", str(wd / "build"), "--target", "install-python"] in cmds
    assert ["cmake", "--install", str(wd / "build")] in cmds
    smoke = cmds[-1]
    assert smoke[:2] == [str(Path(sys.prefix) / "bin" / "python"), "-c"]
    assert 'has_style("pair","allegro")' in smoke[2] and '"-log","none","-screen","none"' in smoke[2]
    assert not wd.exists()  # the dry run made nothing


def test_dry_run_is_a_valid_bash_script(tmp_path, libtorch):
    out = dry("--workdir", tmp_path / "w d", "--kokkos-cuda", "AMPERE80", "--libtorch", libtorch)
    proc = subprocess.run(["bash", "-n"], input=out, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.startswith("#!/bin/bash\nset -e\n")


def test_nequip_allegro_dry_run(tmp_path, libtorch):
    wd = tmp_path / "wd"
    out = dry("--pair", "nequip-allegro", "--workdir", wd, "--libtorch", libtorch)
    cmds = commands(out)
    assert ["git", "clone", "--depth", "1", "--branch", "patch_10Sep2025",
            "https://github.com/lammps/lammps.git", str(wd / "lammps")] in cmds
    assert ["git", "clone", "--depth", "1", "--branch", "main",
            "https://github.com/mir-group/pair_nequip_allegro.git", str(wd / "pair_nequip_allegro")] in cmds
    assert "Hongyu-yu" not in out
    assert f"(cd {wd / 'pair_nequip_allegro'} && bash patch_lammps.sh {wd / 'lammps'})" in out
    cfg = cmake_args(out)
    assert f"-DCMAKE_PREFIX_PATH={libtorch.resolve()}" in cfg
    assert "-DCMAKE_CXX_FLAGS=-D_GLIBCXX_USE_CXX11_ABI=1" in cfg
    assert "-DNEQUIP_AOT_COMPILE=ON" not in cfg
    assert "-DNEQUIP_AOT_COMPILE=ON" in cmake_args(dry("--pair", "nequip-allegro", "--nequip-aot", "--workdir", wd,
                                                       "--libtorch", libtorch))


def test_chosen_refs_and_commits(tmp_path, libtorch):
    wd = tmp_path / "wd"
    out = dry("--workdir", wd, "--libtorch", libtorch, "--lammps-ref", "stable_29Aug2024_update1",
              "--pair-ref", "0123456789abcdef0123456789abcdef01234567")
    cmds = commands(out)
    assert ["git", "clone", "--depth", "1", "--branch", "stable_29Aug2024_update1",
            "https://github.com/lammps/lammps.git", str(wd / "lammps")] in cmds
    # a commit cannot be cloned with --branch: full clone, then checkout
    assert ["git", "clone", "https://github.com/Hongyu-yu/pair_allegro.git", str(wd / "pair_allegro")] in cmds
    assert ["git", "-C", str(wd / "pair_allegro"), "checkout", "0123456789abcdef0123456789abcdef01234567"] in cmds


def test_lammps_exceptions_only_where_the_option_exists(tmp_path, libtorch):
    old = cmake_args(dry("--workdir", tmp_path / "a", "--libtorch", libtorch, "--lammps-ref", "stable_23Jun2022"))
    assert "-DLAMMPS_EXCEPTIONS=ON" in old
    new = cmake_args(dry("--workdir", tmp_path / "b", "--libtorch", libtorch, "--lammps-ref", "stable_29Aug2024"))
    assert "-DLAMMPS_EXCEPTIONS=ON" not in new
    # offline sources: decided from cmake/CMakeLists.txt itself
    with_opt = make_lammps(tmp_path / "l1", 'option(LAMMPS_EXCEPTIONS "use exceptions" OFF)\n')
    without = make_lammps(tmp_path / "l2")
    pair = make_pair(tmp_path / "p")
    assert "-DLAMMPS_EXCEPTIONS=ON" in cmake_args(
        dry("--workdir", tmp_path / "c", "--libtorch", libtorch, "--lammps-src", with_opt, "--pair-src", pair))
    assert "-DLAMMPS_EXCEPTIONS=ON" not in cmake_args(
        dry("--workdir", tmp_path / "c", "--libtorch", libtorch, "--lammps-src", without, "--pair-src", pair))


def test_kokkos_cuda_flags(tmp_path, libtorch):
    wd = tmp_path / "wd"
    env = {**os.environ, "PATH": str(tmp_path)}  # no nvcc/git/cmake: the dry run needs none of them
    out = dry("--workdir", wd, "--libtorch", libtorch, "--kokkos-cuda", "hopper90", env=env)
    cfg = cmake_args(out)
    for flag in ("-DPKG_KOKKOS=ON", "-DKokkos_ENABLE_CUDA=ON", "-DKokkos_ARCH_HOPPER90=ON",
                 f"-DCMAKE_CXX_COMPILER={wd / 'lammps' / 'lib' / 'kokkos' / 'bin' / 'nvcc_wrapper'}"):
        assert flag in cfg, flag
    assert "-DPKG_OPENMP=ON" not in cfg          # OPENMP and KOKKOS are alternatives for pair_allegro
    assert "-DPKG_OPENMP=ON" in cmake_args(dry("--workdir", wd, "--libtorch", libtorch, "--kokkos-cuda",
                                               "AMPERE80", "--openmp"))
    assert "nvcc is not on PATH" in out
    assert "Kokkos_ARCH_HOPPER90" in out.split("# [1/")[0]  # in the header too


def test_mpi_on_and_off(tmp_path, libtorch):
    on = cmake_args(dry("--workdir", tmp_path, "--libtorch", libtorch, "--mpi"))
    assert "-DBUILD_MPI=ON" in on and f"-DMPI_CXX_COMPILER={VENV_BIN / 'mpicxx'}" in on
    off = cmake_args(dry("--workdir", tmp_path, "--libtorch", libtorch, "--no-mpi"))
    assert "-DBUILD_MPI=OFF" in off
    assert not any(a.startswith(("-DMPI_", "-DBUILD_MPI=ON")) for a in off)


def test_optional_packages_and_extra_cmake(tmp_path, libtorch):
    cfg = cmake_args(dry("--workdir", tmp_path, "--libtorch", libtorch, "--no-phonon", "--no-openmp",
                         "--extra-cmake=-DFFT=FFTW3", "--extra-cmake", "PKG_RIGID=ON", "--cxx-standard", "20"))
    assert "-DPKG_PHONON=ON" not in cfg and "-DPKG_OPENMP=ON" not in cfg
    assert cfg[-2:] == ["-DFFT=FFTW3", "-DPKG_RIGID=ON"]   # last, so they override earlier settings
    assert "-DCMAKE_CXX_STANDARD=20" in cfg


def test_offline_sources_replace_clone(tmp_path, libtorch, lammps_src, stress_src):
    wd = tmp_path / "wd"
    out = dry("--workdir", wd, "--libtorch", libtorch, "--lammps-src", lammps_src, "--pair-src", stress_src,
              "--kokkos-cuda", "VOLTA70")
    cmds = commands(out)
    assert not any(c[0] == "git" for c in cmds)
    assert f"(cd {stress_src} && bash patch_lammps.sh {lammps_src})" in out
    cfg = cmake_args(out)
    assert cfg[1:5] == ["-S", str(lammps_src / "cmake"), "-B", str(wd / "build")]
    assert f"-DCMAKE_CXX_COMPILER={lammps_src / 'lib' / 'kokkos' / 'bin' / 'nvcc_wrapper'}" in cfg
    assert f"offline LAMMPS source {lammps_src}" in out


def test_offline_pair_only_still_clones_lammps(tmp_path, libtorch):
    pair = make_pair(tmp_path / "pna", marker="pair_nequip_allegro.cpp")
    wd = tmp_path / "wd"
    cmds = commands(dry("--pair", "nequip-allegro", "--pair-src", pair, "--workdir", wd, "--libtorch", libtorch))
    assert [c for c in cmds if c[0] == "git"] == [["git", "clone", "--depth", "1", "--branch", "patch_10Sep2025",
                                                   "https://github.com/lammps/lammps.git", str(wd / "lammps")]]


def test_already_patched_lammps_is_not_patched_again(tmp_path, libtorch, stress_src):
    patched = make_lammps(tmp_path / "lp", "project(lammps)\nfind_package(Torch REQUIRED)\n")
    out = dry("--workdir", tmp_path / "wd", "--libtorch", libtorch, "--lammps-src", patched, "--pair-src", stress_src)
    assert "patch_lammps.sh" not in "\n".join(" ".join(c) for c in commands(out))
    assert "already patched" in out


def test_prefix_is_a_venv_elsewhere(tmp_path, libtorch):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    out = dry("--workdir", tmp_path / "wd", "--libtorch", libtorch, "--prefix", venv)
    cfg = cmake_args(out)
    assert f"-DCMAKE_INSTALL_PREFIX={venv}" in cfg and f"-DPython_EXECUTABLE={venv / 'bin' / 'python'}" in cfg
    assert f"-DCMAKE_INSTALL_RPATH={venv / 'lib'}" in cfg
    assert commands(out)[-1][0] == str(venv / "bin" / "python")


def test_torch_missing(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("#!/bin/sh\nexit 1\n")   # a python without torch
    (venv / "bin" / "python").chmod(0o755)
    out = dry("--workdir", tmp_path / "wd", "--prefix", venv)
    # the dry run still gives a pasteable line that asks that python at run time
    assert "torch.utils.cmake_prefix_path" in out and "$(" in out and "torch is not importable" in out
    assert not any(a.startswith("-DCMAKE_CXX_FLAGS") for a in cmake_args(out))
    one_line_error(run("--workdir", tmp_path / "wd", "--prefix", venv, "--no-mpi"), "cannot import torch",
                   "--libtorch")


# ------------------------------------------------------------------------------------------------ errors

def test_missing_offline_lammps(tmp_path, libtorch):
    one_line_error(run("--dry-run", "--libtorch", libtorch, "--lammps-src", tmp_path / "nope"),
                   "--lammps-src", "nope", "no such directory")


def test_offline_lammps_that_is_not_lammps(tmp_path, libtorch):
    (tmp_path / "notlammps" / "src").mkdir(parents=True)
    one_line_error(run("--dry-run", "--libtorch", libtorch, "--lammps-src", tmp_path / "notlammps"),
                   "notlammps", "cmake/CMakeLists.txt")


def test_offline_lammps_without_kokkos_wrapper(tmp_path, libtorch, lammps_src):
    (lammps_src / "lib" / "kokkos" / "bin" / "nvcc_wrapper").unlink()
    one_line_error(run("--dry-run", "--libtorch", libtorch, "--lammps-src", lammps_src, "--kokkos-cuda", "AMPERE80"),
                   "nvcc_wrapper")


def test_missing_offline_pair(tmp_path, libtorch):
    one_line_error(run("--dry-run", "--libtorch", libtorch, "--pair-src", tmp_path / "nope"),
                   "--pair-src", "no such directory")


def test_offline_pair_without_patch_script(tmp_path, libtorch):
    d = tmp_path / "pair"
    d.mkdir()
    (d / "pair_allegro.cpp").write_text("")
    one_line_error(run("--dry-run", "--libtorch", libtorch, "--pair-src", d), "patch_lammps.sh", "not found")


def test_offline_pair_of_the_other_kind(tmp_path, libtorch, stress_src):
    one_line_error(run("--dry-run", "--libtorch", libtorch, "--pair", "nequip-allegro", "--pair-src", stress_src),
                   "pair_nequip_allegro.cpp", "nequip-allegro")


def test_unknown_kokkos_arch(libtorch):
    one_line_error(run("--dry-run", "--libtorch", libtorch, "--kokkos-cuda", "GTX1080"),
                   "GTX1080", "HOPPER90", "AMPERE80")


@pytest.mark.parametrize("make_prefix", ["missing", "file", "no-python"])
def test_bad_prefix(tmp_path, libtorch, make_prefix):
    prefix = tmp_path / "prefix"
    if make_prefix == "file":
        prefix.write_text("")
    elif make_prefix == "no-python":
        prefix.mkdir()
    words = ("bin/python",) if make_prefix == "no-python" else ("not a writable directory",)
    one_line_error(run("--dry-run", "--libtorch", libtorch, "--prefix", prefix), "--prefix", *words)


def test_bad_libtorch(tmp_path):
    one_line_error(run("--dry-run", "--libtorch", tmp_path), "--libtorch", "TorchConfig.cmake")


@pytest.mark.parametrize("args, words", [
    (["--pair", "allegro"], ["--pair", "invalid choice"]),
    (["--jobs", "0"], ["--jobs", "at least 1"]),
    (["--jobs", "many"], ["--jobs"]),
    (["--nequip-aot"], ["--nequip-aot", "nequip-allegro"]),
    (["--extra-cmake"], ["--extra-cmake", "expected one argument"]),
    (["--no-such-option"], ["unrecognized arguments"]),
])
def test_bad_arguments(libtorch, args, words):
    one_line_error(run("--dry-run", "--libtorch", libtorch, *args), *words)


def test_ref_with_offline_source(libtorch, lammps_src, stress_src):
    one_line_error(run("--dry-run", "--libtorch", libtorch, "--lammps-src", lammps_src, "--lammps-ref", "stable"),
                   "--lammps-ref", "--lammps-src")
    one_line_error(run("--dry-run", "--libtorch", libtorch, "--pair-src", stress_src, "--pair-ref", "main"),
                   "--pair-ref", "--pair-src")


def test_existing_clone_target(tmp_path, libtorch):
    (tmp_path / "wd" / "lammps").mkdir(parents=True)
    one_line_error(run("--dry-run", "--libtorch", libtorch, "--workdir", tmp_path / "wd"),
                   str(tmp_path / "wd" / "lammps"), "already exists", "--lammps-src")


def test_real_run_checks_nvcc_before_anything(tmp_path, libtorch, lammps_src, stress_src):
    env = {**os.environ, "PATH": str(tmp_path)}   # no nvcc (nor git/cmake): stops before any step
    proc = run("--libtorch", libtorch, "--lammps-src", lammps_src, "--pair-src", stress_src, "--workdir",
               tmp_path / "wd", "--kokkos-cuda", "AMPERE80", env=env)
    one_line_error(proc, "nvcc", "CUDA")
    proc = run("--libtorch", libtorch, "--lammps-src", lammps_src, "--pair-src", stress_src, "--workdir",
               tmp_path / "wd", env=env)
    one_line_error(proc, "not found on PATH", "cmake")
    assert not (tmp_path / "wd").exists()


# ------------------------------------------------------------------------------------------------ real run, stubbed

def _stub_env(tmp_path, smoke_answer: str):
    """A venv whose python answers the torch query and the smoke test, and a cmake that only logs."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    log = tmp_path / "cmake.log"
    (stubs / "cmake").write_text(f'#!/bin/sh\necho "cmake $*" >> {log}\n')
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text(
        "#!/bin/sh\n"
        'case "$2" in\n'
        '  *cmake_prefix_path*) echo \'{"version": "2.13.0", "cmake_prefix_path": "/fake/torch/share/cmake", '
        '"cxx11_abi": true, "cuda": null}\' ;;\n'
        f'  *has_style*) echo "LAMMPS banner"; echo {smoke_answer} ;;\n'
        "  *) exit 3 ;;\n"
        "esac\n")
    for f in (stubs / "cmake", venv / "bin" / "python"):
        f.chmod(0o755)
    env = {**os.environ, "PATH": f"{stubs}:/usr/bin:/bin"}
    return venv, log, env


def test_real_run_executes_the_steps_in_order(tmp_path, lammps_src, stress_src):
    import json

    venv, log, env = _stub_env(tmp_path, "True")
    wd = tmp_path / "wd"
    proc = run("--prefix", venv, "--workdir", wd, "--lammps-src", lammps_src, "--pair-src", stress_src,
               "--no-mpi", "--jobs", "3", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = log.read_text().splitlines()
    assert [c.split()[1] for c in calls] == ["-S", "--build", "--build", "--install"]
    assert "-DCMAKE_PREFIX_PATH=/fake/torch/share/cmake" in calls[0]
    assert calls[1].endswith("--parallel 3") and calls[2].endswith("--target install-python")
    assert "# [3/7] Configure LAMMPS with CMake" in proc.stdout       # printed before it ran
    assert "Done: LAMMPS with pair_style allegro is installed" in proc.stdout
    info = json.loads((wd / "build-info.json").read_text())
    assert info["torch"]["cxx11_abi"] is True and info["pair"] == "allegro-stress"
    assert info["lammps_src"] == str(lammps_src) and "-DBUILD_MPI=OFF" in info["cmake_args"]


def test_real_run_fails_when_allegro_is_missing(tmp_path, lammps_src, stress_src):
    venv, log, env = _stub_env(tmp_path, "False")
    proc = run("--prefix", venv, "--workdir", tmp_path / "wd", "--lammps-src", lammps_src, "--pair-src", stress_src,
               "--no-mpi", env=env)
    assert proc.returncode == 1
    assert "Smoke test" in proc.stderr and "'False'" in proc.stderr and "Traceback" not in proc.stderr


def test_real_run_clones_patches_and_reads_the_cloned_cmakelists(tmp_path):
    """git stubbed: 'clones' write a LAMMPS tree that still has option(LAMMPS_EXCEPTIONS) and a pair repository
    whose patch_lammps.sh must be run from its own folder; the flag follows the cloned file, not the tag date."""
    venv, log, env = _stub_env(tmp_path, "True")
    stubs = tmp_path / "stubs"
    (stubs / "git").write_text(
        "#!/bin/bash\n"
        f'echo "git $*" >> {log}\n'
        'dest="${@: -1}"; url="${@: -2:1}"\n'
        'mkdir -p "$dest"\n'
        'case "$url" in\n'
        '  *lammps/lammps*) mkdir -p "$dest/cmake" "$dest/src"\n'
        '                   echo \'option(LAMMPS_EXCEPTIONS "exceptions" OFF)\' > "$dest/cmake/CMakeLists.txt" ;;\n'
        '  *) echo \'[ -f pair_allegro.cpp ] || exit 7; echo "find_package(Torch REQUIRED)" >> "$1/cmake/CMakeLists.txt"\''
        ' > "$dest/patch_lammps.sh"; touch "$dest/pair_allegro.cpp" ;;\n'
        "esac\n")
    (stubs / "git").chmod(0o755)
    wd = tmp_path / "wd"
    proc = run("--prefix", venv, "--workdir", wd, "--no-mpi", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = log.read_text().splitlines()
    assert calls[0].startswith("git clone --depth 1 --branch stable_2Aug2023_update4 https://github.com/lammps/lammps")
    assert calls[1].startswith("git clone --depth 1 --branch stress https://github.com/Hongyu-yu/pair_allegro")
    assert "find_package(Torch REQUIRED)" in (wd / "lammps" / "cmake" / "CMakeLists.txt").read_text()
    configure = [c for c in calls if c.startswith("cmake -S")]
    assert len(configure) == 1 and "-DLAMMPS_EXCEPTIONS=ON" in configure[0]
    import json
    assert "-DLAMMPS_EXCEPTIONS=ON" in json.loads((wd / "build-info.json").read_text())["cmake_args"]
