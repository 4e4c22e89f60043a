"""Learning curves from the active loop's CSVs: read, summarise over repeats, plot, tabulate.

The figure follows Figure 2 of Nielsen & Okoniewski: the metric (in percent) against the training-set
size, the mean over repeats with a shaded band, one line per (data source, acquisition function) arm. Each
source set keeps one colour and each acquisition function one line style in every figure; the band's
meaning and the number of repeats are written in the legend. A right-hand panel zooming on the last rounds
is drawn only when there are more rounds than it shows.

Figures are drawn on Agg canvases created explicitly (no pyplot), so plotting never needs a display and
never touches matplotlib's global backend.
"""

from __future__ import annotations

import hashlib
import json
import os
import textwrap
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from acquire.errors import UserError
from acquire.files import write_atomic
from analysis.stats import t_halfwidth

CURVE_ROW_KEY = ["sources", "acquisition", "repeat", "train_size"]
ARM = ["run", "sources", "acquisition"]  # run: the CSV's directory, so separate runs never merge
METRIC_LABELS = {"balanced_accuracy": "balanced accuracy", "accuracy": "accuracy"}
FRACTION_COLUMNS = {"accuracy", "balanced_accuracy", "accuracy_real_only", "balanced_accuracy_real_only"}
COUNT_COLUMNS = {"repeat", "train_size", "size", "n"}  # sizes and repeat indices
BANDS = {"std": "± 1 std over repeats (ddof = 0)", "ci95": "95% t-interval of the mean (none from 1 repeat)"}

# The same acquisition function is the same line style in every figure; colours follow the source sets present.
COLOURS = ["C0", "C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9", "#393b79", "#637939", "#8c6d31", "#843c39",
           "#7b4173"]
ACQUISITION_STYLES = {"bald": "-", "random": "--", "max_entropy": ":", "variation_ratios": "-."}
SPARE_STYLES = [(0, (5, 1, 1, 1, 1, 1)), (0, (1, 1)), (0, (8, 2, 2, 2)), (0, (3, 3)), (0, (5, 2, 1, 2, 1, 2))]
RUN_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]

PathLike = str | os.PathLike


def read_curves(csv_paths: PathLike | Iterable[PathLike], metric: str = "balanced_accuracy", *,
                also: Iterable[str] = ()) -> pd.DataFrame:
    """Read and concatenate the active loop's CSVs, with a `run` column naming each file's directory.

    Raises UserError naming the file when one is missing, unreadable or lacks any of
    `sources, acquisition, repeat, train_size` and `metric`, or holds a value there that `check_values` refuses
    (so do the columns `also` names, e.g. balanced_accuracy_real_only, where a file has them); and when there are
    no rows at all.
    """
    paths = [csv_paths] if isinstance(csv_paths, (str, os.PathLike)) else list(csv_paths)
    if not paths:
        raise UserError("no CSV files given")
    required = CURVE_ROW_KEY + [metric]
    frames = []
    for path in paths:
        path = Path(path)
        frame = read_csv_file(path, dtype={"sources": str, "acquisition": str})
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise UserError(f"{path}: missing column(s) {', '.join(missing)}")
        check_values(frame, path, ["repeat", "train_size", metric] + [c for c in also if c in frame.columns])
        frames.append(frame.assign(run=path.resolve().parent.name))
    _check_distinct_runs(paths)
    df = pd.concat(frames, ignore_index=True)
    if df.empty:
        raise UserError(f"no rows in {', '.join(str(p) for p in paths)}")
    twice = df[df.duplicated(["run", *CURVE_ROW_KEY], keep=False)]
    if len(twice):
        row = twice.iloc[0]
        raise UserError(f"run {row['run']} has {len(twice)} rows for {row['sources']}/{row['acquisition']} repeat "
                        f"{row['repeat']} at train_size {row['train_size']}: one row per repeat is counted once; "
                        "remove the duplicate rows")
    return df


