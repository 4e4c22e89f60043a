"""The cells of the ratio sweep: accuracy against the share of real images replaced by, or joined by, generated ones.

Liu's naive GAN augmentation (section 3.4 of "Data augmentation with GAN") on MNIST. A cell (size, mode, gan,
ratio, repeat) trains a fresh Gal et al. CNN on `size` class-balanced real training images of which a fraction r
is replaced by generated images of the same classes, or to which r*size class-balanced generated images are
added (studies.ratio_sweep.mixing), and scores it on the test set. r = 0 is one all-real cell per (size, repeat),
logged with gan and mode BASELINE.

Paired design: a repeat's real images and the CNN's initial weights depend only on (seed, size, repeat), so every
GAN, mode and ratio of a repeat starts from the same real images (replace keeps a subset of them, the smaller r
the larger). Each GAN's samples come from one pool per (GAN, repeat), just large enough for the largest cell;
every cell draws its own images from it, and its training order and dropout, from its own key. Training budget:
every cell shows the CNN about `train_images` images (epochs = max(1, round(train_images / n_train))), so small,
large and augmented training sets cost the same.

The generated pools come from a caller's `PoolSource` (the runner's samples trained GAN checkpoints): this module
knows the GANs only by name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import torch

from acquire.errors import UserError
from acquire.builtins import MODELS
from acquire.data import ImageSet, class_balanced_indices
from acquire.device import synchronize
from studies.ratio_sweep.mixing import MODES, generated_per_class, mix
from acquire.factories import ModelFactory, make_model
from acquire.networks import new_model
from acquire.precision import PRECISIONS, autocast
from acquire.validate import check_choice, check_float, check_nonempty_distinct, check_positive_int
from acquire.training import TrainConfig, evaluate, train_classifier
from acquire.seeding import derive_seed, make_generator

BASELINE = "none"  # gan and mode of the all-real r = 0 cells
NUM_CLASSES = 10
CELL_KEY = ["size", "mode", "gan", "ratio", "repeat"]
COLUMNS = CELL_KEY + ["seed", "n_real", "n_generated", "epochs", "images_shown", "accuracy", "balanced_accuracy",
                     "train_seconds"]

PoolSource = Callable[[str, int, int], ImageSet]
"""(gan, per_class, seed) -> that GAN's samples, per_class of each class, images [M,C,H,W] and labels [M] on the
run's device; the same seed gives the same images."""


@dataclass(frozen=True)
class RatioSweepConfig:
    """The whole sweep's settings (saved as config.json); gan_dir and data_dir as given on the command line
    (data_dir None: $GAN_ACQUIRE_DATA or the cache); precision: the CNNs train under autocast(precision)
    (acquire.precision.PRECISIONS), the test set is scored in float32; gan_checkpoints: GAN name -> weights sha256."""

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
    precision: str = "fp32"
    gan_checkpoints: dict[str, str] = field(default_factory=dict)
    model: str = "gal"  # a --model name of acquire.builtins.MODELS (a sweep saved without it used "gal")

    def __post_init__(self):
        for name in ("gans", "sizes", "ratios", "modes"):
            check_nonempty_distinct(f"--{name}", getattr(self, name))
        bad_sizes = [s for s in self.sizes if not isinstance(s, int) or s <= 0 or s % NUM_CLASSES]
        if bad_sizes:
            raise UserError(f"--sizes must be positive multiples of {NUM_CLASSES} (class-balanced), got {bad_sizes}")
        bad_ratios = [r for r in self.ratios if not 0.0 <= r <= 1.0]
        if bad_ratios:
            raise UserError(f"--ratios must lie in [0, 1] (the share of generated images), got {bad_ratios}")
        bad_modes = [m for m in self.modes if m not in MODES]
        if bad_modes:
            raise UserError(f"--modes must be among {', '.join(MODES)}, got {bad_modes}")
        for name in ("repeats", "train_images", "batch_size"):
            check_positive_int(f"--{name.replace('_', '-')}", getattr(self, name))
        check_float("--lr", self.lr, above=0)
        check_choice("--precision", self.precision, PRECISIONS)
        check_choice("--model", self.model, sorted(MODELS))

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

    def check_fits(self, train_labels_N: torch.Tensor) -> None:
        """ValueError unless the training split (labels [N]) holds the largest size's share of every class."""
        smallest_class, largest = int(train_labels_N.bincount(minlength=NUM_CLASSES).min()), max(self.sizes)
        if largest > NUM_CLASSES * smallest_class:
            raise UserError(f"--sizes: {largest} class-balanced images need {largest // NUM_CLASSES} of every class; "
                             f"the training split has only {smallest_class} of its rarest class")


