"""DADA in the extremely low data regime on MNIST (`python -m runners.dada_lowdata --help`); the protocol and the
methods are described in studies.dada_lowdata.cells."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import pandas as pd

from acquire.data import load_train_test
from acquire.device import resolve_device
from acquire.precision import check_precision
from analysis.curves import METRIC_LABELS, format_mean_std, plot_sweep, read_sweep, summarise_sweep
from acquire.sweep import SweepSettings
from studies.dada_lowdata.cells import COLUMNS, DEFAULT_METHODS, CELL_KEY, METHODS, LowDataConfig, measure_cell
from runners.cli import (add_precision_flag, add_record_data_digests_flag, add_run_flags, comma_list,
                         config_for_out_dir, int_list, resume_hint, run_guarded)

DESCRIPTION = """\
DADA (Zhang et al.) in the extremely low data regime on MNIST: for each n real images per class and
repeat, trains C, C_augmented, DADA, DADA_augmented and a GAN-samples baseline (the frozen DADA
generator's samples as extra labelled data), and scores each on the full 10,000-image real test set.
Writes OUT/config.json, OUT/results.csv (one row per method, n and repeat, flushed as it goes),
OUT/phase_one/ (the cached phase-I networks per n and repeat) and OUT/accuracy.png, then prints
mean +/- std tables. A killed sweep continues with `--resume --out OUT` (config.json supplies every other
setting, here or on a clone of OUT on another machine) and gives the rows an uninterrupted run gives.
"""

EPILOG = """\
methods:
  C                      the classifier alone on the n*10 real images
  C_augmented            C with random rotation (+/-10 deg), shift (+/-2 px) and zoom (+/-10%) of real images
  DADA                   phase I on the real images, then phase II (the phase-I classifier, real + generated)
  DADA_augmented         DADA with the real images of phase II augmented as in C_augmented
  GAN_samples            a fresh classifier on real + the frozen phase-I generator's samples
  GAN_samples_augmented  GAN_samples with the augmentation (the paper's GAN baselines use it)
  All use the same network (DADA's 2k-way classifier) and phase-II steps.

presets (explicit flags override them):
  paper  sizes 5,10,20,50, 3 repeats, 5 methods, 300 phase-I iterations, 400 phase-II steps:
         ~21 min of one CPU core (the default)
  quick  sizes 5,20, 1 repeat, 150 phase-I iterations, 200 phase-II steps: 0.7 min on 2 idle CPU cores

examples:
  python -m runners.dada_lowdata --preset quick --out runs/dada_quick
  python -m runners.dada_lowdata --sizes 10,50 --methods C,DADA --repeats 5
  python -m runners.dada_lowdata --out runs/dada_lowdata --resume --repeats 5   # add repeats to a sweep
"""

PRESETS = {
    "paper": {},
    "quick": {"sizes": [5, 20], "repeats": 1, "phase_one_iterations": 150, "phase_two_steps": 200},
}
SETTINGS = SweepSettings(dataclasses.asdict(LowDataConfig()), PRESETS,
                         resumable=frozenset({"sizes", "repeats", "methods", "data_dir"}),
                         derived=frozenset({"phase_one_network", "augment"}),
                         optional=frozenset({"data_dir", "precision"}))  # sweeps saved without precision ran in fp32


def build_parser() -> argparse.ArgumentParser:
    defaults = LowDataConfig()
    p = argparse.ArgumentParser(prog="python -m runners.dada_lowdata", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int_list,
                   help=f"comma-separated real images per class n (default: {','.join(map(str, defaults.sizes))})")
    p.add_argument("--methods", type=comma_list,
                   help=f"comma-separated methods, of {', '.join(METHODS)} (default: {','.join(DEFAULT_METHODS)})")
    p.add_argument("--repeats", type=int,
                   help=f"repeats per (method, n), each on its own real subset (default: {defaults.repeats})")
    p.add_argument("--phase-one-iterations", type=int,
                   help=f"DADA phase-I iterations of 32 real images (default: {defaults.phase_one_iterations})")
    p.add_argument("--phase-two-steps", type=int,
                   help=f"classifier training steps, the same for every method (default: {defaults.phase_two_steps})")
    p.add_argument("--batch-size", type=int,
                   help=f"real images per classifier step, plus as many generated (default: {defaults.batch_size})")
    p.add_argument("--lr", type=float, help=f"classifier Adam learning rate (default: {defaults.lr})")
    p.add_argument("--generated-per-real", type=int,
                   help=f"generated images per real one (default: {defaults.generated_per_real}: the augmented "
                        "set is 10x the real one, as in the paper)")
    add_precision_flag(p, bf16="run DADA's phase-I steps and every classifier's training steps under bfloat16 "
                               "autocast (weights float32; GAN samples and test scoring as in fp32)",
                       fixed="fixed for a sweep: --resume keeps the saved one")
    add_run_flags(p, out=Path("runs/dada_lowdata"), presets=PRESETS,
                  seed_help=f"base seed; every cell's draws derive from it (default: {defaults.seed})",
                  resume_keeps_data_dir=True,
                  resume_help="continue the sweep saved in --out with its saved settings, skipping finished cells; "
                              "only --sizes, --repeats and --methods (which then replace the saved ones; rows already "
                              "written are kept) and --data-dir may be given differently")
    add_record_data_digests_flag(p)
    return p


def config_from_args(args: argparse.Namespace) -> LowDataConfig:
    """Preset values, overridden by every flag given explicitly (with --resume: the saved settings, then the
    flags given; a resume is refused if anything but sizes, repeats, methods or data_dir changed)."""
    config, saved = SETTINGS.resolve(args, lambda values: LowDataConfig(**values))
    if saved is not None:
        SETTINGS.check_resume(args, saved, config.to_json())
    return config


def format_method_table(df: pd.DataFrame, metric: str) -> str:
    """mean ± std (percent, over repeats) of `metric`: one row per method, one column per n."""
    summary = summarise_sweep(df, x="n", line="method", metric=metric)
    summary["cell"] = [format_mean_std(*cell) for cell in zip(summary["mean"], summary["std"], summary["n_repeats"])]
    table = summary.pivot(index="method", columns="n", values="cell").fillna("")
    order = [m for m in METHODS if m in table.index]
    table = table.loc[order]
    table.columns = [f"n={n}" for n in table.columns]
    repeats = summary.groupby("method")["n_repeats"].max().loc[order]
    return f"{METRIC_LABELS[metric]} (%), mean ± std over repeats\n" + table.assign(runs=repeats).to_string()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_guarded(lambda: run(args), resume_hint("finished cells", "runners.dada_lowdata", args.out))


def run(args: argparse.Namespace) -> int:
    config = config_for_out_dir(args, lambda: config_from_args(args), kind="sweep")
    device = resolve_device(args.device)
    check_precision(config.precision, device)
    train, test, dataset = load_train_test(config.data_dir)
    config.check_fits(train.labels_N)
    test = test.to(device)
    cells = config.cells()
    with SETTINGS.open_sweep(args.out, config.to_json(), COLUMNS, CELL_KEY, args.resume, train, test,
                             adopt_data=args.record_data_digests) as sweep:
        sweep.announce(cells, device)
        csv_path = sweep.run(cells, lambda cell: measure_cell(cell, config, train, test, args.out, device),
                             progress=not args.no_progress)
    df = read_sweep(csv_path, ["n", "repeat", "accuracy", "balanced_accuracy"])
    plot_path = plot_sweep(df, args.out / "accuracy.png", x="n", line="method", metric="accuracy", log_x=True,
                           xlabel="real training images per class (n)",
                           title=f"{dataset}, low data: DADA vs. baselines (full test set)")
    print(format_method_table(df, "accuracy"))
    print(format_method_table(df, "balanced_accuracy"))
    print(f"wrote {csv_path} and {plot_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