def read_csv_file(path: Path, dtype: dict | None = None) -> pd.DataFrame:
    """The CSV at `path`; a path that does not exist, is a directory or no regular file, an empty file and one that
    does not parse are a UserError naming it."""
    if not path.exists():
        raise UserError(f"{path}: does not exist; give the path of a CSV file")
    if path.is_dir():
        raise UserError(f"{path}: is a directory; give the CSV file inside it (e.g. {path / 'rounds.csv'})")
    if not path.is_file():
        raise UserError(f"{path}: is not a regular file; give the path of a CSV file")
    try:
        return pd.read_csv(path, dtype=dtype)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable CSV ({exc})") from None


def read_sweep(csv_path: PathLike, columns: list[str], dtype: dict | None = None) -> pd.DataFrame:
    """A sweep's results.csv, one row per cell and repeat, with `columns` present and checked by `check_values`."""
    path = Path(csv_path)
    frame = read_csv_file(path, dtype)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}")
    check_values(frame, path, columns)
    return frame


def check_values(frame: pd.DataFrame, path: PathLike, columns: list[str]) -> None:
    """Refuse, naming the file, the row (and arm) and the value, a cell of `columns` that is empty, NaN, infinite or
    not a number, a count (COUNT_COLUMNS) that is not an integer >= 0, or a fraction (FRACTION_COLUMNS) outside
    [0, 1]; the columns become numeric."""
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        if column in COUNT_COLUMNS:
            bad, kind = ~(values >= 0) | (values % 1 != 0), "an integer >= 0"
        elif column in FRACTION_COLUMNS:
            bad, kind = ~values.between(0, 1), "a fraction in [0, 1]"
        else:
            bad, kind = ~np.isfinite(values.astype(float)), "a finite number"
        if bad.any():
            cell = frame[column][bad].iloc[0]
            held = "is empty or NaN" if pd.isna(cell) else f"holds {str(cell)!r}"
            raise UserError(f"{path}: column {column} {held} ({_row_text(frame, bad.idxmax())}); each {column} must "
                            f"be {kind}: fix or remove that row")
        frame[column] = values


def _row_text(frame: pd.DataFrame, row: int) -> str:
    """'row N' of a CSV's data row (its index + 2: the header is row 1) and, where the rows have arms, its arm."""
    text = f"row {row + 2}"
    if {"sources", "acquisition"} <= set(frame.columns):
        text += f", {frame.at[row, 'sources']}/{frame.at[row, 'acquisition']}"
        if "repeat" in frame.columns and pd.notna(frame.at[row, "repeat"]):
            text += f" repeat {frame.at[row, 'repeat']}"
    return text


def _check_distinct_runs(paths: list[Path]) -> None:
    """Refuse a CSV given twice, and two CSVs whose folders share a name (the run's name in every table)."""
    folders: dict[str, Path] = {}
    for path in paths:
        folder = Path(path).resolve().parent
        if folder.name in folders:
            same = "the same CSV was given twice" if Path(path).resolve() == folders[folder.name] else (
                f"{folders[folder.name].parent} and {folder} share the folder name {folder.name!r}, "
                "which names the run; rename one")
            raise UserError(f"{path}: {same}; each run is counted once")
        folders[folder.name] = Path(path).resolve()


def read_configs(csv_paths: PathLike | Iterable[PathLike]) -> dict[str, dict]:
    """The config.json beside each CSV that has one, keyed by run (the directory's name, as in `read_curves`).

    A config.json that is not a readable JSON object is a ValueError naming it.
    """
    paths = [csv_paths] if isinstance(csv_paths, (str, os.PathLike)) else list(csv_paths)
    configs = {}
    for path in paths:
        config_path = Path(path).resolve().parent / "config.json"
        if not config_path.is_file():
            continue
        try:
            config = json.loads(config_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"{config_path}: not readable JSON ({exc}); fix it, or move it away to go without "
                             "it") from None
        if not isinstance(config, dict):
            raise UserError(f"{config_path}: expected a JSON object, found {type(config).__name__}")
        configs[config_path.parent.name] = config
    return configs


