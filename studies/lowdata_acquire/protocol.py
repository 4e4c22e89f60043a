"""The study's settings (LowDataAcquireConfig, frozen, defaults as pre-registered in results/README.md) and the
arms its analysis compares."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from acquire.errors import UserError
from acquire.functions import get_acquisition
from acquire.validate import check_int, check_positive_int
from gans.registry import get_family

PLAIN, AUGMENTED = "plain", "augmented"  # the two runs of a repeat
NO_AUGMENTATION, CLASSICAL = "none", "classical"  # the round-0 arms


@dataclass(frozen=True)
class LowDataAcquireConfig:
    """One (data set, n) cell of the study; every repeat of it runs with these settings."""

    per_class: int = 10                  # n: labelled real images per class (L has n·K)
    repeats: int = 6
    seed: int = 0
    family: str = "small_dcgan"          # the generator family (chosen on the pilot)
    gan_images: int = 200_000            # images shown to the generator (its budget, as stylegan2-ada's kimg)
    recipe: bool = True                  # the low-data recipe (gans.recipes: DiffAugment, EMA)
    generated_per_class: int = 500       # the candidate pool: G's samples per class
    rounds: int = 5
    per_round: int = 0                   # k; 0: n·K / rounds, so the last round holds as many generated as real
    epochs: int = 100                    # of each round's fresh CNN (passes over its current training set)
    mc_samples: int = 20
    pool_subset: int = 2000              # candidates scored per round (a fresh random subset each round)
    acquisitions: tuple[str, ...] = ("random", "bald", "quota:bald", "gate:quota:bald")
    augmented_acquisitions: tuple[str, ...] = ("random", "gate:quota:bald")
    precision: str = "fp32"
    quality_samples: int = 300           # generated images per class for the generator's quality measures

    def __post_init__(self):
        for name in ("per_class", "repeats", "gan_images", "generated_per_class", "rounds", "epochs", "mc_samples",
                     "quality_samples"):
            check_positive_int(name, getattr(self, name))
        check_int("per_round (0: n·K / rounds)", self.per_round)
        check_int("pool_subset (0: the whole pool)", self.pool_subset)
        get_family(self.family)
        for name in (*self.acquisitions, *self.augmented_acquisitions):
            get_acquisition(name)
        object.__setattr__(self, "acquisitions", tuple(self.acquisitions))
        object.__setattr__(self, "augmented_acquisitions", tuple(self.augmented_acquisitions))

    def k(self, num_classes: int) -> int:
        """Generated images acquired per round."""
        if self.per_round:
            return self.per_round
        if (self.per_class * num_classes) % self.rounds:
            raise UserError(f"n·K = {self.per_class * num_classes} is not a multiple of rounds={self.rounds}; "
                            "give per_round explicitly")
        return self.per_class * num_classes // self.rounds

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def arms(config: LowDataAcquireConfig) -> list[str]:
    """The analysis's arm names, in order: none, classical, the plain acquisitions, classical+each augmented one."""
    return [NO_AUGMENTATION, CLASSICAL, *config.acquisitions,
            *(f"{CLASSICAL}+{name}" for name in config.augmented_acquisitions)]
