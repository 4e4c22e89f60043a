"""Differentiable augmentation for GANs on little data: DiffAugment (Zhao et al. 2020) and ADA's adaptive p.

`diff_augment(images_NCHW, policy, rng, p)` transforms float images [N,C,H,W] in [-1, 1] of any shape with
operations that pass gradients to their input. Apply the SAME function to everything the discriminator sees:
real and generated images, in the discriminator step and in the generator step (each call draws its own
transforms). Augmenting the real images alone teaches the generator to produce augmented images.

Operations (the policy is a comma-separated list of them, applied in this order):
  translation  shift by up to 1/8 of the height and width (integers), the uncovered border padded
  cutout       a zero rectangle of half the height and width at a random centre (clipped at the border)
  color        brightness, saturation and contrast (RGB only: C == 3)
Each operation is applied to each image independently with probability p (ADA's per-transform probability;
DiffAugment is p = 1). `AdaptiveAugment` adjusts p from the discriminator's overfitting (Karras et al. 2020).
"""

from __future__ import annotations

import torch

from acquire.errors import UserError

OPERATIONS = ("translation", "cutout", "color")
PADDINGS = ("zeros", "edge")


def parse_policy(policy: str, channels: int) -> tuple[str, ...]:
    """The operations named in `policy` (e.g. "translation,cutout"; "" = none), checked against C = `channels`."""
    names = tuple(name.strip() for name in policy.split(",") if name.strip())
    unknown = [name for name in names if name not in OPERATIONS]
    if unknown:
        raise UserError(f"unknown DiffAugment operation(s) {', '.join(unknown)} in policy {policy!r}; "
                        f"use a comma-separated list of {', '.join(OPERATIONS)}")
    if "color" in names and channels != 3:
        raise UserError(f"DiffAugment 'color' needs RGB images (C = 3), these have C = {channels}; "
                        f"drop 'color' from the policy {policy!r}")
    return names