class CellRunner:
    """CellRunner(...)(cell) -> the cell's result columns: builds its training set, trains a fresh CNN, scores the
    test set.

    The training split, the generated pools (from `pools`) and the test set live on `device`; which images a cell
    takes is drawn on the CPU from labels kept there, so every device trains on the same images.
    model_factory: (seed, device) -> nn.Module, float images [N,C,H,W] in [0, 1] -> logits [N,K], as the loop's
    (default: Gal et al.'s CNN, acquire.networks.new_model).
    """

    def __init__(self, config: RatioSweepConfig, train: ImageSet, test: ImageSet, device, pools: PoolSource,
                 model_factory: ModelFactory = new_model):
        self.config, self.device, self.sample_pool = config, torch.device(device), pools
        self.model_factory = model_factory
        self.train_labels_N = train.labels_N.cpu()
        self.train, self.test = train.to(self.device), test.to(self.device)
        self.pools: dict[tuple[str, int], ImageSet] = {}

    def pool(self, gan: str, repeat: int) -> ImageSet:
        """The GAN's samples for one repeat, pool_per_class of each class, on the device (the current repeat's
        pools are kept)."""
        if (gan, repeat) not in self.pools:
            self.pools = {key: pool for key, pool in self.pools.items() if key[1] == repeat}
            self.pools[gan, repeat] = self.sample_pool(gan, self.config.pool_per_class(),
                                                       derive_seed(self.config.seed, "repeat", repeat))
        return self.pools[gan, repeat]

    def training_set(self, cell: dict) -> tuple[ImageSet, int, int]:
        """The cell's training images [n,C,H,W] and labels [n] on the device, with n_real and n_generated."""
        seed, size, repeat = self.config.seed, cell["size"], cell["repeat"]
        real_generator = make_generator(seed, size, repeat, "real")
        index_N = class_balanced_indices(self.train_labels_N, size, real_generator, NUM_CLASSES)
        real = self.train.subset(index_N.to(self.device))
        if cell["gan"] == BASELINE:
            return real, size, 0
        class_order_K = torch.randperm(NUM_CLASSES, generator=real_generator, device=real_generator.device)
        return mix(real, self.pool(cell["gan"], repeat), cell["mode"], cell["ratio"], class_order_K,
                   make_generator(seed, *(cell[k] for k in CELL_KEY), "generated"))

    def fit(self, cell: dict, images: ImageSet) -> tuple[torch.nn.Module, int, float]:
        """A fresh network from model_factory trained on the cell's images (on the device, under
        autocast(config.precision)); with its epochs and training seconds.

        Shuffles and dropout masks come from a generator on CUDA when the run is there (drawn where they are
        used), else on the CPU."""
        config = self.config
        epochs = max(1, round(config.train_images / len(images)))
        seed = derive_seed(config.seed, cell["size"], cell["repeat"], "init")
        model = make_model(self.model_factory, seed, self.device)
        generator = make_generator(config.seed, *(cell[k] for k in CELL_KEY), "train",
                                   device=self.device if self.device.type == "cuda" else "cpu")
        synchronize(self.device)
        start = time.perf_counter()
        with autocast(config.precision, self.device):
            train_classifier(model, images.images_NCHW, images.labels_N,
                             TrainConfig(epochs=epochs, batch_size=config.batch_size, lr=config.lr), generator)
        synchronize(self.device)
        return model, epochs, time.perf_counter() - start

    def __call__(self, cell: dict) -> dict:
        images, n_real, n_generated = self.training_set(cell)
        model, epochs, train_seconds = self.fit(cell, images)
        return {"seed": self.config.seed, "n_real": n_real, "n_generated": n_generated, "epochs": epochs,
                "images_shown": epochs * len(images), **evaluate(model, self.test.images_NCHW, self.test.labels_N),
                "train_seconds": round(train_seconds, 2)}


def with_baseline(df: pd.DataFrame, mode: str) -> pd.DataFrame:
    """The rows of one mode, plus the all-real r = 0 rows copied once per GAN (every line starts at them)."""
    rows = df[df["mode"] == mode]
    baseline = df[df["gan"] == BASELINE]
    copies = [baseline.assign(gan=gan, mode=mode) for gan in sorted(rows["gan"].unique())]
    return pd.concat([rows, *copies], ignore_index=True)
