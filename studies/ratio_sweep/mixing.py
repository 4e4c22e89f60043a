"""Training sets that mix real and generated images: part of the real images replaced, or generated ones added.

Liu, "Data augmentation with GAN", section 3.4 (CIFAR-10), on MNIST here: with ratio r,
  replace  n_real = round((1-r)·size) of the `size` class-balanced real images are kept and the others swapped for
           generated images of the same classes, so every class keeps its count (r = 1: no real image left);
  add      round(r·size) class-balanced generated images join all `size` real ones.
Counts that do not divide by the number of classes are spread as evenly as possible, the one-extra classes
taken in a given class order, so every cell of a sweep can share one order (and so the same real images).
Which images are taken is decided on the CPU (from the labels and a CPU generator), so it does not depend on the
device; the images are gathered where they live.
"""

from __future__ import annotations

import torch

from acquire.errors import UserError
from acquire.data import ImageSet, class_balanced_indices

MODES = ("replace", "add")


def spread(n: int, class_order_K: torch.Tensor) -> torch.Tensor:
    """n split over the K classes: int64 counts [K], n // K each and one more for the first n % K of class_order_K."""
    num_classes = len(class_order_K)
    counts_K = torch.full((num_classes,), n // num_classes, dtype=torch.int64)
    counts_K[class_order_K[: n % num_classes].cpu()] += 1
    return counts_K


def generated_per_class(mode: str, ratio: float, size: int, class_order_K: torch.Tensor) -> torch.Tensor:
    """How many generated images of each class [K] a (mode, ratio) training set of `size` real images holds."""
    if mode not in MODES:
        raise UserError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not 0.0 <= ratio <= 1.0:
        raise UserError(f"ratio must lie in [0, 1], got {ratio}")
    n_real = round((1.0 - ratio) * size) if mode == "replace" else size
    n_generated = size - n_real if mode == "replace" else round(ratio * size)
    return spread(n_generated, class_order_K)


def take_per_class(labels_N: torch.Tensor, counts_K: torch.Tensor, rng: torch.Generator | None = None
                   ) -> torch.Tensor:
    """Positions [counts_K.sum()] (CPU) into labels_N, counts_K[c] of class c: the first ones in order, or drawn at
    random without replacement from `rng` (acquire.data.class_balanced_indices). Raises UserError when a class
    has too few."""
    if rng is not None:
        return class_balanced_indices(labels_N, counts_K.tolist(), rng, num_classes=len(counts_K))
    labels_N = labels_N.cpu()
    chosen = []
    for c, count in enumerate(counts_K.tolist()):
        members = (labels_N == c).nonzero().squeeze(1)
        if len(members) < count:
            raise UserError(f"need {count} images of class {c}, only {len(members)} available")
        chosen.append(members[:count])
    return torch.cat(chosen)


def mix(real: ImageSet, pool: ImageSet, mode: str, ratio: float, class_order_K: torch.Tensor,
        rng: torch.Generator) -> tuple[ImageSet, int, int]:
    """The training set of one cell, real images first, on the device of `real` and `pool`; with n_real and
    n_generated.

    real: the class-balanced real images [size,C,H,W] (replace keeps the first of each class, so smaller
    ratios keep a superset); pool: generated images [M,C,H,W] to draw from at random with `rng`.
    """
    device = real.images_NCHW.device
    if pool.images_NCHW.device != device:
        raise UserError(f"the real images are on {device} but the generated pool on {pool.images_NCHW.device}; "
                         "put both on the run's device")
    num_classes = len(class_order_K)
    size = len(real)
    if size % num_classes or not torch.equal(real.labels_N.cpu().bincount(minlength=num_classes),
                                             torch.full((num_classes,), size // num_classes)):
        raise UserError(f"the real images must be class-balanced over {num_classes} classes")
    generated_K = generated_per_class(mode, ratio, size, class_order_K)
    real_K = torch.full_like(generated_K, size // num_classes) - (generated_K if mode == "replace" else 0)
    kept = real.subset(take_per_class(real.labels_N, real_K).to(device))
    drawn = pool.subset(take_per_class(pool.labels_N, generated_K, rng).to(device))
    images = ImageSet(torch.cat([kept.images_NCHW, drawn.images_NCHW]), torch.cat([kept.labels_N, drawn.labels_N]))
    return images, len(kept), len(drawn)
