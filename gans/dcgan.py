"""Class-conditional DCGANs (Radford et al. 2016) in two sizes: ``small_dcgan`` and ``large_dcgan``.

Generator (C = ``g_channels``): [z ; embedding(label)] -> linear -> [2C,7,7] -> BN, ReLU
-> convT 4x4/2 -> [C,14,14] -> BN, ReLU -> convT 4x4/2 -> [1,28,28] -> tanh.
Discriminator (D = ``d_channels``), a projection discriminator (Miyato & Koyama 2018):
image [1,28,28] -> conv 4x4/2 -> [D,14,14] -> LeakyReLU(0.2) -> conv 4x4/2 -> [2D,7,7] -> BN, LeakyReLU(0.2)
-> features h [2D·49]; logit = w·h + b + embedding(label)·h.  No BN on the input layer.
Training: Adam(lr 2e-4, betas (0.5, 0.999)) on both nets, non-saturating loss (BCE with logits), one D step
then one G step per batch; fakes are conditioned on the real batch's labels. The budget is `epochs`: a larger
value continues the same step stream, so a saved training state (see gans.registry.TrainingSession) extends.
The two families share this code and differ only by their config defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from acquire.errors import UserError
from acquire.data import ImageSet
from acquire.precision import autocast
from gans.registry import (BatchStream, ConditionalGenerator, TrainingSession, register_family, seeded_weights,
                           train_images_to_float)

IMAGE_SIZE = 28
BASE_SIZE = IMAGE_SIZE // 4  # 7: the generator's first feature map, upsampled twice


@dataclass(frozen=True)
class DCGANConfig:
    """Architecture (widths) and training budget of a conditional DCGAN (defaults: small_dcgan's)."""

    latent_dim: int = 64
    embed_dim: int = 10        # size of the generator's label embedding, concatenated to z
    g_channels: int = 64       # C: generator widths 2C (7x7) and C (14x14)
    d_channels: int = 64       # D: discriminator widths D (14x14) and 2D (7x7)
    num_classes: int = 10
    epochs: float = 3.0        # passes over the given training images (fractions allowed)
    batch_size: int = 64
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999

    def __post_init__(self):
        for name in ("latent_dim", "embed_dim", "g_channels", "d_channels", "num_classes", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise UserError(f"{name} must be a positive integer, got {value!r}")
        if not self.epochs > 0 or not self.lr > 0:
            raise UserError(f"need epochs > 0 and lr > 0, got epochs={self.epochs}, lr={self.lr}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise UserError(f"Adam betas must lie in [0, 1), got ({self.beta1}, {self.beta2})")


@dataclass(frozen=True)
class SmallDCGANConfig(DCGANConfig):
    """small_dcgan: G 597k / D 201k parameters, 3 epochs (2,813 steps on the 60,000 MNIST training images).

    Measured (CPU time, busy machine): ~415 images/s with 1 thread -> ~7.2 min on 1 thread, ~4.5 min on 2; label
    agreement with a real-MNIST CNN 0.81 after 0.6 epochs, 0.965 after 0.9, 0.984 after 1.5.
    """


@dataclass(frozen=True)
class LargeDCGANConfig(DCGANConfig):
    """large_dcgan: G 3.25M / D 201k parameters, 2.5 epochs (2,344 steps on the 60,000 MNIST training images).

    Measured (CPU time, busy machine): ~150 images/s with 1 thread -> ~17 min on 1 thread, ~10.5 min on 2; label
    agreement with a real-MNIST CNN 0.77 after 0.45 epochs, 0.93 after 0.6, 0.975 after 0.9.
    """

    latent_dim: int = 100
    g_channels: int = 192
    epochs: float = 2.5


class DCGANGenerator(ConditionalGenerator):
    """forward(z [N, latent_dim], labels [N]) -> images [N,1,28,28] in [-1, 1]."""

    def __init__(self, config: DCGANConfig):
        super().__init__()
        self.latent_dim, self.num_classes = config.latent_dim, config.num_classes
        wide = 2 * config.g_channels
        self.embed = nn.Embedding(config.num_classes, config.embed_dim)
        self.project = nn.Linear(config.latent_dim + config.embed_dim, wide * BASE_SIZE * BASE_SIZE, bias=False)
        self.upsample = nn.Sequential(
            nn.BatchNorm2d(wide), nn.ReLU(),
            nn.ConvTranspose2d(wide, config.g_channels, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(config.g_channels), nn.ReLU(),
            nn.ConvTranspose2d(config.g_channels, 1, 4, stride=2, padding=1),
            nn.Tanh())

    def forward(self, z_NZ: torch.Tensor, labels_N: torch.Tensor) -> torch.Tensor:
        h = self.project(torch.cat([z_NZ, self.embed(labels_N)], dim=1))
        return self.upsample(h.view(len(h), -1, BASE_SIZE, BASE_SIZE))


class DCGANDiscriminator(nn.Module):
    """forward(images [N,1,28,28] in [-1, 1], labels [N]) -> real/fake logits [N] (projection conditioning)."""

    def __init__(self, config: DCGANConfig):
        super().__init__()
        wide = 2 * config.d_channels
        self.features = nn.Sequential(
            nn.Conv2d(1, config.d_channels, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(config.d_channels, wide, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(wide), nn.LeakyReLU(0.2),
            nn.Flatten())
        self.logit = nn.Linear(wide * BASE_SIZE * BASE_SIZE, 1)
        self.project = nn.Embedding(config.num_classes, wide * BASE_SIZE * BASE_SIZE)

    def forward(self, images_NCHW: torch.Tensor, labels_N: torch.Tensor) -> torch.Tensor:
        h_NF = self.features(images_NCHW)
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
    # N(0, 1) like z, so that G sees its label from the start (at N(0, 0.02) label agreement after 0.3 epochs
    # was 13%, not 62%)
    nn.init.normal_(generator.embed.weight)
    return generator


def build_discriminator(config: DCGANConfig) -> DCGANDiscriminator:
    """An untrained discriminator matching `config` (initialised from the global RNG)."""
    discriminator = DCGANDiscriminator(config)
    dcgan_init_(discriminator)
    return discriminator


def init_networks(config: DCGANConfig, device, generator: torch.Generator) -> tuple[DCGANGenerator,
                                                                                  DCGANDiscriminator]:
    """Freshly initialised (generator, discriminator) on `device`, seeded by one draw from `generator`."""
    with seeded_weights(generator):
        netG, netD = build(config), build_discriminator(config)
    return netG.to(device), netD.to(device)


def adversarial_step(netG: DCGANGenerator, netD: DCGANDiscriminator, optG, optD, real_NCHW: torch.Tensor,
                     labels_N: torch.Tensor, z_NZ: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One D step then one G step (non-saturating loss) on a real batch; returns (d_loss, g_loss), detached."""
    fake_NCHW = netG(z_NZ, labels_N)
    real_logits, fake_logits = netD(real_NCHW, labels_N), netD(fake_NCHW.detach(), labels_N)
    d_loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
              + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
    optD.zero_grad(set_to_none=True)
    d_loss.backward()
    optD.step()
    netD.requires_grad_(False)  # the G step needs no D weight gradients
    fooled_logits = netD(fake_NCHW, labels_N)
    netD.requires_grad_(True)
    g_loss = F.binary_cross_entropy_with_logits(fooled_logits, torch.ones_like(fooled_logits))
    optG.zero_grad(set_to_none=True)
    g_loss.backward()
    optG.step()
    return d_loss.detach(), g_loss.detach()


def total_steps(config: DCGANConfig, n_images: int) -> int:
    """Steps (batches) that `config.epochs` passes over n_images take."""
    return max(1, math.ceil(config.epochs * n_images / config.batch_size))


def train(images: ImageSet, config: DCGANConfig, device, generator: torch.Generator, progress: bool = True,
          session: TrainingSession | None = None, precision: str = "fp32") -> DCGANGenerator:
    """Train a conditional DCGAN on real uint8 images [N,1,28,28] for `config.epochs`; the generator, in eval mode.

    Initialisation (seeded from `generator`), shuffling and z all draw from `generator`: same seed, same weights.
    `session` resumes from / saves training states (both nets, both Adams, the batch stream, the RNG). Each step
    runs under autocast(precision) (acquire.precision.PRECISIONS); the weights stay float32.
    """
    if len(images) == 0:
        raise UserError("cannot train a GAN on an empty image set")
    session = session or TrainingSession()
    device = torch.device(device)
    real_NCHW, labels_N = train_images_to_float(images, device)
    netG, netD = init_networks(config, device, generator)
    betas = (config.beta1, config.beta2)
    optG = torch.optim.Adam(netG.parameters(), lr=config.lr, betas=betas)
    optD = torch.optim.Adam(netD.parameters(), lr=config.lr, betas=betas)
    batches = BatchStream(len(images), config.batch_size, generator)
    parts = {"generator": netG, "discriminator": netD, "optimiser_g": optG, "optimiser_d": optD, "batches": batches}
    steps = total_steps(config, len(images))
    netG.train()
    netD.train()
    with session.running(lambda: parts, generator, steps, lambda: netG):
        bar = tqdm(total=steps, initial=session.steps, desc="dcgan", unit="step", disable=not progress)
        for step in range(session.steps, steps):
            batch_B = next(batches).to(device)
            z_BZ = torch.randn(len(batch_B), config.latent_dim, generator=generator,
                               device=generator.device).to(device)
            with autocast(precision, device):
                d_loss, g_loss = adversarial_step(netG, netD, optG, optD, real_NCHW[batch_B], labels_N[batch_B], z_BZ)
            session.step_done(len(batch_B))
            bar.update()
            if progress and step % 50 == 0:
                bar.set_postfix(d_loss=f"{d_loss.item():.3f}", g_loss=f"{g_loss.item():.3f}")
        bar.close()
    return netG.eval()


register_family("small_dcgan", SmallDCGANConfig, build, train,
                "class-conditional DCGAN, small (G 0.6M parameters)")
register_family("large_dcgan", LargeDCGANConfig, build, train,
                "class-conditional DCGAN, large (G 3.3M parameters)")
