"""Training a conditional GAN on little data: DiffAugment, optional ADA, and an EMA of the generator.

`LowDataRecipe` holds the settings (defaults from the anchors: Zhao et al. 2020's DiffAugment policy for
greyscale, Karras et al. 2020's ADA target and speed, stylegan2-ada's EMA half-life and ramp-up; not yet tuned
by measurement here). `recipe.start(generator, channels)` gives the hooks a training loop calls; in a
one-D-step-one-G-step loop such as gans.training.adversarial_step:

    hooks = recipe.start(generator, channels=C)                          # before the first step
    augment = lambda x: hooks.augment_for_discriminator(x, rng)           # rng: the run's torch.Generator
    real_logits = discriminator(augment(real), labels)                    # D step: augment real AND fake
    fake_logits = discriminator(augment(fake.detach()), labels)
    hooks.observe_real_logits(real_logits)                                # ADA's overfitting signal
    ...                                                                   # D loss, backward, optimiser_d.step()
    fooled_logits = discriminator(augment(fake), labels)                  # G step: the same augmentation
    ...                                                                   # G loss, backward, optimiser_g.step()
    hooks.after_generator_step(generator, len(real))                      # EMA update
    hooks.sampling_generator(generator)                                   # what to checkpoint and sample from
    hooks.state_dict() / hooks.load_state_dict(state)                     # beside the nets in the training state
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from acquire.errors import UserError
from gans.diffaugment import AdaptiveAugment, check_ada_settings, diff_augment, parse_policy
from gans.ema import GeneratorEMA, check_ema_settings
from gans.registry import get_family
from gans.training import TrainingHooks


@dataclass(frozen=True)
class LowDataRecipe:
    """Settings of the data-efficient additions to a family's training step."""

    diffaugment: str = "translation,cutout"  # DiffAugment policy for all D inputs ("" = off); add "color" for RGB
    ada: bool = False          # adapt the augmentation probability p from D's overfitting; else p = 1 always
    ada_target: float = 0.6    # ADA raises p while mean sign(D(real)) > target, lowers it below
    ada_interval: int = 4      # steps between p adjustments
    ada_kimg: float = 500.0    # thousand images over which p can move from 0 to 1
    ema_kimg: float = 10.0     # half-life of the generator's weight average in thousand images (0 = no EMA)
    ema_rampup: float = 0.05   # early half-life at most this x images shown (0 = no ramp-up)

    def __post_init__(self):
        parse_policy(self.diffaugment, channels=3)  # names only; the channel check comes with the data
        if self.ada and not self.diffaugment.strip():
            raise UserError("ada=true adapts the probability of the DiffAugment policy, which is empty; "
                            "set diffaugment (e.g. translation,cutout) or ada=false")
        if self.ema_kimg < 0:
            raise UserError(f"ema_kimg must be >= 0 (0 = no EMA), got {self.ema_kimg}")
        check_ada_settings(self.ada_target, self.ada_interval, self.ada_kimg)
        if self.ema_kimg > 0:
            check_ema_settings(self.ema_kimg, self.ema_rampup)

    def start(self, generator: nn.Module, channels: int) -> LowDataTraining:
        """The hooks for one training run of `generator` on images with `channels` channels."""
        return LowDataTraining(self, generator, channels)

    def training_hooks(self, family: str, channels: int, batch_size: int, seed: int,
                       device: torch.device | str = "cpu") -> TrainingHooks:
        """The recipe as the TrainingHooks every family's step calls (gans.training), for a run of `family` on
        images with `channels` channels in batches of `batch_size`; its augmentation draws from a generator on
        `device` seeded with `seed`, saved and restored with the training state."""
        bound = BoundRecipe(self.for_family(family), channels, batch_size, seed, device)
        return TrainingHooks(augment=bound.augment, observe_real_logits=bound.observe_real_logits,
                             after_generator_step=bound.after_generator_step, bind=bound.bind,
                             sampling_generator=bound.sampling_generator, parts={"recipe": bound})

    def for_family(self, family: str) -> LowDataRecipe:
        """The recipe as registered GAN `family` runs it (gans.registry.register_family): ADA is refused for a
        family with supports_ada=False (DADA), and the recipe's EMA is off for one with own_ema=True (PGGAN)."""
        spec = get_family(family)
        if self.ada and not spec.supports_ada:
            raise UserError(f"{family} with recipe.ada=true: {family}'s discriminator has no real/fake logit for ADA "
                            "to read; set recipe.ada=false")
        if self.ema_kimg and spec.own_ema:
            return dataclasses.replace(self, ema_kimg=0.0)
        return self


