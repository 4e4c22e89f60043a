"""How good is a class-conditional generator? Three measures, all judged by Gal's CNN built for the data's
shape [C,S,S] and K classes.

* label agreement: share of generated samples that a CNN trained on the full real training set
  assigns to their conditioning label;
* Fréchet distance between generated and real test images in that CNN's 128-d hidden layer
  (an analogue of FID);
* classification accuracy score (CAS, Ravuri & Vinyals 2019): a fresh CNN trained only on
  generated samples, tested on the real test set.

Every random draw comes from a CPU RNG, so the measures do not depend on the device. Measuring one generator
costs sampling plus a CAS training run (10 epochs on K·1,000 images by default). `plot_quality_by_budget` draws
label agreement and CAS against the images shown in training.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from acquire.data import ImageSet, class_balanced_at_most, class_balanced_indices
from acquire.files import write_atomic
from acquire.metrics import accuracy
from acquire.inference import map_in_chunks, predict, to_float
from acquire.networks import GalCNN, new_model
from acquire.training import TrainConfig, evaluate, train_classifier
from acquire.seeding import derive_seed
from gans.base import ConditionalGenerator, balanced_samples
from gans.memorisation import memorisation


REAL_ROW = "real (training images)"  # the quality reports' baseline row: a class-balanced real sample


@dataclass
class QualityConfig:
    """Sample counts and training budgets of the measures (CPU-friendly defaults)."""

    samples_per_class: int = 1000      # generated images per class for all three measures
    reference_epochs: int = 3          # reference CNN on the real training images
    cas_epochs: int = 10               # CAS classifier on the generated images
    seed: int = 0


def hidden_features(model: GalCNN, images_NCHW: torch.Tensor) -> torch.Tensor:
    """The CNN's 128-d hidden layer (after relu, dropout off) for uint8 images: [N, 128] float64."""
    model.eval()
    return map_in_chunks(lambda chunk: F.relu(model.fc1(model.trunk(to_float(chunk)))).double().cpu(), images_NCHW)


def frechet_distance(features_a_ND: torch.Tensor, features_b_MD: torch.Tensor) -> float:
    """||mu_a - mu_b||² + Tr(S_a + S_b - 2 (S_a S_b)^½) between two Gaussians fitted to the features."""
    a, b = features_a_ND.numpy(), features_b_MD.numpy()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Tr((S_a S_b)^½) = Σ √λ(S_a^½ S_b S_a^½): symmetric PSD eigenproblems, stable when S is singular
    # (dead ReLU units have zero variance).
    eigenvalues, vectors = scipy.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(eigenvalues.clip(min=0))) @ vectors.T
    trace_root = np.sqrt(scipy.linalg.eigvalsh(root_a @ cov_b @ root_a).clip(min=0)).sum()
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def data_shape(images: ImageSet) -> tuple[tuple[int, int, int], int]:
    """((C, H, W), K) of a labelled image set (K = largest label + 1)."""
    return tuple(images.images_NCHW.shape[1:]), int(images.labels_N.max()) + 1


def train_reference_classifier(train: ImageSet, config: QualityConfig, device) -> GalCNN:
    """Gal's CNN trained on the full real training set: the judge of label agreement and features."""
    train = train.to(device)
    shape, num_classes = data_shape(train)
    model = new_model(config.seed, device, num_classes, shape)
    return train_classifier(model, train.images_NCHW, train.labels_N, TrainConfig(epochs=config.reference_epochs),
                            torch.Generator().manual_seed(config.seed))


def measure(samples: ImageSet, reference: GalCNN, real_test: ImageSet, config: QualityConfig, device) -> dict:
    """The three measures for one set of labelled samples (generated, or real as a baseline)."""
    samples, real_test = samples.to(device), real_test.to(device)
    shape, num_classes = data_shape(real_test)
    agreement = accuracy(predict(reference, samples.images_NCHW), samples.labels_N)
    distance = frechet_distance(hidden_features(reference, samples.images_NCHW),
                                hidden_features(reference, real_test.images_NCHW))
    cas_model = train_classifier(new_model(config.seed + 1, device, num_classes, shape), samples.images_NCHW,
                                 samples.labels_N,
                                 TrainConfig(epochs=config.cas_epochs),
                                 torch.Generator().manual_seed(config.seed + 1))
    cas = evaluate(cas_model, real_test.images_NCHW, real_test.labels_N)
    return {"label_agreement": agreement, "frechet_distance": distance,
            "cas_accuracy": cas["accuracy"], "cas_balanced_accuracy": cas["balanced_accuracy"]}


