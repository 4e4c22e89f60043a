"""Choosing the compute device."""

from __future__ import annotations

import torch

from acquire.errors import UserError


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cpu' / 'cuda' / 'cuda:N' as given (CUDA must exist)."""
    if name == "auto":
        return canonical("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name} asked for CUDA but this torch build sees no GPU; use --device cpu or auto")
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"unsupported device {name!r}; use auto, cpu or cuda")
    return canonical(device)


def canonical(device: torch.device | str) -> torch.device:
    """The device as tensors on it report theirs: 'cuda' -> cuda:<current index> (a tensor made on 'cuda' says
    cuda:0, and torch.device('cuda') != torch.device('cuda:0')); cpu and indexed devices as given."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously), so that wall-clock times measure it."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
