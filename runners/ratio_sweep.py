"""Accuracy against the share of real images replaced by, or joined by, GAN samples (`--help` explains)."""

from __future__ import annotations

from runners.cli import stop_before_work

stop_before_work(__name__)  # before the slow imports below

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass, field, replace  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from acquire.data import ImageSet, class_balanced_indices, load_split  # noqa: E402
from acquire.device import resolve_device  # noqa: E402
from acquire.metrics import accuracy, balanced_accuracy  # noqa: E402
from acquire.mixing import MODES, generated_per_class, mix  # noqa: E402
from acquire.model import GalCNN, TrainConfig, new_model, predict, train_classifier  # noqa: E402
from acquire.plotting import format_mean_std, plot_sweep, summarise_sweep  # noqa: E402
from acquire.seeding import derive_seed, make_generator  # noqa: E402
from acquire.sweep import Sweep, SweepSettings  # noqa: E402
from gans.registry import get_family  # noqa: E402
from gans.sources import (DEFAULT_GAN_DIR, GanNotTrainedError, checkpoint_path, gan_weights_digests,  # noqa: E402
                          generated_source)
from runners.cli import comma_list, config_for_out_dir, float_list, int_list, resume_hint, run_guarded  # noqa: E402

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
GAN's weights sha256, and --gan-dir and --data-dir as given: a resume refuses other weights.
"""

EPILOG = """\
presets (explicit flags override them):
  paper  sizes 500,5000; r = 0,0.2,...,1; replace and add; 4 GANs; 3 repeats; 50,000 images a cell:
         246 cells, about 2.2 hours on 2 idle CPU cores (the default)
  quick  size 500; r = 0,0.5,1; replace and add; 4 GANs; 1 repeat; 10,000 images a cell: 17 cells,
         about 2 minutes on 2 idle CPU cores

examples (--gan-dir: a directory written by python -m runners.train_gans):
  python -m runners.ratio_sweep --preset quick --gan-dir results/gans --out runs/ratio_quick
  python -m runners.ratio_sweep --gans small_dcgan,dada --modes replace --sizes 1000 --repeats 5
  python -m runners.ratio_sweep --resume --out runs/ratio_quick --repeats 5   # add repeats to a sweep
