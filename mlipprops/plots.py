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
