"""What each arm acquired: class counts read back from a run directory's per-arm state (state/*.json)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from acquire.errors import UserError
from acquire.rundir import CONFIG_FILE, read_json


def acquired_records(run_dir: Path, num_classes: int | None = None
                     ) -> dict[tuple[str, str, int], tuple[list[int], list[str]]]:
    """(sources, acquisition, repeat) -> (labels [n], sources [n]) of the arm's acquisitions in acquisition order
    (the initial images first), as each arm's state records them (any source, any number of classes; a state
    without sources, from an older run, reads as all real: "raw"). A label outside the run's classes 0..K-1
    (K: num_classes, else `run_classes`, where known) is refused naming its state file."""
    arms, paths = {}, {}
    for path in sorted(Path(run_dir, "state").glob("*.json")):
        state = read_json(path)
        try:
            arm = state["arm"]
            labels = [y for r in state["rounds"] for y in r["label"]]
            sources = [s for r in state["rounds"] for s in r.get("source", ["raw"] * len(r["label"]))]
        except (KeyError, TypeError, AttributeError) as error:
            raise UserError(f"{path} is not an arm state of an active-learning run (missing {error})") from None
        bad = [y for y in labels if type(y) is not int or y < 0]
        if bad:
            raise UserError(f"{path}: label {bad[0]!r} is not a class index (an integer >= 0); the state is damaged: "
                            "restore it or rerun the arm")
        if len(sources) != len(labels) or not all(isinstance(s, str) for s in sources):
            raise UserError(f"{path}: the sources of its acquisitions do not match their labels; the state is damaged: "
                            "restore it or rerun the arm")
        arms[arm["sources"], arm["acquisition"], arm["repeat"]] = (labels, sources)
        paths[arm["sources"], arm["acquisition"], arm["repeat"]] = path
    if not arms:
        raise UserError(f"{run_dir} has no per-arm state (state/*.json) to read; give the output directory of an "
                        "active-learning run")
    known = num_classes or run_classes(run_dir, arms)
    outside = [(paths[arm], y) for arm, (labels, _) in arms.items() for y in labels if known and y >= known]
    if outside:
        raise UserError(f"{outside[0][0]}: label {outside[0][1]} is outside the run's {known} classes "
                        f"0..{known - 1}; the state is damaged: restore it or rerun the arm")
    return arms


def run_classes(run_dir: Path, arms: dict[tuple[str, str, int], tuple[list[int], list[str]]]) -> int | None:
    """The run's number of classes K as its `arms` (acquired_records) show it: the classes of the class-balanced
    initial images every arm starts with (config.json's "initial" > 0: initial / K of each class), else None."""
    config_path = Path(run_dir) / CONFIG_FILE
    initial = read_json(config_path).get("initial") if config_path.is_file() else None
    if type(initial) is not int or initial <= 0:
        return None
    return 1 + max(max(labels[:initial], default=-1) for labels, _ in arms.values())


def acquired_labels(run_dir: Path) -> dict[tuple[str, str, int], list[int]]:
    """(sources, acquisition, repeat) -> the labels of the arm's acquisitions [n] (see acquired_records)."""
    return {arm: labels for arm, (labels, _) in acquired_records(run_dir).items()}


def default_sizes(run_dir: Path, count: int = 4) -> list[int]:
    """`count` evenly spaced training-set sizes up to the largest that every arm of the run reached (fewer when
    the run is shorter than `count` images)."""
    reached = min(len(labels) for labels in acquired_labels(run_dir).values())
    return sorted({max(1, round(reached * (i + 1) / count)) for i in range(count)}) if reached else []


def acquired_class_counts(run_dir: Path, sizes: list[int], by_source: bool = False,
                          num_classes: int | None = None) -> pd.DataFrame:
    """Per arm and training-set size in `sizes`: how many acquired images of each class (columns '0'..'K-1';
    K: num_classes, else `run_classes`, else 1 + the largest label any arm acquired); with by_source, one row per
    source the arm took images from (column 'source'). Sizes an arm has not reached are left out; a size no arm
    reached is refused."""
    if sizes and min(sizes) < 1:
        raise UserError(f"training-set sizes must be positive, got {sizes}; give e.g. 50,100,200")
    arms = acquired_records(run_dir, num_classes)
    reached = max(len(labels) for labels, _ in arms.values())
    beyond = [size for size in sizes if size > reached]
    if beyond:
        raise UserError(f"no arm of {run_dir} reached training-set size {', '.join(map(str, beyond))}; the largest "
                        f"any arm reached is {reached}: give sizes up to {reached}")
    num_classes = num_classes or run_classes(run_dir, arms) or 1 + max(
        (max(labels) for labels, _ in arms.values() if labels), default=0)
    rows = []
    for (sources, acquisition, repeat), (labels, taken_from) in arms.items():
        for size in sizes:
            if size > len(labels):
                continue
            groups = sorted(set(taken_from[:size])) if by_source else [None]
            for group in groups:
                counts = [0] * num_classes
                for y, source in zip(labels[:size], taken_from[:size]):
                    if group is None or source == group:
                        counts[y] += 1
                rows.append({"sources": sources, "acquisition": acquisition, "repeat": repeat, "train_size": size,
                             **({"source": group} if by_source else {}), **{str(c): n for c, n in enumerate(counts)}})
    return pd.DataFrame(rows)


def cumulative_class_counts(run_dir: Path) -> pd.DataFrame:
    """Per arm and training-set size (every size the arm reached): how many of its acquisitions so far were of
    each class (columns '0'..'K-1'), one row per arm and size."""
    arms = acquired_labels(run_dir)
    sizes = sorted({n for labels in arms.values() for n in range(1, len(labels) + 1)})
    return acquired_class_counts(run_dir, sizes)


def class_counts_figure(run_dir: Path, title: str = ""):
    """One panel per (sources, acquisition): acquired images of each class against the training-set size, the
    mean over repeats as a line per class, up to the size every repeat reached (a class that is never acquired
    stays on the axis: starvation). Every panel has the same y-scale, so arms compare by eye; the title names the
    run and, from its config.json, the data set and the protocol. Returns the matplotlib Figure."""
    from matplotlib.figure import Figure

    from analysis.curves import dataset_name, protocol_text, read_configs

    table = cumulative_class_counts(run_dir)
    classes = [c for c in table.columns if c.isdigit()]
    arms = list(dict.fromkeys(zip(table["sources"], table["acquisition"])))
    columns = min(len(arms), 4)
    rows = -(-len(arms) // columns)
    figure = Figure(figsize=(4 * columns, 3.2 * rows + 0.9))
    grid = figure.subplots(rows, columns, sharey=True, squeeze=False).ravel()
    for axes, (sources, acquisition) in zip(grid, arms):
        part = table[(table["sources"] == sources) & (table["acquisition"] == acquisition)]
        repeats = part["repeat"].nunique()
        reached_by_all = part.groupby("train_size")["repeat"].nunique() == repeats  # the mean of a fixed set
        mean = part.groupby("train_size")[classes].mean()[reached_by_all]
        for c in classes:
            axes.plot(mean.index, mean[c], label=c, color=f"C{int(c) % 10}", linewidth=1.2)
        axes.set_title(f"{sources} / {acquisition} (mean of {repeats} repeat{'s' * (repeats != 1)})", fontsize=9)
        axes.set_xlabel("training-set size")
        axes.set_ylabel("acquired images of the class")
        axes.yaxis.set_tick_params(labelleft=True)
        axes.grid(alpha=0.3)
    for axes in grid[len(arms):]:
        axes.set_visible(False)
    grid[0].legend(title="class", fontsize=7, ncol=2)
    config = read_configs(Path(run_dir) / "rounds.csv").get(Path(run_dir).resolve().name, {})
    protocol = protocol_text(config)
    dataset = dataset_name(config)
    heading = title or f"What each arm acquired, by class ({Path(run_dir).name})"
    heading = f"{dataset}: {heading}" if dataset else heading
    figure.suptitle(heading + (f"\n{protocol}" if protocol else ""))
    figure.tight_layout()
    return figure


def plot_class_counts(run_dir: Path, out_path: Path, title: str = "") -> Path:
    """Draw `class_counts_figure` and write it atomically to `out_path`."""
    from acquire.files import write_atomic

    figure = class_counts_figure(run_dir, title)
    return write_atomic(Path(out_path), lambda tmp: figure.savefig(tmp, dpi=110))
