"""Randomness derived, not carried: every key tuple (seed, repeat or arm, round, purpose) gets its own generator.

A run resumed at any round therefore draws exactly what an uninterrupted run would.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import torch


def derive_seed(*keys: object) -> int:
    """A 63-bit seed that depends only on the keys' reprs."""
    digest = hashlib.blake2b(repr(keys).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2 ** 63 - 1)


def make_generator(*keys: object, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator on `device` seeded by derive_seed(*keys)."""
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(*keys))
    return generator


@contextmanager
def seeded_global_rng(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Inside the block torch's global RNG (the CPU's, and `device`'s if it is a GPU) is seeded by `seed`; after it,
    restored. Makes code that draws from it (nn.Dropout, default layer initialisations) reproducible."""
    device = torch.device(device)
    gpus = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=gpus):
        torch.default_generator.manual_seed(seed)
        for gpu in gpus:
            with torch.cuda.device(gpu):
                torch.cuda.manual_seed(seed)
        yield
