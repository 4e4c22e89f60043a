"""Class mix of each arm's acquisitions (`python -m runners.class_balance --help`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from acquire.data import load_split
from acquire.errors import UserError
from acquire.loop import ExperimentConfig
from acquire.rundir import CONFIG_FILE, read_json
from analysis.acquired import acquired_class_counts, default_sizes, plot_class_counts
from analysis.acquired_images import plot_acquired_images
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
    p.add_argument("--images", type=Path,
                   help="also draw the images each arm acquired, round by round, with label, score and source (PNG); "
                        "the run's pool is rebuilt from --data-dir (and its GAN checkpoints, or for a "
                        "runners.lowdata_acquire run its repeat's generator) and checked against its fingerprint")
    p.add_argument("--data-dir", type=Path,
                   help="the run's data set, for --images (default: as runners.mnist_bald); given, its classes are "
                        "the table's columns and a label beyond them is refused")
    p.add_argument("--repeat", type=int, default=0, help="the repeat --images shows (default: 0)")
    p.add_argument("--rounds", type=int, default=5, help="rounds --images shows, from round 1 (default: 5)")
    p.add_argument("--plot", type=Path,
                   help="also draw every arm's acquisitions by class against the training-set size (PNG)")
    args = numbers_may_be_negative(p).parse_args(argv)
    return run_guarded(lambda: report(args), "nothing was written")


def report(args: argparse.Namespace) -> int:
    sizes = args.sizes if args.sizes is not None else default_sizes(args.run_dir)
    table = acquired_class_counts(args.run_dir, sizes, args.by_source, data_classes(args.data_dir))
    print(table.to_string(index=False))
    if args.out:
        write_csv(args.out, list(table.columns), table.to_dict("records"))
    if args.plot:
        print(f"wrote {plot_class_counts(args.run_dir, args.plot)}")
    if args.images:
        pool = run_pool(args.run_dir, args.data_dir, args.repeat)
        path = plot_acquired_images(pool, args.run_dir, args.images, args.repeat, args.rounds, title=str(args.run_dir))
        print(f"wrote {path}")
    return 0


def data_classes(data_dir: Path | None) -> int | None:
    """The number of classes K of the data set --data-dir names (of its train and test splits), else None."""
    return None if data_dir is None else max(len(load_split(split, data_dir).classes) for split in ("train", "test"))


def run_pool(run_dir: Path, data_dir: Path | None, repeat: int):
    """The candidate pool the run's states index, rebuilt and checked against the fingerprint its config records."""
    from runners.mnist_bald import build_pools  # only --images needs the pool builders (0.6 s of imports)
    from studies.lowdata_acquire.study import STUDY_FILE, read_study, repeat_pool
    config = ExperimentConfig.load(run_dir / CONFIG_FILE, trusted=config_acquisitions(run_dir))
    if len(config.sources) != 1:
        raise UserError(f"{run_dir} has several source sets ({', '.join(config.sources)}); --images draws a run "
                        "of one source set")
    [source_set] = config.sources
    train = load_split("train", data_dir)
    cell = run_dir.resolve().parents[1]
    if (cell / STUDY_FILE).exists():  # a runners.lowdata_acquire run: CELL/r{repeat}/{plain,augmented}
        pool = repeat_pool(read_study(cell)[0], train, cell, int(run_dir.resolve().parent.name[1:]))
    else:
        pool = build_pools(config, train, "cpu")[source_set]
    if pool.fingerprint != config.pool_fingerprint.get(source_set):
        raise UserError(f"the pool rebuilt from {data_dir or 'the default data'} is not the one {run_dir} recorded; "
                        "give the run's --data-dir")
    return pool


def config_acquisitions(run_dir: Path) -> tuple[str, ...]:
    """The run's own acquisition names: --images imports nothing, so naming them trusts no code."""
    return tuple(read_json(run_dir / CONFIG_FILE).get("acquisitions", ()))


if __name__ == "__main__":
    sys.exit(main())
