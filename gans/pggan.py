"""Progressive growing of GANs (Karras et al. 2017) at small scale, class-conditional through an AC-GAN head.

Built for images [C,H,W] (``image_channels``, ``image_height``, ``image_width``; default 1x28x28) and
``num_classes`` classes. Training grows both networks 4 -> 8 -> ... -> R, the smallest power-of-two multiple of 4
that holds the larger side, on the images padded to RxR with -1 (centred: 28x28 MNIST gets 2 pixels on every side
of 32x32); the generator's output is cropped back.
Each new resolution is faded in: over a phase of ``images_per_stage`` images alpha goes 0 -> 1 and the output
is lerp(upsampled toRGB of the previous resolution, toRGB of the new block, alpha), mirrored in the critic
(lerp of fromRGB of the 2x-downsampled input and the new block's output); a stabilising phase of the same
length at alpha = 1 follows. ``final_images`` (default 0) lengthens the last, RxR stabilising phase (same
Adam state, same EMA): the budget field of a longer run, which continues a shorter run's saved training state
(gans.training.TrainingSession) without changing the fade-in schedule. Every conv/linear layer has an equalised
learning rate, the generator applies pixel norm after every conv, the critic's last block starts with a
minibatch standard-deviation channel.
Every minibatch is label-grouped: the members of each minibatch-stddev group share one class (reals drawn from
that class's images, fakes conditioned on it), so the statistic measures within-class diversity; with groups of
mixed classes the critic cannot see a generator that ignores z.
Loss: WGAN-GP (lambda 10) plus drift 0.001 * E[D(real)^2], plus the AC-GAN cross-entropy of the critic's
K class logits on real and fake images (critic) and on fake images (generator). Adam (lr 1e-3, betas (0, 0.99),
eps 1e-8) with fresh state at each new resolution, one critic step per generator step. The returned generator is
an exponential moving average of the trained one, as in the paper.

Deviations from the paper, for the zoo and the CPU budget: the generator ends in tanh (the interface needs images
in [-1, 1]); the EMA decays by 0.99 per step, not 0.999 (a phase here is a few hundred steps, not ~50,000); the
networks are narrow (64 feature maps at most) and the phases short (24,000 images, not 800,000).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from acquire.data import ImageSet
from acquire.errors import UserError
from acquire.precision import autocast
from acquire.validate import check_float, check_int, check_positive_int
from gans.base import ConditionalGenerator, check_image_fields, crop_to, image_shape, pad_to
from gans.registry import register_family
from gans.training import TrainingHooks, TrainingSession, run_steps, seeded_weights, train_images_to_float

BASE_RESOLUTION = 4
WIDTHS = (64, 64, 32, 16)       # default feature maps at 4, 8, 16, 32 (and 16 beyond)
BATCH_SIZES = (16, 16, 32, 64)  # default minibatch sizes at 4, 8, 16, 32 (and 64 beyond)
LEAK = 0.2


@dataclass
class PgganConfig:
    """Architecture and training budget of a PGGAN.

    channels: feature maps at resolutions 4, 8, ..., R (in G and D); empty: WIDTHS for the image size;
    images_per_stage: real images shown per phase (the 4x4 stage has one stabilising phase, every later
    resolution a fade-in phase and a stabilising phase: 7 phases in all at 32x32);
    batch_sizes: minibatch size at each resolution (each a multiple of mbstd_group); empty: BATCH_SIZES;
    final_images: extra real images shown at RxR after the schedule, lengthening its last stabilising phase
    (the budget that a longer run raises: a run with more final_images continues a shorter one's training state).

    The defaults (1x28x28) show 7 x 24,000 = 168,000 images; small batches at low resolution buy more updates where
    steps are cheap. G has 245,268 parameters, D 212,731.
    """

    latent_dim: int = 64
    label_dim: int = 32
    channels: tuple[int, ...] = ()
    images_per_stage: int = 24_000
    batch_sizes: tuple[int, ...] = ()
    lr: float = 1e-3
    betas: tuple[float, float] = (0.0, 0.99)
    adam_eps: float = 1e-8
    lambda_gp: float = 10.0
    drift: float = 1e-3
    ac_weight: float = 1.0
    mbstd_group: int = 4
    ema_decay: float = 0.99
    num_classes: int = 10
    final_images: int = 0
    image_channels: int = 1
    image_height: int = 28
    image_width: int = 28

    def __post_init__(self):
        check_image_fields(self)
        levels = max(2, math.ceil(math.log2(max(self.image_height, self.image_width) / BASE_RESOLUTION)) + 1)
        self.channels = tuple(self.channels) or tuple(WIDTHS[min(level, len(WIDTHS) - 1)] for level in range(levels))
        self.batch_sizes = tuple(self.batch_sizes) or tuple(BATCH_SIZES[min(level, len(BATCH_SIZES) - 1)]
                                                            for level in range(levels))
        self.betas = tuple(self.betas)
        if len(self.channels) != levels:
            raise UserError(f"channels needs one width per resolution 4..{BASE_RESOLUTION * 2 ** (levels - 1)} "
                            f"for {self.image_height}x{self.image_width} images ({levels} values), got {self.channels}")
        if len(self.batch_sizes) != levels:
            raise UserError(f"batch_sizes needs one size per resolution ({levels} values), got {self.batch_sizes}")
        for name in ("latent_dim", "label_dim", "images_per_stage", "mbstd_group"):
            check_positive_int(name, getattr(self, name))
        for width in self.channels:
            check_positive_int("every value of channels", width)
        for batch in self.batch_sizes:
            if check_positive_int("every value of batch_sizes", batch) % self.mbstd_group:
                raise UserError(f"every batch size must be a multiple of mbstd_group={self.mbstd_group}, "
                                f"got {self.batch_sizes}")
        if len(self.betas) != 2:
            raise UserError(f"betas needs 2 values, got {self.betas}")
        for beta in self.betas:
            check_float("every value of betas", beta, minimum=0, maximum=0.9999999)
        check_int("final_images", self.final_images, minimum=0)
        check_float("lr", self.lr, above=0)
        check_float("adam_eps", self.adam_eps, above=0)
        for name in ("lambda_gp", "drift", "ac_weight"):
            check_float(name, getattr(self, name), minimum=0)
        if check_float("ema_decay", self.ema_decay, minimum=0) >= 1:
            raise UserError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")

    @property
    def final_level(self) -> int:
        """Index of the last resolution R (level l is resolution 4 * 2**l)."""
        return len(self.channels) - 1

    @property
    def resolution(self) -> int:
        """R: the side of the square the images are padded to."""
        return BASE_RESOLUTION * 2 ** self.final_level


# ---------------------------------------------------------------------------------------------- layers


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate: weights N(0,1), scaled by gain/sqrt(fan_in) at run time."""

    def __init__(self, in_features: int, out_features: int, gain: float = math.sqrt(2), bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.scale = gain / math.sqrt(in_features)

    @property
    def effective_weight(self) -> torch.Tensor:
        return self.weight * self.scale

    def forward(self, x_NI: torch.Tensor) -> torch.Tensor:
        """[N, in] -> [N, out]."""
        return F.linear(x_NI, self.effective_weight, self.bias)


class EqualConv2d(nn.Module):
    """Same-padded conv with equalised learning rate (He's constant gain/sqrt(in * k * k) applied at run time)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, gain: float = math.sqrt(2)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.scale = gain / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = kernel_size // 2

    @property
    def effective_weight(self) -> torch.Tensor:
        return self.weight * self.scale

    def forward(self, x_NCHW: torch.Tensor) -> torch.Tensor:
        """[N, in, H, W] -> [N, out, H, W]."""
        return F.conv2d(x_NCHW, self.effective_weight, self.bias, padding=self.padding)


def pixel_norm(x_NC: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Each pixel's feature vector (dim 1) scaled to unit mean square."""
    return x_NC * torch.rsqrt(x_NC.square().mean(dim=1, keepdim=True) + eps)


def minibatch_stddev(x_NCHW: torch.Tensor, group_size: int) -> torch.Tensor:
    """[N,C,H,W] -> [N,C+1,H,W]: appends the feature stddev over groups of `group_size`, averaged to one value.

    Sample n belongs to group n % (N / group_size) (groups are strided, as in the paper's code).
    """
    n, _, h, w = x_NCHW.shape
    group_size = min(group_size, n)
    y_GMCHW = x_NCHW.reshape(group_size, n // group_size, *x_NCHW.shape[1:])
    std_MCHW = (y_GMCHW.var(dim=0, unbiased=False) + 1e-8).sqrt()
    std_N = std_MCHW.mean(dim=(1, 2, 3)).repeat(group_size)
    return torch.cat([x_NCHW, std_N.view(n, 1, 1, 1).expand(n, 1, h, w)], dim=1)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, LEAK)


def upsample(x_NCHW: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour 2x upsampling."""
    return F.interpolate(x_NCHW, scale_factor=2, mode="nearest")


def downsample(x_NCHW: torch.Tensor) -> torch.Tensor:
    """2x2 average pooling."""
    return F.avg_pool2d(x_NCHW, 2)


# -------------------------------------------------------------------------------------------- generator


class GeneratorBlock(nn.Module):
    """Upsample 2x, then two 3x3 convs, each followed by leaky ReLU and pixel norm: [N,Cin,R,R] -> [N,Cout,2R,2R]."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = EqualConv2d(in_channels, out_channels, 3)
        self.conv2 = EqualConv2d(out_channels, out_channels, 3)

    def forward(self, x_NCHW: torch.Tensor) -> torch.Tensor:
        h = pixel_norm(lrelu(self.conv1(upsample(x_NCHW))))
        return pixel_norm(lrelu(self.conv2(h)))


class PgganGenerator(ConditionalGenerator):
    """forward(z [N, latent_dim], labels [N]) -> images [N,C,H,W] in [-1,1] (full network, alpha = 1).

    The label enters as a learned embedding (equalised linear on its one-hot) concatenated to z before pixel norm.
    """

    def __init__(self, config: PgganConfig):
        super().__init__()
        self.latent_dim, self.num_classes = config.latent_dim, config.num_classes
        self.final_level, self.image_shape = config.final_level, image_shape(config)
        c0 = config.channels[0]
        # a one-hot input has a single non-zero entry: unit run-time scale makes the embedding N(0,1) like z
        self.label_embedding = EqualLinear(config.num_classes, config.label_dim, gain=math.sqrt(config.num_classes),
                                           bias=False)
        self.dense = EqualLinear(config.latent_dim + config.label_dim, c0 * BASE_RESOLUTION ** 2,
                                 gain=math.sqrt(2) / 4)  # the paper's 4x4 "conv" on a 1x1 input
        self.conv = EqualConv2d(c0, c0, 3)
        self.blocks = nn.ModuleList(GeneratorBlock(cin, cout)
                                    for cin, cout in zip(config.channels, config.channels[1:]))
        self.to_rgb = nn.ModuleList(EqualConv2d(c, config.image_channels, 1, gain=1.0) for c in config.channels)

    def base(self, z_NZ: torch.Tensor, labels_N: torch.Tensor) -> torch.Tensor:
        """The 4x4 features [N, channels[0], 4, 4]."""
        embedding = self.label_embedding(F.one_hot(labels_N, self.num_classes).to(z_NZ.dtype))
        h = lrelu(self.dense(pixel_norm(torch.cat([z_NZ, embedding], dim=1))))
        h = pixel_norm(h.view(len(z_NZ), -1, BASE_RESOLUTION, BASE_RESOLUTION))
        return pixel_norm(lrelu(self.conv(h)))

    def synthesize(self, z_NZ: torch.Tensor, labels_N: torch.Tensor, level: int, alpha: float = 1.0) -> torch.Tensor:
        """Images [N,C,r,r] in [-1,1] at resolution r = 4 * 2**level, the newest block faded in by alpha."""
        h = self.base(z_NZ, labels_N)
        if level == 0:
            return torch.tanh(self.to_rgb[0](h))
        for block in self.blocks[:level - 1]:
            h = block(h)
        rgb = self.to_rgb[level](self.blocks[level - 1](h))
        if alpha < 1:
            previous = upsample(self.to_rgb[level - 1](h))  # autocast may give the two toRGBs different dtypes
            rgb = torch.lerp(previous.to(rgb.dtype), rgb, alpha)
        return torch.tanh(rgb)

    def forward(self, z_NZ: torch.Tensor, labels_N: torch.Tensor) -> torch.Tensor:
        """[N, latent_dim], [N] -> [N,C,H,W]: the RxR output with the padding cropped off."""
        return crop_to(self.synthesize(z_NZ, labels_N, self.final_level), *self.image_shape[1:])


# ----------------------------------------------------------------------------------------------- critic


class CriticBlock(nn.Module):
    """Two 3x3 convs with leaky ReLU, then 2x2 average pooling: [N,Cin,2R,2R] -> [N,Cout,R,R]."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = EqualConv2d(in_channels, in_channels, 3)
        self.conv2 = EqualConv2d(in_channels, out_channels, 3)

    def forward(self, x_NCHW: torch.Tensor) -> torch.Tensor:
        return downsample(lrelu(self.conv2(lrelu(self.conv1(x_NCHW)))))


class PgganCritic(nn.Module):
    """forward(images [N,C,r,r], level, alpha) -> [N, 1 + num_classes]: WGAN critic score, then class logits."""

    def __init__(self, config: PgganConfig):
        super().__init__()
        c0 = config.channels[0]
        self.mbstd_group = config.mbstd_group
        self.from_rgb = nn.ModuleList(EqualConv2d(config.image_channels, c, 1) for c in config.channels)
        self.blocks = nn.ModuleList(CriticBlock(cin, cout) for cout, cin in zip(config.channels, config.channels[1:]))
        self.conv = EqualConv2d(c0 + 1, c0, 3)
        self.dense = EqualLinear(c0 * BASE_RESOLUTION ** 2, c0)
        self.out = EqualLinear(c0, 1 + config.num_classes, gain=1.0)

    def forward(self, x_NCRR: torch.Tensor, level: int, alpha: float = 1.0) -> torch.Tensor:
        h = lrelu(self.from_rgb[level](x_NCRR))
        if level > 0:
            h = self.blocks[level - 1](h)
            if alpha < 1:
                h = torch.lerp(lrelu(self.from_rgb[level - 1](downsample(x_NCRR))), h, alpha)
            for block in reversed(self.blocks[:level - 1]):
                h = block(h)
        h = lrelu(self.conv(minibatch_stddev(h, self.mbstd_group)))
        return self.out(lrelu(self.dense(h.flatten(1))))


# --------------------------------------------------------------------------------------------- training


def gradient_penalty(critic, real_NCHW: torch.Tensor, fake_NCHW: torch.Tensor, t_N111: torch.Tensor,
                     lambda_gp: float) -> torch.Tensor:
    """lambda_gp * E[(||grad critic(x_hat)|| - 1)^2] at x_hat = real + t (fake - real); critic: [N,...] -> [N].
    Fakes made under bfloat16 autocast are interpolated in the reals' dtype."""
    x_hat = torch.lerp(real_NCHW.detach(), fake_NCHW.detach().to(real_NCHW.dtype), t_N111).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return lambda_gp * (grad.flatten(1).norm(dim=1) - 1).square().mean()


def reals_at(reals_NCRR: torch.Tensor, level: int, final_level: int, alpha: float) -> torch.Tensor:
    """RxR reals downsampled to level's resolution; while fading, blended like G's output (low-res upsampled)."""
    x = F.avg_pool2d(reals_NCRR, 2 ** (final_level - level)) if level < final_level else reals_NCRR
    return torch.lerp(upsample(downsample(x)), x, alpha) if alpha < 1 else x


def schedule(config: PgganConfig) -> list[tuple[int, bool]]:
    """The phases as (level, fading): stabilise at 4x4, then fade in and stabilise each higher resolution."""
    return [(0, False)] + [(level, fading) for level in range(1, config.final_level + 1) for fading in (True, False)]


def phase_steps(config: PgganConfig) -> list[int]:
    """Steps of each phase of schedule(config): images_per_stage images per phase (final_images more in the last),
    in batches of its resolution's batch size (a last partial batch counts as a step)."""
    phases = schedule(config)
    return [math.ceil((config.images_per_stage + (config.final_images if index == len(phases) - 1 else 0))
                      / config.batch_sizes[level]) for index, (level, _) in enumerate(phases)]


def check_every_class(labels_N: torch.Tensor, num_classes: int) -> None:
    """ValueError unless labels [N] hold every class (label-grouped batches draw reals of each class)."""
    counts_K = torch.bincount(labels_N.cpu(), minlength=num_classes)
    if (counts_K == 0).any():
        missing = (counts_K == 0).nonzero().flatten().tolist()
        raise UserError(f"PGGAN training needs images of every class; none of class(es) {missing}")


class Trainer:
    """One WGAN-GP + AC-GAN step pair (critic, then generator) at a given level and alpha, plus the EMA update.

    Every class must occur in labels_N (check_every_class). hooks.augment is applied to every batch the critic
    sees (not to the gradient penalty's interpolates); hooks.after_generator_step runs after each generator update.
    """

    def __init__(self, config: PgganConfig, reals_NCRR: torch.Tensor, labels_N: torch.Tensor,
                 generator: PgganGenerator, critic: PgganCritic, ema: PgganGenerator, rng: torch.Generator,
                 hooks: TrainingHooks = TrainingHooks()):
        self.config, self.reals_NCRR, self.labels_N = config, reals_NCRR, labels_N
        self.generator, self.critic, self.ema, self.rng, self.hooks = generator, critic, ema, rng, hooks
        self.by_class_N = torch.argsort(labels_N, stable=True)  # image indices sorted by class
        self.class_counts_K = torch.zeros(config.num_classes, dtype=torch.long, device=labels_N.device).index_add_(
            0, labels_N, torch.ones_like(labels_N))
        self.class_starts_K = torch.cumsum(self.class_counts_K, 0) - self.class_counts_K
        self.reset_optimisers()

    def reset_optimisers(self) -> None:
        """Fresh Adam state (done when a new resolution starts, as in the paper's code)."""
        c = self.config
        self.opt_G = torch.optim.Adam(self.generator.parameters(), lr=c.lr, betas=c.betas, eps=c.adam_eps)
        self.opt_D = torch.optim.Adam(self.critic.parameters(), lr=c.lr, betas=c.betas, eps=c.adam_eps)

    def randint(self, high: int, batch: int) -> torch.Tensor:
        """[B] integers in [0, high) from the training generator, on the data's device."""
        return torch.randint(high, (batch,), generator=self.rng, device=self.rng.device).to(self.labels_N.device)

    def grouped_labels(self, batch: int) -> torch.Tensor:
        """[B] random classes, equal within each minibatch-stddev group (sample n is in group n % (B / group))."""
        return self.randint(self.config.num_classes, batch // self.config.mbstd_group).repeat(self.config.mbstd_group)

    def real_index(self, labels_B: torch.Tensor) -> torch.Tensor:
        """[B] indices of real images drawn uniformly among those of each requested class."""
        u_B = torch.rand(len(labels_B), generator=self.rng, device=self.rng.device).to(labels_B.device)
        offset_B = (u_B * self.class_counts_K[labels_B]).long().clamp(max=self.class_counts_K[labels_B] - 1)
        return self.by_class_N[self.class_starts_K[labels_B] + offset_B]

    def fakes(self, batch: int, level: int, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Generated images [B,1,R,R] and their (label-grouped) labels [B]."""
        labels_B = self.grouped_labels(batch)
        z_BZ = torch.randn(batch, self.config.latent_dim, generator=self.rng, device=self.rng.device)
        return self.generator.synthesize(z_BZ.to(labels_B.device), labels_B, level, alpha), labels_B

    def critic_step(self, batch: int, level: int, alpha: float) -> torch.Tensor:
        """One Adam step of D on a real and a fake batch; returns its loss (detached, on the device)."""
        c = self.config
        index_B = self.real_index(self.grouped_labels(batch))
        real = reals_at(self.reals_NCRR[index_B], level, c.final_level, alpha)
        with torch.no_grad():
            fake, fake_labels = self.fakes(batch, level, alpha)
        augment = self.hooks.augment
        out_real, out_fake = self.critic(augment(real), level, alpha), self.critic(augment(fake), level, alpha)
        self.hooks.observe_real_logits(out_real[:, 0].detach())
        t_B111 = torch.rand(batch, 1, 1, 1, generator=self.rng, device=self.rng.device).to(real.device)
        penalty = gradient_penalty(lambda x: self.critic(x, level, alpha)[:, 0], real, fake, t_B111, c.lambda_gp)
        loss = (out_fake[:, 0].mean() - out_real[:, 0].mean() + penalty
                + c.drift * out_real[:, 0].square().mean()
                + c.ac_weight * (F.cross_entropy(out_real[:, 1:], self.labels_N[index_B])
                                 + F.cross_entropy(out_fake[:, 1:], fake_labels)))
        self.opt_D.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_D.step()
        return loss.detach()

    def generator_step(self, batch: int, level: int, alpha: float) -> torch.Tensor:
        """One Adam step of G (D frozen), then the EMA generator moves towards G; returns G's loss (detached)."""
        c = self.config
        self.critic.requires_grad_(False)
        fake, fake_labels = self.fakes(batch, level, alpha)
        out = self.critic(self.hooks.augment(fake), level, alpha)
        loss = -out[:, 0].mean() + c.ac_weight * F.cross_entropy(out[:, 1:], fake_labels)
        self.opt_G.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_G.step()
        self.critic.requires_grad_(True)
        with torch.no_grad():
            torch._foreach_lerp_(list(self.ema.parameters()), list(self.generator.parameters()), 1 - c.ema_decay)
        self.hooks.after_generator_step()
        return loss.detach()


class GrowingView(ConditionalGenerator):
    """A PGGAN generator as it stands mid-training: forward(z [N,Z], labels [N]) -> [N,C,H,W] in [-1,1], its
    output at `level` (newest block faded in by alpha) upsampled (nearest) to RxR and cropped like forward()."""

    def __init__(self, generator: PgganGenerator, level: int, alpha: float):
        super().__init__()
        self.generator, self.level, self.alpha = generator, level, alpha
        self.latent_dim, self.num_classes = generator.latent_dim, generator.num_classes
        self.image_shape = generator.image_shape

    def forward(self, z_NZ: torch.Tensor, labels_N: torch.Tensor) -> torch.Tensor:
        """[N, latent_dim], [N] -> [N,C,H,W]."""
        images = self.generator.synthesize(z_NZ, labels_N, self.level, self.alpha)
        scale = 2 ** (self.generator.final_level - self.level)
        if scale > 1:
            images = F.interpolate(images, scale_factor=scale, mode="nearest")
        return crop_to(images, *self.image_shape[1:])


@dataclass
class Position:
    """Where training stands: phase index into schedule() and steps done in that phase."""

    phase: int = 0
    phase_step: int = 0

    def state_dict(self) -> dict:
        """{'phase': int, 'phase_step': int}."""
        return {"phase": self.phase, "phase_step": self.phase_step}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a state_dict()."""
        self.phase, self.phase_step = state["phase"], state["phase_step"]


def padded_reals(images: ImageSet, config: PgganConfig, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Real images as float [N,C,R,R] in [-1,1] (centred, the border -1) and labels [N]."""
    x_NCHW, labels_N = train_images_to_float(images, device)
    return pad_to(x_NCHW, config.resolution, config.resolution), labels_N


def build(config: PgganConfig) -> PgganGenerator:
    """An untrained generator with every block (the RxR network)."""
    return PgganGenerator(config)


def train(images: ImageSet, config: PgganConfig, device, rng: torch.Generator, progress: bool = True,
          session: TrainingSession | None = None, precision: str = "fp32") -> PgganGenerator:
    """Grow G and D from 4x4 to RxR on `images`, then final_images more at RxR; returns the EMA generator
    (eval mode). `session` resumes from / saves training states (G, D, the EMA, both Adams, the phase and step
    within it, the RNG); the images shown count every step's full batch. The critic and generator steps run under
    autocast(precision) (acquire.precision.PRECISIONS); the weights and the EMA stay float32."""
    check_every_class(images.labels_N, config.num_classes)
    session = session or TrainingSession()
    reals_NCRR, labels_N = padded_reals(images, config, device)
    with seeded_weights(rng):  # one seed each, G's first
        generator = PgganGenerator(config).to(device)
    with seeded_weights(rng):
        critic = PgganCritic(config).to(device)
    ema = copy.deepcopy(generator).requires_grad_(False)
    trainer = Trainer(config, reals_NCRR, labels_N, generator, critic, ema, rng, session.hooks)
    phases, steps = schedule(config), phase_steps(config)
    at = Position()

    def parts() -> dict:
        """The stateful pieces of training (the optimisers are replaced at each new resolution)."""
        return {"generator": generator, "critic": critic, "ema": ema, "optimiser_g": trainer.opt_G,
                "optimiser_d": trainer.opt_D, "position": at}

    def alpha_now() -> float:
        """The fade-in alpha of the next step at the current position."""
        level, fading = phases[at.phase]
        return min(at.phase_step * config.batch_sizes[level] / config.images_per_stage, 1.0) if fading else 1.0

    def current() -> GrowingView:
        """The EMA generator as it stands (for budget milestones)."""
        return GrowingView(ema, phases[at.phase][0], alpha_now())

    def step(index: int) -> tuple[int, dict]:
        """One critic + generator step pair; a finished phase is left first (the last one is never left: more
        final_images extend it), and a fading phase starts with fresh optimisers."""
        while at.phase_step >= steps[at.phase] and at.phase < len(phases) - 1:
            at.phase, at.phase_step = at.phase + 1, 0
        level, fading = phases[at.phase]
        if fading and at.phase_step == 0:
            trainer.reset_optimisers()
        batch, alpha = config.batch_sizes[level], alpha_now()
        with autocast(precision, device):
            d_loss = trainer.critic_step(batch, level, alpha)
            g_loss = trainer.generator_step(batch, level, alpha)
        at.phase_step += 1
        return batch, {"d": d_loss, "g": g_loss}

    run_steps(session, parts, rng, sum(steps), step, current, "pggan", progress)
    return ema.eval()


register_family(
    "pggan", PgganConfig, build, train,
    "Progressive growing GAN (Karras et al. 2017): 4->R with fade-in, equalised lr, pixel norm, minibatch "
    "stddev, WGAN-GP + drift, AC-GAN class head, EMA generator", budget_field="final_images",
    own_ema=True,  # pggan.ema_decay
    quick_budget={"images_per_stage": 4000})
