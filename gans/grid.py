"""A grid of samples, one row per class, as a PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from acquire.files import write_atomic
from gans.base import ConditionalGenerator, balanced_samples


def sample_grid(generator: ConditionalGenerator, per_class: int = 10, seed: int = 0) -> np.ndarray:
    """uint8 mosaic [K·H, per_class·W] (grey) or [K·H, per_class·W, 3] (RGB): row c holds per_class samples
    conditioned on class c; other channel counts show their first channel."""
    images = balanced_samples(generator, per_class, seed).images_NCHW.cpu().numpy()
    classes, (channels, height, width) = generator.num_classes, images.shape[1:]
    images = images.transpose(0, 2, 3, 1) if channels == 3 else images[:, :1].transpose(0, 2, 3, 1)
    mosaic = images.reshape(classes, per_class, height, width, -1).transpose(0, 2, 1, 3, 4)
    mosaic = mosaic.reshape(classes * height, per_class * width, -1)
    return mosaic[:, :, 0] if mosaic.shape[2] == 1 else mosaic


def save_sample_grid(generator: ConditionalGenerator, path: Path, title: str, seed: int = 0,
                     class_names: list[str] | None = None) -> Path:
    """Write the grid with a title and the class names (default: 0..K-1) on the rows."""
    grid = sample_grid(generator, seed=seed)
    height = generator.image_shape[1]
    names = class_names or [str(c) for c in range(generator.num_classes)]
    figure = Figure(figsize=(5, 5 * grid.shape[0] / grid.shape[1] + 0.4))
    axes = figure.add_subplot()
    axes.imshow(grid, cmap="gray", vmin=0, vmax=255)
    axes.set_yticks(np.arange(generator.num_classes) * height + height / 2, names)
    axes.set_xticks([])
    axes.set_title(title)
    figure.tight_layout()
    return write_atomic(Path(path), lambda tmp: figure.savefig(tmp, dpi=100))
