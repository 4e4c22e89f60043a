"""The low-data acquisition study's report (`python -m runners.lowdata_report --help`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from acquire.data import load_split
from acquire.errors import UserError
from analysis.acquired_images import plot_acquired_images
from runners.cli import run_guarded
from studies.lowdata_acquire.acquired import near_copy_shares
from studies.lowdata_acquire.comparisons import comparison_table, near_copy_table, repeat_endpoints
from studies.lowdata_acquire.figures import plot_differences
from studies.lowdata_acquire.protocol import AUGMENTED, PLAIN
from studies.lowdata_acquire.study import read_study, repeat_pool

DESCRIPTION = """\
Reads cells written by `python -m runners.lowdata_acquire` and writes, to --out: comparisons.csv (every
pre-registered comparison: A - B in points paired by repeat, 95% t-interval, paired t-test p and Holm-adjusted
p over each endpoint's list), near_copy.csv (Q4: each acquisition's share of near-copies of L minus random's),
acquired.csv (per arm and repeat: near-copy share, median distance to L, the gate's share), generators.csv (each
repeat's generator: quality and memorisation), endpoints.csv (per arm and repeat), one figure per data set,
differences_<dataset>.png (a panel per n: every arm minus 'none' with its interval), and per cell
acquired_<cell>_<run>.png (the images repeat 0's arms acquired, round by round). Only repeats whose two
runs have reached the last round are read.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m runners.lowdata_report", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cells", nargs="+", type=Path, help="cell directories (each holds study.json)")
    p.add_argument("--data-root", type=Path, default=Path("../shared/data"),
                   help="where each cell's data set lives, as <root>/<dataset> (default: %(default)s)")
    p.add_argument("--out", type=Path, required=True, help="directory for the tables and figures")
    return p


def cell_name(cell: Path) -> tuple[str, str, int]:
    """(name, dataset, n) of a cell from its study.json."""
    config, saved = read_study(cell)
    return f"{saved['dataset']}_n{config.per_class}", saved["dataset"], config.per_class


def draw_first_repeat(cell: Path, name: str, train, out: Path) -> None:
    """acquired_<cell>_<run>.png: the images the arms of repeat 0 acquired in every round, for both runs."""
    if not (cell / "r0" / "gan").is_dir():
        return
    study, _ = read_study(cell)
    pool = repeat_pool(study, train, cell, 0)
    for run in (PLAIN, AUGMENTED):
        if (cell / "r0" / run / "state").is_dir():
            plot_acquired_images(pool, cell / "r0" / run, out / f"acquired_{name}_{run}.png", repeat=0,
                                 rounds=study.rounds, per_round=10, title=f"{name}, {run} run")


def run(args: argparse.Namespace) -> int:
    names = {cell: cell_name(cell) for cell in args.cells}
    if len({name for name, _, _ in names.values()}) != len(names):
        raise UserError("two cells have the same data set and n; give each (data set, n) once")
    cells = {name: cell for cell, (name, _, _) in names.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    comparison_table(cells).to_csv(args.out / "comparisons.csv", index=False)
    endpoints = {name: repeat_endpoints(cell) for name, cell in cells.items()}
    pd.concat([frame.assign(cell=name) for name, frame in endpoints.items()]).to_csv(args.out / "endpoints.csv",
                                                                                   index=False)
    shares, generators, trains = {}, [], {}
    for cell, (name, dataset, _) in names.items():
        if dataset not in trains:
            trains[dataset] = load_split("train", args.data_root / dataset)
        shares[name] = near_copy_shares(cell, trains[dataset])
        for path in sorted(cell.glob("r*/generator.json")):
            generators.append({"cell": name, **json.loads(path.read_text())})
        draw_first_repeat(cell, name, trains[dataset], args.out)
    near_copy_table(shares).to_csv(args.out / "near_copy.csv", index=False)
    pd.concat([frame.assign(cell=name) for name, frame in shares.items()]).to_csv(args.out / "acquired.csv",
                                                                                index=False)
    pd.DataFrame(generators).to_csv(args.out / "generators.csv", index=False)
    for dataset in sorted({dataset for _, dataset, _ in names.values()}):
        panels = {f"n = {n}": endpoints[name] for name, d, n in sorted(names.values(), key=lambda v: v[2])
                  if d == dataset}
        plot_differences(panels, args.out / f"differences_{dataset}.png",
                         f"{dataset}: each arm's balanced accuracy after the last round minus L alone ('none')\n"
                         f"generated: a small_dcgan trained on L alone; classical: rotation, shift, zoom")
    table = pd.read_csv(args.out / "comparisons.csv")
    primary = table[table["endpoint"] == "last"]
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(primary[["cell", "a", "b", "n", "mean", "low", "high", "p_holm"]].round(3).to_string(index=False))
    print(f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_guarded(lambda: run(args), "nothing is lost: the report reads the cells and can be rerun")


if __name__ == "__main__":
    sys.exit(main())
