"""Paired differences between arms at every training-set size and over a window of rounds, and their figure.

Where many arms' curves overlap (the paper's grid: 10 arms), the reader wants the differences the text states,
each with its interval: one small panel per pair A − B, the mean over repeats of the per-repeat difference with
its t-interval as a band (every panel on one y-scale), 0 drawn, and the window's mean difference (e.g. rounds
31–50) as a bar with its interval. Rows that ran on another device than their partner's (a GPU) are marked.
The numbers are those of `analysis.stats` (the same as `python -m runners.compare`).
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from acquire.errors import UserError
from acquire.files import write_atomic
from analysis.curves import METRIC_LABELS
from analysis.stats import ArmKey, PairedDifference, _arm_rows, arm_name, pair_by_repeat, paired_difference

PathLike = str | os.PathLike
Pair = tuple[ArmKey, ArmKey]
TABLE_COLUMNS = ["metric", "a", "b", "at", "first_size", "last_size", "n", "repeats", "diffs_pp", "mean_diff_pp",
                 "std_pp_ddof1", "ci_low_pp", "ci_high_pp", "confidence", "corr_ab", "std_unpaired_pp",
                 "shared_draws", "verdict"]


def _values_by_repeat(rows: pd.DataFrame, metric: str) -> pd.Series:
    return rows.set_index("repeat")[metric]


def difference_curves(df: pd.DataFrame, pairs: Iterable[Pair], metric: str = "balanced_accuracy",
                      confidence: float = 0.95) -> pd.DataFrame:
    """Per pair (A, B) and every training-set size both arms reached: A − B in points, paired by repeat.

    Columns a, b, a_run, b_run (the run each arm's rows come from, '' without a run column), train_size, n, mean,
    low, high (the `confidence` t-interval; NaN from one repeat). Sizes where the arms share no repeat are left out.
    """
    rows = []
    for a, b in pairs:
        a_rows, b_rows = _arm_rows(df, a, metric), _arm_rows(df, b, metric)
        runs = [str(part["run"].iloc[0]) if "run" in part.columns else "" for part in (a_rows, b_rows)]
        for size in sorted(set(a_rows["train_size"]) & set(b_rows["train_size"])):
            a_at = _values_by_repeat(a_rows[a_rows["train_size"] == size], metric)
            b_at = _values_by_repeat(b_rows[b_rows["train_size"] == size], metric)
            if not set(a_at.index) & set(b_at.index):
                continue
            diff = pair_by_repeat(a, b, size, a_at, b_at, confidence)
            low, high = diff.interval
            rows.append({"a": arm_name(a), "b": arm_name(b), "a_run": runs[0], "b_run": runs[1],
                         "train_size": int(size), "n": diff.n, "mean": diff.mean, "low": low, "high": high})
    if not rows:
        raise UserError("no training-set size is common to the arms of any pair")
    return pd.DataFrame(rows)


def window_means(df: pd.DataFrame, arm: ArmKey, first_round: int, last_round: int,
                 metric: str = "balanced_accuracy") -> pd.Series:
    """Each repeat's mean `metric` over rounds first_round..last_round, indexed by repeat. A repeat that lacks
    any round of the window is an error naming it (a mean over fewer rounds would not be the same endpoint)."""
    if first_round > last_round:
        raise UserError(f"the window's first round {first_round} is after its last {last_round}")
    rows = _arm_rows(df, arm, metric)
    if "round" not in rows.columns:
        raise UserError(f"{arm_name(arm)}: the rows have no round column, so no window of rounds can be read")
    window = rows[rows["round"].between(first_round, last_round)]
    wanted = set(range(first_round, last_round + 1))
    for repeat, part in rows.groupby("repeat"):
        missing = sorted(wanted - set(part["round"]))
        if missing:
            raise UserError(f"{arm_name(arm)} repeat {repeat} lacks round(s) {', '.join(map(str, missing[:5]))} of the "
                             f"window {first_round}-{last_round}; give a window every repeat completed")
    return window.groupby("repeat")[metric].mean()


def window_difference(df: pd.DataFrame, a: ArmKey, b: ArmKey, first_round: int, last_round: int,
                      metric: str = "balanced_accuracy", confidence: float = 0.95) -> PairedDifference:
    """A − B (points) of each repeat's mean over rounds first_round..last_round, paired by repeat; its train_size
    is the window's last size."""
    a_rows = _arm_rows(df, a, metric)
    last_size = int(a_rows[a_rows["round"] == last_round]["train_size"].max())
    return pair_by_repeat(a, b, last_size, window_means(df, a, first_round, last_round, metric),
                          window_means(df, b, first_round, last_round, metric), confidence)


def arm_correlation(a_by_repeat: pd.Series, b_by_repeat: pd.Series) -> float:
    """Pearson correlation of two arms' values across the repeats both have (NaN from fewer than 3, or when one
    arm is constant): positive where pairing cancels shared variation, negative where it adds to it."""
    repeats = sorted(set(a_by_repeat.index) & set(b_by_repeat.index))
    x, y = a_by_repeat.loc[repeats].to_numpy(float), b_by_repeat.loc[repeats].to_numpy(float)
    if len(repeats) < 3 or x.std() == 0 or y.std() == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def _row(metric: str, at: str, first_size: int, diff: PairedDifference, a_values: pd.Series,
         b_values: pd.Series) -> dict:
    repeats = list(diff.repeats)
    unpaired = math.sqrt(a_values.loc[repeats].var(ddof=1) + b_values.loc[repeats].var(ddof=1)) * 100 \
        if diff.n >= 2 else math.nan
    row = diff.as_row()
    return {"metric": metric, "a": row["a"], "b": row["b"], "at": at, "first_size": first_size,
            "last_size": diff.train_size, "n": diff.n, "repeats": row["repeats"], "diffs_pp": row["diffs_pp"],
            "mean_diff_pp": diff.mean, "std_pp_ddof1": diff.std, "ci_low_pp": row["ci_low_pp"],
            "ci_high_pp": row["ci_high_pp"], "confidence": diff.confidence,
            "corr_ab": arm_correlation(a_values, b_values), "std_unpaired_pp": unpaired,
            "shared_draws": diff.shared_draws, "verdict": diff.verdict()}


def comparison_table(df: pd.DataFrame, pairs: Iterable[Pair], sizes: Iterable[int] = (),
                     window: tuple[int, int] | None = None, metric: str = "balanced_accuracy",
                     confidence: float = 0.95) -> pd.DataFrame:
    """Per pair, one row per size in `sizes` ("at" = the size) and one for `window` ("at" = "rounds F-L"): the
    paired difference (as `runners.compare` gives it), corr_ab (the arms' correlation across repeats) and
    std_unpaired_pp (the std the differences would have with independent arms, sqrt(var A + var B), ddof = 1):
    pairing narrows an interval only where std_pp_ddof1 is below it, i.e. where corr_ab > 0."""
    rows = []
    for a, b in pairs:
        a_rows, b_rows = _arm_rows(df, a, metric), _arm_rows(df, b, metric)
        for size in sizes:
            diff = paired_difference(df, a, b, size, metric, confidence)
            rows.append(_row(metric, str(size), int(size), diff,
                             _values_by_repeat(a_rows[a_rows["train_size"] == size], metric),
                             _values_by_repeat(b_rows[b_rows["train_size"] == size], metric)))
        if window:
            first, last = window
            a_values, b_values = (window_means(df, arm, first, last, metric) for arm in (a, b))
            diff = window_difference(df, a, b, first, last, metric, confidence)
            first_size = int(a_rows[a_rows["round"] == first]["train_size"].min())
            rows.append(_row(metric, f"rounds {first}-{last}", first_size, diff, a_values, b_values))
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def device_spans(df: pd.DataFrame, devices: dict[str, int]) -> dict[str, int]:
    """run -> the first training-set size of its rows from round devices[run] on (the rows that ran on the other
    device); runs absent from `df` are an error naming the runs there are."""
    known = sorted(df["run"].unique()) if "run" in df.columns else []
    spans = {}
    for run, first_round in devices.items():
        rows = df[(df["run"] == run) & (df["round"] >= first_round)] if run in known else None
        if rows is None:
            raise UserError(f"no run {run!r} among the CSVs' runs ({', '.join(known) or 'none'}); name a run by its "
                             "CSV's directory")
        if rows.empty:
            raise UserError(f"run {run} has no rows from round {first_round} on")
        spans[run] = int(rows["train_size"].min())
    return spans


def _fmt(mean: float, low: float, high: float) -> str:
    return f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]"


