"""A directory of trained GANs (gan_dir) as candidate sources: which are trained, the command that trains the
missing ones, their weights' digests, and whether each was built for the data's image shape and classes.
(The paper grid's generated pools are built in studies/paper_grid/pools.py.)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from acquire.errors import UserError
from gans.base import image_shape as config_image_shape
from gans.checkpoint import read_sidecar, sidecar_config
from gans.registry import format_field, get_family

DEFAULT_GAN_DIR = Path("runs/gans")
ALL_GANS = ["small_dcgan", "large_dcgan", "pggan", "dada"]  # the paper's four families
MNIST_TRAIN_IMAGES = 60_000  # train_gans trains on all of them unless --train-size says otherwise


class GanNotTrainedError(UserError):
    """A GAN source was asked for before its checkpoint exists; the message gives the command to train it."""


def checkpoint_path(gan_dir: Path, family: str) -> Path:
    """gan_dir/<family>.pt; UserError if gan_dir is a file."""
    if Path(gan_dir).is_file():
        raise UserError(f"--gan-dir {gan_dir} is a file, not a directory of GAN checkpoints: give the directory "
                        "that holds <gan>.pt and <gan>.json (e.g. results/zoo)")
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


def check_source_matches(path: Path, image_shape: tuple[int, int, int], num_classes: int) -> None:
    """UserError naming both unless the GAN at `path` (its sidecar's config) makes images of image_shape (C, H, W)
    for num_classes classes, the data's."""
    config = sidecar_config(path, read_sidecar(path))
    made = (config_image_shape(config), config.num_classes)
    if made != (tuple(image_shape), num_classes):
        shape = "x".join(map(str, made[0]))
        raise UserError(f"{path} makes {shape} images of {made[1]} classes, but the data has "
                        f"{'x'.join(map(str, image_shape))} images of {num_classes} classes: train a GAN on this data "
                        f"(python -m runners.train_gans --data-dir ...) or use another --gan-dir")
