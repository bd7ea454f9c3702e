"""Melting point of Cu (EAM Cu_mishin1.eam.alloy) from solid-liquid coexistence, against published values and
against the free-energy route (calphy).

Published melting points for this potential span 1315-1327 K (Mishin et al., Phys. Rev. B 63, 224106 (2001):
1327 K). The issue's acceptance window is 1300-1345 K. calphy 2.3
(reversible scaling, 2048 atoms, default settings) gives 1328 K in about 2100 CPU-s on a 2-core machine like this
one, without an error bar.

The script runs `mlipprops melt --example cu-eam` with its defaults (4x4x12 fcc = 768 atoms; `--cell-length`
for another cell) as a subprocess, once per seed (`--repeats N`: seeds 20260, 20260 + 7919, ...; one run at a
time so the timings do not compete), and for each records

- wall time and CPU time (user + system of the child processes, from resource.getrusage(RUSAGE_CHILDREN));
- T_m +- its error (the standard error of the zero of the weighted straight-line fit of growth rate vs T);
  whether T_m lies in the acceptance window 1300-1345 K, and whether T_m +- 2 err overlaps 1315-1327 K;
- the cell (atoms), the number of coexistence trials, the NPH two-phase estimate, the heating-ramp melting
  temperature and its overshoot above T_m (superheating);
- the ratio of the CPU time to calphy's 2100 CPU-s.

With two or more seeds it also prints the seed-to-seed spread of T_m (sample standard deviation) next to the
mean reported error: if the error bar is honest the two are about equal (with two seeds the spread is itself
uncertain by a factor of about 2: |T_1 - T_2| / sqrt(2) is one draw of a normal with the per-run sigma).

Run with the venv's Python (about 150 CPU-s per seed with the defaults, one core):

    .venv/bin/python benchmarks/melt_copper.py
    .venv/bin/python benchmarks/melt_copper.py --repeats 2
    .venv/bin/python benchmarks/melt_copper.py --cell-length 18 --keep /tmp/melt_cu
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from report import timed_cli, write_report  # benchmarks/report.py (scripts run from this folder)

HERE = Path(__file__).resolve().parent
PUBLISHED = (1315.0, 1327.0)       # K, published range for Cu_mishin1
ACCEPT = (1300.0, 1345.0)          # K, the acceptance window
MISHIN_2001 = 1327.0
CALPHY = {"T_m": 1328.0, "cpu_s": 2100.0, "natoms": 2048,
          "method": "calphy 2.3, reversible scaling, default settings"}
FIRST_SEED, SEED_STEP = 20260, 7919


def run_one(seed: int, args, work: Path) -> dict:
    out = work / f"seed{seed}"
    cmd = [sys.executable, "-m", "mlipprops", "melt", "--example", "cu-eam", "--seed", str(seed),
           "--out", str(out), "--quiet", "--no-resume"]
    if args.cell_length:
        cmd += ["--cell-length", f"{args.cell_length:g}"]
    wall, cpu, _ = timed_cli(cmd, f"seed {seed}")
    rec = json.loads((out / "melt.json").read_text())
    Tm, err = rec["T_m"], rec["T_m_err"]
    ramp = rec["heating_ramp"]
    nph = rec.get("nph")
    verdicts = [t["verdict"] for t in rec["trials"]]
    return {
        "seed": seed, "command": " ".join(cmd[2:]), "out": str(out) if args.keep else None,
        "wall_s": wall, "cpu_s": cpu, "cpu_vs_calphy": cpu / CALPHY["cpu_s"],
        "natoms": rec["natoms"], "cell_lengths": [float(np.linalg.norm(v)) for v in rec["cell"]],
        "T_m": Tm, "T_m_err": err,
        "in_acceptance_window": bool(ACCEPT[0] <= Tm <= ACCEPT[1]),
        "overlaps_published_2sigma": bool(Tm - 2 * err <= PUBLISHED[1] and Tm + 2 * err >= PUBLISHED[0]),
        "deviation_from_mishin": Tm - MISHIN_2001,
        "n_trials": len(rec["trials"]),
        "n_grows": verdicts.count("solid grows"), "n_melts": verdicts.count("solid melts"),
        "n_undecided": verdicts.count("undecided"),
        "trials": [{k: t[k] for k in ("temperature", "rate", "rate_error", "verdict")} for t in rec["trials"]],
        "bracket_start": rec["bracket_start"],
        "nph": nph,
        "ramp_melts_at": ramp["melts_at"], "ramp_overshoot": ramp["overshoot"],
        "ramp_overshoot_K": None if ramp["melts_at"] is None else ramp["melts_at"] - Tm,
        "cooling_crystallizes_at": ramp["cooling_crystallizes_at"],
        "settings": rec["settings"],
    }


def _fmt_nph(n: dict | None) -> str:
    if not n:
        return "skipped"
    return f"{n['T']:.1f} ± {n['T_err']:.1f}" + ("" if n["two_phase_at_end"] else " (one phase at the end)")


def _fmt_ramp(r: dict) -> str:
    if r["ramp_melts_at"] is None:
        return "did not melt"
    return f"{r['ramp_melts_at']:.0f} ({r['ramp_overshoot_K']:+.0f} K, {100 * r['ramp_overshoot']:+.1f} %)"


def report(results: list[dict]) -> tuple[str, dict]:
    lines = ["| seed | atoms | trials (grow/melt/undecided) | T_m (K) | in 1300-1345 | ±2σ overlaps 1315-1327 "
             "| NPH (K) | heating ramp (K, superheating) | wall s | CPU s | CPU / calphy |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r['seed']} | {r['natoms']} | {r['n_trials']} ({r['n_grows']}/{r['n_melts']}/{r['n_undecided']}) "
            f"| {r['T_m']:.1f} ± {r['T_m_err']:.1f} | {'yes' if r['in_acceptance_window'] else 'NO'} "
            f"| {'yes' if r['overlaps_published_2sigma'] else 'NO'} | {_fmt_nph(r['nph'])} | {_fmt_ramp(r)} "
            f"| {r['wall_s']:.0f} | {r['cpu_s']:.0f} | {r['cpu_vs_calphy']:.3f} |")
    lines.append(f"| calphy | {CALPHY['natoms']} | (free energy) | {CALPHY['T_m']:.0f} (no error) | yes | yes | "
                 f"| | | {CALPHY['cpu_s']:.0f} | 1 |")
    summary: dict = {}
    T = np.array([r["T_m"] for r in results])
    E = np.array([r["T_m_err"] for r in results])
    if len(results) > 1:
        spread = float(T.std(ddof=1))
        mean_err = float(np.sqrt(np.mean(E**2)))
        w = 1 / E**2
        summary = {"T_m_mean": float(T.mean()), "seed_spread_std": spread, "rms_reported_error": mean_err,
                   "spread_over_error": spread / mean_err,
                   "weighted_mean": float(np.sum(w * T) / np.sum(w)), "weighted_mean_err": float(np.sum(w)**-0.5),
                   "chi2_per_dof": float(np.sum(w * (T - np.sum(w * T) / np.sum(w))**2) / (len(T) - 1))}
        lines.append("")
        lines.append(f"{len(results)} seeds: T_m mean {summary['T_m_mean']:.1f} K, spread (std) {spread:.1f} K "
                     f"against the rms reported error {mean_err:.1f} K (ratio {spread / mean_err:.2f}); "
                     f"weighted mean {summary['weighted_mean']:.1f} ± {summary['weighted_mean_err']:.1f} K, "
                     f"chi2/dof {summary['chi2_per_dof']:.2f}")
    cpu = np.array([r["cpu_s"] for r in results])
    summary["cpu_s_mean"] = float(cpu.mean())
    summary["cpu_vs_calphy_mean"] = float(cpu.mean() / CALPHY["cpu_s"])
    lines.append(f"CPU per run {cpu.mean():.0f} s = {cpu.mean() / CALPHY['cpu_s']:.3f} x calphy's "
                 f"{CALPHY['cpu_s']:.0f} s ({CALPHY['natoms']} atoms, no error bar)")
    return "\n".join(lines), summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cell-length", type=float, default=0.0,
                   help="lateral cell length, A (default: mlipprops' own, 14 A here = 4x4x12 fcc, 768 atoms; "
                        "18 gives 5x5x15 = 1500 atoms)")
    p.add_argument("--repeats", type=int, default=1, help="runs with different --seed values (default 1)")
    p.add_argument("--keep", metavar="DIR", help="keep the output folders under DIR instead of a temporary one")
    p.add_argument("--json", default=str(HERE / "results" / "melt_copper.json"), help="where to write JSON")
    args = p.parse_args()
    if args.repeats < 1:
        p.error("--repeats must be at least 1")

    results = []
    with tempfile.TemporaryDirectory(prefix="melt_cu_") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for k in range(args.repeats):  # one at a time: the timings must not compete with each other
            r = run_one(FIRST_SEED + SEED_STEP * k, args, work)
            results.append(r)
            print(f"[seed {r['seed']}] {r['wall_s']:.0f} s wall, {r['cpu_s']:.0f} s CPU: T_m = {r['T_m']:.1f} ± "
                  f"{r['T_m_err']:.1f} K, {r['n_trials']} trials, {r['natoms']} atoms", flush=True)
    text, summary = report(results)
    print("\n" + text)
    doc = {"benchmark": "melt_copper", "potential": "Cu_mishin1.eam.alloy",
           "published_K": list(PUBLISHED), "acceptance_window_K": list(ACCEPT), "mishin_2001_K": MISHIN_2001,
           "calphy": CALPHY, "cell_length": args.cell_length or None, "results": results, "summary": summary,
           "table": text}
    write_report(args.json, doc)


if __name__ == "__main__":
    main()
