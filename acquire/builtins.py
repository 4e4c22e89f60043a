"""The built-in model factories and trainer under the names run directories store them by.

A committed config.json names its model and trainer as "module:function" strings of the layout they were written
with ("acquire.model:new_model"); these tables map each such name to its function, so that a run is resumed without
importing anything a file names, and `builtin_name` gives the name a new run records.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from acquire.networks import new_gal_code_glorot_model, new_gal_code_model, new_glorot_model, new_model
from acquire.training import train_classifier

MODELS: dict[str, tuple[str, Callable]] = {
    # --model name: (the name config.json stores, factory (seed, device, num_classes, image_shape) -> nn.Module).
    # A new built-in model is one entry here.
    "gal": ("acquire.model:new_model", new_model),
    "gal_code": ("acquire.model:new_gal_code_model", new_gal_code_model),
    "gal_glorot": ("acquire.model:new_glorot_model", new_glorot_model),
    "gal_code_glorot": ("acquire.model:new_gal_code_glorot_model", new_gal_code_glorot_model),
}
BUILTIN_MODELS: dict[str, Callable] = dict(MODELS.values())
BUILTIN_TRAINERS: dict[str, Callable] = {"acquire.model:train_classifier": train_classifier}


def builtin_name(fn: Callable) -> str | None:
    """The stored name of a built-in model factory or trainer (or of a functools.partial of one), else None."""
    target = fn.func if isinstance(fn, partial) else fn
    return next((name for table in (BUILTIN_MODELS, BUILTIN_TRAINERS) for name, builtin in table.items()
                 if builtin is target), None)
