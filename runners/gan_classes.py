"""Label agreement of each GAN's samples class by class (`python -m runners.gan_classes --help`)."""

from __future__ import annotations

from acquire.errors import UserError
import argparse
import sys
from pathlib import Path

import pandas as pd

from acquire.data import load_train_test
from acquire.device import resolve_device
from acquire.files import write_csv
from gans.checkpoint import load_checkpoint
from gans.quality import REAL_ROW, Judge, QualityConfig, agreement_by_class
from gans.sources import ALL_GANS, DEFAULT_GAN_DIR, GanNotTrainedError, check_source_matches, checkpoint_path
from runners.cli import add_device_and_data_flags, comma_list, run_guarded

COLUMNS = ["source", "class", "samples", "agreement", "most_confused_with", "confused_share"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m runners.gan_classes", description=(
        "Where do a GAN's samples lose their label? For each checkpoint in --gan-dir, the share of its samples "
        "of each class that the reference CNN (Gal's CNN trained on all real training images, as in the quality "
        "report of runners.train_gans) assigns to that class, and the class it most often says instead; a "
        "class-balanced real sample gives the baseline row. The samples are the quality report's (same seed), "
        "so each GAN's mean over classes is its label agreement in quality.csv, up to the CPU's arithmetic."),
        epilog="example: python -m runners.gan_classes --gan-dir results/zoo --data-dir ../shared/data/mnist "
               "--out results/zoo/label_agreement_by_class.csv")
    p.add_argument("--gans", type=comma_list,
                   help=f"comma-separated GANs (default: each of {','.join(ALL_GANS)} with a checkpoint in --gan-dir)")
    p.add_argument("--gan-dir", type=Path, default=DEFAULT_GAN_DIR,
                   help=f"directory of the checkpoints (default: {DEFAULT_GAN_DIR})")
    p.add_argument("--quality-samples", type=int, default=QualityConfig.samples_per_class,
                   help=f"samples per class (default: {QualityConfig.samples_per_class}, as the quality report)")
    p.add_argument("--seed", type=int, default=0, help="the quality report's seed (default: 0)")
    add_device_and_data_flags(p)
    p.add_argument("--out", type=Path, help="also write the table as CSV here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_guarded(lambda: report(args), "nothing was written")


def report(args: argparse.Namespace) -> int:
    if args.quality_samples <= 0:
        raise UserError(f"--quality-samples must be positive, got {args.quality_samples}")
    names = args.gans or [name for name in ALL_GANS if checkpoint_path(args.gan_dir, name).exists()]
    missing = [name for name in names if not checkpoint_path(args.gan_dir, name).exists()]
    if not names or missing:
        raise GanNotTrainedError(f"no checkpoint for {', '.join(missing) or 'any GAN'} in {args.gan_dir}; train it "
                                 f"with "
                                f"python -m runners.train_gans --out {args.gan_dir}, or point --gan-dir at the zoo")
    device = resolve_device(args.device)
    train, test, _ = load_train_test(args.data_dir)
    judge = Judge(train, test, QualityConfig(samples_per_class=args.quality_samples, seed=args.seed), device)
    for name in names:  # a GAN of another shape or class count is refused before the judge trains
        check_source_matches(checkpoint_path(args.gan_dir, name), judge.image_shape, judge.num_classes)
    rows = [{"source": REAL_ROW, **row} for row in agreement_by_class(judge.reference(), judge.real_samples())]
    for name in names:
        generator, _ = load_checkpoint(checkpoint_path(args.gan_dir, name), name, device)
        samples = judge.samples(generator, name)
        rows += [{"source": name, **row} for row in agreement_by_class(judge.reference(), samples)]
    table = pd.DataFrame(rows, columns=COLUMNS)
    print(table.pivot(index="class", columns="source", values="agreement")[[REAL_ROW, *names]]
          .mul(100).round(1).to_string())
    if args.out:
        print(f"wrote {write_csv(args.out, COLUMNS, rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
