"""DADA phase I (Zhang et al., "DADA: Deep Adversarial Data Augmentation ...", sec. 3.1-3.3) at small scale.

Built for images [C,H,W] (``image_channels``, ``image_height``, ``image_width``; default 1x28x28) and k =
``num_classes`` classes; as in gans.dcgan, the networks stride by 2 ``upsamplings`` times (2 up to 32 pixels, one
more per doubling beyond) from a base map of ceil(H / 2^u) x ceil(W / 2^u), padding C's input (with -1) and
cropping G's output back, centred.

The augmenter G(z, y) is a class-conditional generator that sees the label at every layer (one-hot
concatenated to z, then as constant feature maps before each transposed convolution); the
discriminator C is a 2k-way classifier (logits [N, 2k]: real classes 0..k-1, then fake classes
k..2k-1) whose last hidden layer f(x) is used for feature matching. All layers of
both networks are weight-normalised (with Salimans & Kingma's data-dependent initialisation).
Phase-I losses (the paper's eqs. 1-4):

  L_C = -E_data log p(y | x) - E_g log p(k + y | G(z, y))                     (1, the "2k loss")
  L_G = -E_g log p(y | G(z, y)) + lambda * L_fm                               (2 + 4)
  L_fm = mean over classes c in the batch of ||E f(x | c) - E f(G(z, c))||^2  (3, conditioned)

with p the softmax over all 2k logits (eq. 3 writes a plain norm; its square, as in Improved-GAN's feature
matching, is used). Per Algorithm 1, each iteration takes one real batch, makes
one C step (fakes conditioned on the batch's labels), then `generator_steps` G steps on the same
real batch and labels with fresh z. The budget is `epochs`: a larger value continues the same iteration
stream, so a saved training state (see gans.training.TrainingSession) extends. Phase II (eqs. 5-7, class
probability = real + fake class probability) fine-tunes `DadaDiscriminator` as a classifier and is not part of
this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from acquire.data import ImageSet
from acquire.precision import autocast
from acquire.validate import check_float, check_positive_int
from gans.base import (ConditionalGenerator, check_image_fields, crop_to, image_shape, pad_to, padded,
                       stride2_base, stride2_stages)
from gans.registry import register_family
from gans.training import (BatchStream, TrainingHooks, TrainingSession, run_steps, seeded_weights,
                           train_images_to_float)

NUM_CLASSES = 10                  # k of the paper's MNIST setting: the config's default
ADAM_BETAS = (0.5, 0.999)         # the paper gives none; these are the authors' code's (and DCGAN's)
LEAKY_SLOPE = 0.2
INIT_BATCH = 500                  # images (and z) of the data-dependent initialisation
OUTPUT_INIT_STD = 0.1             # initial std of the last layers' pre-activations (as in the authors' code)


@dataclass
class DadaConfig:
    """Image shape, classes, architecture and phase-I training budget.

    Defaults: G 0.85 M and C 0.85 M parameters at 1x28x28; 2.5 epochs are 4,688 iterations of 32 on 60,000 images.
    feature_matching_weight is the lambda of eq. 4 (the paper gives no value).
    """

    latent_dim: int = 100
    generator_width: int = 64          # G channels after each upsampling (twice that on the base map)
    discriminator_width: int = 32      # C channels before its last downsampling (twice that on the last map)
    feature_dim: int = 256             # width of C's feature layer f(x) (feature matching)
    input_noise_std: float = 0.3       # C's Gaussian input layer (training mode only)
    feature_matching_weight: float = 1.0
    generator_steps: int = 2           # G updates per C update (the inner loop of Algorithm 1)
    epochs: float = 2.5
    batch_size: int = 32
    lr: float = 3e-4
    num_classes: int = NUM_CLASSES
    image_channels: int = 1
    image_height: int = 28
    image_width: int = 28

    def __post_init__(self):
        for name in ("latent_dim", "generator_width", "discriminator_width", "feature_dim", "generator_steps",
                     "batch_size"):
            check_positive_int(name, getattr(self, name))
        check_image_fields(self)
        check_float("epochs", self.epochs, above=0)
        check_float("lr", self.lr, above=0)
        check_float("input_noise_std", self.input_noise_std, minimum=0)
        check_float("feature_matching_weight", self.feature_matching_weight, minimum=0)

    @property
    def upsamplings(self) -> int:
        """Stride-2 stages (gans.base.stride2_stages)."""
        return stride2_stages(self.image_height, self.image_width)

    @property
    def base_size(self) -> tuple[int, int]:
        """(h, w) of G's first feature map, C's last (gans.base.stride2_base)."""
        return stride2_base(self.image_height, self.image_width)


# ----------------------------------------------------------------------------------------- losses

def discriminator_loss(logits_real_N2K: torch.Tensor, labels_real_N: torch.Tensor,
                       logits_fake_M2K: torch.Tensor, labels_fake_M: torch.Tensor) -> torch.Tensor:
    """Eq. 1, the 2k loss: mean CE of real samples to class y plus mean CE of generated ones to class k + y."""
    k = logits_real_N2K.shape[1] // 2
    return F.cross_entropy(logits_real_N2K, labels_real_N) + F.cross_entropy(logits_fake_M2K, labels_fake_M + k)


def generator_class_loss(logits_fake_N2K: torch.Tensor, labels_fake_N: torch.Tensor) -> torch.Tensor:
    """Eq. 2: mean -log p(y | G(z, y)), the generated sample's probability of its *real* class y (of 2k)."""
    return F.cross_entropy(logits_fake_N2K, labels_fake_N)


