"""GAN checkpoints: a plain tensor file (state_dict, loaded with weights_only=True) plus a JSON sidecar.

<name>.pt        the finished generator's state_dict, nothing else; float32, or float16 when saved with half=True
                 (upcast to float32 on load)
<name>.json      family, config (image shape, classes, architecture, training), sha256 of the .pt as stored,
                 weights_dtype, a digest of the training data and the package version (runners.train_gans adds
                 seed, precision and budget
                 trained)
<name>.train.pt  the training state of a resumable run (gans.training.TrainingSession): networks, optimisers,
                 RNG state, loop position and progress, plus what identifies the run (family, config, seed, data
                 digest; runners.train_gans adds precision); tensors, numbers, strings, lists and dicts only,
                 loaded with weights_only=True
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

from acquire.errors import UserError
import acquire
from acquire.data import ImageSet
from acquire.digests import image_set_digest
from acquire.files import write_json, write_tensors
from gans.base import ConditionalGenerator
from gans.registry import get_family


STORED_DTYPES = {"float32": torch.float32, "float16": torch.float16}  # a sidecar's weights_dtype


class CheckpointError(UserError):
    """A checkpoint that cannot be trusted or does not match what was asked for."""


def file_sha256(path: Path) -> str:
    """sha256 of the file's bytes, as hex."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_checkpoint(path: Path, family: str, generator: ConditionalGenerator, config, training_data: ImageSet,
                    extra: dict | None = None, half: bool = False) -> Path:
    """Write path (.pt) and its .json sidecar atomically; returns the .pt path.

    half: store floating-point tensors as float16 (half the size, for committing converged generators; samples
    then come from the float16-rounded weights); the sidecar's weights_dtype says so.
    """
    path = Path(path).with_suffix(".pt")
    dtype = torch.float16 if half else torch.float32
    state = {k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in generator.state_dict().items()}
    write_tensors(path, state)
    write_json(path.with_suffix(".json"), {
        "family": family, "config": dataclasses.asdict(config), "weights_sha256": file_sha256(path),
        "weights_dtype": str(dtype).removeprefix("torch."), "training_data_sha256": image_set_digest(training_data, with_shape=False),
        "training_images": len(training_data), "package_version": acquire.__version__, **(extra or {})})
    return path


def read_sidecar(path: Path) -> dict:
    """The JSON sidecar of checkpoint `path` as a dict with at least family, config (a dict) and weights_sha256;
    CheckpointError naming the file if it is missing, not UTF-8 JSON, or lacks one of them."""
    sidecar = Path(path).with_suffix(".json")
    fix = "delete it and its .pt and retrain with python -m runners.train_gans"
    try:
        meta = json.loads(sidecar.read_bytes().decode("utf-8"))
    except FileNotFoundError as error:
        raise CheckpointError(f"{sidecar} is missing: a checkpoint needs its JSON sidecar; retrain it with "
                              "python -m runners.train_gans") from error
    except IsADirectoryError as error:
        raise CheckpointError(f"{sidecar} is a directory, not a checkpoint's JSON sidecar; move it away") from error
    except UnicodeDecodeError as error:
        raise CheckpointError(f"{sidecar} is not UTF-8 text ({error.reason} at byte {error.start}); {fix}") from error
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{sidecar} is not valid JSON ({error}); {fix}") from error
    if not isinstance(meta, dict):
        raise CheckpointError(f"{sidecar} holds a JSON {type(meta).__name__}, not the object of a checkpoint sidecar; "
                              f"{fix}")
    missing = [key for key in ("family", "config", "weights_sha256") if key not in meta]
    if missing or not isinstance(meta["config"], dict) or not isinstance(meta["weights_sha256"], str):
        what = f"has no {', '.join(missing)}" if missing else "has a config that is not an object or a non-text sha256"
        raise CheckpointError(f"{sidecar} {what}; {fix}")
    return meta


def sidecar_config(path: Path, meta: dict):
    """The family config that checkpoint `path`'s sidecar `meta` records; CheckpointError naming the sidecar when
    its family is unknown or its config does not fit that family."""
    try:
        return get_family(meta["family"]).config_from_dict(meta["config"])
    except (TypeError, UserError) as error:
        raise CheckpointError(f"{Path(path).with_suffix('.json')}: its config does not describe a {meta['family']!r} "
                              f"generator ({error}); delete it and its .pt and retrain with python -m "
                              "runners.train_gans") from None


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
    stored = STORED_DTYPES.get(meta.get("weights_dtype", "float32"))
    if stored is None or any(v.is_floating_point() and v.dtype != stored for v in state.values()):
        raise CheckpointError(f"{path} holds tensors that are not the {meta.get('weights_dtype', 'float32')} its "
                              "sidecar records; delete both files and retrain")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    config = sidecar_config(path, meta)
    generator = get_family(meta["family"]).build(config)
    expected = {k: tuple(v.shape) for k, v in generator.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected != found:
        diff = sorted(set(expected.items()) ^ set(found.items()))[:4]
        raise CheckpointError(f"{path} does not match the {meta['family']} architecture in its sidecar "
                              f"(differing tensors, e.g. {diff})")
    generator.load_state_dict(state)
    return generator.to(device).eval(), meta


TRAINING_STATE_FORMAT = "gan-acquire training state 1"


def training_state_path(path: Path) -> Path:
    """OUT/<name>.train.pt beside the checkpoint OUT/<name>.pt."""
    return Path(path).with_suffix(".train.pt")


def save_training_state(path: Path, state: dict) -> Path:
    """Atomically write a training state (tensors moved to the CPU on load, so any machine can continue it)."""
    return write_tensors(path, {"format": TRAINING_STATE_FORMAT, **state})


def load_training_state(path: Path) -> dict:
    """The training state at `path` (tensors on the CPU); CheckpointError if it is not one this code wrote."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, zipfile.BadZipFile, EOFError, ValueError) as error:
        raise CheckpointError(f"{path} is not a readable training state ({str(error).splitlines()[0]}); delete it "
                              "(or add --force) to train from scratch") from error
    if not isinstance(state, dict) or state.get("format") != TRAINING_STATE_FORMAT:
        raise CheckpointError(f"{path} is not a training state of this version ({TRAINING_STATE_FORMAT!r}); delete "
                              "it (or add --force) to train from scratch")
    return state
