"""DADA in the extremely low data regime on MNIST: the cells of `python -m runners.dada_lowdata`.

Zhang et al.'s section 4 protocol: n real training images per class (class-balanced, a different subset per
repeat), the training options below, accuracy on the full real test set. One sweep cell = (method, n, repeat),
one row of OUT/results.csv; the figure OUT/accuracy.png is accuracy against n, one line per method (their Fig. 2).

Methods (all train the same network, `gans.dada.DadaDiscriminator`, with the phase-II loss and decision rule of
`studies.dada_lowdata.phase_two`, for the same number of steps):
  C                      a fresh classifier on the real images alone (L_data only)
  C_augmented            the same, each real batch randomly rotated, shifted and zoomed (acquire.augment)
  DADA                   phase I (gans.dada) on the real images, then phase II: the phase-I classifier trained
                         on real + frozen-G samples (L_data + L_gen)
  DADA_augmented         DADA with the real images of phase II augmented as in C_augmented
  GAN_samples            a fresh classifier on real + the same frozen phase-I G's samples: a conditional GAN's
                         samples as plain extra labelled data (the paper's GAN baselines, sec. 4)
  GAN_samples_augmented  the same with C_augmented's augmentation of the real images (as the paper's baselines)
The paper's other baselines (per-class vanilla GANs, Improved GAN's k+1 loss) are not in this package; the
GAN_samples pair keeps DADA's generator and removes its adversarially trained classifier, so the difference to
DADA is what phase I's classifier adds beyond its samples.

Why DADA's discriminator for every method: DADA's phase II fine-tunes it, so it must be DADA's classifier, and
for a fair table every option gets the same network. Its class probability p_real(y|x) + p_fake(y|x) is a
softmax over k folded logits, so without generated samples it is an ordinary k-way classifier (with the same
Gaussian input noise as regulariser).

Sharing and resuming: phase I depends only on (seed, n, repeat), so DADA, DADA_augmented and the GAN_samples
methods on a subset share one phase-I run, cached as OUT/phase_one/n{n}_r{repeat}.pt (the state_dicts of G and
C with their sha256, written atomically, loaded with weights_only=True; always read back from that file, so a
resumed sweep, which skips the cached phase I, gives the same rows as an uninterrupted one). A cache file that
does not load or whose tensors no longer match their sha256 is trained again. The cache is not part of a
portable run directory (git ignores it): a clone trains phase I again. Every cell draws its randomness from
generators keyed by (seed, purpose, n, repeat): the subset and phase I do not depend on the method or on the
order of cells; phase II (a fresh classifier's init, the generated set, batches, augmentation) is keyed by the
method too. These generators are on the CPU whatever the device, so the draws are the same on any device.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from acquire.errors import UserError
from acquire.augment import AugmentConfig
from acquire.data import ImageSet, class_balanced_indices
from acquire.digests import state_digest
from acquire.files import write_tensors
from acquire.metrics import accuracy, balanced_accuracy
from acquire.precision import PRECISIONS
from acquire.validate import check_choice, check_positive_int
from acquire.seeding import make_generator
from gans.dada import NUM_CLASSES, DadaConfig, DadaDiscriminator, DadaGenerator, train_phase_one
from studies.dada_lowdata.phase_two import PhaseTwoConfig, new_classifier, predict, train_phase_two


@dataclass(frozen=True)
class Method:
    """A training option: C starts from phase I or fresh; G's samples enter (eq. 7) or not; reals augmented or not."""

    from_phase_one: bool
    generated: bool
    augment: bool

    @property
    def needs_phase_one(self) -> bool:
        return self.from_phase_one or self.generated


