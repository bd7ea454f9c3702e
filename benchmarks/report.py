"""The JSON report every benchmark writes: its numbers plus the machine they were measured on."""
from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import time
from pathlib import Path


def write_report(path: str, doc: dict) -> Path:
    doc = {**doc, "machine": {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
                              "platform": platform.platform(), "load_average": list(os.getloadavg())},
           "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)) + "\n")
    print(f"written: {out}")
    return out


def timed_cli(cmd: list[str], label: str, check: bool = True) -> tuple[float, float, str]:
    """Run an mlipprops command single-threaded; its wall time, the CPU time of it and its children (s), its stderr.
    Exits with the command's output if it fails (with check; without, a failure is the caller's to read)."""
    print(f"[{label}] {' '.join(cmd[2:])}", flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if check and proc.returncode != 0:
        raise SystemExit(f"{label} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc.stderr
