"""Deterministic inference: uint8 images to floats, chunked application of a model, predicted labels."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from acquire.errors import UserError


def to_float(images_NCHW: torch.Tensor) -> torch.Tensor:
    """uint8 images [N,C,H,W] -> a new float32 tensor in [0, 1] on the same device (the input is untouched)."""
    return images_NCHW.to(torch.float32) / 255.0


def default_chunk_size(device: torch.device | str) -> int:
    """Images per inference chunk: small on CPU (activations stay in cache, no large allocations), large on GPU."""
    return 8192 if torch.device(device).type == "cuda" else 256


@torch.no_grad()
def map_in_chunks(fn: Callable[[torch.Tensor], torch.Tensor], images_NCHW: torch.Tensor,
                  chunk_size: int | None = None) -> torch.Tensor:
    """fn applied to consecutive chunks of images [N,C,H,W] (no grad), its outputs concatenated on dim 0."""
    chunk_size = chunk_size or default_chunk_size(images_NCHW.device)
    starts = range(0, max(1, len(images_NCHW)), chunk_size)  # an empty input still gives fn's empty output
    return torch.cat([fn(images_NCHW[start:start + chunk_size]) for start in starts])


def predict(model: nn.Module, images_NCHW: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Deterministic (dropout off) predicted labels [N] for uint8 images [N,C,H,W]."""
    model.eval()
    return map_in_chunks(lambda chunk: model(to_float(chunk)).argmax(1), images_NCHW, batch_size)


def probabilities(model: nn.Module, images_NCHW: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Deterministic (dropout off) class probabilities [N, K] (float32) for uint8 images [N,C,H,W]."""
    model.eval()
    return map_in_chunks(lambda chunk: model(to_float(chunk)).float().softmax(1), images_NCHW, batch_size)


def last_linear_inputs(model: nn.Module, images_NCHW: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """The input of the model's last nn.Linear layer, features_ND [N, D] (float32), for uint8 images [N,C,H,W],
    computed deterministically (dropout off): the features that BADGE and core-set selection read."""
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise UserError(f"this acquisition reads the input of the model's last nn.Linear layer, and the model "
                        f"({type(model).__name__}) has none; use a model that ends in nn.Linear")
    captured = []
    hook = linears[-1].register_forward_pre_hook(lambda module, inputs: captured.append(inputs[0].flatten(1).float()))
    model.eval()
    try:
        def features(chunk: torch.Tensor) -> torch.Tensor:
            captured.clear()
            model(to_float(chunk))
            return captured[-1]
        return map_in_chunks(features, images_NCHW, batch_size)
    finally:
        hook.remove()
