"""Gal's Adam recipe with classical augmentation: every batch randomly rotated, shifted and zoomed."""

from __future__ import annotations

import torch
from torch import nn

from acquire.augment import AugmentConfig, random_augment
from acquire.training import TrainConfig, train_classifier

AUGMENT = AugmentConfig()  # acquire.augment's defaults: ±10°, ±2 px, ±10% zoom


def train_augmented(model: nn.Module, images_NCHW: torch.Tensor, labels_N: torch.Tensor, config: TrainConfig,
                    rng: torch.Generator) -> nn.Module:
    """train_classifier on uint8 images [N,C,H,W] / labels [N] with every batch augmented (AUGMENT), the
    transforms drawn from `rng` on its device."""
    return train_classifier(model, images_NCHW, labels_N, config, rng,
                            augment=lambda batch, generator: random_augment(batch, AUGMENT, generator))
