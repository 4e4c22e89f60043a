"""An exponential moving average of a generator's weights, sampled instead of the raw generator.

As in stylegan2-ada: the average's half-life is counted in images shown (ema_kimg thousand), and during
ramp-up it is at most `rampup` x the images shown so far, so early weights fade quickly. After a batch of B
images, beta = 0.5 ** (B / half-life) and every averaged parameter becomes beta * average + (1 - beta) * current.
Buffers (batch-norm running statistics) are copied from the generator, not averaged.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from acquire.errors import UserError


def check_ema_settings(ema_kimg: float, rampup: float) -> None:
    """Refuse a half-life or ramp-up the average cannot use."""
    if not ema_kimg > 0 or not rampup >= 0:
        raise UserError(f"the EMA needs ema_kimg > 0 and rampup >= 0 (0 = no ramp-up); got ema_kimg={ema_kimg}, "
                        f"rampup={rampup}")


class GeneratorEMA:
    """`.module` is the averaged copy of the generator (eval mode, no gradients): sample from it."""

    def __init__(self, generator: nn.Module, ema_kimg: float = 10.0, rampup: float = 0.05):
        check_ema_settings(ema_kimg, rampup)
        self.module = copy.deepcopy(generator).eval().requires_grad_(False)
        self.ema_kimg, self.rampup, self.images_seen = ema_kimg, rampup, 0

    def beta(self, batch_size: int) -> float:
        """The weight the average keeps when the next batch of `batch_size` images has been shown."""
        half_life = self.ema_kimg * 1000
        if self.rampup > 0:
            half_life = min(half_life, self.images_seen * self.rampup)
        return 0.5 ** (batch_size / half_life) if half_life > 0 else 0.0

    @torch.no_grad()
    def update(self, generator: nn.Module, batch_size: int) -> None:
        """Fold in the generator's weights after a step on `batch_size` images; copy its buffers."""
        beta = self.beta(batch_size)
        for averaged, current in zip(self.module.parameters(), generator.parameters(), strict=True):
            averaged.copy_(current.detach().lerp(averaged, beta))
        for averaged, current in zip(self.module.buffers(), generator.buffers(), strict=True):
            averaged.copy_(current)
        self.images_seen += batch_size

    def state_dict(self) -> dict:
        """The averaged weights and the images counted so far (tensors and numbers: loads with weights_only)."""
        return {"module": self.module.state_dict(), "images_seen": self.images_seen,
                "ema_kimg": self.ema_kimg, "rampup": self.rampup}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a `state_dict()`."""
        self.module.load_state_dict(state["module"])
        self.ema_kimg, self.rampup, self.images_seen = state["ema_kimg"], state["rampup"], int(state["images_seen"])
