import math

import pytest

from acquire.errors import UserError
from acquire.validate import check_choice, check_float, check_int, check_nonempty_distinct, check_positive_int


@pytest.mark.parametrize("value", [1.5, 2.0, "3", True, None])
def test_counts_must_be_whole_numbers(value):
    with pytest.raises(UserError, match="whole number"):
        check_int("epochs", value)


def test_counts_have_a_minimum():
    assert check_int("initial", 0) == 0
    with pytest.raises(UserError, match="initial must be >= 0, got -100"):
        check_int("initial", -100)
    with pytest.raises(UserError, match=">= 1"):
        check_positive_int("rounds", 0)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, float("1e400")])
def test_floats_must_be_finite(value):
    with pytest.raises(UserError, match="lr must be a finite number"):
        check_float("lr", value, above=0)


def test_float_bounds():
    assert check_float("lr", 1e-3, above=0) == 1e-3
    with pytest.raises(UserError, match="lr must be > 0"):
        check_float("lr", 0.0, above=0)
    with pytest.raises(UserError, match="p must be <= 1"):
        check_float("p", 1.5, minimum=0, maximum=1)
    with pytest.raises(UserError, match="must be a number"):
        check_float("lr", "fast")


def test_choices():
    assert check_choice("precision", "bf16", ("fp32", "bf16")) == "bf16"
    with pytest.raises(UserError, match="precision must be one of fp32, bf16, got 'fp16'"):
        check_choice("precision", "fp16", ("fp32", "bf16"))


def test_a_list_setting_needs_a_value_and_no_value_twice():
    assert check_nonempty_distinct("--sizes", (10, 20)) == [10, 20]
    for bad in ([], [10, 10]):
        with pytest.raises(UserError, match="--sizes needs at least one value and no duplicates"):
            check_nonempty_distinct("--sizes", bad)
