"""Paired differences between arms at a training-set size, with t-intervals (`python -m runners.compare --help`)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

from acquire.errors import UserError
from acquire.files import write_csv
from analysis.curves import METRIC_LABELS, read_configs, read_curves
from analysis.stats import PairedDifference, all_pairs, arm_name, holm_where_tested, paired_difference, parse_arm
from runners.cli import int_list, numbers_may_be_negative, run_guarded

DESCRIPTION = """\
Compare arms (SOURCES/ACQUISITION) of the active loop's CSVs at one training-set size, paired by repeat:
for every repeat both arms have at that size, the difference A - B of the metric in percentage points;
then their mean, their sample std (ddof = 1), and the 95% t-interval of the mean (t with n - 1 degrees of
freedom, as scipy.stats.ttest_rel). The verdict says only what the interval supports: A above or below B
by the interval's range when it excludes 0, "no difference shown" when it includes 0, and no interval at
all from a single paired repeat. Arms of one repeat share model initialisations and training draws when
the run's config.json records seeding "paired" (or the arms have the same source set); otherwise a note
says the repeats pair by index only (still a valid test, but one that cancels no shared variation).
"""

EPILOG = """\
the paper's three claims (at the size its Figure 2 ends):
  python -m runners.compare runs/raw/rounds.csv runs/pggan/rounds.csv --at 500 \\
      --pair raw+pggan/bald raw/random --pair raw+pggan/bald raw/bald --pair raw/bald raw/random
the same arms of two runs (here bf16 against fp32), named RUN:SOURCES/ACQUISITION:
  python -m runners.compare results/precision/*/rounds.csv --at 200 --pair bf16:raw/bald fp32:raw/bald
a pre-registered family of comparisons, with Holm-adjusted p-values over all of them:
  python -m runners.compare results/interventions/*/rounds.csv --at 100,500 --holm \
      --pair raw/quota:bald raw/bald --pair raw/quota:bald raw/random
every arm against every other, at two sizes, into a CSV:
  python -m runners.compare results/mnist_raw/rounds.csv --at 200,300 --all-pairs --out compare.csv
