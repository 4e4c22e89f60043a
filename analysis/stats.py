"""Paired comparisons of arms, by repeat, with t-intervals.

Arms are (sources, acquisition); a repeat index names the draws an arm ran with. In a run with paired
seeding every arm of repeat r shares its model initialisations and training draws, so the difference
A − B within each repeat cancels what the draws contribute, and the mean of those differences gets a
t-interval with n − 1 degrees of freedom (the same numbers as `scipy.stats.ttest_rel`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from acquire.errors import UserError

ArmKey = tuple[str, ...]  # (sources, acquisition) in the active loop; any labels naming a table's arm elsewhere


def t_halfwidth(std, n, confidence: float = 0.95):
    """Half-width of the t-interval of a mean from the sample std (ddof=1) of n values; NaN where n < 2."""
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        quantile = stats.t.ppf(0.5 + confidence / 2, np.where(n >= 2, n - 1, np.nan))
        return quantile * np.asarray(std, dtype=float) / np.sqrt(n)


def paired_t_p(differences) -> float:
    """Two-sided p-value of the paired t-test (one-sample t on the differences against 0, as
    `scipy.stats.ttest_rel`); NaN where there are fewer than two differences or they do not vary."""
    values = np.asarray(differences, dtype=float)
    if len(values) < 2 or np.std(values) == 0:
        return math.nan
    return float(stats.ttest_1samp(values, 0).pvalue)


def parse_arm(spec: str) -> ArmKey:
    """'raw+pggan/bald' -> ('raw+pggan', 'bald')."""
    sources, _, acquisition = spec.rpartition("/")
    if not sources or not acquisition:
        raise UserError(f"arm {spec!r} must be SOURCES/ACQUISITION, e.g. raw+pggan/bald")
    return sources, acquisition


def arm_name(arm: ArmKey) -> str:
    """('raw+pggan', 'bald') -> 'raw+pggan/bald'; empty parts are left out."""
    return "/".join(part for part in arm if part)


def _signed(value: float) -> str:
    return f"{'−' if value < 0 else '+'}{abs(value):.2f}"


@dataclass(frozen=True)
class PairedDifference:
    """A − B of a metric, in percentage points, per repeat both arms have at one training-set size.

    std is the sample std of the differences (ddof=1); low/high bound the `confidence` t-interval of their
    mean. With n < 2 std, low and high are NaN. `unpaired` lists repeats only one arm has there;
    `shared_draws` says whether paired repeats shared their draws (None: not recorded).
    """

    a: ArmKey
    b: ArmKey
    train_size: int
    repeats: tuple[int, ...]
    diffs: tuple[float, ...]
    confidence: float = 0.95
    unpaired: tuple[int, ...] = ()
    shared_draws: bool | None = None

    @property
    def n(self) -> int:
        return len(self.diffs)

    @property
    def mean(self) -> float:
        return float(np.mean(self.diffs))

    @property
    def std(self) -> float:
        return float(np.std(self.diffs, ddof=1)) if self.n >= 2 else math.nan

    @property
    def interval(self) -> tuple[float, float]:
        half = float(t_halfwidth(self.std, self.n, self.confidence))
        return self.mean - half, self.mean + half

    @property
    def p_value(self) -> float:
        """Two-sided paired t-test p (NaN with n < 2 or identical differences)."""
        return paired_t_p(self.diffs)

    def verdict(self) -> str:
        """What the interval supports, and nothing more."""
        level = f"{self.confidence:.0%} CI"
        if self.n < 2:
            return (f"no interval can be given from n = {self.n} paired repeat (a t-interval needs n ≥ 2); "
                    f"the one difference is {_signed(self.mean)} points")
        low, high = self.interval
        a, b = arm_name(self.a), arm_name(self.b)
        if low > 0:
            return f"{a} is above {b} by {low:.2f} to {high:.2f} points ({level}, n = {self.n} paired repeats)"
        if high < 0:
            return f"{a} is below {b} by {-high:.2f} to {-low:.2f} points ({level}, n = {self.n} paired repeats)"
        return f"no difference shown: the {level} {_signed(low)} to {_signed(high)} points includes 0 (n = {self.n})"

    def as_row(self) -> dict:
        low, high = self.interval
        return {"a": arm_name(self.a), "b": arm_name(self.b), "train_size": self.train_size, "n": self.n,
                "repeats": ";".join(map(str, self.repeats)), "diffs_pp": ";".join(f"{d:.4f}" for d in self.diffs),
                "mean_diff_pp": self.mean, "std_pp_ddof1": self.std, "ci_low_pp": low, "ci_high_pp": high,
                "confidence": self.confidence, "shared_draws": self.shared_draws, "verdict": self.verdict()}


def _arm_rows(df: pd.DataFrame, arm: ArmKey, metric: str) -> pd.DataFrame:
    rows = df[(df["sources"] == arm[0]) & (df["acquisition"] == arm[1])].dropna(subset=[metric])
    if rows.empty:
        known = sorted(set(zip(df["sources"], df["acquisition"])))
        raise UserError(f"unknown arm {arm_name(arm)!r}: the CSVs hold {', '.join(map(arm_name, known))}; "
                         "give an arm as SOURCES/ACQUISITION from those columns")
    if "run" in rows.columns and rows["run"].nunique() > 1:
        raise UserError(f"{arm_name(arm)} is in more than one run ({', '.join(sorted(rows['run'].unique()))}); "
                         "give only the CSV of the run to compare, or name the arm with its run as "
                         "RUN:SOURCES/ACQUISITION")
    return rows


def _at_size(rows: pd.DataFrame, arm: ArmKey, other: pd.DataFrame, train_size: int) -> pd.DataFrame:
    """The arm's rows at `train_size`, indexed by repeat."""
    here = rows[rows["train_size"] == train_size]
    if here.empty:
        common = sorted(set(rows["train_size"]) & set(other["train_size"]))
        fix = f"e.g. --at {common[-1]}, the largest size both arms reached" if common else "no size is common to both"
        raise UserError(f"{arm_name(arm)} has no repeat at train_size {train_size} (its sizes run "
                         f"{rows['train_size'].min()} to {rows['train_size'].max()}); {fix}")
    twice = here["repeat"][here["repeat"].duplicated()]
    if len(twice):
        raise UserError(f"{arm_name(arm)} has several rows for repeat {twice.iloc[0]} at train_size {train_size}; "
                         "was a CSV given twice?")
    return here.set_index("repeat")


