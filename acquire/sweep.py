"""Resumable sweeps: a list of independent cells (e.g. method x training-set size x repeat), one CSV row each.

The baselines (runners.dada_lowdata, runners.ratio_sweep) are tables, not learning curves: every cell trains
one classifier from scratch and measures it once. A `Sweep` owns the output directory the way the active loop
does: config.json (refuses to resume with a different configuration), a lock against a second process,
and results.csv, appended and flushed after every cell. A killed sweep rerun with --resume skips the cells
already in the CSV; every cell derives its randomness from its own key, so the rows match an uninterrupted run.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable
from pathlib import Path

from tqdm.auto import tqdm

from acquire.files import append_csv_row, write_csv, write_json
from acquire.rundir import RunDirectoryError, lock_run_dir

RESULTS_CSV = "results.csv"


class Sweep:
    """Run `cells` (dicts of key values) through `measure(cell) -> dict of result columns` into out_dir/results.csv.

    columns: the CSV header, key columns first; key_columns: the columns that identify a cell.
    config: JSON-serialisable settings of the whole sweep, saved in config.json and checked on --resume;
    only the names in `resumable` may differ (e.g. adding repeats or sizes).
    """

    def __init__(self, out_dir: Path, config: dict, columns: list[str], key_columns: list[str], resume: bool,
                 resumable: Iterable[str] = ()):
        missing = [k for k in key_columns if k not in columns]
        if missing:
            raise ValueError(f"key column(s) {missing} are not among the CSV columns")
        self.out_dir, self.columns, self.key_columns = Path(out_dir), list(columns), list(key_columns)
        self.csv_path = self.out_dir / RESULTS_CSV
        self._lock = lock_run_dir(self.out_dir)
        try:
            self._prepare(config, resume, set(resumable))
            self.rows = self._read_rows() if resume else []
            write_csv(self.csv_path, self.columns, self.rows)  # drops a half-written last line of a killed run
        except BaseException:
            self._lock.close()
            raise

    def _prepare(self, config: dict, resume: bool, resumable: set[str]) -> None:
        config_path = self.out_dir / "config.json"
        config = json.loads(json.dumps(config))  # the form it takes on disk (tuples -> lists)
        if config_path.exists():
            if not resume:
                raise RunDirectoryError(f"{self.out_dir} already holds a sweep (config.json); pass --resume to "
                                        "continue it, or choose another --out")
            saved = json.loads(config_path.read_text())
            changed = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k) and k not in resumable)
            if changed:
                details = "; ".join(f"{k}: saved {saved.get(k)!r}, now {config.get(k)!r}" for k in changed)
                raise RunDirectoryError(f"cannot resume {self.out_dir} with a different configuration ({details}). "
                                        f"Use the saved settings (only {sorted(resumable)} may change) or another --out")
        elif resume and self.csv_path.exists():
            raise RunDirectoryError(f"{self.out_dir} has {RESULTS_CSV} but no config.json: not a gan-acquire sweep")
        write_json(config_path, config)

    def _read_rows(self) -> list[dict]:
        if not self.csv_path.exists():
            return []
        with open(self.csv_path, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames != self.columns:
                raise RunDirectoryError(f"{self.csv_path} has columns {reader.fieldnames}, expected {self.columns}; "
                                        "it was written by another version or runner: choose another --out")
            return [row for row in reader if all(row.get(c) not in (None, "") for c in self.key_columns)
                    and None not in row.values()]

    def key(self, cell: dict) -> tuple[str, ...]:
        """The cell's identity as the CSV stores it (strings)."""
        return tuple(str(cell[k]) for k in self.key_columns)

    def pending(self, cells: list[dict]) -> list[dict]:
        """The cells not yet in the CSV, in order."""
        done = {tuple(row[k] for k in self.key_columns) for row in self.rows}
        return [cell for cell in cells if self.key(cell) not in done]

    def run(self, cells: list[dict], measure: Callable[[dict], dict], progress: bool = True,
            describe: Callable[[dict], str] = lambda cell: " ".join(f"{k}={v}" for k, v in cell.items())) -> Path:
        """Measure every pending cell and append its row (key columns + what `measure` returns); returns the CSV."""
        todo = self.pending(cells)
        with tqdm(todo, disable=not progress, dynamic_ncols=True, unit="cell") as bar:
            for cell in bar:
                bar.set_description(describe(cell))
                row = {**cell, **measure(cell)}
                unknown = set(row) - set(self.columns)
                if unknown:
                    raise ValueError(f"measure returned column(s) {sorted(unknown)} not in the sweep's columns")
                append_csv_row(self.csv_path, self.columns, row)
                self.rows.append({k: str(v) for k, v in row.items()})
        return self.csv_path

    def close(self) -> None:
        self._lock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
