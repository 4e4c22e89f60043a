"""Deterministic inference: uint8 images to floats, chunked application of a model, predicted labels."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


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
