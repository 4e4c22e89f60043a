"""Class mix of each arm's acquisitions (`python -m runners.class_balance --help`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis.acquired import acquired_class_counts, default_sizes, plot_class_counts
from acquire.files import write_csv
from runners.cli import int_list, numbers_may_be_negative, run_guarded


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m runners.class_balance", description=(
        "How many images of each class every arm of a runners.mnist_bald run had acquired at the given "
        "training-set sizes (read from RUN_DIR/state, any source set). Greedy acquisition can starve a class; "
        "this shows it."))
    p.add_argument("run_dir", type=Path, help="output directory of runners.mnist_bald")
    p.add_argument("--sizes", type=int_list,
                   help="comma-separated training-set sizes (default: 4 evenly spaced up to the size every arm reached)")
    p.add_argument("--by-source", action="store_true",
                   help="one row per source (real or each generator) an arm took images from")
    p.add_argument("--out", type=Path, help="also write the table as CSV here")
    p.add_argument("--plot", type=Path,
                   help="also draw every arm's acquisitions by class against the training-set size (PNG)")
    args = numbers_may_be_negative(p).parse_args(argv)
    return run_guarded(lambda: report(args), "nothing was written")


def report(args: argparse.Namespace) -> int:
    sizes = args.sizes if args.sizes is not None else default_sizes(args.run_dir)
    table = acquired_class_counts(args.run_dir, sizes, args.by_source)
    print(table.to_string(index=False))
    if args.out:
        write_csv(args.out, list(table.columns), table.to_dict("records"))
    if args.plot:
        print(f"wrote {plot_class_counts(args.run_dir, args.plot)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
