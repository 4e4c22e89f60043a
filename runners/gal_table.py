"""Gal et al. (2017) Table 1 from a run's curves: images needed to reach a test error
(`python -m runners.gal_table --help`)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

from acquire.errors import UserError
from acquire.files import write_csv
from analysis.curves import read_configs, read_curves
from runners.cli import float_list, numbers_may_be_negative, run_guarded

DESCRIPTION = """\
For every arm of runners.mnist_bald run(s) and every test error in --errors: the smallest training-set size
at which the arm's test error (1 − accuracy on the full test set; --metric balanced_accuracy for 1 −
balanced accuracy) is at or below it, per repeat, then the mean over repeats, beside Gal et al. (2017)'s
Table 1. A repeat that never got there is counted as "not reached by" its largest size, and the mean is then
a lower bound (shown with ">"). mean_curve_train_size reads the same off the mean curve over repeats (how a
table is read off an averaged figure; a single repeat's first crossing is earlier where curves are noisy).
Whether Gal et al.'s counts include their 20 initial images the table does not say, so both are given:
train_size, and acquired = train_size − the run's initial images.
"""

# Gal, Islam & Ghahramani (2017), Table 1: images needed for 10% and 5% test error on MNIST.
GAL_TABLE_1 = {"bald": (145, 335), "variation_ratios": (120, 295), "max_entropy": (165, 355),
               "mean_std": (230, 695), "random": (255, 835)}
GAL_ERRORS = (10.0, 5.0)
GAL_INITIAL = 20
COLUMNS = ["run", "sources", "acquisition", "error_pct", "repeats", "reached", "train_size_per_repeat",
           "mean_train_size", "mean_acquired", "mean_curve_train_size", "gal_2017"]


def images_to_error(curve: pd.DataFrame, error_pct: float, metric: str) -> tuple[int, bool]:
    """(smallest train_size whose error <= error_pct, True) for one repeat's curve, or (largest size, False)."""
    reached = curve[100 * (1 - curve[metric]) <= error_pct]
    if len(reached):
        return int(reached["train_size"].min()), True
    return int(curve["train_size"].max()), False


def size_text(size: int, reached: bool) -> str:
    """'N', or '>N' where the error was not reached by the largest size N."""
    return f"{size}" if reached else f">{size}"


def mean_curve_size(arm: pd.DataFrame, error_pct: float, metric: str) -> str:
    """images_to_error of the arm's mean curve over repeats, as size_text."""
    return size_text(*images_to_error(arm.groupby("train_size", as_index=False)[metric].mean(), error_pct, metric))


def table(df: pd.DataFrame, errors: list[float], metric: str, initials: dict[str, int]) -> list[dict]:
    """One row per (run, arm, error); `initials` maps each run to its initial images."""
    rows = []
    for (run, sources, acquisition), arm in df.groupby(["run", "sources", "acquisition"], sort=True):
        initial = initials[run]
        for error in errors:
            sizes = [images_to_error(curve, error, metric) for _, curve in arm.groupby("repeat", sort=True)]
            mean = sum(size for size, _ in sizes) / len(sizes)
            all_reached = all(ok for _, ok in sizes)
            gal = GAL_TABLE_1.get(acquisition.removesuffix("_mode"))
            gal_value = gal[GAL_ERRORS.index(error)] if gal and error in GAL_ERRORS else math.nan
            rows.append({"run": run, "sources": sources, "acquisition": acquisition, "error_pct": error,
                         "repeats": len(sizes), "reached": sum(ok for _, ok in sizes),
                         "train_size_per_repeat": ";".join(size_text(size, ok) for size, ok in sizes),
                         "mean_train_size": round(mean, 1) if all_reached else f">{mean:.1f}",
                         "mean_acquired": round(mean - initial, 1) if all_reached else f">{mean - initial:.1f}",
                         "mean_curve_train_size": mean_curve_size(arm, error, metric),
                         "gal_2017": gal_value})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = numbers_may_be_negative(argparse.ArgumentParser(prog="python -m runners.gal_table", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter))
    p.add_argument("csv", type=Path, nargs="+", help="rounds.csv of runners.mnist_bald run(s)")
    p.add_argument("--errors", type=float_list, default=list(GAL_ERRORS),
                   help="test errors in percent (default: 10,5, Gal et al.'s two columns)")
    p.add_argument("--metric", choices=("accuracy", "balanced_accuracy"), default="accuracy",
                   help="error = 1 − this column (default: accuracy, as Gal et al.)")
    p.add_argument("--initial", type=int, default=None,
                   help="initial images of every run (default: each run's config.json \"initial\"; "
                        f"{GAL_INITIAL}, Gal et al.'s, for a run without one, with a note)")
    p.add_argument("--out", type=Path, help="also write the table as CSV here")
    args = p.parse_args(argv)
    return run_guarded(lambda: run(args), "nothing was written")


def run_initial(run_name: str, recorded: int | None, given: int | None, smallest: int) -> int:
    """The run's initial images: --initial (`given`), else config.json's (`recorded`), else Gal et al.'s (with a
    note); refused where --initial contradicts the recorded one or where it exceeds the smallest train_size."""
    if given is not None and recorded is not None and given != recorded:
        raise UserError(f"run {run_name}: --initial {given} contradicts its config.json's \"initial\" {recorded}; "
                        "drop --initial to use the run's own")
    initial = given if given is not None else GAL_INITIAL if recorded is None else recorded
    if initial > smallest:
        if given is not None:
            source, fix = f"--initial {given}", f"give --initial at most {smallest}"
        elif recorded is not None:
            source, fix = f"config.json's \"initial\" {recorded}", "the CSV and that config.json are not of one run"
        else:
            source, fix = (f"Gal et al.'s initial size {GAL_INITIAL} (the run records none)",
                           f"give --initial, at most {smallest}")
        raise UserError(f"run {run_name}: {source} is more than its smallest train_size {smallest}, so acquired "
                        f"would be negative; {fix}")
    if given is None and recorded is None:
        print(f"note: run {run_name} records no initial size (no config.json with \"initial\" beside its CSV); "
              f"acquired counts {GAL_INITIAL} initial images, as Gal et al.; give --initial otherwise")
    return initial


def run(args: argparse.Namespace) -> int:
    outside = [error for error in args.errors if not 0 < error < 100]
    if outside:
        raise UserError(f"--errors are test errors in percent, each between 0 and 100; got {outside}")
    if args.initial is not None and args.initial < 0:
        raise UserError(f"--initial must be >= 0, got {args.initial}")
    df = read_curves(args.csv, args.metric)
    configs = read_configs(args.csv)
    initials = {}
    for run_name in sorted(df["run"].unique()):
        recorded = configs.get(run_name, {}).get("initial")
        if recorded is not None and (type(recorded) is not int or recorded < 0):
            raise UserError(f"run {run_name}: config.json's \"initial\" is {recorded!r}, not a count of images; "
                            "fix it (an integer >= 0)")
        initials[run_name] = run_initial(run_name, recorded, args.initial,
                                         int(df.loc[df["run"] == run_name, "train_size"].min()))
    rows = table(df, args.errors, args.metric, initials)
    shown = pd.DataFrame(rows)[["run", "acquisition", "error_pct", "train_size_per_repeat", "mean_train_size",
                                "mean_acquired", "mean_curve_train_size", "gal_2017"]]
    print(shown.to_string(index=False))
    if args.out:
        write_csv(args.out, COLUMNS, rows)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
