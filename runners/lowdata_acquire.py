"""The low-data acquisition study (`python -m runners.lowdata_acquire --help`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from acquire.data import load_train_test
from acquire.device import resolve_device
from acquire.errors import UserError
from runners.cli import add_device_and_data_flags, comma_list, run_guarded
from studies.lowdata_acquire.protocol import LowDataAcquireConfig
from studies.lowdata_acquire.study import run_cell

DEFAULTS = LowDataAcquireConfig()

DESCRIPTION = """\
With n labelled images per class and a generator trained only on them, does adding its samples to the
training set help, and does choosing them by acquisition beat choosing them at random? Per repeat: L = n
real images per class (class-balanced, seeded by the repeat; OUT/r{r}/subset.json records which), a
generator trained on L alone with the low-data recipe (OUT/r{r}/gan/, float16), a candidate pool of L and
the generator's samples; round 0 trains Gal's CNN on L alone, each later round acquires k generated images
and retrains from scratch; balanced accuracy on the full real test set. Two runs per repeat: 'plain' and
'augmented' (every batch randomly rotated, shifted and zoomed). No real image outside L is ever trained on
or a candidate. Rerun the same command to continue after any interruption (finished steps are skipped;
a run in flight continues from its last round, a generator in training from its last save).
"""

EPILOG = """\
examples:
  python -m runners.lowdata_acquire --data-dir ../shared/data/mnist --per-class 10 --out runs/mnist_n10
  python -m runners.lowdata_acquire --data-dir ../shared/data/fashion-mnist --per-class 50 --repeats 6 \\
      --out results/lowdata_acquire/fashion-mnist_n50            # rerun the same to continue
  python -m runners.lowdata_acquire --per-class 10 --repeats 1 --gan-images 20000 --rounds 2 --epochs 10 \\
      --generated-per-class 50 --pool-subset 200 --mc-samples 4 --out runs/try   # a minute: try the pipeline
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m runners.lowdata_acquire", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    d = DEFAULTS
    p.add_argument("--per-class", type=int, default=d.per_class, help="n, labelled real images per class "
                   "(default: %(default)s)")
    p.add_argument("--repeats", type=int, default=d.repeats, help="repeats, each with its own L and generator "
                   "(default: %(default)s)")
    p.add_argument("--only-repeats", type=comma_list,
                   help="run only these repeat indices now, e.g. 0,1 (a cell can be filled in pieces)")
    p.add_argument("--family", default=d.family, help="the generator family (default: %(default)s)")
    p.add_argument("--gan-images", type=int, default=d.gan_images,
                   help="images shown to each generator in training (default: %(default)s)")
    p.add_argument("--no-recipe", action="store_true", help="train the generators without the low-data recipe")
    p.add_argument("--generated-per-class", type=int, default=d.generated_per_class,
                   help="generated candidates per class in the pool (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=d.rounds, help="acquisition rounds (default: %(default)s)")
    p.add_argument("--per-round", type=int, default=d.per_round,
                   help="generated images acquired per round; 0 = n*K/rounds, so the last round has as many "
                        "generated images as real (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=d.epochs,
                   help="epochs (passes over the round's training set) of each fresh CNN (default: %(default)s)")
    p.add_argument("--mc-samples", type=int, default=d.mc_samples, help="MC-dropout samples T (default: %(default)s)")
    p.add_argument("--pool-subset", type=int, default=d.pool_subset,
                   help="candidates scored per round, a fresh random subset (default: %(default)s)")
    p.add_argument("--acquisitions", type=comma_list, default=list(d.acquisitions),
                   help="acquisitions of the plain run (default: %(default)s)")
    p.add_argument("--augmented-acquisitions", type=comma_list, default=list(d.augmented_acquisitions),
                   help="acquisitions of the run with classical augmentation (default: %(default)s)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default=d.precision,
                   help="of the classifiers' training and scoring (default: %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="base seed (default: %(default)s)")
    add_device_and_data_flags(p)
    p.add_argument("--out", type=Path, required=True, help="the cell's directory (created; rerun to continue)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return p


def config_from_args(args: argparse.Namespace) -> LowDataAcquireConfig:
    return LowDataAcquireConfig(
        per_class=args.per_class, repeats=args.repeats, seed=args.seed, family=args.family,
        gan_images=args.gan_images, recipe=not args.no_recipe, generated_per_class=args.generated_per_class,
        rounds=args.rounds, per_round=args.per_round, epochs=args.epochs, mc_samples=args.mc_samples,
        pool_subset=args.pool_subset, acquisitions=tuple(args.acquisitions),
        augmented_acquisitions=tuple(args.augmented_acquisitions), precision=args.precision)


def repeats_from_args(args: argparse.Namespace, config: LowDataAcquireConfig) -> range | list[int]:
    if not args.only_repeats:
        return range(config.repeats)
    try:
        chosen = [int(r) for r in args.only_repeats]
    except ValueError:
        raise UserError(f"--only-repeats takes repeat indices, e.g. 0,1; got {','.join(args.only_repeats)}") from None
    bad = [r for r in chosen if not 0 <= r < config.repeats]
    if bad:
        raise UserError(f"--only-repeats {bad}: repeats are 0..{config.repeats - 1}")
    return chosen


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    repeats = repeats_from_args(args, config)
    device = resolve_device(args.device)
    train, test, dataset = load_train_test(args.data_dir)
    run_cell(config, train, test, args.out, dataset, device, repeats, progress=not args.no_progress)
    print(f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_guarded(lambda: run(args), f"finished steps in {args.out} are kept: rerun the same command to continue")


if __name__ == "__main__":
    sys.exit(main())
