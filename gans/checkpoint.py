"""GAN checkpoints: a plain tensor file (state_dict, loaded with weights_only=True) plus a JSON sidecar.

<name>.pt    the generator's state_dict, nothing else
<name>.json  family, architecture config, training config, sha256 of the .pt, a digest of the training
             data and the package version
A checkpoint that is corrupt, not a plain tensor file, of another family or another architecture is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import zipfile
from pathlib import Path

import torch

import acquire
from acquire.data import ImageSet
from acquire.files import write_atomic, write_json
from gans.registry import ConditionalGenerator, get_family


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be trusted or does not match what was asked for."""


def data_digest(images: ImageSet) -> str:
    """sha256 over the training images and labels (identifies the data a GAN was trained on)."""
    h = hashlib.sha256()
    h.update(images.images_NCHW.cpu().contiguous().numpy().tobytes())
    h.update(images.labels_N.cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_checkpoint(path: Path, family: str, generator: ConditionalGenerator, config, training_data: ImageSet,
                    extra: dict | None = None) -> Path:
    """Write path (.pt) and its .json sidecar atomically; returns the .pt path."""
    path = Path(path).with_suffix(".pt")
    state = {k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}
    write_atomic(path, lambda tmp: torch.save(state, tmp))
    write_json(path.with_suffix(".json"), {
        "family": family, "config": dataclasses.asdict(config), "weights_sha256": file_sha256(path),
        "training_data_sha256": data_digest(training_data), "training_images": len(training_data),
        "package_version": acquire.__version__, **(extra or {})})
    return path


def read_sidecar(path: Path) -> dict:
    sidecar = Path(path).with_suffix(".json")
    try:
        return json.loads(sidecar.read_text())
    except FileNotFoundError as error:
        raise CheckpointError(f"{sidecar} is missing: a checkpoint needs its JSON sidecar; retrain it with "
                              "python -m runners.train_gans") from error
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{sidecar} is not valid JSON ({error}); delete it and retrain") from error


def load_checkpoint(path: Path, family: str | None = None, device="cpu") -> tuple[ConditionalGenerator, dict]:
    """The generator stored at `path` (.pt) and its sidecar dict, after every check passes.

    family: if given, the checkpoint must be of this family.
    """
    path = Path(path).with_suffix(".pt")
    meta = read_sidecar(path)
    if family is not None and meta.get("family") != family:
        raise CheckpointError(f"{path} holds a {meta.get('family')!r} generator, not {family!r}")
    if not path.exists():
        raise CheckpointError(f"{path} is missing; retrain with python -m runners.train_gans")
    if file_sha256(path) != meta.get("weights_sha256"):
        raise CheckpointError(f"{path} does not match the sha256 in its sidecar (corrupt or replaced); delete "
                              "both files and retrain")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, zipfile.BadZipFile, EOFError, ValueError) as error:
        raise CheckpointError(f"{path} is not a plain tensor checkpoint and was refused: {error}") from error
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} must hold a state_dict of tensors only")
    spec = get_family(meta["family"])
    try:
        generator = spec.build(spec.config_from_dict(meta["config"]))
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: its sidecar's config does not describe a {meta['family']} generator: "
                              f"{error}") from error
    expected = {k: tuple(v.shape) for k, v in generator.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected != found:
        diff = sorted(set(expected.items()) ^ set(found.items()))[:4]
        raise CheckpointError(f"{path} does not match the {meta['family']} architecture in its sidecar "
                              f"(differing tensors, e.g. {diff})")
    generator.load_state_dict(state)
    return generator.to(device).eval(), meta
