"""The figure of detail kept T(f) and the residual's noise power spectrum, per method.

T(f) is defined in :mod:`pipeline.detail`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from pipeline.detail import ACCEPTANCE_BAND, BANDS

#: One column of the figure: its title and, per method, the curves of
#: :func:`pipeline.detail.curves`.
Panel = tuple[str, Mapping[str, Mapping[str, Sequence[float | None]]]]


def transfer_figure(panels: Sequence[Panel], path: Path) -> Path | None:
    """T(f) (top) and the residual's NPS (bottom) per method, one column per panel.

    None without panels.
    """
    panels = [p for p in panels if p[1]]
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(panels), figsize=(4 * len(panels), 6.5), squeeze=False)
    for col, (title, by_method) in enumerate(panels):
        for method, c in by_method.items():
            f = np.asarray(c["frequency"], float)
            axes[0, col].plot(f, np.asarray(c["transfer"], float), label=method)
            axes[1, col].semilogy(f, np.asarray(c["nps"], float), label=method)
        for band in BANDS:
            axes[0, col].axvspan(
                *band, alpha=0.15 if tuple(band) == ACCEPTANCE_BAND else 0.05, color="grey"
            )
        axes[0, col].set_title(
            title.split(" (")[0], fontsize=9
        )  # the condition, without its parameters
        axes[0, col].set_ylim(0, 1.2)
        axes[1, col].set_xlabel("cycles / pixel")
    axes[0, 0].set_ylabel("detail kept T(f)")
    axes[1, 0].set_ylabel("NPS of output − clean")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