def protocol_text(config: dict) -> str:
    """A run's protocol in one line, from its config.json: initial size, pool scored, T, epochs, rounds, repeats.

    Settings the config lacks are left out.
    """
    parts = []
    if "initial" in config:
        parts.append(f"initial {config['initial']}")
    if "pool_subset" in config:
        parts.append(f"pool subset {config['pool_subset']:,}" if config["pool_subset"] else "whole pool")
    if "mc_samples" in config:
        parts.append(f"T = {config['mc_samples']}")
    if "epochs" in (config.get("train") or {}):
        parts.append(f"{config['train']['epochs']} epochs")
    if "rounds" in config:
        parts.append(f"{config['rounds']} rounds" + (f" of {config['per_round']}" if "per_round" in config else ""))
    if "repeats" in config:
        parts.append(f"{config['repeats']} repeats")
    return ", ".join(parts)


def dataset_name(config: dict) -> str | None:
    """The data set a run used: its config's "dataset", else the basename of a recorded "data_dir", else None."""
    if config.get("dataset"):
        return str(config["dataset"])
    if config.get("data_dir"):
        return Path(str(config["data_dir"])).name or None
    return None


def _check_metric(df: pd.DataFrame, metric: str) -> None:
    missing = [c for c in ARM[1:] + ["train_size", metric] if c not in df.columns]
    if missing:
        raise UserError(f"missing column(s) {', '.join(missing)}")


def _spread(grouped) -> pd.DataFrame:
    """mean, population std (ddof=0), n_repeats and the 95% t-interval's half-width (ci95) per group."""
    count = grouped.count()
    return pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=0), "n_repeats": count,
                         "ci95": t_halfwidth(grouped.std(ddof=1), count)})


def _with_run(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with a `run` column (empty names where it has none), so its rows group by ARM."""
    return df if "run" in df.columns else df.assign(run="")


def summarise(df: pd.DataFrame, metric: str = "balanced_accuracy") -> pd.DataFrame:
    """Mean and spread of `metric` over repeats, per arm and training-set size.

    Returns columns run, sources, acquisition, train_size, mean, std, n_repeats, ci95 sorted by the keys.
    `std` is the population std (ddof=0), so a single repeat gives 0; `ci95` is the half-width of the 95%
    t-interval of the mean (from the ddof=1 std; NaN for a single repeat); `n_repeats` counts the
    non-missing values averaged. Values stay in the metric's own unit (fractions).
    """
    _check_metric(df, metric)
    values = _with_run(df.dropna(subset=[metric]))
    out = _spread(values.groupby(ARM + ["train_size"], sort=True)[metric])
    return out.reset_index().sort_values(ARM + ["train_size"], ignore_index=True)


def final_table(df: pd.DataFrame, metric: str = "balanced_accuracy") -> pd.DataFrame:
    """Mean, std and n_repeats of `metric` at each arm's largest training-set size."""
    summary = summarise(df, metric)
    last = summary.groupby(ARM, sort=True)["train_size"].transform("max") == summary["train_size"]
    return summary[last].reset_index(drop=True)


def table_at(df: pd.DataFrame, sizes: list[int], metric: str = "balanced_accuracy") -> pd.DataFrame:
    """`summarise`'s rows at the training-set sizes `sizes` (those each arm reached) and, where the rows carry
    n_generated, the fewest and most generated images in the training set over repeats (generated_min,
    generated_max). A size that no arm reached is an error naming the sizes there are."""
    summary = summarise(df, metric)
    missing = sorted(set(sizes) - set(summary["train_size"]))
    if missing:
        raise UserError(f"no arm reached train_size {', '.join(map(str, missing))}; the rows have sizes "
                         f"{summary['train_size'].min()} to {summary['train_size'].max()}")
    rows = summary[summary["train_size"].isin(sizes)]
    if "n_generated" in df.columns:
        counts = (_with_run(df).groupby(ARM + ["train_size"])["n_generated"]
                  .agg(generated_min="min", generated_max="max"))
        rows = rows.merge(counts.reset_index(), on=ARM + ["train_size"], how="left")
    return rows.sort_values(["train_size", *ARM], ignore_index=True)


def format_mean_std(mean: float, std: float, n_repeats: int) -> str:
    """A fraction's mean ± std over repeats as percent text; one repeat has no spread, so it shows the mean alone."""
    return f"{100 * mean:.2f} ± {100 * std:.2f}" if n_repeats > 1 else f"{100 * mean:.2f}"


def format_table(table: pd.DataFrame, metric: str = "balanced_accuracy") -> str:
    """`final_table`'s or `table_at`'s output as text: the metric as "mean ± std" in percent (population std
    over repeats) and, where the table has them, the generated images' range over repeats."""
    label = f"{METRIC_LABELS.get(metric, metric)} (%)"
    shown = pd.DataFrame({
        **({"run": table["run"]} if table["run"].nunique() > 1 else {}),
        "sources": table["sources"],
        "acquisition": table["acquisition"],
        "train_size": table["train_size"],
        label: [format_mean_std(*cell) for cell in zip(table["mean"], table["std"], table["n_repeats"])],
        "runs": table["n_repeats"],
        **({"generated": [f"{low:g}" if low == high else f"{low:g}–{high:g}"
                          for low, high in zip(table["generated_min"], table["generated_max"])]}
           if "generated_min" in table.columns else {}),
    })
    return shown.to_string(index=False)


# ---------------------------------------------------------------------------------------- styles


def _stable_map(names: Iterable[str], fixed: dict, spare: list) -> dict:
    """name -> fixed[name], else a spare picked by the name's hash (the next free one if taken in this figure)."""
    names = sorted(set(names))
    chosen = {name: fixed[name] for name in names if name in fixed}
    for name in (n for n in names if n not in fixed):
        start = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "little")
        order = [spare[(start + i) % len(spare)] for i in range(len(spare))]
        chosen[name] = next((s for s in order if s not in chosen.values()), order[0])
    return chosen


