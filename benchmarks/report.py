"""The JSON report every benchmark writes: its numbers plus the machine they were measured on."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path


def write_report(path: str, doc: dict) -> Path:
    doc = {**doc, "machine": {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
                              "platform": platform.platform(), "load_average": list(os.getloadavg())},
           "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"written: {out}")
    return out
