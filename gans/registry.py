"""The GAN zoo's one interface: a registry from family name to its config, generator builder and trainer.

Every family provides
  * a config dataclass (architecture and training budget, JSON-serialisable, defaults documented),
  * ``build(config) -> ConditionalGenerator`` (an untrained generator of that architecture),
  * ``train(images, config, device, generator, progress) -> ConditionalGenerator``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from acquire.data import ImageSet


class ConditionalGenerator(nn.Module):
    """A class-conditional generator: forward(z [N, latent_dim], labels [N]) -> images [N,1,28,28] in [-1, 1]."""

    latent_dim: int
    num_classes: int = 10

    @torch.no_grad()
    def sample(self, labels_N: torch.Tensor, generator: torch.Generator | None = None,
               batch_size: int = 1024) -> torch.Tensor:
        """uint8 images [N,1,28,28] conditioned on labels [N], quantised like real MNIST."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        labels_N = labels_N.to(device)
        out = torch.empty(len(labels_N), 1, 28, 28, dtype=torch.uint8, device=device)
        for start in range(0, len(labels_N), batch_size):
            labels_B = labels_N[start:start + batch_size]
            z_BZ = torch.randn(len(labels_B), self.latent_dim, generator=generator,
                               device=generator.device if generator is not None else device).to(device)
            images = self(z_BZ, labels_B)
            out[start:start + len(labels_B)] = images.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
        self.train(was_training)
        return out


@dataclass(frozen=True)
class GanFamily:
    name: str
    config_class: type
    build: Callable[..., ConditionalGenerator]
    train: Callable[..., ConditionalGenerator]
    description: str = ""

    def config_from_dict(self, values: dict):
        """The family's config from a JSON dict; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(self.config_class)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"{self.name} config has unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
        return self.config_class(**values)


FAMILIES: dict[str, GanFamily] = {}


def register_family(name: str, config_class: type, build: Callable, train: Callable, description: str = "") -> None:
    """Add a family to the zoo (each family module calls this at import)."""
    FAMILIES[name] = GanFamily(name, config_class, build, train, description)


def get_family(name: str) -> GanFamily:
    import gans.families  # noqa: F401  (registers the built-in families)
    if name not in FAMILIES:
        raise ValueError(f"unknown GAN family {name!r}; available: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]


def train_images_to_float(images: ImageSet, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Real uint8 images -> float [N,1,28,28] in [-1, 1] and labels [N], on `device` (the GAN input range)."""
    return images.images_NCHW.to(device).float().div(127.5).sub(1), images.labels_N.to(device)


def batch_indices(n: int, batch_size: int, steps: int, generator: torch.Generator):
    """Yields `steps` index batches [B] (B = min(batch_size, n)) from successive shuffles of range(n); each
    shuffle's incomplete tail is skipped so that every batch has B images (batch norm, per-class statistics)."""
    size = min(batch_size, n)
    order, start = None, n
    for _ in range(steps):
        if start + size > n:
            order, start = torch.randperm(n, generator=generator, device=generator.device), 0
        yield order[start:start + size]
        start += size
