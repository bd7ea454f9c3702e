"""Figures of results: matplotlib Figure objects (no pyplot, no backend chosen here), which a notebook shows and
a result's save() writes as PNG."""
from __future__ import annotations

import numpy as np

VOIGT_LABELS = ["xx", "yy", "zz", "yz", "xz", "xy"]


def _figure(size):
    from matplotlib.figure import Figure
    return Figure(figsize=size)


_PENDING: list = []  # figures a result's plot() made in the running Jupyter cell


def shown(fig):
    """A figure for the user (a result's plot()): in a Jupyter kernel shown at the end of the cell, as pyplot's
    figures are, so that `f = e.plot()` shows it too; not when it is the cell's value, which Jupyter shows itself.
    Elsewhere nothing happens (no pyplot, no window)."""
    shell = _kernel_shell()
    if shell is not None:
        if _show_pending not in shell.events.callbacks["post_run_cell"]:
            # a kernel that never imported pyplot has no PNG formatter for figures: it would print their repr
            from IPython.core.pylabtools import select_figure_formats
            select_figure_formats(shell, {"png"})
            shell.events.register("post_run_cell", _show_pending)
        _PENDING.append(fig)
    return fig


def _kernel_shell():
    import sys
    if "ipykernel" not in sys.modules:
        return None
    from IPython import get_ipython
    shell = get_ipython()
    return shell if shell is not None and hasattr(shell, "kernel") else None


def _show_pending(result) -> None:
    from IPython.display import display
    value = getattr(result, "result", None)
    figures = list(_PENDING)
    _PENDING.clear()
    for fig in figures:
        if fig is not value:
            display(fig)


def stiffness_heatmap(C: np.ndarray, C_err: np.ndarray, unit: str, title: str = ""):
    """C_ij with its errors as a heat map."""
    fig = _figure((6.4, 5.4))
    ax = fig.subplots()
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
    return fig


def directional_young(S: np.ndarray, unit: str):
    """Young's modulus E(n) = 1 / (n n S n n) in the (001), (110) and (111) planes of the input frame."""
    from mlipprops.tensors import directional_young as young

    def unit_vector(v):
        return np.asarray(v, float) / np.linalg.norm(v)
    planes = {"(001)": ([1, 0, 0], [0, 1, 0]), "(110)": ([0, 0, 1], [1, -1, 0]), "(111)": ([1, -1, 0], [1, 1, -2])}
    theta = np.linspace(0, 2 * np.pi, 361)
    fig = _figure((13, 4.5))
    for k, (plane, (u, v)) in enumerate(planes.items()):
        ax = fig.add_subplot(1, 3, k + 1, projection="polar")
        E = young(S, np.outer(np.cos(theta), unit_vector(u)) + np.outer(np.sin(theta), unit_vector(v)))
        shown = np.where(E > 0, E, np.nan)  # directions where S says E <= 0 (an unstable C) are left out
        ax.plot(theta, shown)
        ax.set_title(f"{plane}: E from {np.nanmin(shown):.1f} to {np.nanmax(shown):.1f} {unit}", fontsize=10)
    fig.tight_layout()
    return fig


def melt_trials(record: dict, series: dict):
    """Solid fraction and temperature against time for every trial or pinning run (series: samples by file
    name)."""
    fig = _figure((7, 7))
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    n_order = record["order_parameter"]["n_order"]
    dt = record["settings"]["timestep"]
    from matplotlib import colormaps
    cmap = colormaps["coolwarm"]
    temps = [t["temperature"] for t in record["trials"]]
    lo, hi = min(temps), max(temps)
    for t in record["trials"]:
        data = series.get(t["samples_file"])
        if data is None:
            continue
        color = cmap((t["temperature"] - lo) / (hi - lo + 1e-12))
        ax1.plot(data[:, 0] * dt, data[:, 8] / n_order, color=color, label=f"{t['temperature']:.0f}")  # nsolid
        ax2.plot(data[:, 0] * dt, data[:, 1], color=color)
    ax1.set_ylabel("solid-like fraction")
    ax1.legend(fontsize=7, ncol=3, title="trial T")
    ax2.set_ylabel("temperature")
    ax2.set_xlabel("time (ps)")
    fig.tight_layout()
    return fig


def melt_pinning(record: dict):
    """delta_mu(T) with its errors, the fitted line, T_m and its error band (interface pinning)."""
    fig = _figure((6, 4))
    ax = fig.subplots()
    points, fit = record["pinning"]["temperatures"], record["pinning"]["fit"]
    for used, style in ((True, "o"), (False, "x")):
        pts = [p for p in points if p["used"] == used]
        if pts:
            ax.errorbar([p["temperature"] for p in pts], [p["delta_mu"] for p in pts],
                        yerr=[p["delta_mu_err"] for p in pts], fmt=style, color="C0",
                        label=None if used else "not used")
    T = np.linspace(min(fit["temperatures"]), max(fit["temperatures"]), 50)
    ax.plot(T, fit["slope"] * (T - fit["T_m"]), color="C0", lw=1)
    ax.axhline(0, color="k", lw=0.5)
    ax.axvspan(record["T_m"] - record["T_m_err"], record["T_m"] + record["T_m_err"], alpha=0.3, color="C1")
    ax.axvline(record["T_m"], color="C1", label=f"T_m = {record['T_m']:.1f} ± {record['T_m_err']:.1f}")
    ax.set_xlabel("temperature")
    ax.set_ylabel(f"μ_liquid − μ_solid per {record['pinning']['particle'].split()[0]}")
    ax.legend()
    fig.tight_layout()
    return fig


def melt_rates(record: dict):
    """Growth rate against temperature with the melting point and its error band."""
    fig = _figure((6, 4))
    ax = fig.subplots()
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
    return fig