"""

BASELINE = "none"  # gan and mode of the all-real r = 0 cells
ALL_GANS = ["small_dcgan", "large_dcgan", "pggan", "dada"]
DEFAULTS = {"gans": ALL_GANS, "sizes": [500, 5000], "ratios": [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], "modes": list(MODES),
            "repeats": 3, "train_images": 50_000, "batch_size": 128, "lr": 1e-3, "seed": 0,
            "gan_dir": str(DEFAULT_GAN_DIR), "data_dir": None}
PRESETS = {
    "paper": {},
    "quick": {"sizes": [500], "ratios": [0.0, 0.5, 1.0], "repeats": 1, "train_images": 10_000},
}
# --resume may add repeats and find the same GAN weights and MNIST files elsewhere (older sweeps did not record
# where they were)
SETTINGS = SweepSettings(DEFAULTS, PRESETS, resumable=frozenset({"repeats", "gan_dir", "data_dir"}),
                         derived=frozenset({"gan_checkpoints"}), optional=frozenset({"gan_dir", "data_dir"}))
KEY_COLUMNS = ["size", "mode", "gan", "ratio", "repeat"]
COLUMNS = KEY_COLUMNS + ["seed", "n_real", "n_generated", "epochs", "images_shown", "accuracy", "balanced_accuracy",
                         "train_seconds"]
NUM_CLASSES = 10
FIGURE_TEXT = {"replace": ("Real images replaced by GAN samples", "r = share of the real images replaced"),
               "add": ("GAN samples added to the real images", "r = generated images added per real image")}


@dataclass(frozen=True)
class RatioSweepConfig:
    """The whole sweep's settings (saved as config.json); gan_dir and data_dir as given on the command line
    (data_dir None: $GAN_ACQUIRE_DATA or the cache); gan_checkpoints: GAN name -> weights sha256."""

    gans: list[str]
    sizes: list[int]
    ratios: list[float]
    modes: list[str]
    repeats: int
    train_images: int
    batch_size: int
    lr: float
    seed: int
    gan_dir: str
    data_dir: str | None
    gan_checkpoints: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        for name in ("gans", "sizes", "ratios", "modes"):
            values = getattr(self, name)
            if not values or len(set(values)) != len(values):
                raise ValueError(f"--{name} needs at least one value and no duplicates, got {values}")
        for gan in self.gans:
            get_family(gan)  # unknown names fail here, with the list of families
        bad_sizes = [s for s in self.sizes if not isinstance(s, int) or s <= 0 or s % NUM_CLASSES]
        if bad_sizes:
            raise ValueError(f"--sizes must be positive multiples of {NUM_CLASSES} (class-balanced), got {bad_sizes}")
        bad_ratios = [r for r in self.ratios if not 0.0 <= r <= 1.0]
        if bad_ratios:
            raise ValueError(f"--ratios must lie in [0, 1] (the share of generated images), got {bad_ratios}")
        bad_modes = [m for m in self.modes if m not in MODES]
        if bad_modes:
            raise ValueError(f"--modes must be among {', '.join(MODES)}, got {bad_modes}")
        for name in ("repeats", "train_images", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"--lr must be positive, got {self.lr}")

    def cells(self) -> list[dict]:
        """Every cell's key, repeat-major (a killed sweep has whole repeats); r = 0 once per (size, repeat)."""
        cells = []
        for repeat in range(self.repeats):
            for size in self.sizes:
                if 0.0 in self.ratios:
                    cells.append({"size": size, "mode": BASELINE, "gan": BASELINE, "ratio": 0.0, "repeat": repeat})
                cells += [{"size": size, "mode": mode, "gan": gan, "ratio": ratio, "repeat": repeat}
                          for gan in self.gans for mode in self.modes for ratio in self.ratios if ratio > 0]
        return cells

    def pool_per_class(self) -> int:
        """Generated images per class that the largest cell needs."""
        order_K = torch.arange(NUM_CLASSES)
        return max(int(generated_per_class(mode, ratio, size, order_K).max())
                   for size in self.sizes for mode in self.modes for ratio in self.ratios)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m runners.ratio_sweep", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="starting values (default: paper; with --resume the saved settings)")
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
    p.add_argument("--lr", type=float, help="Adam learning rate (default: 1e-3)")
    p.add_argument("--seed", type=int, help="base seed; every draw of every cell is derived from it (default: 0)")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda (default: auto)")
    p.add_argument("--data-dir", type=Path,
                   help="directory with the four MNIST IDX .gz files (default: $GAN_ACQUIRE_DATA, else a per-user "
                        "cache filled from the public mirrors; with --resume the saved one)")
    p.add_argument("--out", type=Path, default=Path("runs/ratio_sweep"), help="output directory (default: %(default)s)")
    p.add_argument("--resume", action="store_true",
                   help="continue the sweep saved in --out with its saved settings, skipping finished cells; only "
                        "--repeats, --gan-dir and --data-dir (where the same GAN weights and MNIST files are found) "
                        "may be given differently")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def build_config(values: dict) -> RatioSweepConfig:
    """The config of these settings (validated), before the GAN weights are looked up."""
    data_dir = None if values["data_dir"] is None else str(values["data_dir"])
    return RatioSweepConfig(**{**values, "ratios": [float(r) for r in values["ratios"]],
                               "gan_dir": str(values["gan_dir"]), "data_dir": data_dir})


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


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously), so that wall-clock times measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class CellRunner:
    """measure(cell) for the Sweep: builds the cell's training set, trains a fresh CNN, scores the test set.

    The training split, the GAN pools and the test set live on `device`; which images a cell takes is drawn on
    the CPU from labels kept there, so every device trains on the same images.
    """

    def __init__(self, config: RatioSweepConfig, train: ImageSet, test: ImageSet, device):
        self.config, self.device = config, torch.device(device)
        self.train_labels_N = train.labels_N.cpu()
        self.train, self.test = train.to(self.device), test.to(self.device)
        self.pools: dict[tuple[str, int], ImageSet] = {}

    def pool(self, gan: str, repeat: int) -> ImageSet:
        """The GAN's samples for one repeat, pool_per_class of each class, on the device (the current repeat's
        pools are kept)."""
        if (gan, repeat) not in self.pools:
            self.pools = {key: pool for key, pool in self.pools.items() if key[1] == repeat}
            self.pools[gan, repeat] = generated_source(gan, Path(self.config.gan_dir), self.config.pool_per_class(),
                                                       derive_seed(self.config.seed, "repeat", repeat), self.device)
        return self.pools[gan, repeat]

    def training_set(self, cell: dict) -> tuple[ImageSet, int, int]:
        """The cell's training images [n,1,28,28] and labels [n] on the device, with n_real and n_generated."""
        seed, size, repeat = self.config.seed, cell["size"], cell["repeat"]
        real_generator = make_generator(seed, size, repeat, "real")
        index_N = class_balanced_indices(self.train_labels_N, size, real_generator, NUM_CLASSES)
        real = self.train.subset(index_N.to(self.device))
        if cell["gan"] == BASELINE:
            return real, size, 0
        class_order_K = torch.randperm(NUM_CLASSES, generator=real_generator, device=real_generator.device)
        return mix(real, self.pool(cell["gan"], repeat), cell["mode"], cell["ratio"], class_order_K,
                   make_generator(seed, *(cell[k] for k in KEY_COLUMNS), "generated"))

    def fit(self, cell: dict, images: ImageSet) -> tuple[GalCNN, int, float]:
        """A fresh CNN trained on the cell's images (on the device); with its epochs and training seconds.

        Shuffles and dropout masks come from a generator on CUDA when the run is there (drawn where they are
        used), else on the CPU."""
        config = self.config
        epochs = max(1, round(config.train_images / len(images)))
        model = new_model(derive_seed(config.seed, cell["size"], cell["repeat"], "init"), self.device)
        generator = make_generator(config.seed, *(cell[k] for k in KEY_COLUMNS), "train",
                                   device=self.device if self.device.type == "cuda" else "cpu")
        synchronize(self.device)
        start = time.perf_counter()
        train_classifier(model, images.images_NCHW, images.labels_N,
                         TrainConfig(epochs=epochs, batch_size=config.batch_size, lr=config.lr), generator)
        synchronize(self.device)
        return model, epochs, time.perf_counter() - start

    def __call__(self, cell: dict) -> dict:
        images, n_real, n_generated = self.training_set(cell)
        model, epochs, train_seconds = self.fit(cell, images)
        predicted_N = predict(model, self.test.images_NCHW)
        return {"seed": self.config.seed, "n_real": n_real, "n_generated": n_generated, "epochs": epochs,
                "images_shown": epochs * len(images), "accuracy": accuracy(predicted_N, self.test.labels_N),
                "balanced_accuracy": balanced_accuracy(predicted_N, self.test.labels_N),
                "train_seconds": round(train_seconds, 2)}


