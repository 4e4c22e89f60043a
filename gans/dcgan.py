"""Class-conditional DCGANs (Radford et al. 2016) in two sizes: ``small_dcgan`` and ``large_dcgan``.

Built for images [C,H,W] (``image_channels``, ``image_height``, ``image_width``; default 1x28x28) and
``num_classes`` classes. The networks stride by 2 ``upsamplings`` times (2 up to 32 pixels, one more per doubling
beyond), from a base map of ceil(H / 2^u) x ceil(W / 2^u); sizes that do not divide are padded (D's input, with -1)
and cropped (G's output) back, centred. At 28x28 (u = 2, base 7x7):
Generator (G = ``g_channels``): [z ; embedding(label)] -> linear -> [2G,7,7] -> BN, ReLU
-> convT 4x4/2 -> [G,14,14] -> BN, ReLU -> convT 4x4/2 -> [C,28,28] -> tanh
(each extra upsampling adds convT 4x4/2 [G] -> BN, ReLU before the last).
Discriminator (D = ``d_channels``), a projection discriminator (Miyato & Koyama 2018):
image [C,28,28] -> conv 4x4/2 -> [D,14,14] -> LeakyReLU(0.2) -> conv 4x4/2 -> [2D,7,7] -> BN, LeakyReLU(0.2)
-> features h [2D·49]; logit = w·h + b + embedding(label)·h.  No BN on the input layer
(each extra downsampling adds conv 4x4/2 [D] -> BN, LeakyReLU after the first).
Training: Adam(lr 2e-4, betas (0.5, 0.999)) on both nets, non-saturating loss (BCE with logits), one D step
then one G step per batch (gans.training.adversarial_step); fakes are conditioned on the real batch's labels. The
budget is `epochs`: a larger value continues the same step stream, so a saved training state (see
gans.training.TrainingSession) extends.
The two families share this code and differ only by their config defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from acquire.data import ImageSet
from acquire.errors import UserError
from acquire.precision import autocast
from acquire.validate import check_float, check_positive_int
from gans.base import (ConditionalGenerator, check_image_fields, crop_to, image_shape, pad_to, padded,
                       stride2_base, stride2_stages)
from gans.registry import register_family
from gans.training import (BatchStream, TrainingSession, adversarial_step, run_steps, seeded_weights,
                           train_images_to_float)


@dataclass(frozen=True)
class DCGANConfig:
    """Image shape, classes, architecture (widths) and training budget of a conditional DCGAN (defaults:
    small_dcgan's)."""

    latent_dim: int = 64
    embed_dim: int = 10        # size of the generator's label embedding, concatenated to z
    g_channels: int = 64       # G: generator widths 2G (base map) and G (after each upsampling)
    d_channels: int = 64       # D: discriminator widths D and 2D (last map)
    num_classes: int = 10
    epochs: float = 3.0        # passes over the given training images (fractions allowed)
    batch_size: int = 64
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    image_channels: int = 1
    image_height: int = 28
    image_width: int = 28

    def __post_init__(self):
        for name in ("latent_dim", "embed_dim", "g_channels", "d_channels", "batch_size"):
            check_positive_int(name, getattr(self, name))
        check_image_fields(self)
        check_float("epochs", self.epochs, above=0)
        check_float("lr", self.lr, above=0)
        for name in ("beta1", "beta2"):
            if check_float(name, getattr(self, name), minimum=0) >= 1:
                raise UserError(f"Adam's {name} must lie in [0, 1), got {getattr(self, name)}")

    @property
    def upsamplings(self) -> int:
        """Stride-2 stages (gans.base.stride2_stages)."""
        return stride2_stages(self.image_height, self.image_width)

    @property
    def base_size(self) -> tuple[int, int]:
        """(h, w) of the generator's first feature map, the discriminator's last (gans.base.stride2_base)."""
        return stride2_base(self.image_height, self.image_width)


@dataclass(frozen=True)
class SmallDCGANConfig(DCGANConfig):
    """small_dcgan: at 1x28x28, G 597k / D 201k parameters, 3 epochs (2,813 steps on 60,000 images)."""


@dataclass(frozen=True)
class LargeDCGANConfig(DCGANConfig):
    """large_dcgan: at 1x28x28, G 3.25M / D 201k parameters, 2.5 epochs (2,344 steps on 60,000 images)."""

    latent_dim: int = 100
    g_channels: int = 192
    epochs: float = 2.5


class DCGANGenerator(ConditionalGenerator):
    """forward(z [N, latent_dim], labels [N]) -> images [N,C,H,W] in [-1, 1]."""

    def __init__(self, config: DCGANConfig):
        super().__init__()
        self.latent_dim, self.num_classes = config.latent_dim, config.num_classes
        self.image_shape, self.base_size = image_shape(config), config.base_size
        wide, narrow = 2 * config.g_channels, config.g_channels
        self.embed = nn.Embedding(config.num_classes, config.embed_dim)
        self.project = nn.Linear(config.latent_dim + config.embed_dim, wide * math.prod(self.base_size), bias=False)
        extra = [layer for _ in range(config.upsamplings - 2) for layer in (
            nn.ConvTranspose2d(narrow, narrow, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(narrow), nn.ReLU())]
        self.upsample = nn.Sequential(
            nn.BatchNorm2d(wide), nn.ReLU(),
            nn.ConvTranspose2d(wide, narrow, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(narrow), nn.ReLU(), *extra,
            nn.ConvTranspose2d(narrow, config.image_channels, 4, stride=2, padding=1),
            nn.Tanh())

    def forward(self, z_NZ: torch.Tensor, labels_N: torch.Tensor) -> torch.Tensor:
        h = self.project(torch.cat([z_NZ, self.embed(labels_N)], dim=1))
        return crop_to(self.upsample(h.view(len(h), -1, *self.base_size)), *self.image_shape[1:])


class DCGANDiscriminator(nn.Module):
    """forward(images [N,C,H,W] in [-1, 1], labels [N]) -> real/fake logits [N] (projection conditioning)."""

    def __init__(self, config: DCGANConfig):
        super().__init__()
        narrow, wide = config.d_channels, 2 * config.d_channels
        factor = 2 ** config.upsamplings
        self.padded_size = padded(config.image_height, factor), padded(config.image_width, factor)
        extra = [layer for _ in range(config.upsamplings - 2) for layer in (
            nn.Conv2d(narrow, narrow, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(narrow), nn.LeakyReLU(0.2))]
        self.features = nn.Sequential(
            nn.Conv2d(config.image_channels, narrow, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2), *extra,
            nn.Conv2d(narrow, wide, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(wide), nn.LeakyReLU(0.2),
            nn.Flatten())
        features = wide * math.prod(config.base_size)
        self.logit = nn.Linear(features, 1)
        self.project = nn.Embedding(config.num_classes, features)

    def forward(self, images_NCHW: torch.Tensor, labels_N: torch.Tensor) -> torch.Tensor:
        h_NF = self.features(pad_to(images_NCHW, *self.padded_size))
        return self.logit(h_NF).squeeze(1) + (self.project(labels_N) * h_NF).sum(1)


def dcgan_init_(module: nn.Module) -> None:
    """Radford et al.'s initialisation: weights ~ N(0, 0.02), BN scales ~ N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
        if getattr(m, "bias", None) is not None:
            nn.init.zeros_(m.bias)


def build(config: DCGANConfig) -> DCGANGenerator:
    """An untrained generator of the architecture in `config` (initialised from the global RNG)."""
    generator = DCGANGenerator(config)
    dcgan_init_(generator)
    # N(0, 1) like z, so that G sees its label from the start
    nn.init.normal_(generator.embed.weight)
    return generator


def build_discriminator(config: DCGANConfig) -> DCGANDiscriminator:
    """An untrained discriminator matching `config` (initialised from the global RNG)."""
    discriminator = DCGANDiscriminator(config)
    dcgan_init_(discriminator)
    return discriminator


def init_networks(config: DCGANConfig, device, rng: torch.Generator) -> tuple[DCGANGenerator, DCGANDiscriminator]:
    """Freshly initialised (generator, discriminator) on `device`, seeded by one draw from `rng`."""
    with seeded_weights(rng):
        generator, discriminator = build(config), build_discriminator(config)
    return generator.to(device), discriminator.to(device)


def total_steps(config: DCGANConfig, n_images: int) -> int:
    """Steps (batches) that `config.epochs` passes over n_images take."""
    return max(1, math.ceil(config.epochs * n_images / config.batch_size))


def train(images: ImageSet, config: DCGANConfig, device, rng: torch.Generator, progress: bool = True,
          session: TrainingSession | None = None, precision: str = "fp32") -> DCGANGenerator:
    """Train a conditional DCGAN on real uint8 images [N,C,H,W] for `config.epochs`; the generator, in eval mode.

    Initialisation (seeded from `rng`), shuffling and z all draw from `rng`: same seed, same weights. `session`
    resumes from / saves training states (both nets, both Adams, the batch stream, the RNG). Each step runs under
    autocast(precision) (acquire.precision.PRECISIONS); the weights stay float32.
    """
    if len(images) == 0:
        raise UserError("cannot train a GAN on an empty image set")
    session = session or TrainingSession()
    device = torch.device(device)
    real_NCHW, labels_N = train_images_to_float(images, device)
    generator, discriminator = init_networks(config, device, rng)
    betas = (config.beta1, config.beta2)
    optimiser_g = torch.optim.Adam(generator.parameters(), lr=config.lr, betas=betas)
    optimiser_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr, betas=betas)
    batches = BatchStream(len(images), config.batch_size, rng)
    parts = {"generator": generator, "discriminator": discriminator, "optimiser_g": optimiser_g,
             "optimiser_d": optimiser_d, "batches": batches}

    def step(index: int) -> tuple[int, dict]:
        batch_B = next(batches).to(device)
        z_BZ = torch.randn(len(batch_B), config.latent_dim, generator=rng, device=rng.device).to(device)
        with autocast(precision, device):
            d_loss, g_loss = adversarial_step(generator, discriminator, optimiser_g, optimiser_d, real_NCHW[batch_B],
                                              labels_N[batch_B], z_BZ, session.hooks)
        return len(batch_B), {"d_loss": d_loss, "g_loss": g_loss}

    generator.train()
    discriminator.train()
    run_steps(session, lambda: parts, rng, total_steps(config, len(images)), step, lambda: generator, "dcgan",
              progress, log_every=50)
    return session.hooks.sampling_generator(generator).eval()


register_family("small_dcgan", SmallDCGANConfig, build, train,
                "class-conditional DCGAN, small (G 0.6M parameters at 1x28x28)", quick_budget={"epochs": 0.4})
register_family("large_dcgan", LargeDCGANConfig, build, train,
                "class-conditional DCGAN, large (G 3.3M parameters at 1x28x28)", quick_budget={"epochs": 0.3})
