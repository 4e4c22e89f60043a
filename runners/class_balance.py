"""Class mix of each arm's acquisitions (`python -m runners.class_balance --help`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis.acquired import acquired_class_counts, plot_class_counts
from acquire.files import write_csv
from runners.cli import int_list, run_guarded


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m runners.class_balance", description=(
        "How many images of each class every arm of a runners.mnist_bald run had acquired at the given "
        "training-set sizes (read from RUN_DIR/state, any source set). Greedy acquisition can starve a class; "
        "this shows it."))
    p.add_argument("run_dir", type=Path, help="output directory of runners.mnist_bald")
    p.add_argument("--sizes", type=int_list, default=[50, 100, 200, 300],
                   help="comma-separated training-set sizes (default: 50,100,200,300)")
    p.add_argument("--out", type=Path, help="also write the table as CSV here")
    p.add_argument("--plot", type=Path,
                   help="also draw every arm's acquisitions by class against the training-set size (PNG)")
    args = p.parse_args(argv)
    return run_guarded(lambda: report(args), "nothing was written")


def report(args: argparse.Namespace) -> int:
    table = acquired_class_counts(args.run_dir, args.sizes)
    print(table.to_string(index=False))
    if args.out:
        write_csv(args.out, list(table.columns), table.to_dict("records"))
    if args.plot:
        print(f"wrote {plot_class_counts(args.run_dir, args.plot)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