"""

HEADER = ("{metric}: A − B in percentage points, paired by repeat at train_size; std: sample std of the "
          "differences (ddof = 1); 95% CI: mean ± t(0.975, n − 1) · std / √n")
COLUMNS = ["metric", "a", "b", "train_size", "n", "repeats", "diffs_pp", "mean_diff_pp", "std_pp_ddof1",
           "ci_low_pp", "ci_high_pp", "confidence", "shared_draws", "verdict"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m runners.compare", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", nargs="+", type=Path, help="rounds.csv file(s) written by the active loop")
    parser.add_argument("--at", type=int_list, required=True, metavar="SIZE[,SIZE...]",
                        help="training-set size(s) to compare at")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--pair", nargs=2, action="append", metavar=("A", "B"),
                       help="arms to compare as SOURCES/ACQUISITION, e.g. raw+pggan/bald raw/random (repeatable); "
                            "where runs hold the same arm, as RUN:SOURCES/ACQUISITION with RUN the CSV's directory "
                            "name, e.g. bf16:raw/bald fp32:raw/bald")
    which.add_argument("--all-pairs", action="store_true",
                       help="every arm against every other; A is the arm with the higher mean at that size")
    which.add_argument("--generated-gain", action="store_true",
                       help="for every arm of a run made with --real-only: its balanced accuracy minus that of the "
                            "same round's classifier trained on its real images alone (same initialisation and "
                            "draws), paired by repeat: did the generated images help?")
    parser.add_argument("--holm", action="store_true",
                        help="add each comparison's two-sided paired t-test p and Holm's adjusted p, taking every "
                             "comparison of this table (all pairs and sizes) as one family; an interval is still "
                             "the unadjusted 95%% one")
    parser.add_argument("--metric", choices=sorted(METRIC_LABELS), default="balanced_accuracy",
                        help="column compared (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table (with per-repeat differences) "
                                                               "to this CSV")
    return numbers_may_be_negative(parser)


def format_comparisons(results: list[PairedDifference], p_holm: list[float] | None = None) -> str:
    """One line per comparison: arms, size, n, mean difference, std, 95% CI, (p, Holm's p,) verdict."""
    head = ["A", "B", "at", "n", "mean diff", "std", "95% CI"] + (["p", "p Holm"] if p_holm is not None else [])
    lines = [[arm_name(r.a), arm_name(r.b), str(r.train_size), str(r.n), f"{r.mean:+.2f}",
              f"{r.std:.2f}" if r.n > 1 else "-",
              "{:+.2f} to {:+.2f}".format(*r.interval) if r.n > 1 else "-"] for r in results]
    if p_holm is not None:
        lines = [line + [f"{r.p_value:.4f}", f"{adjusted:.4f}"] for line, r, adjusted in zip(lines, results, p_holm)]
    head, lines = head + ["verdict"], [line + [r.verdict()] for line, r in zip(lines, results)]
    widths = [max(len(row[i]) for row in [head] + lines) for i in range(len(head) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1]
                     for row in [head] + lines)


def notes(results: list[PairedDifference]) -> list[str]:
    """What a reader of the table needs to know: repeats left out, and pairs whose repeats shared no draws."""
    out = []
    for r in results:
        pair = f"{arm_name(r.a)} vs {arm_name(r.b)} at {r.train_size}"
        if r.unpaired:
            out.append(f"note: {pair}: repeat(s) {', '.join(map(str, r.unpaired))} have one arm only; left out")
        if r.shared_draws is False:
            out.append(f"note: {pair}: the repeats did not share draws (seeding 'per_source' or another seed), "
                       "so they pair by index only")
        elif r.shared_draws is None:
            out.append(f"note: {pair}: whether the repeats shared draws is not recorded (no config.json beside "
                       "the CSV, or no seed column)")
    return out


REAL_ONLY = " (real only)"
REAL_ONLY_COLUMN = "balanced_accuracy_real_only"


def with_real_only_arms(df: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple]]:
    """The rows, plus each arm's counterfactual as an arm of its own (acquisition + REAL_ONLY, its metric the
    balanced_accuracy_real_only column), and the (arm, counterfactual) pairs; refused for runs made without it."""
    lacking = sorted(set(df["run"]) if REAL_ONLY_COLUMN not in df else set(df["run"][df[REAL_ONLY_COLUMN].isna()]))
    if lacking:
        raise UserError(f"--generated-gain needs a run made with --real-only (rows with {REAL_ONLY_COLUMN}); run(s) "
                        f"{', '.join(lacking)} have none")
    counterfactual = df.assign(acquisition=df["acquisition"] + REAL_ONLY,
                               balanced_accuracy=df[REAL_ONLY_COLUMN])
    arms = sorted({(s, a) for s, a in zip(df["sources"], df["acquisition"])})
    return pd.concat([df, counterfactual], ignore_index=True), [(arm, (arm[0], arm[1] + REAL_ONLY)) for arm in arms]


def run(args: argparse.Namespace) -> int:
    df = read_curves(args.csv, metric=args.metric, also=[REAL_ONLY_COLUMN] if args.generated_gain else [])
    configs = read_configs(args.csv)
    df["seeding"] = df["run"].map(lambda run: configs[run].get("seeding", "per_source") if run in configs else None)
    if any(":" in spec for pair in args.pair or [] for spec in pair):  # arms named with their run
        df["sources"] = df["run"] + ":" + df["sources"]
    pairs = [(parse_arm(a), parse_arm(b)) for a, b in args.pair or []]
    if args.generated_gain:
        if args.metric != "balanced_accuracy":
            raise UserError("--generated-gain compares balanced accuracy; drop --metric")
        df, pairs = with_real_only_arms(df)
    results, skipped = [], []
    for size in args.at:
        if args.all_pairs:
            found, missing = all_pairs(df, size, args.metric)
            results += found
            skipped += [f"note: not compared, no repeat at train_size {size}: {arm_name(arm)}" for arm in missing]
        else:
            results += [paired_difference(df, a, b, size, args.metric) for a, b in pairs]
    p_holm = holm_where_tested([r.p_value for r in results]).tolist() if args.holm else None
    print(HEADER.format(metric=METRIC_LABELS[args.metric]))
    print(format_comparisons(results, p_holm))
    if p_holm is not None:
        print(f"p: two-sided paired t-test; p Holm: Holm's step-down adjustment over the "
              f"{sum(not math.isnan(p) for p in p_holm)} comparisons above with a p-value")
    for line in notes(results) + skipped:
        print(line)
    if args.out:
        rows = [{"metric": args.metric, **r.as_row()} for r in results]
        if p_holm is not None:
            rows = [{**row, "p": r.p_value, "p_holm": adjusted} for row, r, adjusted in zip(rows, results, p_holm)]
        write_csv(args.out, COLUMNS + (["p", "p_holm"] if p_holm is not None else []), rows)
        print(f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_guarded(lambda: run(args), "nothing was written")


if __name__ == "__main__":
    sys.exit(main())
