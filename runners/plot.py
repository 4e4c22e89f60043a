"""Plot learning curves from the active loop's CSVs (`python -m runners.plot --help`)."""

from __future__ import annotations

import argparse
import sys

from acquire.plotting import METRIC_LABELS, final_table, format_final_table, plot_curves, read_curves

DESCRIPTION = """\
Plot the active loop's learning curves, as in Figure 2 of Nielsen & Okoniewski: the metric
(in percent) against the training-set size, one line per (data source, acquisition function)
with the mean over repeats and a shaded mean +/- 1 std band. The left panel shows every
round, the right one the last --last-rounds training-set sizes, zoomed. The CSVs are
concatenated, so arms run separately can share a figure. Prints each arm's final
mean +/- std (population std over repeats) at its largest training-set size.
"""

EPILOG = """\
example:
  python -m runners.plot runs/raw.csv runs/raw+pggan.csv --out figures/mnist.png --title "MNIST"
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runners.plot",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("csv", nargs="+", help="CSV(s) written by the active loop (one row per arm and round)")
    parser.add_argument("--out", required=True, help="output image; the format follows the suffix (.png, .pdf, .svg)")
    parser.add_argument("--metric", choices=sorted(METRIC_LABELS), default="balanced_accuracy",
                        help="column to plot (default: %(default)s)")
    parser.add_argument("--last-rounds", type=int, default=20,
                        help="training-set sizes shown in the zoomed right panel (default: %(default)s)")
    parser.add_argument("--max-train-size", type=int, default=None,
                        help="drop rows above this training-set size, to compare runs of different lengths at a "
                             "common size (default: keep all)")
    parser.add_argument("--title", default=None, help="figure title (default: none)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        df = read_curves(args.csv, metric=args.metric)
        if args.max_train_size is not None:
            df = df[df["train_size"] <= args.max_train_size]
            if df.empty:
                raise ValueError(f"no rows with train_size <= {args.max_train_size}")
        out = plot_curves(df, args.out, metric=args.metric, last_rounds=args.last_rounds, title=args.title)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_final_table(final_table(df, args.metric), args.metric))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