def agreement_by_class(reference: GalCNN, samples: ImageSet) -> list[dict]:
    """Label agreement of labelled samples per class, and the class the reference CNN most often calls them
    instead: one dict per class present (class, samples, agreement, most_confused_with, confused_share; the
    shares are of that class's samples; most_confused_with is -1 where every sample agrees)."""
    predicted_N = predict(reference, samples.images_NCHW).cpu()
    labels_N = samples.labels_N.cpu()
    num_classes = int(max(labels_N.max(), predicted_N.max())) + 1
    rows = []
    for label in labels_N.unique().tolist():
        predicted = predicted_N[labels_N == label]
        wrong_K = torch.bincount(predicted[predicted != label], minlength=num_classes)
        confused = int(wrong_K.argmax()) if wrong_K.any() else -1
        rows.append({"class": label, "samples": len(predicted),
                     "agreement": float((predicted == label).double().mean()),
                     "most_confused_with": confused, "confused_share": float(wrong_K.max()) / len(predicted)})
    return rows


class Judge:
    """Quality measures of generators against a real data set (train and test ImageSets); the reference CNN is
    trained on the real training images at first use, once. Samples are seeded by config.seed (and the GAN's
    name), so the same weights are judged on the same samples."""

    def __init__(self, train: ImageSet, test: ImageSet, config: QualityConfig, device):
        self.train, self.test, self.config, self.device = train, test, config, device
        self.image_shape, self.num_classes = data_shape(train)
        self._reference = None

    def reference(self) -> GalCNN:
        """Gal's CNN trained on all real training images (trained at the first call)."""
        if self._reference is None:
            print("quality: training the reference CNN on all real training images ...", file=sys.stderr)
            self._reference = train_reference_classifier(self.train, self.config, self.device)
        return self._reference

    def real_samples(self) -> ImageSet:
        """A class-balanced sample of real training images [K·samples_per_class] (the baseline), on the device."""
        index = class_balanced_indices(self.train.labels_N, self.num_classes * self.config.samples_per_class,
                                       torch.Generator().manual_seed(derive_seed(self.config.seed, "quality-real")),
                                       self.num_classes)
        return self.train.subset(index).to(self.device)

    def samples(self, generator: ConditionalGenerator, name: str) -> ImageSet:
        """`generator`'s samples [K·samples_per_class] for GAN `name`, on the device."""
        return balanced_samples(generator, self.config.samples_per_class,
                                derive_seed(self.config.seed, name, "quality"), self.device)

    def real_measures(self) -> dict:
        """The measures of the real baseline sample."""
        return measure(self.real_samples(), self.reference(), self.test, self.config, self.device)

    def measures(self, generator, name: str) -> dict:
        """The measures of `generator`'s samples."""
        return measure(self.samples(generator, name), self.reference(), self.test, self.config, self.device)


def plot_quality_by_budget(csv_path: Path, png_path: Path) -> Path:
    """Label agreement and CAS accuracy against images shown in training, one line per GAN (CSV columns gan,
    images_shown, label_agreement, cas_accuracy), as a PNG written atomically."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    figure = Figure(figsize=(10, 4))
    for axes, column, title in zip(figure.subplots(1, 2), ("label_agreement", "cas_accuracy"),
                                   ("label agreement (reference CNN)", "CAS accuracy (real test set)")):
        for gan in sorted({row["gan"] for row in rows}):
            points = sorted((int(row["images_shown"]), float(row[column])) for row in rows if row["gan"] == gan)
            axes.plot(*zip(*points), marker="o", label=gan)
        axes.set_xlabel("real images shown in training")
        axes.set_title(title)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    return write_atomic(Path(png_path), lambda tmp: figure.savefig(tmp, dpi=100))


HELDOUT_PER_CLASS = 100  # unseen real training images per class (at most): the memorisation baseline


def measure_on_subset(generator: ConditionalGenerator, name: str, labelled: ImageSet, train: ImageSet,
                      unseen_N: torch.Tensor, judge: Judge, seed: int) -> dict:
    """Quality (Judge.measures) and memorisation (gans.memorisation: samples' nearest-neighbour distances to the
    labelled subset `labelled` it was trained on, against those of real training images it never saw, positions
    unseen_N [M] in `train`, up to HELDOUT_PER_CLASS a class drawn with `seed`) of a generator trained on a subset."""
    samples = judge.samples(generator, name)
    heldout = unseen_N[class_balanced_at_most(train.labels_N[unseen_N], HELDOUT_PER_CLASS,
                                              torch.Generator().manual_seed(seed), int(train.labels_N.max()) + 1)]
    copies = memorisation(samples.to("cpu"), labelled.to("cpu"), train.subset(heldout).to("cpu"))
    return {**judge.measures(generator, name), **copies.row()}
