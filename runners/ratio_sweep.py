"""Accuracy against the share of real images replaced by, or joined by, GAN samples (`--help` explains)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import pandas as pd

from acquire.builtins import MODELS
from acquire.data import load_train_test
from acquire.device import resolve_device
from studies.ratio_sweep.mixing import MODES
from acquire.precision import check_precision
from analysis.curves import format_mean_std, plot_sweep, read_sweep, summarise_sweep
from studies.ratio_sweep.cells import COLUMNS, CELL_KEY, CellRunner, RatioSweepConfig, with_baseline
from acquire.sweep import SweepSettings
from gans.registry import get_family
from gans.sources import ALL_GANS, DEFAULT_GAN_DIR, GanNotTrainedError, checkpoint_path, gan_weights_digests
from studies.paper_grid.pools import generated_source
from runners.cli import (add_precision_flag, add_record_data_digests_flag, add_run_flags, comma_list,
                         config_for_out_dir, float_list, int_list, resume_hint, run_guarded)

DESCRIPTION = """\
Liu's naive GAN augmentation (section 3.4 of "Data augmentation with GAN") on MNIST. Each cell trains a fresh
Gal et al. CNN on `size` class-balanced real training images of which a fraction r is REPLACED by generated
images of the same classes (mode replace: n_real = round((1-r)*size), the class counts stay the same), or to
which r*size class-balanced generated images are ADDED (mode add), and measures accuracy and balanced accuracy
on the full 10,000-image real test set. r = 0 is one all-real cell per (size, repeat), logged as gan/mode
"none" and drawn as the r = 0 point of every line.

Paired design: a repeat's real images and the CNN's initial weights depend only on (seed, size, repeat), so
every GAN, mode and ratio of a repeat starts from the same real images (replace keeps a subset of them, the
smaller r the larger). Each GAN's samples come from one pool per (GAN, repeat), just large enough for the
largest cell; every cell draws its own images from it, and its training order and dropout, from its own key.

Training budget: every cell shows the CNN about --train-images images (epochs = max(1, round(train_images /
n_train)), batch 128, Adam), so small, large and augmented training sets cost the same: 50,000 images =
100 epochs of 500 images or 10 of 5,000, about 30 s on 2 idle CPU cores (45 s on one), plus ~2 s to score the
test set. Writes OUT/config.json, OUT/results.csv (one row per cell, flushed as it goes), OUT/accuracy_replace.png
and OUT/accuracy_add.png (accuracy against r, one line per GAN, one panel per size) and prints mean +/- std
tables. A killed sweep continues with `--resume --out OUT` (config.json supplies every other setting, here or
on a clone of OUT on another machine) and gives the rows an uninterrupted run gives. config.json records each
GAN's weights sha256, the --precision (a sweep saved without it ran in fp32), and --gan-dir and --data-dir as
given: a resume refuses other weights or another precision.
"""

EPILOG = """\
presets (explicit flags override them):
  paper  sizes 500,5000; r = 0,0.2,...,1; replace and add; 4 GANs; 3 repeats; 50,000 images a cell:
         246 cells, about 2.2 hours on 2 idle CPU cores (the default)
  quick  size 500; r = 0,0.5,1; replace and add; 4 GANs; 1 repeat; 10,000 images a cell: 17 cells,
         about 1 minute on 2 idle CPU cores

examples (--gan-dir: a directory written by python -m runners.train_gans):
  python -m runners.ratio_sweep --preset quick --gan-dir results/gans --out runs/ratio_quick
  python -m runners.ratio_sweep --gans small_dcgan,dada --modes replace --sizes 1000 --repeats 5
  python -m runners.ratio_sweep --resume --out runs/ratio_quick --repeats 5   # add repeats to a sweep
