"""Class mix of each arm's acquisitions (`python -m runners.class_balance --help`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from acquire.data import DataError, load_split
from acquire.diagnostics import acquired_class_counts
from acquire.files import write_csv


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m runners.class_balance", description=(
        "How many images of each digit every arm of a raw-pool run had acquired at the given training-set "
        "sizes (read from RUN_DIR/state). Greedy acquisition can starve a class; this shows it."))
    p.add_argument("run_dir", type=Path, help="output directory of runners.mnist_bald (raw pool)")
    p.add_argument("--sizes", default="50,100,200,300", help="comma-separated training-set sizes (default: %(default)s)")
    p.add_argument("--data-dir", type=Path, help="MNIST directory (default: $GAN_ACQUIRE_DATA or the cache)")
    p.add_argument("--out", type=Path, help="also write the table as CSV here")
    args = p.parse_args(argv)
    try:
        table = acquired_class_counts(args.run_dir, load_split("train", args.data_dir).labels_N,
                                      [int(s) for s in args.sizes.split(",")])
    except (ValueError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(table.to_string(index=False))
    if args.out:
        write_csv(args.out, list(table.columns), table.to_dict("records"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
