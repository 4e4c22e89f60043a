"""Fitting one GAN to a labelled image set, resumably: the checkpoint it ends in, and when it may be skipped.

`fit_generator` trains (or continues, or skips) GAN `name` on `data` into `path` (.pt, its .json sidecar and the
.train.pt training state): a finished checkpoint with the same config, seed, precision, data and recipe whose
bytes match its sidecar is loaded instead; a saved training state of the same run is continued (one of another
run is refused); the finished generator is saved with what it was trained on. `runners.train_gans` and the
studies call it.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from acquire.data import ImageSet
from acquire.errors import UserError
from acquire.seeding import derive_seed
from acquire.digests import image_set_digest
from gans.base import ConditionalGenerator
from gans.checkpoint import (CheckpointError, file_sha256, load_checkpoint, load_training_state, read_sidecar,
                             save_checkpoint, save_training_state, training_state_path)
from gans.recipes import LowDataRecipe
from gans.registry import GanFamily, get_family
from gans.training import TrainingHooks, TrainingSession

SIDECAR_CORE = {"family", "config", "weights_sha256", "weights_dtype", "training_data_sha256", "training_images",
                "package_version"}  # what save_checkpoint writes itself; the rest are extras


def config_for_data(name: str, images: ImageSet, images_shown: int):
    """Family `name`'s default config built for the images' [C,H,W] and K (largest label + 1), its budget set to
    about `images_shown` images: epochs = images_shown / N for the epoch-budgeted families, PGGAN's final_images =
    images_shown after its growth schedule (so PGGAN sees more; each sidecar records the images shown)."""
    family = get_family(name)
    channels, height, width = images.images_NCHW.shape[1:]
    shape = {"image_channels": int(channels), "image_height": int(height), "image_width": int(width),
             "num_classes": int(images.labels_N.max()) + 1}
    budget = ({"final_images": images_shown} if family.budget_field == "final_images"
              else {"epochs": images_shown / len(images)})
    return family.config_class(**shape, **budget)


def json_config(config) -> dict:
    """The config as its JSON dict (tuples as lists), as sidecars and training states record it."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def is_up_to_date(path: Path, config, data: ImageSet, seed: int, precision: str = "fp32",
                  recipe: dict | None = None) -> bool:
    """A finished checkpoint at `path` trained with exactly this config (budget included), seed, precision (a
    sidecar without one: fp32), data and recipe (None: none), whose bytes match the sha256 its sidecar records (a
    mismatch is reported on stderr, and the checkpoint is not trusted)."""
    if not path.exists():
        return False
    try:
        meta = read_sidecar(path)
        saved = get_family(meta["family"]).config_from_dict(meta["config"])  # fields added since take defaults
    except (CheckpointError, KeyError, TypeError, ValueError):
        return False
    if file_sha256(path) != meta["weights_sha256"]:
        print(f"{path} does not match the sha256 in its sidecar (corrupt or edited): not trusted, trained again",
              file=sys.stderr)
        return False
    return (json_config(saved) == json_config(config) and meta.get("seed") == seed
            and meta.get("precision", "fp32") == precision and meta.get("training_data_sha256") == image_set_digest(data, with_shape=False)
            and meta.get("recipe") == recipe)


def run_identity(name: str, config, seed: int, data: ImageSet, precision: str, recipe: dict | None = None) -> dict:
    """What a training state records about its run: gan, config (budget included), seed, training data digest,
    precision, low-data recipe (None: off)."""
    return {"gan": name, "config": json_config(config), "seed": seed, "training_data_sha256": image_set_digest(data, with_shape=False),
            "precision": precision, "recipe": recipe}


def resume_state(state_path: Path, identity: dict, family: GanFamily) -> dict | None:
    """The saved training state to continue (None if there is none); a one-line UserError if it belongs to another
    run (config apart from the budget, seed, data, precision, recipe) or to a larger budget than asked for."""
    if not state_path.exists():
        return None
    state = load_training_state(state_path)
    fix = f"or add --force to discard it and train {identity['gan']} from scratch (or use another --out)"
    asked, saved = identity["config"], state.get("config", {})
    budget = family.budget_field
    differing = [f"{field} (saved {saved.get(field)}, asked {asked[field]})" for field in asked
                 if field != budget and saved.get(field, asked[field]) != asked[field]]
    if state.get("gan") != identity["gan"]:
        differing.insert(0, f"GAN {state.get('gan')!r}")
    if state.get("seed") != identity["seed"]:
        differing.append(f"seed (saved {state.get('seed')}, asked {identity['seed']})")
    if state.get("training_data_sha256") != identity["training_data_sha256"]:
        differing.append("training data (another --train-size, --seed or data set)")
    if state.get("recipe") != identity.get("recipe"):
        differing.append(f"low-data recipe (saved {state.get('recipe')}, asked {identity.get('recipe')})")
    if state.get("precision", "fp32") != identity["precision"]:
        differing.append(f"precision (saved {state.get('precision', 'fp32')}, asked {identity['precision']})")
    if differing:
        raise UserError(f"{state_path} is the training state of another run, differing in {'; '.join(differing)}: "
                        f"rerun with the settings it was trained with, {fix}")
    if saved.get(budget, asked[budget]) > asked[budget]:
        raise UserError(f"{state_path} was trained towards {budget}={saved[budget]}, which the smaller "
                        f"{budget}={asked[budget]} cannot continue: ask for {budget} >= {saved[budget]}, {fix}")
    return state


