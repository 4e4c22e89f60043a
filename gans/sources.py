"""GAN checkpoints as candidate-pool sources.

Generated pools are meant to be device- and thread-independent (ConditionalGenerator.sample: z from a CPU
generator, a float64 forward pass), so that a run resumed on another machine draws the same pool bytes; the pool
fingerprint in config.json checks it on every resume (see ConditionalGenerator.sample for what was measured).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from acquire.errors import UserError
from acquire.data import ImageSet
from acquire.files import mark_as_cache, write_tensors
from acquire.pool import image_set_digest
from acquire.seeding import derive_seed
from gans.checkpoint import load_checkpoint, read_sidecar
from gans.quality import balanced_labels
from gans.registry import format_field, get_family

DEFAULT_GAN_DIR = Path("runs/gans")
ALL_GANS = ["small_dcgan", "large_dcgan", "pggan", "dada"]  # the paper's four families
# 6,000 per class = 60,000 generated candidates, as many as the real pool: random acquisition then takes
# real and generated images half and half, so any skew under BALD is the acquisition function's choice.
DEFAULT_PER_CLASS = 6000
POOL_CACHE = "pools"  # gan_dir/pools: generated pools, a local cache
MNIST_TRAIN_IMAGES = 60_000  # train_gans trains on all of them unless --train-size says otherwise


class GanNotTrainedError(UserError):
    """A GAN source was asked for before its checkpoint exists; the message gives the command to train it."""


def checkpoint_path(gan_dir: Path, family: str) -> Path:
    """gan_dir/<family>.pt."""
    return Path(gan_dir) / f"{family}.pt"


def sidecar_settings(gan_dir: Path, family: str) -> tuple[tuple[int, int, bool], list[str]]:
    """((seed, training images, half), --set flags) that reproduce the settings recorded in family's sidecar in
    gan_dir (a sidecar committed without its weights); the defaults when there is no readable sidecar."""
    try:
        meta = json.loads(checkpoint_path(gan_dir, family).with_suffix(".json").read_text())
        spec = get_family(family)
        saved = dataclasses.asdict(spec.config_from_dict(meta["config"]))
    except (OSError, ValueError, KeyError, TypeError):
        return (0, MNIST_TRAIN_IMAGES, False), []
    defaults = dataclasses.asdict(spec.config_class())
    flags = [f"--set {family}.{field}={format_field(value)}" for field, value in saved.items()
             if value != defaults[field]]
    return (meta.get("seed", 0), meta.get("training_images", MNIST_TRAIN_IMAGES),
            meta.get("weights_dtype") == "float16"), flags


def train_command(gan_dir: Path, families: list[str]) -> str:
    """The train_gans command(s) that train exactly `families` into gan_dir and write only their own files there
    (--no-quality: quality.csv is left alone), repeating the settings of sidecars already in gan_dir."""
    groups: dict[tuple[int, int, bool], list[tuple[str, list[str]]]] = {}
    for family in families:
        key, flags = sidecar_settings(gan_dir, family)
        groups.setdefault(key, []).append((family, flags))
    commands = []
    for (seed, images, half), members in groups.items():
        words = ["python -m runners.train_gans --gans", ",".join(family for family, _ in members)]
        words += [flag for _, flags in members for flag in flags] + [f"--out {gan_dir} --no-quality"]
        words += [f"--seed {seed}"] * (seed != 0) + [f"--train-size {images}"] * (images != MNIST_TRAIN_IMAGES)
        words += ["--half"] * half
        commands.append(" ".join(words))
    return " ; ".join(commands)


def not_trained_message(gan_dir: Path, missing: list[str]) -> str:
    """Why `missing` cannot be used as sources, and the command that trains them without touching other files."""
    own = ", ".join(f"{family}.pt/.json/.train.pt/_grid.png" for family in missing)
    return (f"GAN source(s) {', '.join(missing)} not trained yet (no checkpoint in {gan_dir}). Train them with: "
            f"{train_command(gan_dir, missing)}   (this writes only {own} in {gan_dir}, with the settings of any "
            "sidecar already there; --no-quality leaves quality.csv as it is; rerun it to continue if interrupted)")


def trained_checkpoint(gan_dir: Path, family: str) -> Path:
    """The checkpoint of `family` in gan_dir; refuses an untrained GAN with the command that trains it."""
    path = checkpoint_path(gan_dir, family)
    if not path.exists():
        raise GanNotTrainedError(not_trained_message(gan_dir, [family]))
    return path


def gan_weights_digests(gan_dir: Path, families: list[str]) -> dict[str, str]:
    """family -> sha256 of its trained weights, from the sidecars (recorded so a resume cannot mix generators).

    If any family is untrained, one error names them all with the command that trains only them.
    """
    missing = [f for f in families if not checkpoint_path(gan_dir, f).exists()]
    if missing:
        raise GanNotTrainedError(not_trained_message(gan_dir, missing))
    return {f: read_sidecar(checkpoint_path(gan_dir, f))["weights_sha256"] for f in families}


def generated_source(family: str, gan_dir: Path, per_class: int, seed: int, device) -> ImageSet:
    """per_class samples of every digit from the trained `family` generator: uint8 [10·per_class,1,28,28] on
    `device`, the same bytes on every CPU thread count (and, as far as measured, every device; a resume checks).

    Sampling runs in float64 (minutes for 60,000 images on one CPU thread), so the samples are cached in
    gan_dir/pools/ (git-ignored), keyed by the weights' sha256, per_class and seed, and checked against
    their digest when read back; a missing or damaged cache file is sampled again.
    """
    generator, meta = load_checkpoint(trained_checkpoint(gan_dir, family), family, device)
    cache = Path(gan_dir) / POOL_CACHE / f"{family}-{meta['weights_sha256'][:16]}-{per_class}-seed{seed}.pt"
    try:
        saved = torch.load(cache, map_location="cpu", weights_only=True)
        images = ImageSet(saved["images_NCHW"], saved["labels_N"])
        if image_set_digest(images) == saved["sha256"]:
            return images.to(device)
    except Exception:  # absent or damaged: it is only a cache
        pass
    labels_N = balanced_labels(per_class, device)
    images = ImageSet(generator.sample(labels_N, torch.Generator().manual_seed(derive_seed(seed, family, "pool"))),
                      labels_N)
    payload = {"images_NCHW": images.images_NCHW.cpu(), "labels_N": images.labels_N.cpu(),
               "sha256": image_set_digest(images)}
    write_tensors(cache, payload)
    mark_as_cache(cache.parent, "generated pools, re-sampled when absent")
    return images
