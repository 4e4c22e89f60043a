"""Paired comparisons of a sweep's cells against a baseline cell (`python -m runners.compare_cells --help`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from acquire.errors import UserError
from acquire.files import write_csv
from analysis.curves import check_values
from analysis.stats import cells_against_baseline
from runners.cli import comma_list, numbers_may_be_negative, run_guarded
from runners.compare import COLUMNS, format_comparisons

DESCRIPTION = """\
For a results.csv of runners.ratio_sweep or runners.dada_lowdata (one row per cell: an arm, a size, a
repeat): every arm against a baseline arm at each size, paired by repeat (in those sweeps every arm of a
repeat starts from the same real images and CNN initialisation): the difference A − B of the metric in
percentage points per repeat, their mean, sample std (ddof = 1), the 95% t-interval of the mean, and
only the sentence the interval supports.
"""

EPILOG = """\
examples:
  python -m runners.compare_cells results/ratio_sweep/results.csv --arm mode,gan,ratio --size size \\
      --against mode=none --out results/ratio_sweep/comparisons.csv
  python -m runners.compare_cells results/dada_lowdata/results.csv --arm method --size n --against method=C
"""


def parse_against(spec: str) -> dict[str, str]:
    """'mode=none,gan=none' -> {'mode': 'none', 'gan': 'none'}."""
    pairs = [part.split("=", 1) for part in spec.split(",") if part]
    if not pairs or any(len(pair) != 2 or not pair[0] for pair in pairs):
        raise argparse.ArgumentTypeError(f"--against must be COLUMN=VALUE[,COLUMN=VALUE...], got {spec!r}")
    return dict(pairs)


def main(argv: list[str] | None = None) -> int:
    p = numbers_may_be_negative(argparse.ArgumentParser(prog="python -m runners.compare_cells", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter))
    p.add_argument("csv", type=Path, help="results.csv of runners.ratio_sweep or runners.dada_lowdata")
    p.add_argument("--arm", type=comma_list, required=True, help="columns naming an arm, e.g. mode,gan,ratio")
    p.add_argument("--size", required=True, help="column of the size compared at (size, or n)")
    p.add_argument("--against", type=parse_against, required=True,
                   help="the baseline arm as COLUMN=VALUE[,COLUMN=VALUE...], e.g. mode=none or method=C")
    p.add_argument("--metric", default="accuracy", help="column compared (default: %(default)s)")
    p.add_argument("--out", type=Path, help="also write the table (with per-repeat differences) to this CSV")
    args = p.parse_args(argv)
    return run_guarded(lambda: run(args), "nothing was written")


def run(args: argparse.Namespace) -> int:
    if not args.csv.is_file():
        raise UserError(f"{args.csv} is not a file; give a sweep's results.csv")
    df = pd.read_csv(args.csv)
    if args.metric in df.columns:
        check_values(df, args.csv, [args.metric])
    results = cells_against_baseline(df, args.arm, args.size, args.against, args.metric)
    print(f"{args.metric}: A − B in percentage points, paired by repeat at {args.size}; std ddof = 1; "
          "95% CI: mean ± t(0.975, n − 1) · std / √n")
    print(format_comparisons(results))
    if args.out:
        write_csv(args.out, COLUMNS, [{"metric": args.metric, **r.as_row()} for r in results])
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
