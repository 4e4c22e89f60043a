"""Checks for settings, in one place: each raises a one-line UserError naming the setting, the value and what it must be.

Used by every config dataclass's __post_init__ (run, training, sweep and GAN configs), so a NaN, an inf, a float given
for a count or a negative size is refused before anything is written.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

from acquire.errors import UserError


def check_int(name: str, value: object, minimum: int = 0) -> int:
    """`value` as an int >= minimum; bools, floats (1.5 or 2.0) and strings are refused."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise UserError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    if value < minimum:
        raise UserError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_positive_int(name: str, value: object) -> int:
    return check_int(name, value, minimum=1)


def check_float(name: str, value: object, minimum: float | None = None, maximum: float | None = None,
                above: float | None = None) -> float:
    """`value` as a finite float within [minimum, maximum] and > above (each bound optional); NaN and inf refused."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise UserError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise UserError(f"{name} must be a finite number, got {value}")
    if minimum is not None and value < minimum:
        raise UserError(f"{name} must be >= {minimum:g}, got {value:g}")
    if maximum is not None and value > maximum:
        raise UserError(f"{name} must be <= {maximum:g}, got {value:g}")
    if above is not None and value <= above:
        raise UserError(f"{name} must be > {above:g}, got {value:g}")
    return value


def check_nonempty_distinct(name: str, values) -> list:
    """`values` as a list that has at least one value and no value twice."""
    values = list(values)
    if not values or len(set(values)) != len(values):
        raise UserError(f"{name} needs at least one value and no duplicates, got {values}")
    return values


def check_choice(name: str, value: object, choices) -> str:
    if value not in choices:
        raise UserError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")
    return value