def _shared_draws(a_rows: pd.DataFrame, b_rows: pd.DataFrame, a: ArmKey, b: ArmKey) -> bool | None:
    """Whether paired repeats shared their draws: the same seed, and the same source set or 'paired' seeding
    (a `seeding` column) in both runs. None when the rows do not say."""
    if "seed" not in a_rows.columns:
        return None
    if (a_rows["seed"].to_numpy() != b_rows["seed"].to_numpy()).any():
        return False
    if a[0] == b[0]:
        return True
    if "seeding" not in a_rows.columns:
        return None
    schemes = pd.concat([a_rows["seeding"], b_rows["seeding"]])
    return None if schemes.isna().any() else bool((schemes == "paired").all())


def paired_difference(df: pd.DataFrame, a: ArmKey, b: ArmKey, train_size: int, metric: str = "balanced_accuracy",
                      confidence: float = 0.95) -> PairedDifference:
    """A − B of `metric` (percentage points) over the repeats both arms have at `train_size`.

    `df` holds the active loop's rows (columns sources, acquisition, repeat, train_size, `metric`; optional
    run, seed and seeding). Raises ValueError naming the problem and the fix for an unknown arm, an arm
    spread over several runs, a size an arm never reached, duplicate rows, and arms sharing no repeat.
    """
    a_all, b_all = _arm_rows(df, a, metric), _arm_rows(df, b, metric)
    a_rows = _at_size(a_all, a, b_all, train_size)
    b_rows = _at_size(b_all, b, a_all, train_size)
    repeats = sorted(set(a_rows.index) & set(b_rows.index))
    if not repeats:
        raise UserError(f"{arm_name(a)} (repeats {', '.join(map(str, sorted(a_rows.index)))}) and {arm_name(b)} "
                         f"(repeats {', '.join(map(str, sorted(b_rows.index)))}) share no repeat at train_size "
                         f"{train_size}; run the missing repeats, or compare at a size both reached")
    shared = _shared_draws(a_rows.loc[repeats], b_rows.loc[repeats], a, b)
    return pair_by_repeat(a, b, train_size, a_rows[metric], b_rows[metric], confidence, shared)


def pair_by_repeat(a: ArmKey, b: ArmKey, train_size: int, a_by_repeat: pd.Series, b_by_repeat: pd.Series,
                   confidence: float = 0.95, shared_draws: bool | None = None) -> PairedDifference:
    """A − B (percentage points) of two arms' metric values (fractions) indexed by repeat, over the repeats both
    have (at least one; the others are listed as unpaired)."""
    repeats = sorted(set(a_by_repeat.index) & set(b_by_repeat.index))
    unpaired = sorted(set(a_by_repeat.index) ^ set(b_by_repeat.index))
    diffs = 100 * (a_by_repeat.loc[repeats].to_numpy(float) - b_by_repeat.loc[repeats].to_numpy(float))
    return PairedDifference(a, b, int(train_size), tuple(int(r) for r in repeats), tuple(map(float, diffs)),
                            confidence, tuple(int(r) for r in unpaired), shared_draws)


