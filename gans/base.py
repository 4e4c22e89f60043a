"""What every generator is: a class-conditional network from (z, label) to images of the data's shape.

A ConditionalGenerator records the image shape (channels, height, width) and the number of classes it was built
for; sample() turns it into uint8 images like the real ones, and balanced_samples() draws the same number of
each class (the quality report, the sample grid and generated pools all use it).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from acquire.data import ImageSet
from acquire.errors import UserError
from acquire.validate import check_int, check_positive_int

MAX_SIZE = 1024  # largest image height or width a family is built for


class ConditionalGenerator(nn.Module):
    """forward(z [N, latent_dim], labels [N] in 0..num_classes-1) -> images [N, C, H, W] in [-1, 1].

    Subclasses set latent_dim, num_classes and image_shape (C, H, W) from their config.
    """

    latent_dim: int
    num_classes: int = 10
    image_shape: tuple[int, int, int] = (1, 28, 28)

    @torch.no_grad()
    def sample(self, labels_N: torch.Tensor, rng: torch.Generator | None = None,
               batch_size: int = 1024) -> torch.Tensor:
        """uint8 images [N, C, H, W] on this module's device, conditioned on labels [N], quantised like real images.

        Meant not to depend on the device or the thread count: z [N, latent_dim] is drawn from a CPU RNG (the
        global CPU RNG when None) and mapped by a temporary float64 copy of the network, whose rounding differences
        (~1e-16) practically never cross a quantisation step, as float32's (~1e-7) would. A pool fingerprint is
        still checked on resume.
        """
        if rng is not None and rng.device.type != "cpu":
            raise UserError(f"sample() draws z on the CPU so that samples do not depend on the device; pass a CPU "
                            f"torch.Generator, not one on {rng.device}")
        device = next(self.parameters()).device
        network = copy.deepcopy(self).double().eval()
        labels_N = labels_N.to(device)
        out = torch.empty(len(labels_N), *self.image_shape, dtype=torch.uint8, device=device)
        for start in range(0, len(labels_N), batch_size):
            labels_B = labels_N[start:start + batch_size]
            z_BZ = torch.randn(len(labels_B), self.latent_dim, generator=rng, device="cpu")
            images = network(z_BZ.to(device, torch.float64), labels_B)
            out[start:start + len(labels_B)] = images.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
        return out


def balanced_labels(per_class: int, num_classes: int = 10, device="cpu") -> torch.Tensor:
    """Labels [K·per_class]: class 0 per_class times, then class 1, ... (K = num_classes)."""
    return torch.arange(num_classes, device=device).repeat_interleave(per_class)


def balanced_samples(generator: ConditionalGenerator, per_class: int, seed: int, device="cpu") -> ImageSet:
    """per_class uint8 samples [K·per_class, C, H, W] of each of the generator's K classes (in class order), z drawn
    from a CPU RNG seeded with `seed` (the same bytes on every device), on `device`."""
    labels_N = balanced_labels(per_class, generator.num_classes, device)
    return ImageSet(generator.sample(labels_N, torch.Generator().manual_seed(seed)).to(device), labels_N)


def check_image_fields(config) -> None:
    """UserError unless a family config's image_channels >= 1, 8 <= image_height, image_width <= 1024 and
    num_classes >= 2 (the fields every family shares, read from the data by runners.train_gans)."""
    check_positive_int("image_channels", config.image_channels)
    for name in ("image_height", "image_width"):
        if check_int(name, getattr(config, name), minimum=8) > MAX_SIZE:
            raise UserError(f"{name} must be <= {MAX_SIZE}, got {getattr(config, name)}")
    check_int("num_classes", config.num_classes, minimum=2)


def image_shape(config) -> tuple[int, int, int]:
    """(C, H, W) of a family config."""
    return config.image_channels, config.image_height, config.image_width


def stride2_stages(height: int, width: int) -> int:
    """Stride-2 stages u of a network for height x width images: 2 up to 32 pixels, one more per doubling of the
    larger side beyond (gans.dcgan's and gans.dada's ``upsamplings``)."""
    return max(2, math.ceil(math.log2(max(height, width) / 8)))


def stride2_base(height: int, width: int) -> tuple[int, int]:
    """(h, w) = (ceil(H / 2^u), ceil(W / 2^u)), u = stride2_stages: the generator's first feature map and the
    discriminator's last, the images being padded to (h·2^u, w·2^u) (pad_to) and cropped back (crop_to)."""
    factor = 2 ** stride2_stages(height, width)
    return padded(height, factor) // factor, padded(width, factor) // factor


def padded(size: int, factor: int) -> int:
    """The smallest multiple of `factor` >= size (a network that strides by `factor` works at that size)."""
    return -(-size // factor) * factor


def pad_to(images_NCHW: torch.Tensor, height: int, width: int, value: float = -1.0) -> torch.Tensor:
    """[N,C,h,w] -> [N,C,height,width], centred, borders filled with `value` (-1: black in the GAN range)."""
    top, left = (height - images_NCHW.shape[2]) // 2, (width - images_NCHW.shape[3]) // 2
    if top == left == 0 and images_NCHW.shape[2:] == (height, width):
        return images_NCHW
    return F.pad(images_NCHW, (left, width - images_NCHW.shape[3] - left, top, height - images_NCHW.shape[2] - top),
                 value=value)


def crop_to(images_NCHW: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The centred [N,C,height,width] window of [N,C,H,W] (the inverse of pad_to)."""
    top, left = (images_NCHW.shape[2] - height) // 2, (images_NCHW.shape[3] - width) // 2
    return images_NCHW[:, :, top:top + height, left:left + width]
