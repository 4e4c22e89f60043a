"""Plot learning curves from the active loop's CSVs (`python -m runners.plot --help`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from acquire.errors import UserError
from acquire.files import write_csv
from analysis.curves import (BANDS, METRIC_LABELS, dataset_name, final_table, format_table, plot_curves, protocol_text,
                              read_configs, read_curves, table_at)
from runners.cli import int_list, numbers_may_be_negative

DESCRIPTION = """\
Plot the active loop's learning curves, as in Figure 2 of Nielsen & Okoniewski: the metric
(in percent) against the training-set size, one line per (data source, acquisition function)
with the mean over repeats and a shaded band (--band: +/- 1 population std, or the 95%
t-interval of the mean), its meaning and the number of repeats written in the legend (outside
the axes). Colour follows the source set (the acquisition function when there is one source
set) and line style the acquisition function. Writes curves_plot.png beside the first CSV
unless --out says otherwise; a run's own curves.png is overwritten only with --force.
The left panel shows every round; a right panel zooms on the last --last-rounds sizes when
there are more rounds than that. The CSVs are concatenated, so arms run separately can share
a figure (a marker per run). The title names the data set (--dataset, else config.json's
"dataset" or "data_dir") and, from the config.json beside each CSV, the protocol. Prints each
arm's mean +/- std (population std over repeats) at its largest training-set size, or at the
sizes --at names, with the range of generated images in the training set over repeats; --table
also writes that table as CSV (with the 95% t-interval's half-width).
"""

EPILOG = """\
example:
  python -m runners.plot runs/raw/rounds.csv runs/pggan/rounds.csv --out figures/curves.png \\
      --dataset MNIST --title "raw and raw+pggan" --band ci95 \\
      --at 100,200,300,400,500 --table figures/means.csv
"""


PERCENT_COLUMNS = ["mean", "std", "ci95"]
TABLE_COLUMNS = ["run", "sources", "acquisition", "train_size", *PERCENT_COLUMNS, "n_repeats"]
GENERATED_COLUMNS = ["generated_min", "generated_max"]
DEFAULT_OUT = "curves_plot.png"
RUN_FIGURE = "curves.png"  # what the active loop writes beside its CSV


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runners.plot",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("csv", nargs="+", help="CSV(s) written by the active loop (one row per arm and round)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output image; the format follows the suffix (.png, .pdf, .svg) (default: "
                             f"{DEFAULT_OUT} beside the first CSV). The curves.png a run wrote beside its CSV is "
                             "not overwritten unless --force is given")
    parser.add_argument("--force", action="store_true", help="overwrite a run's own curves.png given as --out")
    parser.add_argument("--metric", choices=sorted(METRIC_LABELS), default="balanced_accuracy",
                        help="column to plot (default: %(default)s)")
    parser.add_argument("--last-rounds", type=int, default=20,
                        help="training-set sizes shown in the zoomed right panel, drawn only when there are more "
                             "(default: %(default)s)")
    parser.add_argument("--max-train-size", type=int, default=None,
                        help="drop rows above this training-set size, to compare runs of different lengths at a "
                             "common size (default: keep all)")
    parser.add_argument("--title", default=None, help="figure title, after the data set's name (default: none)")
    parser.add_argument("--dataset", default=None,
                        help="data set's name for the title (default: config.json's \"dataset\", else the basename "
                             "of its \"data_dir\", else none)")
    parser.add_argument("--at", type=int_list, default=None, metavar="SIZE[,SIZE...]",
                        help="print the table at these training-set sizes (default: each arm's largest)")
    parser.add_argument("--table", type=Path, default=None, metavar="CSV",
                        help="also write the printed table here: mean, std (population), ci95 (half-width of the "
                             "95%% t-interval) in percent, n_repeats and, for pools with generated images, "
                             "generated_min and generated_max")
    parser.add_argument("--band", choices=sorted(BANDS), default="std",
                        help="shaded band: std, mean +/- 1 population std; ci95, the 95%% t-interval of the mean "
                             "(default: %(default)s)")
    return numbers_may_be_negative(parser)


def _dataset(configs: dict[str, dict]) -> str | None:
    """The data set(s) the runs' configs name, or None."""
    names = sorted({name for name in map(dataset_name, configs.values()) if name})
    return " / ".join(names) or None


def _protocol(configs: dict[str, dict], runs: list[str], max_train_size: int | None) -> str | None:
    """One protocol line when every run has the same, else one per run with a config ("run: ..."); the cut."""
    texts = {run: protocol_text(configs.get(run, {})) for run in sorted(runs)}
    distinct = set(texts.values())
    lines = list(distinct - {""}) if len(distinct) == 1 else [f"{run}: {text}" for run, text in texts.items() if text]
    if max_train_size is not None:
        lines.append(f"shown up to train_size {max_train_size}")
    return "\n".join(lines) or None


def output_path(csvs: list[str], out: Path | None, force: bool) -> Path:
    """--out, else DEFAULT_OUT beside the first CSV; a run's own curves.png only with --force."""
    out = out or Path(csvs[0]).parent / DEFAULT_OUT
    if not force and out.name == RUN_FIGURE and out.resolve().parent in {Path(c).resolve().parent for c in csvs}:
        raise UserError(f"--out {out} is the figure the run wrote; give another --out, or --force to overwrite it")
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.out = output_path(args.csv, args.out, args.force)
        df = read_curves(args.csv, metric=args.metric)
        if args.max_train_size is not None:
            df = df[df["train_size"] <= args.max_train_size]
            if df.empty:
                raise UserError(f"no rows with train_size <= {args.max_train_size}")
        table = final_table(df, args.metric) if args.at is None else table_at(df, args.at, args.metric)
        configs = read_configs(args.csv)
        out = plot_curves(df, args.out, metric=args.metric, last_rounds=args.last_rounds, title=args.title,
                          band=args.band, dataset=args.dataset or _dataset(configs),
                          protocol=_protocol(configs, list(df["run"].unique()), args.max_train_size))
        if args.table:
            write_csv(args.table, TABLE_COLUMNS + [c for c in GENERATED_COLUMNS if c in table.columns],
                      table.assign(**{c: 100 * table[c] for c in PERCENT_COLUMNS}).to_dict("records"))
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(table, args.metric))
    print(f"wrote {out}" + (f" and {args.table}" if args.table else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
