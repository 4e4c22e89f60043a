"""The sha256 fingerprints a run directory records, side by side (each byte format is pinned by committed files).

- image_set_digest: uint8 images [N,C,H,W] and int64 labels [N], with the shape (pools, test sets, sweeps' data) or,
  with_shape=False, without it (the data a GAN was trained on, as its sidecar and training state record it).
- model_digest: a classifier's parameters and buffers as float32, with names and shapes (a state's model_sha256).
- state_digest: networks' state_dicts in their own dtypes, with names, dtypes and shapes (a DADA phase-I cache).
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from acquire.data import ImageSet


def image_set_digest(images: ImageSet, with_shape: bool = True) -> str:
    """sha256 over the uint8 images [N,C,H,W] (preceded by their shape unless with_shape=False) and int64 labels [N],
    on any device."""
    h = hashlib.sha256(repr(tuple(images.images_NCHW.shape)).encode() if with_shape else b"")
    h.update(images.images_NCHW.cpu().contiguous().numpy().tobytes())
    h.update(images.labels_N.cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def model_digest(model: nn.Module) -> str:
    """sha256 over the classifier's parameters and buffers (names, shapes, float32 bytes)."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(f"{name}{tuple(tensor.shape)}".encode())
        h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def state_digest(state: dict[str, dict[str, torch.Tensor]]) -> str:
    """sha256 of networks' state_dicts (network -> name -> tensor): every name, dtype, shape and byte."""
    digest = hashlib.sha256()
    for network in sorted(state):
        for name, tensor in sorted(state[network].items()):
            digest.update(f"{network}.{name}:{tensor.dtype}:{list(tensor.shape)};".encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