def build_difference_figure(curves: pd.DataFrame, table: pd.DataFrame | None = None, *,
                            device_from: dict[str, int] | None = None, device_name: str = "GPU",
                            ncols: int = 4, from_size: int | None = None, title: str | None = None,
                            metric: str = "balanced_accuracy", confidence: float = 0.95) -> Figure:
    """One panel per pair of `curves` (from `difference_curves`), in the order given, `ncols` a row, all on one
    y-scale: A − B (points) against the training-set size, its t-interval shaded, 0 as a black line. `table` (from
    `comparison_table`) adds, per panel, its rows as text and each window row as a bar over the window's sizes with
    its interval. `device_from` (run -> first size that ran on `device_name`, from `device_spans`) shades those
    sizes grey in each panel where A's or B's run is one of them, and says which arm in the panel's title."""
    if ncols < 1:
        raise UserError(f"ncols must be >= 1, got {ncols}")
    shown = curves if from_size is None else curves[curves["train_size"] >= from_size]
    if shown.empty:
        raise UserError(f"no difference at or above train_size {from_size}")
    device_from = device_from or {}
    pairs = list(dict.fromkeys(zip(shown["a"], shown["b"])))
    nrows = -(-len(pairs) // ncols)
    columns = min(ncols, len(pairs))
    fig = Figure(figsize=(3.6 * columns, 2.9 * nrows + 0.9), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(nrows, columns, sharey=True, squeeze=False)).ravel()
    low_all = np.nanmin(np.fmin(shown["low"], shown["mean"]))
    high_all = np.nanmax(np.fmax(shown["high"], shown["mean"]))
    marked_any = False
    for ax, (a, b) in zip(axes, pairs):
        part = shown[(shown["a"] == a) & (shown["b"] == b)]
        x = part["train_size"].to_numpy()
        first_size = curves[(curves["a"] == a) & (curves["b"] == b)]["train_size"].min()
        notes = []
        for side, run in (("A", part["a_run"].iloc[0]), ("B", part["b_run"].iloc[0])):
            if run in device_from:
                start = device_from[run]
                notes.append(f"{side} on {device_name}" + (f" from {start} images" if start > first_size else ""))
        if notes:
            start = min(device_from[run] for run in (part["a_run"].iloc[0], part["b_run"].iloc[0])
                        if run in device_from)
            ax.axvspan(max(start, x.min()), x.max(), color="0.5", alpha=0.12, linewidth=0)
            marked_any = True
        ax.axhline(0, color="black", linewidth=0.8)
        ax.fill_between(x, part["low"], part["high"], color="C0", alpha=0.25, linewidth=0)
        ax.plot(x, part["mean"], color="C0", linewidth=1.4)
        lines = []
        if table is not None:
            for _, row in table[(table["a"] == a) & (table["b"] == b)].iterrows():
                if row["at"].startswith("rounds"):
                    lo, hi = max(row["first_size"], x.min()), row["last_size"]
                    ax.fill_between([lo, hi], row["ci_low_pp"], row["ci_high_pp"], color="C3", alpha=0.25,
                                    linewidth=0)
                    ax.plot([lo, hi], [row["mean_diff_pp"]] * 2, color="C3", linewidth=2)
                lines.append(f"{row['at']}: {_fmt(row['mean_diff_pp'], row['ci_low_pp'], row['ci_high_pp'])}")
        if lines:
            ax.text(0.98, 0.03, "\n".join(lines), transform=ax.transAxes, ha="right", va="bottom", fontsize=7,
                    bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0})
        heading = f"{a}\n− {b}" + (f"\n({'; '.join(notes)})" if notes else "")
        ax.set_title(heading, fontsize=8)
        ax.grid(True, alpha=0.3)
        ax.set_xlabel("training-set size (images)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(pairs):]:
        ax.set_visible(False)
    pad = 0.05 * (high_all - low_all) if high_all > low_all else 0.5
    axes[0].set_ylim(low_all - pad, high_all + pad)
    for row_start in range(0, len(pairs), columns):
        axes[row_start].set_ylabel(f"A − B, {METRIC_LABELS.get(metric, metric)} (points)", fontsize=8)
    n = shown["n"]
    key = [f"blue: mean of the per-repeat differences A − B, band: its {confidence:.0%} t-interval "
           f"(n = {int(n.min())}{'' if n.min() == n.max() else f'–{int(n.max())}'} repeats, paired by repeat)"]
    if table is not None and table["at"].str.startswith("rounds").any():
        key.append(f"red bar: each repeat's mean over the window of rounds, differenced, with its {confidence:.0%} "
                   "t-interval")
    if marked_any:
        key.append(f"grey: sizes whose rows ran on {device_name} for the arm(s) the panel's title names")
    lines = [title] if title else []
    lines += textwrap.wrap("; ".join(key), int(16 * fig.get_figwidth()))
    fig.suptitle("\n".join(lines), fontsize=9)
    return fig


def plot_differences(curves: pd.DataFrame, out_path: PathLike, table: pd.DataFrame | None = None,
                     **options) -> Path:
    """Draw `build_difference_figure` and write it atomically to `out_path` (format from its suffix)."""
    fig = build_difference_figure(curves, table, **options)
    return write_atomic(Path(out_path), lambda tmp: fig.savefig(tmp, dpi=130))