def with_baseline(df: pd.DataFrame, mode: str) -> pd.DataFrame:
    """The rows of one mode, plus the all-real r = 0 rows copied once per GAN (every line starts at them)."""
    rows = df[df["mode"] == mode]
    baseline = df[df["gan"] == BASELINE]
    copies = [baseline.assign(gan=gan, mode=mode) for gan in sorted(rows["gan"].unique())]
    return pd.concat([rows, *copies], ignore_index=True)


def format_table(df: pd.DataFrame, metric: str) -> str:
    """mean ± std (percent, population std over repeats) per (size, gan) row and ratio column."""
    summary = summarise_sweep(df, x="ratio", line="gan", metric=metric, facet="size")
    text = [format_mean_std(*cell) for cell in zip(summary["mean"], summary["std"], summary["n_repeats"])]
    table = summary.assign(cell=text).set_index(["size", "gan", "ratio"])["cell"].unstack("ratio")
    table.columns = [f"r={ratio:g}" for ratio in table.columns]
    repeats = df.groupby(["size", "gan"])["repeat"].nunique().rename("runs")
    return table.join(repeats).to_string()


def report(csv_path: Path, out_dir: Path, modes: list[str]) -> list[Path]:
    """One accuracy figure per mode (a panel per size, a line per GAN) and printed tables; returns the figures."""
    df = pd.read_csv(csv_path, dtype={"mode": str, "gan": str})
    figures = []
    for mode in modes:
        rows = with_baseline(df, mode)
        if rows.empty:
            continue
        title, xlabel = FIGURE_TEXT[mode]
        figures.append(plot_sweep(rows, out_dir / f"accuracy_{mode}.png", x="ratio", line="gan", metric="accuracy",
                                  facet="size", xlabel=f"{xlabel}; r = 0: all real, shared by every line",
                                  title=f"{title} (MNIST, Gal CNN)"))
        for metric in ("accuracy", "balanced_accuracy"):
            print(f"\n{mode}: {metric.replace('_', ' ')} (%), mean ± std over repeats\n{format_table(rows, metric)}")
    return figures


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_guarded(lambda: run(args), resume_hint("finished cells", "runners.ratio_sweep", args.out))


def run(args: argparse.Namespace) -> int:
    config = config_for_out_dir(args, lambda: config_from_args(args), kind="sweep")
    device = resolve_device(args.device)
    data_dir = None if config.data_dir is None else Path(config.data_dir)
    train, test = load_split("train", data_dir), load_split("test", data_dir)
    smallest_class, largest = int(train.labels_N.bincount(minlength=NUM_CLASSES).min()), max(config.sizes)
    if largest > NUM_CLASSES * smallest_class:
        raise ValueError(f"--sizes: {largest} class-balanced images need {largest // NUM_CLASSES} of every class; "
                         f"the training split has only {smallest_class} of its rarest class")
    cells = config.cells()
    with Sweep(args.out, asdict(config), COLUMNS, KEY_COLUMNS, args.resume, SETTINGS.resumable) as sweep:
        print(f"{len(sweep.pending(cells))} of {len(cells)} cells to run on {device}; writing {sweep.csv_path}",
              file=sys.stderr)
        csv_path = sweep.run(cells, CellRunner(config, train, test, device), progress=not args.no_progress,
                             describe=lambda c: f"n={c['size']} {c['gan']} {c['mode']} r={c['ratio']:g} #{c['repeat']}")
    figures = report(csv_path, args.out, config.modes)
    print(f"\nwrote {', '.join(str(path) for path in [csv_path, *figures])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
