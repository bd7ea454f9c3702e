"""Melting point of Cu (EAM Cu_mishin1.eam.alloy) by interface pinning against the growth-rate search, side by side
in one run, and against calphy's free-energy figure.

Both methods get the same cell (mlipprops' default two-phase cell, 4x4x12 fcc = 768 atoms), the same temperature
range (--tmin/--tmax, default 1250-1400 K around the published 1315-1327 K) and the same target error, one run at a
time (the timings must not compete). For each: T_m +- error, CPU seconds (user + system of the child process), the
temperatures run, and the CPU ratio to calphy 2.3's 2100 CPU-s (reversible scaling, 2048 atoms, no error bar).
A run that ends without a supported T_m (exit 1) is reported as such, with its CPU time.

    .venv/bin/python benchmarks/melt_pinning_copper.py
    .venv/bin/python benchmarks/melt_pinning_copper.py --run-steps 30000 --max-trials 10
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from report import timed_cli, write_report  # benchmarks/report.py (scripts run from this folder)

HERE = Path(__file__).resolve().parent
PUBLISHED = (1315.0, 1327.0)
CALPHY_CPU_S = 2100.0


def run(method: str, args, work: Path) -> dict:
    out = work / method
    cmd = [sys.executable, "-m", "mlipprops", "melt", "--example", "cu-eam", "--method", method, "--tmin",
           f"{args.tmin:g}", "--tmax", f"{args.tmax:g}", "--target-error", f"{args.target_error:g}", "--max-trials",
           str(args.max_trials), "--out", str(out), "--quiet", "--no-resume"]
    if method == "pinning":
        cmd += ["--run-steps", str(args.run_steps)]
    wall, cpu, _ = timed_cli(cmd, method, check=False)
    done = (out / "melt.json").is_file()
    rec = json.loads((out / ("melt.json" if done else "melt_no_bracket.json")).read_text())
    return {"method": method, "command": " ".join(cmd[2:]), "wall_s": wall, "cpu_s": cpu,
            "cpu_vs_calphy": cpu / CALPHY_CPU_S, "supported": done, "error": rec.get("error"),
            "T_m": rec.get("T_m"), "T_m_err": rec.get("T_m_err"), "temperatures": len(rec["trials"]),
            "in_published_2sigma": bool(done and rec["T_m"] - 2 * rec["T_m_err"] <= PUBLISHED[1]
                                        and rec["T_m"] + 2 * rec["T_m_err"] >= PUBLISHED[0]),
            "latent_heat_eV": (rec.get("pinning") or {}).get("fit", {}).get("latent_heat")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tmin", type=float, default=1250.0)
    p.add_argument("--tmax", type=float, default=1400.0)
    p.add_argument("--target-error", type=float, default=5.0)
    p.add_argument("--max-trials", type=int, default=8)
    p.add_argument("--run-steps", type=int, default=20000, help="pinning steps per temperature (2 fs)")
    p.add_argument("--methods", default="pinning,coexistence")
    p.add_argument("--json", default=str(HERE / "results" / "melt_pinning_copper.json"))
    args = p.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="melt_pin_cu_") as tmp:
        for method in args.methods.split(","):
            r = run(method, args, Path(tmp))
            results.append(r)
            value = f"{r['T_m']:.1f} ± {r['T_m_err']:.1f} K" if r["supported"] else f"no T_m ({r['error']})"
            print(f"[{method}] {r['cpu_s']:.0f} CPU-s, {r['temperatures']} temperatures: {value}", flush=True)
    lines = ["| method | temperatures | T_m (K) | ±2σ overlaps 1315-1327 | CPU s | CPU / calphy |", "|---|---|---|---|---|---|"]
    for r in results:
        value = f"{r['T_m']:.1f} ± {r['T_m_err']:.1f}" if r["supported"] else "none (exit 1)"
        lines.append(f"| {r['method']} | {r['temperatures']} | {value} | {'yes' if r['in_published_2sigma'] else 'no'} "
                     f"| {r['cpu_s']:.0f} | {r['cpu_vs_calphy']:.3f} |")
    if len(results) == 2 and results[1]["cpu_s"]:
        lines.append(f"\nCPU {results[0]['method']} / {results[1]['method']}: "
                     f"{results[0]['cpu_s'] / results[1]['cpu_s']:.2f}")
    text = "\n".join(lines)
    print("\n" + text)
    write_report(args.json, {"benchmark": "melt_pinning_copper", "published_K": list(PUBLISHED),
                             "calphy_cpu_s": CALPHY_CPU_S, "settings": vars(args), "results": results, "table": text})


if __name__ == "__main__":
    main()