def recipe_hooks(recipe: LowDataRecipe | None, name: str, config, data: ImageSet, seed: int,
                 device) -> TrainingHooks:
    """The TrainingHooks of `recipe` for GAN `name` trained on `data` (plain hooks without a recipe)."""
    if recipe is None:
        return TrainingHooks()
    batch = min(getattr(config, "batch_size", len(data)), len(data))
    return recipe.training_hooks(name, int(data.images_NCHW.shape[1]), batch, derive_seed(seed, name, "recipe"),
                                 device)


def convert_to_half(path: Path, name: str, config, data: ImageSet) -> None:
    """Rewrite the float32 checkpoint at `path` as float16, keeping its sidecar's records."""
    generator, meta = load_checkpoint(path, name)
    save_checkpoint(path, name, generator, config, data, {k: v for k, v in meta.items() if k not in SIDECAR_CORE},
                    half=True)


@dataclass
class Fitted:
    """A fitted generator (eval mode, on the device it was trained on or loaded to), and the session that trained
    it (None when an up-to-date checkpoint was loaded)."""

    generator: ConditionalGenerator
    session: TrainingSession | None


def fit_generator(name: str, config, data: ImageSet, path: Path, seed: int, *, device="cpu",
                  precision: str = "fp32", recipe: LowDataRecipe | None = None, half: bool = False,
                  force: bool = False, save_every_seconds: float = 600.0, every_images: int = 0,
                  on_budget: Callable | None = None, on_fresh_start: Callable[[], None] | None = None,
                  extra: dict | None = None, progress: bool = True) -> Fitted:
    """Train GAN family `name` with `config` on `data` (uint8 [N,C,H,W], labels [N]) into `path`, resumably.

    Initialisation and every draw come from a generator seeded by derive_seed(seed, name); `recipe` (as the family
    runs it, LowDataRecipe.for_family) adds the low-data hooks. half: save float16 weights. extra: more sidecar
    fields (e.g. the labelled subset's record). on_fresh_start() runs when training starts from scratch.
    """
    family, device = get_family(name), torch.device(device)
    path, state_path = Path(path), training_state_path(Path(path))
    recipe = recipe.for_family(name) if recipe else None
    recipe_dict = dataclasses.asdict(recipe) if recipe else None
    hooks = recipe_hooks(recipe, name, config, data, seed, device)
    if not force and is_up_to_date(path, config, data, seed, precision, recipe_dict):
        if half and read_sidecar(path).get("weights_dtype", "float32") != "float16":
            convert_to_half(path, name, config, data)
            print(f"{name}: up to date; rewrote {path} as float16", file=sys.stderr)
        else:
            print(f"{name}: up to date ({path}); --force retrains", file=sys.stderr)
        return Fitted(load_checkpoint(path, name, device)[0], None)
    identity = run_identity(name, config, seed, data, precision, recipe_dict)
    if force:
        state_path.unlink(missing_ok=True)
    state = resume_state(state_path, identity, family)
    if state is None:
        if on_fresh_start:
            on_fresh_start()
        why = f" (no {state_path.name} to continue {path.name} from)" if path.exists() and not force else ""
        print(f"{name}: training from scratch{why} on {len(data)} real images on {device} in {precision} with "
              f"{config}" + (f", {recipe}" if recipe else ""), file=sys.stderr)
    else:
        print(f"{name}: continuing {state_path} from step {state['steps']:,} ({state['images_shown']:,} images "
              f"shown, {state['train_seconds'] / 60:.1f} min trained) to {family.budget_field}="
              f"{getattr(config, family.budget_field)}", file=sys.stderr)
    session = TrainingSession(
        resume_from=state, save=lambda snapshot: save_training_state(state_path, {**identity, **snapshot}),
        save_every_seconds=save_every_seconds, every_images=every_images, on_budget=on_budget, hooks=hooks)
    generator = family.train(data, config, device, torch.Generator().manual_seed(derive_seed(seed, name)),
                             session=session, precision=precision, progress=progress)
    save_checkpoint(path, name, generator, config, data, half=half, extra={
        "seed": seed, "precision": precision, "images_shown": session.images_shown,
        "train_steps": session.steps, "train_seconds": round(session.train_seconds, 1), "sessions": session.sessions,
        "device": str(device), "generator_parameters": sum(p.numel() for p in generator.parameters()),
        "recipe": recipe_dict, **(extra or {})})
    return Fitted(generator, session)