class BoundRecipe:
    """One run's recipe state behind the TrainingHooks callables: the augmentation's generator, and (once bound
    to the family's generator) the LowDataTraining with its ADA probability and weight average."""

    def __init__(self, recipe: LowDataRecipe, channels: int, batch_size: int, seed: int, device):
        parse_policy(recipe.diffaugment, channels)
        self.recipe, self.channels, self.batch_size = recipe, channels, batch_size
        self.rng = torch.Generator(device=device).manual_seed(seed)
        self.training: LowDataTraining | None = None
        self.generator: nn.Module | None = None

    def bind(self, generator: nn.Module) -> None:
        self.generator = generator
        self.training = LowDataTraining(self.recipe, generator, self.channels)

    def augment(self, images_NCHW: torch.Tensor) -> torch.Tensor:
        return self.training.augment_for_discriminator(images_NCHW, self.rng)

    def observe_real_logits(self, real_logits_N: torch.Tensor) -> None:
        self.training.observe_real_logits(real_logits_N)

    def after_generator_step(self) -> None:
        self.training.after_generator_step(self.generator, self.batch_size)

    def sampling_generator(self, generator: nn.Module) -> nn.Module:
        return self.training.sampling_generator(generator)

    def state_dict(self) -> dict:
        return {"rng": self.rng.get_state(), **self.training.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.rng.set_state(state["rng"])
        self.training.load_state_dict(state)


class LowDataTraining:
    """One run's augmentation probability and generator average, called by the training loop at each step."""

    def __init__(self, recipe: LowDataRecipe, generator: nn.Module, channels: int):
        parse_policy(recipe.diffaugment, channels)
        self.policy = recipe.diffaugment
        self.ada = AdaptiveAugment(recipe.ada_target, recipe.ada_interval, recipe.ada_kimg) if recipe.ada else None
        self.ema = GeneratorEMA(generator, recipe.ema_kimg, recipe.ema_rampup) if recipe.ema_kimg > 0 else None

    @property
    def p(self) -> float:
        """The current augmentation probability (1 without ADA)."""
        return self.ada.p if self.ada else 1.0

    def augment_for_discriminator(self, images_NCHW: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """Every image D sees, real or fake, D step or G step: [N,C,H,W] in [-1, 1] -> augmented, differentiable."""
        return diff_augment(images_NCHW, self.policy, rng, self.p) if self.policy.strip() else images_NCHW

    def observe_real_logits(self, real_logits_N: torch.Tensor) -> None:
        """D's logits [N] on this step's augmented real images (they steer ADA's p)."""
        if self.ada:
            self.ada.observe(real_logits_N)

    def after_generator_step(self, generator: nn.Module, batch_size: int) -> None:
        """Fold the generator's new weights into the average (`batch_size` images shown this step)."""
        if self.ema:
            self.ema.update(generator, batch_size)

    def sampling_generator(self, generator: nn.Module) -> nn.Module:
        """The network to sample and checkpoint: the weight average, or `generator` itself without EMA."""
        return self.ema.module if self.ema else generator

    def state_dict(self) -> dict:
        """ADA's and the EMA's state (tensors and numbers: loads with weights_only)."""
        return {"ada": self.ada.state_dict() if self.ada else None, "ema": self.ema.state_dict() if self.ema else None}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a `state_dict()` of a run with the same recipe."""
        if (state["ada"] is None) != (self.ada is None) or (state["ema"] is None) != (self.ema is None):
            raise UserError("the saved training state was made with another low-data recipe (ADA or EMA on/off "
                            "differs); resume with the recipe it was trained with")
        if self.ada:
            self.ada.load_state_dict(state["ada"])
        if self.ema:
            self.ema.load_state_dict(state["ema"])
