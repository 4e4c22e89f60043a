"""Resumable sweeps: a list of independent cells (e.g. method x training-set size x repeat), one CSV row each.

A study's baselines (its cells, e.g. those of studies.ratio_sweep) are tables, not learning curves: every cell
trains one classifier from scratch and measures it once. `SweepSettings` turns a command line's flags into its config: for a new sweep the defaults, preset
and flags; for --resume the saved config.json, which supplies every setting (flags given with --resume must
change nothing, or be among the resumable ones). A `Sweep` owns the output
directory the way the active loop does: a lock against a second process, config.json, and results.csv,
appended and flushed after every cell and never rewritten. A killed sweep rerun with --resume skips the
cells already in the CSV (a torn last line is dropped and its cell rerun); every cell derives its randomness
from its own key, so the rows match an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from acquire.data import ImageSet
from acquire.errors import UserError
from acquire.files import append_csv_row, read_csv_rows, write_json
from acquire.digests import image_set_digest
from acquire.rundir import CONFIG_FILE, RunDir, RunDirectoryError, check_out_dir, config_changes, read_json

RESULTS_CSV = "results.csv"
KIND = "sweep"
ADOPT_FLAG = "--record-data-digests"  # a runner's flag for Sweep(adopt_data=True)
DATA_DIGESTS = "data_digests"  # config.json's record of the data a sweep used: name -> acquire.digests.image_set_digest


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


@dataclass(frozen=True)
class SweepSettings:
    """How a runner's flags map to the config.json of its sweeps.

    defaults: every flag-set field and its default; presets: name -> field values ("paper" is the default);
    resumable: fields a --resume may change; derived: keys config.json records besides the fields (e.g. a
    weights digest), never set by a flag but checked on --resume; optional: fields that older config.json files
    lack: a resumable one takes the flag given, else the default; any other its default, the value those sweeps
    ran with (`older_defaults`, e.g. precision fp32), which a --resume must keep.
    """

    defaults: dict[str, Any]
    presets: dict[str, dict[str, Any]]
    resumable: frozenset[str] = frozenset()
    derived: frozenset[str] = frozenset()
    optional: frozenset[str] = frozenset()

    @property
    def older_defaults(self) -> dict[str, Any]:
        """The optional fields that are not resumable, with their defaults: what a config.json without them ran with."""
        return {name: self.defaults[name] for name in self.optional - self.resumable}

    def open_sweep(self, out_dir: Path, config: dict, columns: list[str], key_columns: list[str], resume: bool,
                   train: ImageSet, test: ImageSet, adopt_data: bool = False) -> Sweep:
        """The Sweep of a runner's cells in out_dir, fingerprinting its training and test sets (image_set_digest) so
        that a --resume on other data is refused (adopt_data: see Sweep)."""
        digests = {"train": image_set_digest(train), "test": image_set_digest(test)}
        return Sweep(out_dir, config, columns, key_columns, resume, self.resumable, self.older_defaults, digests,
                     adopt_data)

    def given(self, args) -> dict[str, Any]:
        """The fields whose flags were given explicitly (argparse leaves the others None)."""
        return {name: getattr(args, name) for name in self.defaults if getattr(args, name) is not None}

    def resolve(self, args, build: Callable[[dict], Any]) -> tuple[Any, dict | None]:
        """(config, saved config.json or None): build(values) of the defaults, the preset and the flags given,
        or with args.resume of the saved values, the preset's non-resumable ones if --preset is given, and
        the flags given. build raises ValueError for bad values; a saved config.json with unknown keys,
        missing fields or bad values is refused naming the file. The saved config is returned with the
        older_defaults it lacks; `check_resume` then compares."""
        if not args.resume:
            return build({**self.defaults, **self.presets[args.preset or "paper"], **self.given(args)}), None
        path = Path(args.out) / CONFIG_FILE
        saved = {**self.older_defaults, **read_json(path)}
        unknown = sorted(set(saved) - set(self.defaults) - self.derived - {DATA_DIGESTS})
        missing = sorted((set(self.defaults) | self.derived) - self.optional - set(saved))
        if unknown or missing:
            found = []
            if unknown:
                found.append(f"unknown key(s) {', '.join(unknown)}")
            if missing:
                found.append(f"no {', '.join(missing)}")
            raise RunDirectoryError(f"{path} has {' and '.join(found)}: it was written by another program or version, "
                                    "or edited; restore it from version control, or choose another --out")
        values = {**self.defaults, **{name: saved[name] for name in self.defaults if name in saved}}
        try:
            build(values)
        except (TypeError, UserError) as error:
            raise RunDirectoryError(f"{path} holds invalid settings ({error}); restore it from version control, "
                                    "or choose another --out") from None
        if args.preset:
            preset = {**self.defaults, **self.presets[args.preset]}
            values.update({name: value for name, value in preset.items() if name not in self.resumable})
        return build({**values, **self.given(args)}), saved

    def check_resume(self, args, saved: dict, now: dict) -> None:
        """Refuse a --resume whose config (as config.json records it) differs from the saved one outside the
        resumable fields, naming the flags that made the difference."""
        now = json.loads(json.dumps(now))
        saved = {name: value for name, value in saved.items() if name != DATA_DIGESTS}  # Sweep checks them
        changes = config_changes(saved, now, self.resumable)
        if not changes:
            return
        changed = {name for name in set(saved) | set(now)
                   if name not in self.resumable and saved.get(name) != now.get(name)}
        given = self.given(args)
        flags = [_flag(name) for name in sorted(changed & set(given))]
        if args.preset and changed & (set(self.defaults) - set(given)):
            flags.append(f"--preset {args.preset}")
        where = f"cannot resume {args.out} with a different configuration ({changes})"
        if flags:
            may_change = ", ".join(_flag(name) for name in sorted(self.resumable)) or "nothing"
            raise RunDirectoryError(f"{where}: drop {', '.join(flags)}; --resume alone continues with the settings "
                                    f"saved in {Path(args.out) / CONFIG_FILE} (only {may_change} may change)")
        raise RunDirectoryError(f"{where}: the program or its inputs changed since the sweep started (no flag "
                                "sets these); restore them, or start a new sweep with another --out")


class Sweep:
    """Run `cells` (dicts of key values) through `measure(cell) -> dict of result columns` into out_dir/results.csv.

    columns: the CSV header, key columns first; key_columns: the columns that identify a cell.
    config: JSON-serialisable settings of the whole sweep, saved in config.json; with resume it must equal the
    saved one except for the names in `resumable` (e.g. adding repeats or sizes), which are then saved; a saved
    config.json lacking a setting of `older_defaults` (SweepSettings.older_defaults) is taken to hold its default.
    Opening locks the directory and checks it (a fresh sweep needs an empty one, --resume a saved sweep and
    a results.csv with the right header) before it writes anything.
    data_digests: name -> digest of each data set the cells use (e.g. acquire.digests.image_set_digest of the
    training and test sets), saved as config.json's "data_digests"; a --resume on other data is refused, and so is
    one of a sweep whose config.json lacks them unless adopt_data (ADOPT_FLAG: a sweep saved before they were
    recorded, whose data the user vouches for, gets them recorded).
    """

    def __init__(self, out_dir: Path, config: dict, columns: list[str], key_columns: list[str], resume: bool,
                 resumable: Collection[str] = (), older_defaults: Mapping[str, Any] | None = None,
                 data_digests: Mapping[str, str] | None = None, adopt_data: bool = False):
        missing = [k for k in key_columns if k not in columns]
        if missing:
            raise UserError(f"key column(s) {missing} are not among the CSV columns")
        self.out_dir, self.columns, self.key_columns = Path(out_dir), list(columns), list(key_columns)
        self.csv_path = self.out_dir / RESULTS_CSV
        config = json.loads(json.dumps({**config, **({DATA_DIGESTS: dict(data_digests)} if data_digests else {})}))
        check_out_dir(self.out_dir, resume, KIND)
        self._run_dir = RunDir(self.out_dir)
        try:
            check_out_dir(self.out_dir, resume, KIND)  # again, now that this process owns the directory
            saved = {**(older_defaults or {}), **read_json(self.out_dir / CONFIG_FILE)} if resume else None
            changes = config_changes(saved, config, {*resumable, DATA_DIGESTS}) if resume else ""
            if resume and data_digests and DATA_DIGESTS not in saved and not adopt_data:
                raise RunDirectoryError(f"cannot resume {self.out_dir}: its {CONFIG_FILE} records no {DATA_DIGESTS}, "
                                        "so the data it ran on cannot be checked; restore the file (e.g. git "
                                        f"checkout), or, for a sweep saved before they were recorded (2026-12), add "
                                        f"{ADOPT_FLAG} once with the data it ran on")
            if resume and DATA_DIGESTS in saved and not saved[DATA_DIGESTS]:
                raise RunDirectoryError(f"cannot resume {self.out_dir}: its {CONFIG_FILE} has an empty {DATA_DIGESTS}, "
                                        "so the data it ran on cannot be checked; restore the file (e.g. git "
                                        "checkout), or use another --out")
            if resume and DATA_DIGESTS in saved and saved[DATA_DIGESTS] != config.get(DATA_DIGESTS):
                other = sorted(name for name in {**saved[DATA_DIGESTS], **config.get(DATA_DIGESTS, {})}
                               if saved[DATA_DIGESTS].get(name) != config.get(DATA_DIGESTS, {}).get(name))
                raise RunDirectoryError(f"cannot resume {self.out_dir} on other data: {', '.join(other)} differ "
                                        "from the data it ran on (sha256 in its config.json); give the data "
                                        "directory it used, or another --out")
            if changes:
                raise RunDirectoryError(f"cannot resume {self.out_dir} with a different configuration ({changes}); "
                                        f"only {sorted(resumable)} may change: use the saved settings or another --out")
            self.rows = read_csv_rows(self.csv_path, self.columns)
            self._drop_torn_line()
            if config != saved:
                write_json(self.out_dir / CONFIG_FILE, config)
        except BaseException:
            self.close()
            raise

    def _drop_torn_line(self) -> None:
        """Cut the last line a kill left without its newline (read_csv_rows skipped it), so that the next row
        starts a line of its own; a file without a whole header line is removed (the next row writes one)."""
        if not self.csv_path.exists():
            return
        data = self.csv_path.read_bytes()
        whole = data.rfind(b"\n") + 1
        if whole == 0:
            self.csv_path.unlink()
        elif whole < len(data):
            os.truncate(self.csv_path, whole)

    def key(self, cell: dict) -> tuple[str, ...]:
        """The cell's identity as the CSV stores it (strings)."""
        return tuple(str(cell[k]) for k in self.key_columns)

    def pending(self, cells: list[dict]) -> list[dict]:
        """The cells not yet in the CSV, in order."""
        done = {tuple(row[k] for k in self.key_columns) for row in self.rows}
        return [cell for cell in cells if self.key(cell) not in done]

    def announce(self, cells: list[dict], device) -> None:
        """Say on stderr how many of the cells are left to run, where, and into which CSV."""
        print(f"{len(self.pending(cells))} of {len(cells)} cells to run on {device}; writing {self.csv_path}",
              file=sys.stderr)

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
                    raise UserError(f"measure returned column(s) {sorted(unknown)} not in the sweep's columns")
                append_csv_row(self.csv_path, self.columns, row)
                self.rows.append({k: str(v) for k, v in row.items()})
        return self.csv_path

    def close(self) -> None:
        self._run_dir.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
