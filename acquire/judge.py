"""The reference judge of the label-fidelity gate: the run's classifier, trained once on real labelled images."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from acquire.data import ImageSet
from acquire.errors import UserError
from acquire.factories import ModelFactory, make_model
from acquire.seeding import derive_seed, make_generator, seeded_global_rng
from acquire.training import TrainConfig, TrainFn, train_classifier


def train_judge(real: ImageSet, model_factory: ModelFactory, train_fn: TrainFn | None, train: TrainConfig,
                epochs: int, seed: int, device: torch.device) -> nn.Module:
    """A fresh model from model_factory trained for `epochs` on the real labelled images `real` (uint8 [N,C,H,W],
    labels [N], on `device`) with `train`'s other settings; its draws keyed by (seed, "judge"), so every process
    of a run trains the same judge."""
    if len(real) == 0:
        raise UserError("gate:X needs real labelled images to train its judge, and this pool has none; add real "
                        "candidates (or a labelled set) or drop the gate")
    model = make_model(model_factory, derive_seed(seed, "judge", "init"), device)
    with seeded_global_rng(derive_seed(seed, "judge", "global"), device):
        (train_fn or train_classifier)(model, real.images_NCHW, real.labels_N,
                                       dataclasses.replace(train, epochs=epochs),
                                       make_generator(seed, "judge", "train", device=device))
    return model