def all_pairs(df: pd.DataFrame, train_size: int, metric: str = "balanced_accuracy",
              confidence: float = 0.95) -> tuple[list[PairedDifference], list[ArmKey]]:
    """Every pair of arms that reached `train_size`, A the one with the higher mean there (ties: by name),
    and the arms that did not reach it. Raises ValueError when fewer than two arms reached it."""
    values = df.dropna(subset=[metric])
    at = values[values["train_size"] == train_size]
    means = at.groupby(["sources", "acquisition"])[metric].mean()
    arms = sorted(means.index, key=lambda arm: (-means[arm], arm))
    missing = sorted(set(zip(values["sources"], values["acquisition"])) - set(arms))
    if len(arms) < 2:
        common = set.intersection(*(set(s) for _, s in values.groupby(["sources", "acquisition"])["train_size"]))
        fix = f"e.g. --at {max(common)}, the largest size every arm reached" if common else "no size is common to all"
        raise UserError(f"{len(arms)} arm(s) reached train_size {train_size}, need two; {fix}")
    return [paired_difference(df, a, b, train_size, metric, confidence) for a, b in combinations(arms, 2)], missing


def holm_adjust(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values of a family of tests (same order as given): the k-th smallest p becomes
    max over j <= k of min(1, (m − j + 1) p_(j)); reject where the adjusted p < alpha controls the family-wise
    error rate at alpha."""
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or np.isnan(p).any() or ((p < 0) | (p > 1)).any():
        raise UserError(f"Holm's adjustment needs p-values in [0, 1], got {p.tolist()}")
    order = np.argsort(p, kind="stable")
    m = len(p)
    stepped = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return adjusted


def holm_where_tested(p_values) -> np.ndarray:
    """Holm's adjusted p-values over the tests that have a p-value (one family); NaN where p is NaN (no test)."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(len(p), np.nan)
    tested = ~np.isnan(p)
    if tested.any():
        adjusted[tested] = holm_adjust(p[tested])
    return adjusted


def cell_label(arm_columns: list[str], values: tuple) -> str:
    """(['mode', 'gan'], ('add', 'pggan')) -> 'mode=add gan=pggan'."""
    return " ".join(f"{c}={v}" for c, v in zip(arm_columns, values))


def cells_against_baseline(df: pd.DataFrame, arm_columns: list[str], size_column: str, against: dict[str, str],
                           metric: str) -> list[PairedDifference]:
    """A sweep's cells (one row per arm, size and repeat): every arm (distinct values of arm_columns) against the rows
    matching `against`, at each size both have, paired by repeat. Raises UserError naming a missing column, a
    baseline with no rows, or an arm with several rows per repeat."""
    missing = sorted({*arm_columns, size_column, "repeat", metric, *against} - set(df.columns))
    if missing:
        raise UserError(f"the CSV has no column(s) {missing}; its columns are {list(df.columns)}")
    text = df.astype({c: str for c in against})
    is_baseline = pd.concat([text[c] == v for c, v in against.items()], axis=1).all(axis=1)
    if not is_baseline.any():
        raise UserError(f"no row matches --against {','.join(f'{c}={v}' for c, v in against.items())}")
    baseline_name = ",".join(f"{c}={v}" for c, v in against.items())
    results = []
    for size, at_size in df.groupby(size_column, sort=True):
        base = at_size[is_baseline[at_size.index]].set_index("repeat")[metric]
        if base.index.duplicated().any():
            raise UserError(f"--against {baseline_name} matches several rows per repeat at {size_column} = {size}; "
                             "name the baseline arm with more columns")
        for values, rows in at_size[~is_baseline[at_size.index]].groupby(arm_columns, sort=True):
            values = values if isinstance(values, tuple) else (values,)
            arm = rows.set_index("repeat")[metric]
            if arm.index.duplicated().any():
                raise UserError(f"{cell_label(arm_columns, values)} has several rows per repeat at {size_column} = "
                                f"{size} (a row given twice?); remove the duplicates, or name the arm with more "
                                "columns")
            if set(arm.index) & set(base.index):
                results.append(pair_by_repeat((cell_label(arm_columns, values),), (baseline_name,), size, arm, base,
                                              shared_draws=True))
    return results
