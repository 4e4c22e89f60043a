"""GAN checkpoints as candidate-pool sources."""

from __future__ import annotations

from pathlib import Path

import torch

from acquire.data import ImageSet
from acquire.seeding import derive_seed
from gans.checkpoint import load_checkpoint, read_sidecar
from gans.quality import balanced_labels

DEFAULT_GAN_DIR = Path("runs/gans")
# 6,000 per class = 60,000 generated candidates, as many as the real pool: random acquisition then takes
# real and generated images half and half, so any skew under BALD is the acquisition function's choice.
DEFAULT_PER_CLASS = 6000


class GanNotTrainedError(RuntimeError):
    """A GAN source was asked for before its checkpoint exists; the message gives the command to train it."""


def checkpoint_path(gan_dir: Path, family: str) -> Path:
    return Path(gan_dir) / f"{family}.pt"


def trained_checkpoint(gan_dir: Path, family: str) -> Path:
    """The checkpoint of `family` in gan_dir; refuses an untrained GAN with the command that trains it."""
    path = checkpoint_path(gan_dir, family)
    if not path.exists():
        raise GanNotTrainedError(f"GAN source {family!r} is not trained yet (no {path}). Train it first with: "
                                 f"python -m runners.train_gans --gans {family} --out {gan_dir}")
    return path


def gan_weights_digests(gan_dir: Path, families: list[str]) -> dict[str, str]:
    """family -> sha256 of its trained weights, from the sidecars (recorded so a resume cannot mix generators).

    If any family is untrained, one error names them all with the single command that trains them.
    """
    missing = [f for f in families if not checkpoint_path(gan_dir, f).exists()]
    if missing:
        raise GanNotTrainedError(
            f"GAN source(s) {', '.join(missing)} not trained yet (no checkpoint in {gan_dir}). Train them first with: "
            f"python -m runners.train_gans --gans {','.join(missing)} --out {gan_dir}   "
            "(add --preset quick for a ~10 min CPU zoo to try the pipeline)")
    return {f: read_sidecar(checkpoint_path(gan_dir, f))["weights_sha256"] for f in families}


def generated_source(family: str, gan_dir: Path, per_class: int, seed: int, device) -> ImageSet:
    """per_class samples of every digit from the trained `family` generator: uint8 [10·per_class,1,28,28]."""
    generator, _ = load_checkpoint(trained_checkpoint(gan_dir, family), family, device)
    labels_N = balanced_labels(per_class, device)
    images_NCHW = generator.sample(labels_N, torch.Generator(device).manual_seed(derive_seed(seed, family, "pool")))
    return ImageSet(images_NCHW, labels_N)
