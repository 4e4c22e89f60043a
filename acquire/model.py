"""Gal et al. (2017)'s MNIST CNN and its from-scratch training.

The network is split where MC dropout needs it: a deterministic convolutional `trunk`
(images -> features [N, 3872]) and a stochastic `head` (features -> logits [N, K]) that
holds both dropout layers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def to_float(images_NCHW: torch.Tensor) -> torch.Tensor:
    """uint8 images [N,C,H,W] -> a new float32 tensor in [0, 1] on the same device (the input is untouched)."""
    return images_NCHW.to(torch.float32) / 255.0


def dropout_mask(shape: tuple[int, ...], p: float, generator: torch.Generator | None,
                 device: torch.device | str) -> torch.Tensor:
    """Inverted-dropout mask of `shape` on `device`: 0 with probability p, else 1/(1-p), drawn on the
    generator's own device (so a CPU generator serves a CUDA model and vice versa)."""
    draw_device = generator.device if generator is not None else device
    keep = torch.empty(shape, device=draw_device).bernoulli_(1.0 - p, generator=generator)
    return keep.mul_(1.0 / (1.0 - p)).to(device)


class GalCNN(nn.Module):
    """conv 32@4x4, relu, conv 32@4x4, relu, maxpool 2, dropout .25, dense 128, relu, dropout .5, dense K.

    forward: float images [N,1,28,28] -> logits [N,K].
    """

    def __init__(self, num_classes: int = 10, image_size: int = 28, in_channels: int = 1,
                 conv_dropout: float = 0.25, dense_dropout: float = 0.5, hidden: int = 128):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, kernel_size=4)
        self.conv2 = nn.Conv2d(32, 32, kernel_size=4)
        side = (image_size - 6) // 2
        self.feature_dim = 32 * side * side
        self.fc1 = nn.Linear(self.feature_dim, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)
        self.conv_dropout = conv_dropout
        self.dense_dropout = dense_dropout
        self.to(memory_format=torch.channels_last)  # ~2x faster convolutions on CPU, and tensor-core friendly


    def trunk(self, x_NCHW: torch.Tensor) -> torch.Tensor:
        """Deterministic part: float images [N,1,28,28] -> features [N, feature_dim]."""
        h = F.relu(self.conv1(x_NCHW.contiguous(memory_format=torch.channels_last)))
        h = F.relu(self.conv2(h))
        return F.max_pool2d(h, 2).flatten(1)

    def head(self, features_ND: torch.Tensor, masks: tuple[torch.Tensor, torch.Tensor] | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Stochastic part: features [N,D] -> logits [N,K].

        masks: optional (mask_D, mask_H) inverted-dropout masks applied to every row (one sampled
        network); otherwise dropout is drawn per row in training mode and skipped in eval mode.
        """
        if masks is not None:
            features_ND = features_ND * masks[0]
        elif self.training:
            features_ND = features_ND * dropout_mask(features_ND.shape, self.conv_dropout, generator, features_ND.device)
        h = F.relu(self.fc1(features_ND))
        if masks is not None:
            h = h * masks[1]
        elif self.training:
            h = h * dropout_mask(h.shape, self.dense_dropout, generator, h.device)
        return self.fc2(h)

    def forward(self, x_NCHW: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.head(self.trunk(x_NCHW), generator=generator)


@dataclass
class TrainConfig:
    """How each round's fresh classifier is trained (defaults: the paper's protocol)."""

    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    dense_l2_c: float = 0.0  # Gal et al.'s code: loss += (c / n_train) * ||W_dense1||², they used c = 3.5

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.lr <= 0 or self.weight_decay < 0 or self.dense_l2_c < 0:
            raise ValueError(f"need lr > 0, weight_decay >= 0 and dense_l2_c >= 0, got lr={self.lr}, "
                             f"weight_decay={self.weight_decay}, dense_l2_c={self.dense_l2_c}")


def new_model(seed: int, device: torch.device | str, num_classes: int = 10) -> GalCNN:
    """A freshly initialised GalCNN whose weights depend only on `seed`: drawn on the CPU (from the CPU RNG
    alone, restored afterwards; no CUDA RNG is touched), then moved to `device`."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        model = GalCNN(num_classes=num_classes)
    return model.to(device)


def train_classifier(model: GalCNN, images_NCHW: torch.Tensor, labels_N: torch.Tensor,
                     config: TrainConfig, generator: torch.Generator) -> GalCNN:
    """Train `model` in place with Adam on uint8 images [N,1,28,28] / labels [N] already on its device.

    Shuffling and dropout draw from `generator` only, so a (seed, data) pair gives the same weights.
    """
    n = len(labels_N)
    if n == 0:
        raise ValueError("cannot train on an empty training set")
    x = to_float(images_NCHW)
    dense_l2 = config.dense_l2_c / n
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=generator, device=generator.device).to(x.device)
        for start in range(0, n, config.batch_size):
            batch = order[start:start + config.batch_size]
            loss = F.cross_entropy(model(x[batch], generator=generator), labels_N[batch])
            if dense_l2:
                loss = loss + dense_l2 * model.fc1.weight.square().sum()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    model.eval()
    return model


def default_chunk_size(device: torch.device | str) -> int:
    """Images per inference chunk: small on CPU (activations stay in cache, no large allocations), large on GPU."""
    return 8192 if torch.device(device).type == "cuda" else 256


@torch.no_grad()
def map_in_chunks(fn: Callable[[torch.Tensor], torch.Tensor], images_NCHW: torch.Tensor,
                  chunk_size: int | None = None) -> torch.Tensor:
    """fn applied to consecutive chunks of images [N,1,28,28] (no grad), its outputs concatenated on dim 0."""
    chunk_size = chunk_size or default_chunk_size(images_NCHW.device)
    starts = range(0, max(1, len(images_NCHW)), chunk_size)  # an empty input still gives fn's empty output
    return torch.cat([fn(images_NCHW[start:start + chunk_size]) for start in starts])


def predict(model: GalCNN, images_NCHW: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Deterministic (dropout off) predicted labels [N] for uint8 images [N,1,28,28]."""
    model.eval()
    return map_in_chunks(lambda chunk: model(to_float(chunk)).argmax(1), images_NCHW, batch_size)
