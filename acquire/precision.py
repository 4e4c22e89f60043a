"""Numeric precision of training and MC-dropout scoring: the one place that names the precisions, checks that a
device supports one, and enters it.

fp32: float32 throughout. bf16: training under torch.autocast(bfloat16), and MC-dropout scoring with bfloat16
weights, features and masks (bfloat16 GEMMs); softmax, probabilities and scores stay float32/float64.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

from acquire.errors import UserError
from acquire.validate import check_choice

PRECISIONS = ("fp32", "bf16")


def supports_bf16(device: torch.device | str) -> bool:
    """Whether `device` computes bfloat16 matrix products (CUDA: as torch reports; other devices: tried once)."""
    device = torch.device(device)
    if device.type == "meta":
        return True
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        ones = torch.ones(2, 2, dtype=torch.bfloat16, device=device)
        return bool((ones @ ones == 2).all())
    except RuntimeError:
        return False


def check_precision(precision: str, device: torch.device | str) -> None:
    """Refuse (UserError) a precision not in PRECISIONS, or bf16 on a device that cannot compute in bfloat16."""
    check_choice("precision", precision, PRECISIONS)
    if precision == "bf16" and not supports_bf16(device):
        raise UserError(f"precision bf16 is not supported on {torch.device(device)} (no bfloat16 matrix products); "
                        "use fp32")


def autocast(precision: str, device: torch.device | str) -> AbstractContextManager:
    """torch.autocast to bfloat16 on the device's type for precision 'bf16'; a no-op context for 'fp32'.

    Its weight-cast cache is off: torch keeps a weight's first bfloat16 copy until the block ends, so a training
    loop inside one block would compute every forward pass with its initial weights, whatever the optimiser did.
    """
    if precision != "bf16":
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, cache_enabled=False)


def autocast_dtype(device: torch.device | str) -> torch.dtype:
    """The dtype matrix products on `device` compute in here: autocast's inside an autocast block, else float32."""
    kind = torch.device(device).type
    if torch.amp.is_autocast_available(kind) and torch.is_autocast_enabled(kind):
        return torch.get_autocast_dtype(kind)
    return torch.float32
