"""The study's figure: per data set, a panel per n with every arm's paired difference to 'none' (L alone) and
its 95% interval, so a reader sees at a glance what generated and classical augmentation add."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from acquire.files import write_atomic
from studies.lowdata_acquire.comparisons import against_baseline
from studies.lowdata_acquire.protocol import CLASSICAL, NO_AUGMENTATION


def plot_differences(panels: dict[str, pd.DataFrame], out: Path, title: str, endpoint: str = "last") -> Path:
    """panels: label (e.g. 'n = 10') -> comparisons.repeat_endpoints of that cell. One row per arm: the mean
    paired difference to 'none' (points) with its 95% t-interval; generated-only arms blue, classical ones orange."""
    figure = Figure(figsize=(max(7.5, 5.2 * len(panels)), 4.0))
    axes_list = np.atleast_1d(figure.subplots(1, len(panels), sharey=True))
    for axes, (label, endpoints) in zip(axes_list, panels.items()):
        table = against_baseline(endpoints, NO_AUGMENTATION, endpoint)
        order = [arm for arm in endpoints["arm"].unique() if arm != NO_AUGMENTATION]
        table = table.set_index("arm").loc[order[::-1]].reset_index()
        y = np.arange(len(table))
        colours = ["tab:orange" if arm.startswith(CLASSICAL) else "tab:blue" for arm in table["arm"]]
        for row, colour, at in zip(table.itertuples(), colours, y):
            axes.errorbar([row.mean], [at], xerr=[[row.mean - row.low], [row.high - row.mean]], fmt="o",
                          color=colour, capsize=3)
        axes.axvline(0, color="grey", lw=1)
        axes.set_yticks(y, table["arm"])
        repeats = int(table["n"].max()) if len(table) else 0
        axes.set_title(f"{label} ({repeats} repeat{'s' if repeats != 1 else ''})")
        axes.set_xlabel("balanced accuracy − none (points), 95% CI")
        axes.grid(axis="x", alpha=0.3)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return write_atomic(Path(out), lambda tmp: figure.savefig(tmp, dpi=110, format="png"))
