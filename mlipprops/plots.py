"""Figures written beside the JSON results (matplotlib, no display needed)."""
from __future__ import annotations

import numpy as np

VOIGT_LABELS = ["xx", "yy", "zz", "yz", "xz", "xy"]


def stiffness_heatmap(C: np.ndarray, C_err: np.ndarray, unit: str, path: str, title: str = "") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    vmax = float(np.max(np.abs(C))) or 1.0
    im = ax.imshow(C, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    for i in range(6):
        for j in range(6):
            ax.text(j, i, f"{C[i, j]:.1f}\n±{C_err[i, j]:.1g}", ha="center", va="center", fontsize=7)
    labels = [f"{k + 1}\n{v}" for k, v in enumerate(VOIGT_LABELS)]
    ax.set_xticks(range(6), labels)
    ax.set_yticks(range(6), labels)
    ax.set_title(title or f"C_ij ({unit})")
    fig.colorbar(im, ax=ax, label=unit)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def melt_trials(out_dir: str, record: dict, path: str) -> None:
    """Solid fraction and temperature against time for every coexistence trial."""
    import os

    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    n_order = record["order_parameter"]["n_order"]
    dt = record["settings"]["timestep"]
    cmap = plt.get_cmap("coolwarm")
    temps = [t["temperature"] for t in record["trials"]]
    lo, hi = min(temps), max(temps)
    for t in record["trials"]:
        data = np.loadtxt(os.path.join(out_dir, t["samples_file"]), ndmin=2)
        color = cmap((t["temperature"] - lo) / (hi - lo + 1e-12))
        ax1.plot(data[:, 0] * dt, data[:, -1] / n_order, color=color, label=f"{t['temperature']:.0f}")
        ax2.plot(data[:, 0] * dt, data[:, 1], color=color)
    ax1.set_ylabel("solid-like fraction")
    ax1.legend(fontsize=7, ncol=3, title="trial T")
    ax2.set_ylabel("temperature")
    ax2.set_xlabel("time (ps)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def melt_rates(record: dict, path: str) -> None:
    """Growth rate against temperature with the melting point and its error band."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    T = np.array([t["temperature"] for t in record["trials"]])
    r = np.array([t["rate"] for t in record["trials"]])
    e = np.array([t["rate_error"] for t in record["trials"]])
    ax.errorbar(T, r, yerr=e, fmt="o")
    ax.axhline(0, color="k", lw=0.5)
    ax.axvspan(record["T_m"] - record["T_m_err"], record["T_m"] + record["T_m_err"], alpha=0.3, color="C1")
    ax.axvline(record["T_m"], color="C1", label=f"T_m = {record['T_m']:.1f} ± {record['T_m_err']:.1f}")
    ax.set_xlabel("temperature")
    ax.set_ylabel("growth rate (solid atoms / ps)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
