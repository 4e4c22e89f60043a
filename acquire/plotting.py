"""Learning curves from the active loop's CSVs: read, summarise over repeats, plot, tabulate.

The figure mirrors Figure 2 of Nielsen & Okoniewski: the metric (in percent) against the
training-set size, the mean over repeats with a shaded ±1 std band, one line per
(data source, acquisition function) arm; the left panel shows every round, the right one
zooms on the last rounds.

Figures are drawn on Agg canvases created explicitly (no pyplot), so plotting never needs a
display and never touches matplotlib's global backend.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from acquire.files import write_atomic

KEY_COLUMNS = ["sources", "acquisition", "repeat", "train_size"]
ARM = ["run", "sources", "acquisition"]  # run: the CSV's directory, so separate runs never merge
METRIC_LABELS = {"balanced_accuracy": "balanced accuracy", "accuracy": "accuracy"}

PathLike = str | os.PathLike


def read_curves(csv_paths: PathLike | Iterable[PathLike], metric: str = "balanced_accuracy") -> pd.DataFrame:
    """Read and concatenate the active loop's CSVs.

    Raises ValueError naming the file when one is missing, unreadable or lacks any of
    `sources, acquisition, repeat, train_size` and `metric`; and when there are no rows at all.
    """
    paths = [csv_paths] if isinstance(csv_paths, (str, os.PathLike)) else list(csv_paths)
    if not paths:
        raise ValueError("no CSV files given")
    required = KEY_COLUMNS + [metric]
    frames = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
        try:
            frame = pd.read_csv(path, dtype={"sources": str, "acquisition": str})
        except pd.errors.EmptyDataError:
            raise ValueError(f"{path}: file is empty") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not a readable CSV ({exc})") from None
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
        frames.append(frame.assign(run=path.resolve().parent.name))
    df = pd.concat(frames, ignore_index=True)
    if df.empty:
        raise ValueError(f"no rows in {', '.join(str(p) for p in paths)}")
    return df


def _check_metric(df: pd.DataFrame, metric: str) -> None:
    missing = [c for c in ARM[1:] + ["train_size", metric] if c not in df.columns]
    if missing:
        raise ValueError(f"missing column(s) {', '.join(missing)}")


def summarise(df: pd.DataFrame, metric: str = "balanced_accuracy") -> pd.DataFrame:
    """Mean and std of `metric` over repeats, per arm and training-set size.

    Returns columns run, sources, acquisition, train_size, mean, std, n_repeats sorted by those
    keys. `std` is the population std (ddof=0), so a single repeat gives 0; `n_repeats`
    counts the non-missing values averaged. Values stay in the metric's own unit (fractions).
    """
    _check_metric(df, metric)
    values = df.dropna(subset=[metric])
    if "run" not in values.columns:
        values = values.assign(run="")
    grouped = values.groupby(ARM + ["train_size"], sort=True)[metric]
    out = pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=0), "n_repeats": grouped.count()})
    return out.reset_index().sort_values(ARM + ["train_size"], ignore_index=True)


def final_table(df: pd.DataFrame, metric: str = "balanced_accuracy") -> pd.DataFrame:
    """Mean, std and n_repeats of `metric` at each arm's largest training-set size."""
    summary = summarise(df, metric)
    last = summary.groupby(ARM, sort=True)["train_size"].transform("max") == summary["train_size"]
    return summary[last].reset_index(drop=True)


def format_mean_std(mean: float, std: float, n_repeats: int) -> str:
    """A fraction's mean ± std over repeats as percent text; one repeat has no spread, so it shows the mean alone."""
    return f"{100 * mean:.2f} ± {100 * std:.2f}" if n_repeats > 1 else f"{100 * mean:.2f}"


def format_final_table(table: pd.DataFrame, metric: str = "balanced_accuracy") -> str:
    """`final_table`'s output as text, with the metric as "mean ± std" in percent."""
    label = f"{METRIC_LABELS.get(metric, metric)} (%)"
    shown = pd.DataFrame({
        **({"run": table["run"]} if table["run"].nunique() > 1 else {}),
        "sources": table["sources"],
        "acquisition": table["acquisition"],
        "train_size": table["train_size"],
        label: [format_mean_std(*cell) for cell in zip(table["mean"], table["std"], table["n_repeats"])],
        "runs": table["n_repeats"],
    })
    return shown.to_string(index=False)


def _arm_label(run: str, sources: str, acquisition: str, n_repeats: int, show_run: bool) -> str:
    runs = "run" if n_repeats == 1 else "runs"
    return f"{acquisition} · {sources}{f' [{run}]' if show_run else ''} ({n_repeats} {runs})"