"""

DEFAULTS = {"gans": ALL_GANS, "sizes": [500, 5000], "ratios": [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], "modes": list(MODES),
            "repeats": 3, "train_images": 50_000, "batch_size": 128, "lr": 1e-3, "seed": 0,
            "gan_dir": str(DEFAULT_GAN_DIR), "data_dir": None, "precision": "fp32", "model": "gal"}
PRESETS = {
    "paper": {},
    "quick": {"sizes": [500], "ratios": [0.0, 0.5, 1.0], "repeats": 1, "train_images": 10_000},
}
# --resume may add repeats and find the same GAN weights and MNIST files elsewhere (older sweeps did not record
# where they were, nor their precision: fp32, nor their model: gal)
SETTINGS = SweepSettings(DEFAULTS, PRESETS, resumable=frozenset({"repeats", "gan_dir", "data_dir"}),
                         derived=frozenset({"gan_checkpoints"}),
                         optional=frozenset({"gan_dir", "data_dir", "precision", "model"}))
FIGURE_TEXT = {"replace": ("Real images replaced by GAN samples", "r = share of the real images replaced"),
               "add": ("GAN samples added to the real images", "r = generated images added per real image")}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m runners.ratio_sweep", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gans", type=comma_list,
                   help=f"comma-separated GAN families, one line each (default: {','.join(ALL_GANS)}). A GAN not yet "
                        "trained is refused before any work, with the command that trains it")
    p.add_argument("--gan-dir", type=Path,
                   help="a directory written by python -m runners.train_gans, holding the GAN checkpoints "
                        f"(default: {DEFAULT_GAN_DIR}; with --resume the saved one)")
    p.add_argument("--sizes", type=int_list,
                   help="comma-separated real training-set sizes, multiples of 10, one panel each (default: 500,5000)")
    p.add_argument("--ratios", type=float_list,
                   help="comma-separated ratios r in [0, 1]: the share of the real images replaced, or generated "
                        "images added per real image (default: 0,0.2,0.4,0.6,0.8,1)")
    p.add_argument("--modes", type=comma_list, help="replace, add or both, one figure each (default: replace,add)")
    p.add_argument("--repeats", type=int,
                   help="repeats, each with its own real subset, GAN pool and CNN initialisation (default: 3)")
    p.add_argument("--train-images", type=int,
                   help="images shown to the CNN per cell, as epochs = max(1, round(N / training-set size)) "
                        "(default: 50000: 100 epochs of 500 images)")
    p.add_argument("--batch-size", type=int, help="training batch size (default: 128)")
    p.add_argument("--model", choices=sorted(MODELS),
                   help="every cell's CNN, a built-in of runners.mnist_bald --model (default: gal, Gal et al.'s "
                        "paper network; fixed for a sweep)")
    p.add_argument("--lr", type=float, help="Adam learning rate (default: 1e-3)")
    add_precision_flag(p, bf16="train every cell's CNN under bfloat16 autocast (weights float32; the test set is "
                               "scored in float32)", fixed="fixed for a sweep: --resume keeps the saved one")
    add_run_flags(p, out=Path("runs/ratio_sweep"), presets=PRESETS,
                  seed_help="base seed; every draw of every cell is derived from it (default: 0)",
                  resume_keeps_data_dir=True,
                  resume_help="continue the sweep saved in --out with its saved settings, skipping finished cells; "
                              "only --repeats, --gan-dir and --data-dir (where the same GAN weights and MNIST files "
                              "are found) may be given differently")
    add_record_data_digests_flag(p)
    return p


def build_config(values: dict) -> RatioSweepConfig:
    """The config of these settings (validated, the GAN names too), before the GAN weights are looked up."""
    data_dir = None if values["data_dir"] is None else str(values["data_dir"])
    config = RatioSweepConfig(**{**values, "ratios": [float(r) for r in values["ratios"]],
                                 "gan_dir": str(values["gan_dir"]), "data_dir": data_dir})
    for gan in config.gans:
        get_family(gan)  # unknown names fail here, with the list of families
    return config


def config_from_args(args: argparse.Namespace) -> RatioSweepConfig:
    """Defaults, then the preset, then every flag given explicitly (with --resume: the saved settings, then the
    flags given); records each GAN's weights digest. A resume is refused if anything changed but --repeats and
    where the GANs and MNIST are (the GAN weights must be the same)."""
    config, saved = SETTINGS.resolve(args, build_config)
    if saved is not None:  # the flags first, then where the GANs are
        SETTINGS.check_resume(args, saved, {**asdict(config), "gan_checkpoints": saved["gan_checkpoints"]})
        missing = [gan for gan in config.gans if not checkpoint_path(Path(config.gan_dir), gan).exists()]
        if missing:
            raise GanNotTrainedError(f"--resume: {args.out} was run with the weights of {', '.join(missing)} recorded "
                                     f"in its config.json (sha256), but {config.gan_dir} has no checkpoint of them; "
                                     "copy those checkpoints there, or pass --gan-dir with the directory holding them")
    config = replace(config, gan_checkpoints=gan_weights_digests(Path(config.gan_dir), config.gans))
    if saved is not None:
        SETTINGS.check_resume(args, saved, asdict(config))
    return config


def format_ratio_table(df: pd.DataFrame, metric: str) -> str:
    """mean ± std (percent, population std over repeats) per (size, gan) row and ratio column."""
    summary = summarise_sweep(df, x="ratio", line="gan", metric=metric, facet="size")
    text = [format_mean_std(*cell) for cell in zip(summary["mean"], summary["std"], summary["n_repeats"])]
    table = summary.assign(cell=text).set_index(["size", "gan", "ratio"])["cell"].unstack("ratio")
    table.columns = [f"r={ratio:g}" for ratio in table.columns]
    repeats = df.groupby(["size", "gan"])["repeat"].nunique().rename("runs")
    return table.join(repeats).to_string()


def report(csv_path: Path, out_dir: Path, modes: list[str], dataset: str) -> list[Path]:
    """One accuracy figure per mode (a panel per size, a line per GAN) and printed tables; returns the figures."""
    df = read_sweep(csv_path, ["size", "ratio", "repeat", "accuracy", "balanced_accuracy"],
                    dtype={"mode": str, "gan": str})
    figures = []
    for mode in modes:
        rows = with_baseline(df, mode)
        if rows.empty:
            continue
        title, xlabel = FIGURE_TEXT[mode]
        figures.append(plot_sweep(rows, out_dir / f"accuracy_{mode}.png", x="ratio", line="gan", metric="accuracy",
                                  facet="size", xlabel=f"{xlabel}; r = 0: all real, shared by every line",
                                  title=f"{title} ({dataset}, Gal CNN)"))
        for metric in ("accuracy", "balanced_accuracy"):
            heading = f"{mode}: {metric.replace('_', ' ')} (%), mean ± std over repeats"
            print(f"\n{heading}\n{format_ratio_table(rows, metric)}")
    return figures


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_guarded(lambda: run(args), resume_hint("finished cells", "runners.ratio_sweep", args.out))


def run(args: argparse.Namespace) -> int:
    config = config_for_out_dir(args, lambda: config_from_args(args), kind="sweep")
    device = resolve_device(args.device)
    check_precision(config.precision, device)
    train, test, dataset = load_train_test(config.data_dir)
    config.check_fits(train.labels_N)
    cells = config.cells()
    with SETTINGS.open_sweep(args.out, asdict(config), COLUMNS, CELL_KEY, args.resume, train, test,
                             adopt_data=args.record_data_digests) as sweep:
        sweep.announce(cells, device)
        image_shape, num_classes = tuple(train.images_NCHW.shape[1:]), int(train.labels_N.max()) + 1
        measure = CellRunner(config, train, test, device, lambda gan, per_class, seed: generated_source(
            gan, Path(config.gan_dir), per_class, seed, device, image_shape=image_shape, num_classes=num_classes),
            model_factory=partial(MODELS[config.model][1], num_classes=num_classes, image_shape=image_shape))
        csv_path = sweep.run(cells, measure, progress=not args.no_progress,
                             describe=lambda c: f"n={c['size']} {c['gan']} {c['mode']} r={c['ratio']:g} #{c['repeat']}")
    figures = report(csv_path, args.out, config.modes, dataset)
    print(f"\nwrote {', '.join(str(path) for path in [csv_path, *figures])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
