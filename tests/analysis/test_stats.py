"""Paired differences by repeat: numbers checked by hand and against scipy.stats.ttest_rel, verdict wording, errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.stats import all_pairs, paired_difference, parse_arm, t_halfwidth

PGGAN_BALD, RAW_RANDOM, RAW_BALD = ("raw+pggan", "bald"), ("raw", "random"), ("raw", "bald")


def _rows(arm, values, size=500, repeats=None, seed=0, run="r", **extra):
    repeats = range(len(values)) if repeats is None else repeats
    return [{"sources": arm[0], "acquisition": arm[1], "repeat": r, "seed": seed, "train_size": size,
             "balanced_accuracy": v, "run": run, **extra} for r, v in zip(repeats, values)]


def _frame(*parts):
    return pd.DataFrame([row for part in parts for row in part])


def test_interval_including_zero_by_hand_and_as_ttest_rel():
    a, b = [0.90, 0.92, 0.95, 0.91], [0.88, 0.90, 0.96, 0.87]  # differences 2, 2, -1, 4 points
    result = paired_difference(_frame(_rows(PGGAN_BALD, a), _rows(RAW_RANDOM, b)), PGGAN_BALD, RAW_RANDOM, 500)
    assert result.diffs == pytest.approx((2, 2, -1, 4))
    assert result.n == 4 and result.repeats == (0, 1, 2, 3)
    assert result.mean == pytest.approx(1.75)
    assert result.std == pytest.approx(math.sqrt(12.75 / 3))  # ddof = 1
    half = 3.182446305284263 * math.sqrt(12.75 / 3) / 2  # t(0.975, 3) · s / √n
    assert result.interval == pytest.approx((1.75 - half, 1.75 + half))
    scipy_ci = stats.ttest_rel(100 * np.array(a), 100 * np.array(b)).confidence_interval(0.95)
    assert result.interval == pytest.approx((scipy_ci.low, scipy_ci.high))
    assert result.verdict() == "no difference shown: the 95% CI −1.53 to +5.03 points includes 0 (n = 4)"


def test_interval_excluding_zero_says_above_or_below():
    a, b = [0.92, 0.93, 0.94, 0.93], [0.90, 0.90, 0.90, 0.90]  # differences 2, 3, 4, 3: mean 3, CI 1.70 to 4.30
    df = _frame(_rows(PGGAN_BALD, a), _rows(RAW_RANDOM, b))
    above = paired_difference(df, PGGAN_BALD, RAW_RANDOM, 500)
    assert above.verdict() == "raw+pggan/bald is above raw/random by 1.70 to 4.30 points (95% CI, n = 4 paired repeats)"
    below = paired_difference(df, RAW_RANDOM, PGGAN_BALD, 500)
    assert below.verdict() == "raw/random is below raw+pggan/bald by 1.70 to 4.30 points (95% CI, n = 4 paired repeats)"
    assert below.mean == pytest.approx(-3)


def test_a_single_pair_gives_no_interval():
    result = paired_difference(_frame(_rows(RAW_BALD, [0.91]), _rows(RAW_RANDOM, [0.90])), RAW_BALD, RAW_RANDOM, 500)
    assert result.n == 1 and result.mean == pytest.approx(1)
    assert math.isnan(result.std) and all(math.isnan(v) for v in result.interval)
    assert result.verdict().startswith("no interval can be given from n = 1 paired repeat")
    assert math.isnan(t_halfwidth(0.5, 1))


def test_only_repeats_both_arms_have_are_paired():
    df = _frame(_rows(RAW_BALD, [0.91, 0.92, 0.93], repeats=[0, 1, 2]), _rows(RAW_RANDOM, [0.90, 0.90], repeats=[1, 2]))
    result = paired_difference(df, RAW_BALD, RAW_RANDOM, 500)
    assert result.repeats == (1, 2) and result.unpaired == (0,)
    assert result.diffs == pytest.approx((2, 3))


def test_shared_draws():
    same_sources = _frame(_rows(RAW_BALD, [0.9, 0.9]), _rows(RAW_RANDOM, [0.9, 0.9]))
    assert paired_difference(same_sources, RAW_BALD, RAW_RANDOM, 500).shared_draws is True
    other_seed = _frame(_rows(RAW_BALD, [0.9, 0.9]), _rows(RAW_RANDOM, [0.9, 0.9], seed=1))
    assert paired_difference(other_seed, RAW_BALD, RAW_RANDOM, 500).shared_draws is False
    for seeding, shared in (("paired", True), ("per_source", False), (None, None)):
        df = _frame(_rows(PGGAN_BALD, [0.9, 0.9], seeding=seeding), _rows(RAW_RANDOM, [0.9, 0.9], seeding=seeding))
        assert paired_difference(df, PGGAN_BALD, RAW_RANDOM, 500).shared_draws is shared


def test_errors_name_the_problem_and_the_fix():
    df = _frame(_rows(RAW_BALD, [0.9, 0.9], size=300), _rows(RAW_RANDOM, [0.9, 0.9], size=300),
                _rows(RAW_RANDOM, [0.9, 0.9], size=500))
    with pytest.raises(ValueError, match=r"raw/bald has no repeat at train_size 500 .*e\.g\. --at 300"):
        paired_difference(df, RAW_BALD, RAW_RANDOM, 500)
    with pytest.raises(ValueError, match="unknown arm 'raw\\+pggan/bald': the CSVs hold raw/bald, raw/random"):
        paired_difference(df, PGGAN_BALD, RAW_RANDOM, 300)
    disjoint = _frame(_rows(RAW_BALD, [0.9], repeats=[0]), _rows(RAW_RANDOM, [0.9], repeats=[1]))
    with pytest.raises(ValueError, match=r"repeats 0\) and raw/random \(repeats 1\) share no repeat"):
        paired_difference(disjoint, RAW_BALD, RAW_RANDOM, 500)
    twice = _frame(_rows(RAW_BALD, [0.9]), _rows(RAW_BALD, [0.9]), _rows(RAW_RANDOM, [0.9]))
    with pytest.raises(ValueError, match="several rows for repeat 0 .*given twice"):
        paired_difference(twice, RAW_BALD, RAW_RANDOM, 500)
    two_runs = _frame(_rows(RAW_BALD, [0.9], run="x"), _rows(RAW_BALD, [0.9], repeats=[1], run="y"),
                      _rows(RAW_RANDOM, [0.9]))
    with pytest.raises(ValueError, match=r"raw/bald is in more than one run \(x, y\)"):
        paired_difference(two_runs, RAW_BALD, RAW_RANDOM, 500)
    with pytest.raises(ValueError, match="SOURCES/ACQUISITION"):
        parse_arm("raw")
    assert parse_arm("raw+pggan/bald") == PGGAN_BALD


def test_all_pairs_puts_the_higher_mean_first_and_lists_arms_that_fell_short():
    df = _frame(_rows(RAW_BALD, [0.90, 0.91]), _rows(RAW_RANDOM, [0.88, 0.88]), _rows(PGGAN_BALD, [0.93, 0.94]),
                _rows(("raw+dada", "bald"), [0.9, 0.9], size=300))
    results, missing = all_pairs(df, 500)
    assert [(r.a, r.b) for r in results] == [(PGGAN_BALD, RAW_BALD), (PGGAN_BALD, RAW_RANDOM), (RAW_BALD, RAW_RANDOM)]
    assert all(r.mean > 0 for r in results) and missing == [("raw+dada", "bald")]
    with pytest.raises(ValueError, match="1 arm\\(s\\) reached train_size 300, need two"):
        all_pairs(df, 300)