def uniform(shape: tuple[int, ...], rng: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """U[0, 1) draws of `shape` from `rng` (on its own device), moved to `like`'s device and dtype."""
    return torch.rand(shape, generator=rng, device=rng.device).to(like.device, like.dtype)


def integers(low: int, high: int, count: int, rng: torch.Generator, device) -> torch.Tensor:
    """`count` integers uniform in [low, high) from `rng`, on `device`."""
    return torch.randint(low, high, (count,), generator=rng, device=rng.device).to(device)


def translation(images_NCHW: torch.Tensor, rng: torch.Generator, padding: str = "zeros") -> torch.Tensor:
    """Each image shifted by (dy, dx), |dy| <= H/8, |dx| <= W/8 (rounded); the border zero- or edge-padded."""
    n, _, height, width = images_NCHW.shape
    device = images_NCHW.device
    max_y, max_x = int(height / 8 + 0.5), int(width / 8 + 0.5)
    dy_N = integers(-max_y, max_y + 1, n, rng, device)
    dx_N = integers(-max_x, max_x + 1, n, rng, device)
    rows_NH = torch.arange(height, device=device) - dy_N[:, None]  # the source row of each output row
    cols_NW = torch.arange(width, device=device) - dx_N[:, None]
    inside_NHW = (((rows_NH >= 0) & (rows_NH < height))[:, :, None] & ((cols_NW >= 0) & (cols_NW < width))[:, None, :])
    rows_NH, cols_NW = rows_NH.clamp(0, height - 1), cols_NW.clamp(0, width - 1)
    images_NHWC = images_NCHW.permute(0, 2, 3, 1)
    shifted_NHWC = images_NHWC[torch.arange(n, device=device)[:, None, None], rows_NH[:, :, None], cols_NW[:, None, :]]
    shifted_NCHW = shifted_NHWC.permute(0, 3, 1, 2)
    if padding == "zeros":
        shifted_NCHW = shifted_NCHW * inside_NHW[:, None].to(images_NCHW.dtype)
    return shifted_NCHW


def cutout(images_NCHW: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Each image with a zero rectangle of H/2 x W/2 (rounded) centred at a random pixel, clipped at the border."""
    n, _, height, width = images_NCHW.shape
    device = images_NCHW.device
    size_h, size_w = int(height / 2 + 0.5), int(width / 2 + 0.5)
    top_N = integers(0, height, n, rng, device) - size_h // 2
    left_N = integers(0, width, n, rng, device) - size_w // 2
    rows_NH = torch.arange(height, device=device) - top_N[:, None]
    cols_NW = torch.arange(width, device=device) - left_N[:, None]
    cut_NHW = ((rows_NH >= 0) & (rows_NH < size_h))[:, :, None] & ((cols_NW >= 0) & (cols_NW < size_w))[:, None, :]
    return images_NCHW * (~cut_NHW)[:, None].to(images_NCHW.dtype)


def color(images_NCHW: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """DiffAugment's colour on [-1, 1] RGB: brightness + U[-0.5, 0.5), saturation x U[0, 2), contrast x U[0.5, 1.5)."""
    n = len(images_NCHW)
    x = images_NCHW + (uniform((n, 1, 1, 1), rng, images_NCHW) - 0.5)
    mean_N1HW = x.mean(dim=1, keepdim=True)
    x = (x - mean_N1HW) * (uniform((n, 1, 1, 1), rng, images_NCHW) * 2) + mean_N1HW
    mean_N111 = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean_N111) * (uniform((n, 1, 1, 1), rng, images_NCHW) + 0.5) + mean_N111


def diff_augment(images_NCHW: torch.Tensor, policy: str, rng: torch.Generator, p: float = 1.0,
                 padding: str = "zeros") -> torch.Tensor:
    """images [N,C,H,W] float in [-1, 1] -> augmented [N,C,H,W], differentiable w.r.t. the input.

    Use it on real and fake images alike, in the D step and the G step. Each operation of `policy` reaches each
    image with probability p (p = 0: the input itself, nothing drawn). All randomness comes from `rng`.
    """
    if not 0 <= p <= 1:
        raise UserError(f"the augmentation probability p must lie in [0, 1], got {p}")
    if padding not in PADDINGS:
        raise UserError(f"translation padding must be one of {', '.join(PADDINGS)}, got {padding!r}")
    names = parse_policy(policy, images_NCHW.shape[1])
    if p == 0:
        return images_NCHW
    for name in names:
        if name == "translation":
            augmented_NCHW = translation(images_NCHW, rng, padding)
        elif name == "cutout":
            augmented_NCHW = cutout(images_NCHW, rng)
        else:
            augmented_NCHW = color(images_NCHW, rng)
        if p < 1:
            chosen_N111 = uniform((len(images_NCHW), 1, 1, 1), rng, images_NCHW) < p
            augmented_NCHW = torch.where(chosen_N111, augmented_NCHW, images_NCHW)
        images_NCHW = augmented_NCHW
    return images_NCHW


def check_ada_settings(target: float, adjust_every: int, speed_kimg: float) -> None:
    """Refuse ADA settings that cannot steer p."""
    if not -1 < target < 1 or not isinstance(adjust_every, int) or adjust_every < 1 or not speed_kimg > 0:
        raise UserError(f"ADA needs -1 < target < 1, an integer adjust_every >= 1 and speed_kimg > 0; got "
                        f"target={target}, adjust_every={adjust_every!r}, speed_kimg={speed_kimg}")


class AdaptiveAugment:
    """ADA's augmentation probability p (Karras et al. 2020), steered by the discriminator's overfitting.

    Feed `observe(real_logits_N)` the discriminator's logits on (augmented) real images each step. Every
    `adjust_every` steps, r = mean sign(D(real)) over those steps; p moves by sign(r - target) x images seen
    in those steps / (speed_kimg x 1000), clipped to [0, 1]: p can go from 0 to 1 in speed_kimg thousand images.
    r near 1 means D calls every real image real: it is memorising them, so augment more.
    """

    def __init__(self, target: float = 0.6, adjust_every: int = 4, speed_kimg: float = 500.0, p: float = 0.0):
        check_ada_settings(target, adjust_every, speed_kimg)
        if not 0 <= p <= 1:
            raise UserError(f"the starting augmentation probability p must lie in [0, 1], got {p}")
        self.target, self.adjust_every, self.speed_kimg, self.p = target, adjust_every, speed_kimg, float(p)
        self.sign_sum, self.images, self.steps = 0.0, 0, 0

    def observe(self, real_logits_N: torch.Tensor) -> float:
        """Record one step's real logits [N]; adjust p at the end of every interval; the current p."""
        self.sign_sum += real_logits_N.detach().sign().sum().item()
        self.images += len(real_logits_N)
        self.steps += 1
        if self.steps % self.adjust_every == 0:
            r = self.sign_sum / self.images
            direction = (r > self.target) - (r < self.target)
            self.p = min(1.0, max(0.0, self.p + direction * self.images / (self.speed_kimg * 1000)))
            self.sign_sum, self.images = 0.0, 0
        return self.p

    def state_dict(self) -> dict:
        """p, the settings and the partial interval: what a resumed run needs to continue identically."""
        return {"p": self.p, "target": self.target, "adjust_every": self.adjust_every,
                "speed_kimg": self.speed_kimg, "sign_sum": self.sign_sum, "images": self.images, "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a `state_dict()`."""
        self.__init__(state["target"], state["adjust_every"], state["speed_kimg"], state["p"])
        self.sign_sum, self.images, self.steps = float(state["sign_sum"]), int(state["images"]), int(state["steps"])