def distinct_colours(names: Iterable[str]) -> dict[str, str]:
    """A colour per name present, in sorted order ("raw" first), distinct up to len(COLOURS) names."""
    ordered = sorted(set(names), key=lambda name: (name != "raw", name))
    return {name: COLOURS[i % len(COLOURS)] for i, name in enumerate(ordered)}


def acquisition_styles(acquisitions: Iterable[str]) -> dict[str, object]:
    """A line style per acquisition function, the same in every figure (random dashed, BALD solid)."""
    return _stable_map(acquisitions, ACQUISITION_STYLES, SPARE_STYLES)


def _count_text(counts: pd.Series) -> str:
    low, high = int(counts.min()), int(counts.max())
    return f"{low}" if low == high else f"{low}–{high}"


def repeats_text(counts: pd.Series) -> str:
    """'1 repeat', '3 repeats' or '2–3 repeats'."""
    text = _count_text(counts)
    return f"{text} repeat{'' if text == '1' else 's'}"


def band_text(band: str, n_repeats: pd.Series) -> str:
    """What the shaded band is and over how many repeats, for a legend title."""
    if band not in BANDS:
        raise UserError(f"band must be one of {', '.join(BANDS)}, got {band!r}")
    if n_repeats.max() == 1:
        return "one repeat per point: no band"
    n = _count_text(n_repeats)
    return f"shaded: {BANDS[band]}\nn = {repeats_text(n_repeats)}" + (" (per line in brackets)" if "–" in n else "")


