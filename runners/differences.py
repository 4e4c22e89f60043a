"""Paired differences at every size and over a window of rounds, one panel per pair
(`python -m runners.differences --help`)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from acquire.errors import UserError
from acquire.files import write_csv
from analysis.curves import METRIC_LABELS, read_configs, read_curves
from analysis.differences import (TABLE_COLUMNS, comparison_table, device_spans, difference_curves,
                                  plot_differences)
from analysis.stats import parse_arm
from runners.cli import int_list, numbers_may_be_negative, run_guarded

DESCRIPTION = """\
Paired differences A - B between arms of the active loop's CSVs, for figures where the curves themselves
overlap: per pair, the mean over repeats of the per-repeat difference (percentage points) at every
training-set size both arms reached, with its 95% t-interval (as runners.compare), drawn as one small
panel per pair on one shared y-scale. --at adds rows at given sizes and --window a row for each repeat's
mean over a window of rounds (e.g. 31-50, the last 20 of 50), both into --table and onto the panels.
Each row also gives corr_ab, the two arms' correlation across repeats, and std_unpaired_pp, the std the
differences would have if the arms were independent: pairing narrows an interval only where the arms are
positively correlated. --gpu-run marks the rows a run made on a GPU (from a round on), so that a pair
whose arms ran on different devices is visible as such.
"""

EPILOG = """\
the paper's grid (results/grid_all/differences.png; the full command is in results/README.md):
  python -m runners.differences results/grid_raw/rounds.csv \\
      results/grid_{small_dcgan,large_dcgan,pggan,dada}/rounds.csv \\
      --pair raw+small_dcgan/bald raw/random --pair raw+pggan/bald raw/bald ... \\
      --at 500 --window 31-50 --gpu-run grid_small_dcgan:4 --gpu-run grid_dada --gpu-name H100 \\
      --from-size 100 --out results/grid_all/differences.png --table results/grid_all/differences.csv
"""


def window(text: str) -> tuple[int, int]:
    """'31-50' -> (31, 50) (an argparse type)."""
    first, sep, last = text.partition("-")
    try:
        value = (int(first), int(last)) if sep else None
    except ValueError:
        value = None
    if value is None or value[0] < 1 or value[0] > value[1]:
        raise argparse.ArgumentTypeError(f"expected FIRST-LAST rounds with 1 <= FIRST <= LAST, e.g. 31-50, "
                                         f"got {text!r}")
    return value


def gpu_run(text: str) -> tuple[str, int]:
    """'grid_small_dcgan:4' -> ('grid_small_dcgan', 4); 'grid_dada' -> ('grid_dada', 1) (an argparse type)."""
    run, sep, first = text.partition(":")
    try:
        first_round = int(first) if sep else 1
    except ValueError:
        first_round = 0
    if not run or first_round < 1:
        raise argparse.ArgumentTypeError(f"expected RUN or RUN:FIRST_ROUND (a round >= 1), got {text!r}")
    return run, first_round


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m runners.differences", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", nargs="+", type=Path, help="rounds.csv file(s) written by the active loop")
    parser.add_argument("--pair", nargs=2, action="append", required=True, metavar=("A", "B"),
                        help="arms as SOURCES/ACQUISITION (or RUN:SOURCES/ACQUISITION), one panel each, in the "
                             "order given (repeatable)")
    parser.add_argument("--at", type=int_list, default=[], metavar="SIZE[,SIZE...]",
                        help="also tabulate (and print on each panel) the difference at these sizes")
    parser.add_argument("--window", type=window, default=None, metavar="FIRST-LAST",
                        help="also tabulate the difference of each repeat's mean over rounds FIRST..LAST, drawn as "
                             "a bar with its interval")
    parser.add_argument("--gpu-run", type=gpu_run, action="append", default=[], metavar="RUN[:FIRST_ROUND]",
                        help="the run (its CSV's directory name) made its rows from FIRST_ROUND (default 1) on a "
                             "GPU: those sizes are shaded in its pairs' panels (repeatable)")
    parser.add_argument("--gpu-name", default="GPU", help="the GPU's name in the figure (default: %(default)s)")
    parser.add_argument("--from-size", type=int, default=None,
                        help="draw sizes from this one on (default: all); the table is unaffected")
    parser.add_argument("--ncols", type=int, default=4, help="panels a row (default: %(default)s)")
    parser.add_argument("--title", default=None, help="figure title (default: none)")
    parser.add_argument("--metric", choices=sorted(METRIC_LABELS), default="balanced_accuracy",
                        help="column compared (default: %(default)s)")
    parser.add_argument("--out", type=Path, required=True, help="the figure (.png, .pdf, .svg)")
    parser.add_argument("--table", type=Path, default=None, help="also write the --at and --window rows here (CSV)")
    return numbers_may_be_negative(parser)


def _text(table) -> str:
    def cell(row) -> str:
        ci = "-" if math.isnan(row.ci_low_pp) else f"{row.ci_low_pp:+.2f} to {row.ci_high_pp:+.2f}"
        corr = "-" if math.isnan(row.corr_ab) else f"{row.corr_ab:+.2f}"
        return f"{row.a} − {row.b} at {row.at}: {row.mean_diff_pp:+.2f}, 95% CI {ci}, corr(A, B) {corr}"
    return "\n".join(cell(row) for row in table.itertuples())


def run(args: argparse.Namespace) -> int:
    df = read_curves(args.csv, metric=args.metric)
    configs = read_configs(args.csv)
    df["seeding"] = df["run"].map(lambda r: configs[r].get("seeding", "per_source") if r in configs else None)
    if any(":" in spec for pair in args.pair for spec in pair):  # arms named with their run
        df["sources"] = df["run"] + ":" + df["sources"]
    pairs = [(parse_arm(a), parse_arm(b)) for a, b in args.pair]
    if args.table and not (args.at or args.window):
        raise UserError("--table holds the --at and --window rows; give --at SIZES or --window FIRST-LAST")
    if args.window and "round" not in df.columns:
        raise UserError("--window needs a round column in the CSVs")
    curves = difference_curves(df, pairs, args.metric)
    table = comparison_table(df, pairs, args.at, args.window, args.metric) if (args.at or args.window) else None
    spans = device_spans(df, dict(args.gpu_run)) if args.gpu_run else {}
    out = plot_differences(curves, args.out, table, device_from=spans, device_name=args.gpu_name,
                           ncols=args.ncols, from_size=args.from_size, title=args.title, metric=args.metric)
    if table is not None:
        print(_text(table))
        if args.table:
            write_csv(args.table, TABLE_COLUMNS, table.to_dict("records"))
    print(f"wrote {out}" + (f" and {args.table}" if args.table and table is not None else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_guarded(lambda: run(args), "nothing was written")


if __name__ == "__main__":
    sys.exit(main())
