"""Traditional data augmentation of [N,C,H,W] images: random rotation, translation and zoom (pure torch).

DADA's C_augmented baseline (Zhang et al., sec. 4) uses "rotation, translation and flipping" on CIFAR-10 and
rotation, zooming and contrast on CBIS-DDSM. For MNIST digits flips change the class (2/5, 6/9 mirrored are
not digits) and contrast barely matters for near-binary strokes, so this module keeps rotation,
translation and zoom. The paper gives no magnitudes; the defaults are the usual mild ones for MNIST.

Each image gets its own affine map (rotation about the centre, isotropic zoom, shift in pixels), sampled
bilinearly by `grid_sample`; pixels that come from outside the image take the value `fill` (the background).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from acquire.errors import UserError


@dataclass
class AugmentConfig:
    """Ranges of the random transform; each parameter is drawn uniformly and independently per image."""

    max_rotation_deg: float = 10.0     # angle in [-max, max] degrees
    max_translation_px: float = 2.0    # horizontal and vertical shift, each in [-max, max] pixels
    max_zoom: float = 0.1              # scale in [1 - max, 1 + max]

    def __post_init__(self):
        if self.max_rotation_deg < 0 or self.max_translation_px < 0 or not 0 <= self.max_zoom < 1:
            raise UserError(f"need max_rotation_deg >= 0, max_translation_px >= 0 and 0 <= max_zoom < 1, got {self}")


def affine_transform(images_NCHW: torch.Tensor, angle_deg_N: torch.Tensor, shift_px_N2: torch.Tensor,
                     scale_N: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """Rotate each image's content by angle_deg_N [N] (counter-clockwise as displayed, about the centre), zoom it by
    scale_N [N], then shift it by shift_px_N2 [N, 2] = (right, down) pixels. images [N,C,H,W] (any H, W), uint8 or
    float; returns the same shape and dtype (uint8 rounded). Integer shifts with no rotation or zoom move pixels
    exactly; angles are true angles on screen whatever the aspect ratio."""
    n, _, height, width = images_NCHW.shape
    dtype = torch.float32 if images_NCHW.dtype == torch.uint8 else images_NCHW.dtype
    angle = torch.deg2rad(angle_deg_N.to(images_NCHW.device, dtype))
    cos, sin = torch.cos(angle), torch.sin(angle)
    scale = scale_N.to(images_NCHW.device, dtype)
    shift_N2 = shift_px_N2.to(images_NCHW.device, dtype)
    # affine_grid maps each output position p to the input position A p + b; content map (in pixels, about the
    # centre): p -> scale R p + shift, so A = R^T / scale and b = -A shift. With y pointing down, counter-clockwise
    # on screen is R = [[c, s], [-s, c]]. Normalised coordinates are pixels divided by half_2 = (W/2, H/2), per axis.
    a_N22 = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1) / scale[:, None, None]
    b_N2 = -(a_N22 @ shift_N2.unsqueeze(2)).squeeze(2)
    half_2 = torch.tensor([width / 2, height / 2], device=images_NCHW.device, dtype=dtype)
    a_N22 = a_N22 * half_2[None, None, :] / half_2[None, :, None]  # diag(1/half) A diag(half)
    b_N2 = b_N2 / half_2
    grid = F.affine_grid(torch.cat([a_N22, b_N2.unsqueeze(2)], 2), [n, 1, height, width], align_corners=False)
    x = images_NCHW.to(dtype) - fill
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill
    if images_NCHW.dtype == torch.uint8:
        return out.round_().clamp_(0, 255).to(torch.uint8)
    return out


def random_augment(images_NCHW: torch.Tensor, config: AugmentConfig, rng: torch.Generator,
                   fill: float = 0.0) -> torch.Tensor:
    """images [N,C,H,W] (uint8 or float), each randomly rotated, zoomed and shifted; parameters drawn from
    `rng` (on its own device), so the same rng state gives the same batch."""
    n = len(images_NCHW)

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=rng, device=rng.device) * 2 - 1  # in [-1, 1)

    angle_N = uniform(n) * config.max_rotation_deg
    shift_N2 = uniform(n, 2) * config.max_translation_px
    scale_N = 1 + uniform(n) * config.max_zoom
    return affine_transform(images_NCHW, angle_N, shift_N2, scale_N, fill)
