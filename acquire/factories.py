"""Model factories: the contract a classifier of the loop meets, building one reproducibly, and checking it on data.

A `ModelFactory` (seed, device) -> nn.Module makes a freshly initialised classifier on `device` that maps float images
[N,C,H,W] in [0, 1] to logits [N,K]. A model that also exposes its trunk and dropout head
(acquire.mc_dropout.TrunkHead) is MC-dropout scored by the fused scorer; any other by its nn.Dropout layers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from acquire.errors import UserError
from acquire.inference import to_float
from acquire.seeding import seeded_global_rng

ModelFactory = Callable[[int, torch.device], nn.Module]
"""(seed, device) -> a freshly initialised classifier on `device`: float images [N,C,H,W] in [0, 1] -> logits [N,K]."""

PROBABILITY_TOLERANCE = 1e-4
"""Outputs whose rows are all >= 0 and sum to 1 within this are probabilities, not logits."""


def make_model(factory: ModelFactory, seed: int, device: torch.device | str) -> nn.Module:
    """factory(seed, device), called with torch's global RNG seeded by `seed` (see seeded_global_rng), so that a
    factory that only constructs layers gives weights that depend on `seed` alone."""
    device = torch.device(device)
    with seeded_global_rng(seed, device):
        model = factory(seed, device)
    if not isinstance(model, nn.Module):
        raise UserError(f"the model factory returned a {type(model).__name__}, not a torch.nn.Module; it must be "
                        "a function (seed, device) -> nn.Module")
    return model


@torch.no_grad()
def check_model(model: nn.Module, example_NCHW: torch.Tensor, image_shape: tuple[int, int, int]) -> int:
    """The model's number of classes K, after checking that it takes images [C,H,W] = image_shape: the shape it
    declares (`image_shape` attribute), if any, must match, and on uint8 images example_NCHW [n,C,H,W] (on the run's
    device) its forward pass must give logits [n,K], not probabilities."""
    declared = getattr(model, "image_shape", None)
    if declared is not None and tuple(declared) != tuple(image_shape):
        raise UserError(f"the data has images of shape [C,H,W] = {list(image_shape)}, but the model takes "
                        f"{list(declared)}; give data of the model's shape, or a model built for the data")
    model.eval()
    try:
        logits = model(to_float(example_NCHW))
    except Exception as error:
        raise UserError(f"the model cannot take images [C,H,W] = {list(image_shape)} on {example_NCHW.device} "
                        f"({type(error).__name__}: {error}); make the factory build it for this shape and put it on "
                        "the device it is given") from None
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or len(logits) != len(example_NCHW):
        got = list(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise UserError(f"the model must map images [N,C,H,W] to logits [N,K]; for N = {len(example_NCHW)} it "
                        f"returned {got}")
    if len(logits) and looks_like_probabilities(logits):
        raise UserError("the model's outputs are probabilities (each row >= 0 and summing to 1); return logits, not "
                        "probabilities: drop the final softmax (training and MC dropout apply it)")
    return logits.shape[1]


def looks_like_probabilities(outputs_NK: torch.Tensor) -> bool:
    """Whether every row of outputs_NK [N,K] (K >= 2) is >= 0 and sums to 1 (within PROBABILITY_TOLERANCE)."""
    outputs_NK = outputs_NK.double()
    return (outputs_NK.shape[1] >= 2 and bool((outputs_NK >= 0).all())
            and bool(((outputs_NK.sum(1) - 1).abs() <= PROBABILITY_TOLERANCE).all()))