METHODS = {
    "C": Method(from_phase_one=False, generated=False, augment=False),
    "C_augmented": Method(from_phase_one=False, generated=False, augment=True),
    "DADA": Method(from_phase_one=True, generated=True, augment=False),
    "DADA_augmented": Method(from_phase_one=True, generated=True, augment=True),
    "GAN_samples": Method(from_phase_one=False, generated=True, augment=False),
    "GAN_samples_augmented": Method(from_phase_one=False, generated=True, augment=True),
}
DEFAULT_METHODS = ["C", "C_augmented", "DADA", "DADA_augmented", "GAN_samples_augmented"]
COLUMNS = ["method", "n", "repeat", "accuracy", "balanced_accuracy", "train_images", "seconds"]
CELL_KEY = ["method", "n", "repeat"]


@dataclass
class LowDataConfig:
    """The whole sweep: subset sizes, repeats, methods and the step budgets (counts, not epochs)."""

    sizes: list[int] = dataclasses.field(default_factory=lambda: [5, 10, 20, 50])
    repeats: int = 3
    methods: list[str] = dataclasses.field(default_factory=lambda: list(DEFAULT_METHODS))
    phase_one_iterations: int = 300
    phase_two_steps: int = 400
    batch_size: int = 32
    lr: float = 1e-3
    generated_per_real: int = 9
    seed: int = 0
    data_dir: str | None = None  # the MNIST directory as given (None: $GAN_ACQUIRE_DATA or the cache)
    precision: str = "fp32"      # phase I and classifier training under autocast (acquire.precision.PRECISIONS)

    def __post_init__(self):
        if self.data_dir is not None:
            self.data_dir = str(self.data_dir)
        self.sizes, self.methods = list(dict.fromkeys(self.sizes)), list(dict.fromkeys(self.methods))
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise UserError(f"unknown method(s) {', '.join(map(repr, unknown))}; available: {', '.join(METHODS)}")
        if not self.methods or not self.sizes:
            raise UserError("need at least one method and one size")
        for size in self.sizes:
            check_positive_int("sizes", size)
        check_positive_int("repeats", self.repeats)
        check_positive_int("phase_one_iterations", self.phase_one_iterations)
        check_choice("precision", self.precision, PRECISIONS)
        self.phase_two()  # validates the phase-II settings

    def cells(self) -> list[dict]:
        """Every cell's key (method, n, repeat), size-major."""
        return [{"method": method, "n": n, "repeat": repeat}
                for n in self.sizes for repeat in range(self.repeats) for method in self.methods]

    def check_fits(self, train_labels_N: torch.Tensor) -> None:
        """ValueError unless the training split (labels [N]) holds the largest n images of every class."""
        smallest_class, largest = int(train_labels_N.bincount(minlength=NUM_CLASSES).min()), max(self.sizes)
        if largest > smallest_class:
            raise UserError(f"--sizes: n = {largest} needs {largest} images of every class; the training split has "
                             f"only {smallest_class} of its rarest class")

    def phase_two(self, augment: bool = False) -> PhaseTwoConfig:
        return PhaseTwoConfig(steps=self.phase_two_steps, batch_size=self.batch_size, lr=self.lr,
                              generated_per_real=self.generated_per_real,
                              augment=AugmentConfig() if augment else None)

    def phase_one(self, train_images: int) -> DadaConfig:
        """gans.dada's defaults with `epochs` set so that phase I makes exactly phase_one_iterations iterations."""
        batch = DadaConfig.batch_size
        return DadaConfig(epochs=(self.phase_one_iterations - 0.5) * batch / train_images)  # ceil() -> iterations

    def to_json(self) -> dict:
        """What config.json records: the sweep's settings, the phase-I architecture and the augmentation ranges."""
        phase_one = dataclasses.asdict(DadaConfig())
        for field in ("epochs", "num_classes", "image_channels", "image_height", "image_width"):  # the budget; MNIST's
            del phase_one[field]
        return {**dataclasses.asdict(self), "phase_one_network": phase_one,
                "augment": dataclasses.asdict(AugmentConfig())}