def build_figure(
    df: pd.DataFrame,
    metric: str = "balanced_accuracy",
    last_rounds: int = 20,
    title: str | None = None,
) -> Figure:
    """Two panels side by side: every training-set size (left), the last `last_rounds` sizes (right).

    One line per (sources, acquisition) with a shaded mean ± 1 std band, in percent; each arm
    keeps its colour in both panels, random acquisition is dashed, the others solid. The right
    panel's y-limits are fitted to the bands in the zoomed region.
    """
    if last_rounds < 1:
        raise ValueError(f"last_rounds must be >= 1, got {last_rounds}")
    summary = summarise(df, metric)
    if summary.empty:
        raise ValueError(f"no non-missing {metric} values to plot")
    sizes = np.sort(summary["train_size"].unique())
    zoom_sizes = sizes[-last_rounds:]
    zoomed = summary["train_size"] >= zoom_sizes[0]

    fig = Figure(figsize=(13, 5), layout="constrained")
    FigureCanvasAgg(fig)
    ax_all, ax_zoom = fig.subplots(1, 2)
    colours = [f"C{i % 10}" for i in range(summary.groupby(ARM).ngroups)]
    show_run = summary["run"].nunique() > 1
    for colour, ((run, sources, acquisition), arm) in zip(colours, summary.groupby(ARM, sort=True)):
        style = "--" if acquisition == "random" else "-"
        label = _arm_label(run, sources, acquisition, int(arm["n_repeats"].max()), show_run)
        for ax, part in ((ax_all, arm), (ax_zoom, arm[zoomed[arm.index]])):
            x = part["train_size"].to_numpy()
            mean = 100 * part["mean"].to_numpy()
            std = 100 * part["std"].to_numpy()
            ax.plot(x, mean, style, color=colour, linewidth=1.6, label=label)
            ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.2, linewidth=0)

    band = summary[zoomed]
    low = 100 * (band["mean"] - band["std"]).min()
    high = 100 * (band["mean"] + band["std"]).max()
    pad = 0.05 * (high - low) if high > low else 0.5
    ax_zoom.set_ylim(low - pad, high + pad)
    if len(zoom_sizes) > 1:
        ax_zoom.set_xlim(zoom_sizes[0], zoom_sizes[-1])

    ylabel = f"{METRIC_LABELS.get(metric, metric)} (%)"
    ax_all.set_title("all rounds")
    ax_zoom.set_title(f"last {len(zoom_sizes)} rounds")
    for ax in (ax_all, ax_zoom):
        ax.set_xlabel("training-set size (images)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    ax_all.legend(loc="lower right", fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def plot_curves(
    df: pd.DataFrame,
    out_path: PathLike,
    metric: str = "balanced_accuracy",
    last_rounds: int = 20,
    title: str | None = None,
) -> Path:
    """Draw `build_figure` and write it atomically to `out_path` (format from its suffix)."""
    fig = build_figure(df, metric=metric, last_rounds=last_rounds, title=title)
    return write_atomic(Path(out_path), lambda tmp: fig.savefig(tmp, dpi=150))


# ---------------------------------------------------------------------------------------- sweeps


def summarise_sweep(df: pd.DataFrame, x: str, line: str, metric: str = "accuracy",
                    facet: str | None = None) -> pd.DataFrame:
    """Mean, population std and count of `metric` over repeats, per (facet, line, x); sorted by those keys."""
    keys = ([facet] if facet else []) + [line, x]
    missing = [c for c in keys + [metric] if c not in df.columns]
    if missing:
        raise ValueError(f"missing column(s) {', '.join(missing)}")
    values = df.dropna(subset=[metric])
    if values.empty:
        raise ValueError(f"no non-missing {metric} values to summarise")
    grouped = values.groupby(keys, sort=True)[metric]
    out = pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=0), "n_repeats": grouped.count()})
    return out.reset_index()


def plot_sweep(df: pd.DataFrame, out_path: PathLike, x: str, line: str, metric: str = "accuracy",
               facet: str | None = None, xlabel: str | None = None, title: str | None = None,
               log_x: bool = False) -> Path:
    """`metric` (percent) against `x`, one line per value of `line` with a mean ± 1 std band over repeats;
    one panel per value of `facet` (e.g. the real training-set size). Written atomically to `out_path`."""
    summary = summarise_sweep(df, x, line, metric, facet)
    panels = list(summary.groupby(facet, sort=True)) if facet else [(None, summary)]
    fig = Figure(figsize=(6.5 * len(panels), 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    lines = sorted(summary[line].unique(), key=str)
    colours = {name: f"C{i % 10}" for i, name in enumerate(lines)}
    for ax, (panel, part) in zip(axes, panels):
        for name, curve in part.groupby(line, sort=True):
            xs = curve[x].to_numpy()
            mean, std = 100 * curve["mean"].to_numpy(), 100 * curve["std"].to_numpy()
            repeats = int(curve["n_repeats"].max())
            ax.plot(xs, mean, "o-", color=colours[name], linewidth=1.6, markersize=4,
                    label=f"{name} ({repeats} {'run' if repeats == 1 else 'runs'})")
            ax.fill_between(xs, mean - std, mean + std, color=colours[name], alpha=0.2, linewidth=0)
        if log_x:
            ax.set_xscale("log")
            ax.set_xticks(sorted(part[x].unique()), [str(v) for v in sorted(part[x].unique())])
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(xlabel or x)
        ax.set_ylabel(f"{METRIC_LABELS.get(metric, metric)} (%)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
        if facet:
            ax.set_title(f"{facet} = {panel}")
    if title:
        fig.suptitle(title)
    return write_atomic(Path(out_path), lambda tmp: fig.savefig(tmp, dpi=150))