def feature_matching_loss(features_real_ND: torch.Tensor, labels_real_N: torch.Tensor,
                          features_fake_MD: torch.Tensor, labels_fake_M: torch.Tensor) -> torch.Tensor:
    """Eq. 3, conditioned: mean over the classes present in both batches of ||mean_real_c - mean_fake_c||²."""
    num_classes = int(torch.maximum(labels_real_N.max(), labels_fake_M.max())) + 1
    means_real_KD, counts_real_K = class_means(features_real_ND, labels_real_N, num_classes)
    means_fake_KD, counts_fake_K = class_means(features_fake_MD, labels_fake_M, num_classes)
    present_K = (counts_real_K > 0) & (counts_fake_K > 0)
    return (means_real_KD - means_fake_KD)[present_K].square().sum(1).mean()


def class_means(features_ND: torch.Tensor, labels_N: torch.Tensor, num_classes: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class mean features [K, D] (zero for absent classes) and per-class counts [K]."""
    one_hot_NK = F.one_hot(labels_N, num_classes).to(features_ND.dtype)
    counts_K = one_hot_NK.sum(0)
    return (one_hot_NK.T @ features_ND) / counts_K.clamp(min=1).unsqueeze(1), counts_K


def generator_loss(logits_fake_N2K: torch.Tensor, labels_fake_N: torch.Tensor, features_real_MD: torch.Tensor,
                   labels_real_M: torch.Tensor, features_fake_ND: torch.Tensor, feature_matching_weight: float
                   ) -> torch.Tensor:
    """Eq. 4: generator_class_loss + lambda * feature_matching_loss."""
    return (generator_class_loss(logits_fake_N2K, labels_fake_N) + feature_matching_weight
            * feature_matching_loss(features_real_MD, labels_real_M, features_fake_ND, labels_fake_N))


# ----------------------------------------------------------------------------------------- networks

def label_maps(one_hot_NK: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """One-hot labels [N,K] -> constant feature maps [N,K,H,W]."""
    return one_hot_NK[:, :, None, None].expand(-1, -1, height, width)


class DadaGenerator(ConditionalGenerator):
    """The augmenter: forward(z [N,Z], labels [N]) -> images [N,C,H,W] in [-1, 1].

    At 28x28: [z | one-hot] -> WN linear -> relu [2w,7,7] -> [| label maps] -> WN convT 4x4/2 -> relu [w,14,14]
    -> [| label maps] -> WN convT 4x4/2 -> tanh [C,28,28] (each extra upsampling: [| label maps] -> WN convT 4x4/2
    -> relu [w] before the last).
    """

    def __init__(self, config: DadaConfig):
        super().__init__()
        self.latent_dim, self.num_classes = config.latent_dim, config.num_classes
        self.image_shape, self.base_size = image_shape(config), config.base_size
        width, k = config.generator_width, config.num_classes
        self.base_channels = 2 * width
        self.fc = weight_norm(nn.Linear(config.latent_dim + k, self.base_channels * math.prod(self.base_size)))
        self.up1 = weight_norm(nn.ConvTranspose2d(self.base_channels + k, width, 4, stride=2, padding=1), dim=1)
        self.up_more = nn.ModuleList(weight_norm(nn.ConvTranspose2d(width + k, width, 4, stride=2, padding=1), dim=1)
                                     for _ in range(config.upsamplings - 2))
        self.up2 = weight_norm(nn.ConvTranspose2d(width + k, config.image_channels, 4, stride=2, padding=1), dim=1)

    def forward(self, z_NZ: torch.Tensor, labels_N: torch.Tensor) -> torch.Tensor:
        one_hot_NK = F.one_hot(labels_N, self.num_classes).to(z_NZ.dtype)
        h = F.relu(self.fc(torch.cat([z_NZ, one_hot_NK], 1))).view(-1, self.base_channels, *self.base_size)
        for layer in (self.up1, *self.up_more):
            h = F.relu(layer(torch.cat([h, label_maps(one_hot_NK, *h.shape[2:])], 1)))
        h = torch.tanh(self.up2(torch.cat([h, label_maps(one_hot_NK, *h.shape[2:])], 1)))
        return crop_to(h, *self.image_shape[1:])


class DadaDiscriminator(nn.Module):
    """The 2k-way classifier C: float images [N,C,H,W] in [-1, 1] -> logits [N, 2k] (real 0..k-1, fake k..2k-1).

    Gaussian input noise (training mode) -> WN conv 4x4/2 (w) [14x14] -> WN conv 3x3 (w) -> WN conv 4x4/2 (2w)
    [7x7] -> flatten -> WN linear = f(x) [N, feature_dim], all leaky relu -> WN linear -> [N, 2k] (at 28x28; each
    extra downsampling adds WN conv 4x4/2 (w) before the last conv).
    """

    def __init__(self, config: DadaConfig):
        super().__init__()
        w = config.discriminator_width
        factor = 2 ** config.upsamplings
        self.padded_size = padded(config.image_height, factor), padded(config.image_width, factor)
        self.input_noise_std = config.input_noise_std
        more = [weight_norm(nn.Conv2d(w, w, 4, stride=2, padding=1)) for _ in range(config.upsamplings - 2)]
        self.convs = nn.ModuleList([weight_norm(nn.Conv2d(config.image_channels, w, 4, stride=2, padding=1)),
                                    weight_norm(nn.Conv2d(w, w, 3, padding=1)), *more,
                                    weight_norm(nn.Conv2d(w, 2 * w, 4, stride=2, padding=1))])
        self.fc = weight_norm(nn.Linear(2 * w * math.prod(config.base_size), config.feature_dim))
        self.out = weight_norm(nn.Linear(config.feature_dim, 2 * config.num_classes))

    def features(self, x_NCHW: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        """f(x) [N, feature_dim]; in training mode Gaussian noise (drawn from `rng`) is added to the input."""
        if self.training and self.input_noise_std > 0:
            device = rng.device if rng is not None else x_NCHW.device
            noise = torch.randn(x_NCHW.shape, generator=rng, device=device).to(x_NCHW.device)
            x_NCHW = x_NCHW + self.input_noise_std * noise
        h = pad_to(x_NCHW, *self.padded_size).contiguous(memory_format=torch.channels_last)
        for conv in self.convs:
            h = F.leaky_relu(conv(h), LEAKY_SLOPE)
        return F.leaky_relu(self.fc(h.flatten(1)), LEAKY_SLOPE)

    def logits(self, features_ND: torch.Tensor) -> torch.Tensor:
        """f(x) [N, D] -> 2k logits [N, 2k]."""
        return self.out(features_ND)

    def forward(self, x_NCHW: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        return self.logits(self.features(x_NCHW, rng))


# ----------------------------------------------------------------------------------------- training

def build(config: DadaConfig) -> DadaGenerator:
    """An untrained augmenter of this architecture."""
    return DadaGenerator(config)


@torch.no_grad()
def data_dependent_init(layers: list[nn.Module], run: Callable[[], object], output_std: float) -> None:
    """Salimans & Kingma's init of weight-normalised layers, in one forward pass `run()`.

    Each layer's g and bias are rescaled so that its outputs on that batch have per-channel mean 0 and
    std 1 (the last layer: `output_std`); the next layers then see the rescaled outputs.
    """
    def hook(layer, inputs, output):
        reduce_dims = [0] + list(range(2, output.dim()))
        mean_C, std_C = output.mean(reduce_dims), output.std(reduce_dims, correction=0) + 1e-8
        scale_C = (output_std if layer is layers[-1] else 1.0) / std_C
        g = layer.parametrizations.weight.original0
        g.mul_(scale_C.view(g.shape))
        layer.bias.sub_(mean_C).mul_(scale_C)
        shape = [1, -1] + [1] * (output.dim() - 2)
        return (output - mean_C.view(shape)) * scale_C.view(shape)

    handles = [layer.register_forward_hook(hook) for layer in layers]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()


def weight_normed_layers(module: nn.Module) -> list[nn.Module]:
    """The weight-normalised layers of `module`, in registration (= forward) order."""
    return [layer for layer in module.modules() if hasattr(layer, "parametrizations")]


def init_networks(config: DadaConfig, real_NCHW: torch.Tensor, labels_N: torch.Tensor,
                  rng: torch.Generator) -> tuple[DadaGenerator, DadaDiscriminator]:
    """G and C on the data's device, weights drawn from `rng` then data-dependently initialised.

    G is initialised on z for INIT_BATCH random labels of the data, C on the same INIT_BATCH real images.
    """
    with seeded_weights(rng):
        generator, discriminator = DadaGenerator(config), DadaDiscriminator(config)
    generator = generator.to(real_NCHW.device)
    discriminator = discriminator.to(real_NCHW.device, memory_format=torch.channels_last)
    index_B = torch.randperm(len(labels_N), generator=rng, device=rng.device)[:INIT_BATCH]
    real_BCHW, labels_B = real_NCHW[index_B.to(real_NCHW.device)], labels_N[index_B.to(real_NCHW.device)]
    z_BZ = draw_latent(len(labels_B), config.latent_dim, rng, labels_B.device)
    data_dependent_init(weight_normed_layers(generator), lambda: generator(z_BZ, labels_B), OUTPUT_INIT_STD)
    data_dependent_init(weight_normed_layers(discriminator), lambda: discriminator(real_BCHW, rng), OUTPUT_INIT_STD)
    return generator, discriminator


def draw_latent(count: int, latent_dim: int, rng: torch.Generator, device) -> torch.Tensor:
    """z [count, latent_dim] ~ N(0, I), drawn from `rng` and moved to `device`."""
    return torch.randn(count, latent_dim, generator=rng, device=rng.device).to(device)


def discriminator_step(generator: DadaGenerator, discriminator: DadaDiscriminator, optimiser: torch.optim.Optimizer,
                       real_BCHW: torch.Tensor, labels_B: torch.Tensor, rng: torch.Generator,
                       hooks: TrainingHooks = TrainingHooks()) -> torch.Tensor:
    """One Adam step of C on eq. 1 (fakes conditioned on the real batch's labels, C's input through
    hooks.augment); returns the (detached) loss."""
    with torch.no_grad():
        fake_BCHW = generator(draw_latent(len(labels_B), generator.latent_dim, rng, labels_B.device), labels_B)
    logits = discriminator(hooks.augment(torch.cat([real_BCHW, fake_BCHW])), rng)
    loss = discriminator_loss(logits[:len(labels_B)], labels_B, logits[len(labels_B):], labels_B)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return loss.detach()


def generator_step(generator: DadaGenerator, discriminator: DadaDiscriminator, optimiser: torch.optim.Optimizer,
                   real_BCHW: torch.Tensor, labels_B: torch.Tensor, config: DadaConfig, rng: torch.Generator,
                   hooks: TrainingHooks = TrainingHooks()) -> torch.Tensor:
    """One Adam step of G on eq. 4 (C's parameters frozen, its inputs through hooks.augment), then
    hooks.after_generator_step(); returns the (detached) loss."""
    with torch.no_grad():
        features_real = discriminator.features(hooks.augment(real_BCHW), rng)
    fake_BCHW = generator(draw_latent(len(labels_B), generator.latent_dim, rng, labels_B.device), labels_B)
    features_fake = discriminator.features(hooks.augment(fake_BCHW), rng)
    loss = generator_loss(discriminator.logits(features_fake), labels_B, features_real, labels_B, features_fake,
                          config.feature_matching_weight)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    hooks.after_generator_step()
    return loss.detach()


def total_iterations(config: DadaConfig, n_images: int) -> int:
    """Iterations (real batches) that `config.epochs` passes over n_images take."""
    return max(1, math.ceil(config.epochs * n_images / config.batch_size))


def train_phase_one(images: ImageSet, config: DadaConfig, device, rng: torch.Generator,
                    progress: bool = True, session: TrainingSession | None = None, precision: str = "fp32"
                    ) -> tuple[DadaGenerator, DadaDiscriminator]:
    """Algorithm 1, phase I, on real uint8 images [N,C,H,W]: the trained augmenter G and classifier C (both in eval
    mode).

    All randomness (init, batches, z, C's input noise) comes from `rng`. `session` resumes from / saves training
    states (G, C, both Adams, the batch stream, the RNG). Each iteration's C and G steps run under
    autocast(precision) (acquire.precision.PRECISIONS); the data-dependent initialisation and the weights stay float32.
    """
    session = session or TrainingSession()
    real_NCHW, labels_N = train_images_to_float(images, device)
    generator, discriminator = init_networks(config, real_NCHW, labels_N, rng)
    optimiser_g = torch.optim.Adam(generator.parameters(), lr=config.lr, betas=ADAM_BETAS)
    optimiser_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr, betas=ADAM_BETAS)
    batches = BatchStream(len(labels_N), config.batch_size, rng)
    parts = {"generator": generator, "discriminator": discriminator, "optimiser_g": optimiser_g,
             "optimiser_d": optimiser_d, "batches": batches}

    def step(index: int) -> tuple[int, dict]:
        """One C step, then config.generator_steps G steps on the same real batch."""
        index_B = next(batches).to(device)
        real_BCHW, labels_B = real_NCHW[index_B], labels_N[index_B]
        with autocast(precision, device):
            loss_c = discriminator_step(generator, discriminator, optimiser_d, real_BCHW, labels_B, rng, session.hooks)
            discriminator.requires_grad_(False)
            for _ in range(config.generator_steps):
                loss_g = generator_step(generator, discriminator, optimiser_g, real_BCHW, labels_B, config, rng,
                                        session.hooks)
            discriminator.requires_grad_(True)
        return len(index_B), {"loss_c": loss_c, "loss_g": loss_g}

    generator.train()
    discriminator.train()
    run_steps(session, lambda: parts, rng, total_iterations(config, len(labels_N)), step, lambda: generator,
              "DADA phase I", progress)
    return session.hooks.sampling_generator(generator).eval(), discriminator.eval()


def train(images: ImageSet, config: DadaConfig, device, rng: torch.Generator,
          progress: bool = True, session: TrainingSession | None = None, precision: str = "fp32") -> DadaGenerator:
    """Phase I on real images; the trained augmenter (eval mode)."""
    return train_phase_one(images, config, device, rng, progress, session, precision)[0]


register_family("dada", DadaConfig, build, train,
                "DADA phase I: label-at-every-layer weight-normalised augmenter vs a 2k-way classifier "
                "(2k loss + conditioned feature matching), Zhang et al.",
                supports_ada=False,  # C is a 2k-way classifier: no real/fake logit for ADA to read
                quick_budget={"epochs": 0.2})
