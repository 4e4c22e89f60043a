"""A 10x10 grid of samples, one row per class, as a PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from acquire.files import write_atomic
from gans.base import ConditionalGenerator


def sample_grid(generator: ConditionalGenerator, per_class: int = 10, seed: int = 0) -> np.ndarray:
    """uint8 [10·28, per_class·28] mosaic: row c holds per_class samples conditioned on digit c."""
    labels = torch.arange(10).repeat_interleave(per_class)
    images = generator.sample(labels, torch.Generator().manual_seed(seed)).cpu().numpy()[:, 0]
    return images.reshape(10, per_class, 28, 28).transpose(0, 2, 1, 3).reshape(10 * 28, per_class * 28)


def save_sample_grid(generator: ConditionalGenerator, path: Path, title: str, seed: int = 0) -> Path:
    """Write the grid with a title and digit labels on the rows."""
    figure = Figure(figsize=(5, 5.4))
    axes = figure.add_subplot()
    axes.imshow(sample_grid(generator, seed=seed), cmap="gray", vmin=0, vmax=255)
    axes.set_yticks(np.arange(10) * 28 + 14, [str(c) for c in range(10)])
    axes.set_xticks([])
    axes.set_title(title)
    figure.tight_layout()
    return write_atomic(Path(path), lambda tmp: figure.savefig(tmp, dpi=100))