def real_subset(train: ImageSet, config: LowDataConfig, n: int, repeat: int) -> ImageSet:
    """The class-balanced n-per-class real training subset of this (n, repeat), the same for every method."""
    generator = make_generator(config.seed, "subset", n, repeat)
    return train.subset(class_balanced_indices(train.labels_N, NUM_CLASSES * n, generator, NUM_CLASSES))


def load_phase_one(path: Path) -> dict[str, dict[str, torch.Tensor]] | None:
    """The cached G and C state_dicts (on the CPU), or None when `path` is missing or damaged."""
    if not path.exists():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        state = {"generator": saved["generator"], "classifier": saved["classifier"]}
        intact = saved["sha256"] == state_digest(state)
    except Exception as error:  # a damaged file fails in many ways (zip, unpickling, missing keys, wrong types)
        print(f"{path} is damaged ({type(error).__name__}: {error}); training phase I again", file=sys.stderr)
        return None
    if not intact:
        print(f"{path} does not match its sha256; training phase I again", file=sys.stderr)
        return None
    return state


def phase_one_networks(out_dir: Path, config: LowDataConfig, subset: ImageSet, n: int, repeat: int,
                       device) -> tuple[DadaGenerator, DadaDiscriminator]:
    """DADA phase I on this (n, repeat)'s subset, trained once and cached in out_dir/phase_one; (G, C) in eval mode
    on `device`, always as read back from the cache."""
    path = out_dir / "phase_one" / f"n{n}_r{repeat}.pt"
    dada_config = config.phase_one(len(subset))
    state = load_phase_one(path)
    if state is None:
        generator, discriminator = train_phase_one(subset, dada_config, device,
                                                   make_generator(config.seed, "phase_one", n, repeat),
                                                   progress=False, precision=config.precision)
        state = {"generator": generator.state_dict(), "classifier": discriminator.state_dict()}
        write_tensors(path, {**state, "sha256": state_digest(state)})
        state = torch.load(path, map_location="cpu", weights_only=True)  # as a resumed sweep will read it
    generator = DadaGenerator(dada_config).to(device)
    discriminator = DadaDiscriminator(dada_config).to(device, memory_format=torch.channels_last)
    generator.load_state_dict(state["generator"])
    discriminator.load_state_dict(state["classifier"])
    return generator.eval(), discriminator.eval()


def train_cell(cell: dict, config: LowDataConfig, train: ImageSet, out_dir: Path, device) -> DadaDiscriminator:
    """One method trained on one (n, repeat) subset: the classifier C on `device`, in eval mode."""
    name, n, repeat = cell["method"], cell["n"], cell["repeat"]
    method = METHODS[name]
    subset = real_subset(train, config, n, repeat)
    rng = make_generator(config.seed, "phase_two", name, n, repeat)
    augmenter = None
    if method.needs_phase_one:
        generator, discriminator = phase_one_networks(out_dir, config, subset, n, repeat, device)
        augmenter = generator if method.generated else None
    if method.from_phase_one:
        classifier = discriminator
    else:
        classifier = new_classifier(config.phase_one(len(subset)), subset, rng, device)
    return train_phase_two(classifier, subset, augmenter, config.phase_two(method.augment), rng, progress=False,
                           precision=config.precision)


def measure_cell(cell: dict, config: LowDataConfig, train: ImageSet, test: ImageSet, out_dir: Path, device) -> dict:
    """Train one method on one (n, repeat) subset and score it on the test set (already on `device`)."""
    start = time.perf_counter()
    classifier = train_cell(cell, config, train, out_dir, device)
    predicted_N = predict(classifier, test.images_NCHW).cpu()  # .cpu() waits for the device: the time is right
    test_labels_N = test.labels_N.cpu()
    return {"accuracy": accuracy(predicted_N, test_labels_N),
            "balanced_accuracy": balanced_accuracy(predicted_N, test_labels_N),
            "train_images": NUM_CLASSES * cell["n"], "seconds": round(time.perf_counter() - start, 2)}
