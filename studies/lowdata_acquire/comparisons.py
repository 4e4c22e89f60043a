"""The study's pre-registered analysis (results/README.md, "lowdata_acquire"): endpoints per arm and repeat,
paired differences with 95% t-intervals, and Holm-adjusted p-values over each endpoint's list of comparisons.

Endpoints, per (cell, arm, repeat): `last` = balanced accuracy after the last round; `mean` = the mean over rounds
1..R. The round-0 arms (none, classical) train on L alone at every size, so both their endpoints are their
round-0 accuracy. Differences are A − B in percentage points, paired by repeat (both arms of a repeat share L, the
generator and the classifiers' draws).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from acquire.errors import UserError
from analysis.stats import holm_where_tested, paired_t_p, t_halfwidth
from studies.lowdata_acquire.protocol import AUGMENTED, CLASSICAL, NO_AUGMENTATION, PLAIN
from studies.lowdata_acquire.study import read_study

ENDPOINTS = ("last", "mean")
# (question, A, B): the pre-registered list, the same for every cell
COMPARISONS = [
    ("Q1", "random", NO_AUGMENTATION),
    ("Q1", f"{CLASSICAL}+random", CLASSICAL),
    ("Q1", "random", CLASSICAL),
    ("Q2", "bald", "random"),
    ("Q2", "quota:bald", "random"),
    ("Q2", "gate:quota:bald", "random"),
    ("Q2", f"{CLASSICAL}+gate:quota:bald", f"{CLASSICAL}+random"),
    ("Q3", "quota:bald", "bald"),
    ("Q3", "gate:quota:bald", "quota:bald"),
]


def repeat_endpoints(cell: Path) -> pd.DataFrame:
    """One row per (arm, repeat) of a cell with its endpoints: columns arm, repeat, last, mean (fractions), for every
    repeat whose two runs have reached the study's last round."""
    rounds = read_study(cell)[0].rounds
    rows = []
    for repeat_dir in sorted(cell.glob("r*/")):
        frames = {run: repeat_dir / run / "rounds.csv" for run in (PLAIN, AUGMENTED)}
        if not all(path.exists() for path in frames.values()):
            continue
        plain, augmented = (pd.read_csv(frames[run]) for run in (PLAIN, AUGMENTED))
        if plain["round"].max() < rounds or augmented["round"].max() < rounds:
            continue
        repeat = int(repeat_dir.name[1:])
        for run, df, prefix in ((PLAIN, plain, ""), (AUGMENTED, augmented, f"{CLASSICAL}+")):
            base = df[df["round"] == 0]["balanced_accuracy"]
            if base.nunique() != 1:
                raise UserError(f"{frames[run]}: the arms' round-0 rows differ, so they did not share their draws")
            rows.append({"arm": CLASSICAL if run == AUGMENTED else NO_AUGMENTATION, "repeat": repeat,
                         "last": base.iloc[0], "mean": base.iloc[0]})
            for acquisition, part in df[df["round"] >= 1].groupby("acquisition"):
                part = part.sort_values("round")
                rows.append({"arm": prefix + acquisition, "repeat": repeat,
                             "last": part[part["round"] == rounds]["balanced_accuracy"].iloc[0],
                             "mean": part[part["round"] <= rounds]["balanced_accuracy"].mean()})
    return pd.DataFrame(rows, columns=["arm", "repeat", "last", "mean"])


def compare(endpoints: pd.DataFrame, a: str, b: str, endpoint: str) -> dict:
    """A − B (points) of one endpoint, paired by repeat: n, mean, std, 95% interval, two-sided paired t-test p."""
    wide = endpoints.pivot(index="repeat", columns="arm", values=endpoint)
    if a not in wide or b not in wide:
        return {"n": 0, "mean": np.nan, "std": np.nan, "low": np.nan, "high": np.nan, "p": np.nan}
    differences = (100 * (wide[a] - wide[b])).dropna()
    n, mean = len(differences), differences.mean()
    std = differences.std(ddof=1) if n > 1 else np.nan
    half = float(t_halfwidth(std, n)) if n > 1 else np.nan
    p = paired_t_p(differences)
    return {"n": n, "mean": mean, "std": std, "low": mean - half, "high": mean + half, "p": p}


def comparison_table(cells: dict[str, Path]) -> pd.DataFrame:
    """Every pre-registered comparison of every cell (name -> directory) and endpoint, with Holm-adjusted p-values
    over each endpoint's list (all cells' comparisons of that endpoint together)."""
    rows = []
    for cell, path in cells.items():
        endpoints = repeat_endpoints(path)
        for endpoint in ENDPOINTS:
            for question, a, b in COMPARISONS:
                rows.append({"cell": cell, "endpoint": endpoint, "question": question, "a": a, "b": b,
                             **compare(endpoints, a, b, endpoint)})
    table = pd.DataFrame(rows)
    return with_holm(table)


def required_repeats(std: float, difference: float = 1.0, alpha: float = 0.05, power: float = 0.8) -> int:
    """Repeats a two-sided paired t-test at `alpha` needs for `power` against a true mean difference `difference`
    (points) when the paired differences have this std: the smallest n with noncentral-t power >= power."""
    for n in range(2, 1000):
        df = n - 1
        critical = stats.t.ppf(1 - alpha / 2, df)
        shift = difference / (std / np.sqrt(n))
        achieved = stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift)
        if achieved >= power:
            return n
    return 1000


Q4_COMPARISONS = [("Q4", name, "random") for name in ("bald", "quota:bald", "gate:quota:bald")]


def near_copy_table(shares: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Q4: per cell (name -> acquired.near_copy_shares), each acquisition's near-copy share minus random's (points,
    paired by repeat), Holm-adjusted over all cells' Q4 comparisons together."""
    rows = []
    for cell, frame in shares.items():
        endpoints = frame.rename(columns={"near_copy_share": "share"})[["arm", "repeat", "share"]]
        for question, a, b in Q4_COMPARISONS:
            rows.append({"cell": cell, "endpoint": "near_copy_share", "question": question, "a": a, "b": b,
                         **compare(endpoints, a, b, "share")})
    table = pd.DataFrame(rows, columns=["cell", "endpoint", "question", "a", "b", "n", "mean", "std", "low", "high",
                                        "p"])
    return with_holm(table)


def with_holm(table: pd.DataFrame) -> pd.DataFrame:
    """The table with p_holm: Holm-adjusted p over each endpoint's comparisons that have a p-value (one family per
    endpoint, every cell together); NaN where p is."""
    table["p_holm"] = np.nan
    for endpoint in table["endpoint"].unique():
        mask = table["endpoint"] == endpoint
        table.loc[mask, "p_holm"] = holm_where_tested(table.loc[mask, "p"].to_numpy())
    return table


def against_baseline(endpoints: pd.DataFrame, baseline: str, endpoint: str = "last") -> pd.DataFrame:
    """Every other arm minus `baseline` (points, paired by repeat): arm, n, mean, low, high (for the figure)."""
    return pd.DataFrame([{"arm": arm, **compare(endpoints, arm, baseline, endpoint)}
                         for arm in endpoints["arm"].unique() if arm != baseline])