def _band(part: pd.DataFrame, band: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, band bottom and band top in percent; the band clipped to 0–100 (NaN: ci95 of one repeat)."""
    mean = 100 * part["mean"].to_numpy(float)
    half = 100 * part["std" if band == "std" else "ci95"].to_numpy(float)
    return mean, np.clip(mean - half, 0, 100), np.clip(mean + half, 0, 100)


# ---------------------------------------------------------------------------------------- curves


def _arm_label(run: str, sources: str, acquisition: str, n_repeats: pd.Series, show_run: bool) -> str:
    return f"{acquisition} · {sources}{f' [{run}]' if show_run else ''} ({repeats_text(n_repeats)})"


def _draw_arm(ax: Axes, part: pd.DataFrame, band: str, **style) -> None:
    x = part["train_size"].to_numpy()
    mean, bottom, top = _band(part, band)
    ax.plot(x, mean, linewidth=1.6, markevery=max(1, len(x) // 10), markersize=4, **style)
    ax.fill_between(x, bottom, top, color=style["color"], alpha=0.2, linewidth=0)


def build_figure(
    df: pd.DataFrame,
    metric: str = "balanced_accuracy",
    last_rounds: int = 20,
    title: str | None = None,
    *,
    band: str = "std",
    dataset: str | None = None,
    protocol: str | None = None,
) -> Figure:
    """Every training-set size (left) and, when there are more than `last_rounds` sizes, the last
    `last_rounds` zoomed (right).

    One line per arm, the mean in percent with a shaded band (`band`: 'std', ± 1 population std; 'ci95',
    the 95% t-interval of the mean). Colour by source set, line style by acquisition function, a marker per
    run when several runs share the figure. The title reads "`dataset`: `title`", then `protocol`.
    """
    if last_rounds < 1:
        raise UserError(f"last_rounds must be >= 1, got {last_rounds}")
    summary = summarise(df, metric)
    if summary.empty:
        raise UserError(f"no non-missing {metric} values to plot")
    legend_title = band_text(band, summary["n_repeats"])
    sizes = np.sort(summary["train_size"].unique())
    zoom = len(sizes) > last_rounds

    fig = Figure(figsize=(13, 5) if zoom else (9, 5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = list(np.atleast_1d(fig.subplots(1, 2 if zoom else 1)))
    by_acquisition = summary["sources"].nunique() == 1  # one source set: colour tells the functions apart
    colours = distinct_colours(summary["acquisition" if by_acquisition else "sources"])
    styles = acquisition_styles(summary["acquisition"])
    runs = sorted(summary["run"].unique())
    show_run = len(runs) > 1
    for (run, sources, acquisition), arm in summary.groupby(ARM, sort=True):
        style = {"color": colours[acquisition if by_acquisition else sources], "linestyle": styles[acquisition],
                 "marker": RUN_MARKERS[runs.index(run) % len(RUN_MARKERS)] if show_run else None,
                 "label": _arm_label(run, sources, acquisition, arm["n_repeats"], show_run)}
        _draw_arm(axes[0], arm, band, **style)
        if zoom:
            _draw_arm(axes[1], arm[arm["train_size"] >= sizes[-last_rounds]], band, **style)

    ylabel = f"{METRIC_LABELS.get(metric, metric)} (%)"
    for ax in axes:
        ax.set_xlabel("training-set size (images)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    if zoom:
        _fit_zoom(axes[1], summary[summary["train_size"] >= sizes[-last_rounds]], band)
        axes[0].set_title("all rounds")
        axes[1].set_title(f"last {last_rounds} rounds")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right center", fontsize="small",
               title=legend_title, title_fontsize="small")  # outside the axes: never over a curve
    lines = [": ".join(p for p in (dataset, title) if p)] + (protocol or "").splitlines()
    heading = [wrapped for line in lines if line for wrapped in textwrap.wrap(line, int(11 * fig.get_figwidth()))]
    if heading:
        fig.suptitle("\n".join(heading), fontsize="medium")
    return fig


def _fit_zoom(ax: Axes, shown: pd.DataFrame, band: str) -> None:
    """y-limits fitted to the means and bands in the zoomed sizes; x-limits to those sizes."""
    mean, bottom, top = _band(shown, band)
    low, high = np.fmin(mean, bottom).min(), np.fmax(mean, top).max()
    pad = 0.05 * (high - low) if high > low else 0.5
    ax.set_ylim(low - pad, high + pad)
    if shown["train_size"].nunique() > 1:
        ax.set_xlim(shown["train_size"].min(), shown["train_size"].max())


def plot_curves(
    df: pd.DataFrame,
    out_path: PathLike,
    metric: str = "balanced_accuracy",
    last_rounds: int = 20,
    title: str | None = None,
    *,
    band: str = "std",
    dataset: str | None = None,
    protocol: str | None = None,
) -> Path:
    """Draw `build_figure` and write it atomically to `out_path` (format from its suffix)."""
    fig = build_figure(df, metric=metric, last_rounds=last_rounds, title=title, band=band, dataset=dataset,
                       protocol=protocol)
    return write_atomic(Path(out_path), lambda tmp: fig.savefig(tmp, dpi=150))


# ---------------------------------------------------------------------------------------- sweeps


def summarise_sweep(df: pd.DataFrame, x: str, line: str, metric: str = "accuracy",
                    facet: str | None = None) -> pd.DataFrame:
    """Mean, population std, count and 95% t half-width (ci95) of `metric` over repeats, per (facet, line, x).

    A `metric` value that `check_values` refuses is a UserError (`read_sweep` names the file it came from)."""
    keys = ([facet] if facet else []) + [line, x]
    missing = [c for c in keys + [metric] if c not in df.columns]
    if missing:
        raise UserError(f"missing column(s) {', '.join(missing)}")
    twice = df[df.duplicated(keep=False)]
    if len(twice):
        raise UserError(f"{len(twice)} identical rows (first: {dict(twice.iloc[0])}): a cell counted twice would "
                        "shrink the spread; remove the duplicate rows")
    if df.empty:
        raise UserError(f"no {metric} values to summarise")
    values = df.reset_index(drop=True)
    check_values(values, "the sweep table", [metric])
    return _spread(values.groupby(keys, sort=True)[metric]).reset_index()


def build_sweep_figure(df: pd.DataFrame, x: str, line: str, metric: str = "accuracy", facet: str | None = None,
                       xlabel: str | None = None, title: str | None = None, log_x: bool = False,
                       band: str = "std") -> Figure:
    """`metric` (percent) against `x`, one line per value of `line` with a shaded band over repeats (as in
    `build_figure`, its meaning in the legend); one panel per value of `facet` (e.g. the real training-set size)."""
    summary = summarise_sweep(df, x, line, metric, facet)
    legend_title = band_text(band, summary["n_repeats"])
    panels = list(summary.groupby(facet, sort=True)) if facet else [(None, summary)]
    fig = Figure(figsize=(6.5 * len(panels), 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    lines = sorted(summary[line].unique(), key=str)
    colours = {name: f"C{i % 10}" for i, name in enumerate(lines)}
    for ax, (panel, part) in zip(axes, panels):
        for name, curve in part.groupby(line, sort=True):
            xs = curve[x].to_numpy()
            mean, bottom, top = _band(curve, band)
            ax.plot(xs, mean, "o-", color=colours[name], linewidth=1.6, markersize=4,
                    label=f"{name} ({repeats_text(curve['n_repeats'])})")
            ax.fill_between(xs, bottom, top, color=colours[name], alpha=0.2, linewidth=0)
        if log_x:
            ax.set_xscale("log")
            ax.set_xticks(sorted(part[x].unique()), [str(v) for v in sorted(part[x].unique())])
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(xlabel or x)
        ax.set_ylabel(f"{METRIC_LABELS.get(metric, metric)} (%)")
        ax.grid(True, alpha=0.3)
        if facet:
            ax.set_title(f"{facet} = {panel}")
    handles = {label: handle for ax in axes for handle, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), loc="outside right upper", fontsize="small", title=legend_title,
               title_fontsize="small")  # outside the axes: never over a curve
    if title:
        fig.suptitle(title)
    return fig


def plot_sweep(df: pd.DataFrame, out_path: PathLike, x: str, line: str, metric: str = "accuracy",
               facet: str | None = None, xlabel: str | None = None, title: str | None = None,
               log_x: bool = False, band: str = "std") -> Path:
    """Draw `build_sweep_figure` and write it atomically to `out_path`."""
    fig = build_sweep_figure(df, x, line, metric, facet, xlabel, title, log_x, band)
    return write_atomic(Path(out_path), lambda tmp: fig.savefig(tmp, dpi=150))
