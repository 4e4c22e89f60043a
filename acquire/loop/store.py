"""A run directory: its locks, every file in it, and every check a resume makes before it writes anything.

  config.json        every setting, the seeding scheme and the fingerprints of the pools and the test set
  rounds.csv         one row per arm and round, appended and flushed (a view of the states, rebuilt on resume)
  state/<arm>.json   the arm's record, written atomically after every round: per round the acquired candidates
                     (pool index, label, source, score, the images' digest) and the row; the digest of the
                     classifier it holds
  state/models/      the classifiers themselves (float32, git-ignored): a cache. Without it a resume re-derives each
                     arm's classifier by retraining its last round (same weights on the same hardware and threads)
  state/<arm>.lock   held while a process advances that arm (one at a time in process; a worker holds its arms')
The owner (the run opened normally) holds .lock and writes config.json and rounds.csv; workers write only their
arms' states (acquire.ray_executor).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from acquire.files import append_csv_row, mark_as_cache, read_csv_rows, write_csv, write_json, write_tensors
from acquire.errors import UserError
from acquire.loop.arm import ArmState
from acquire.loop.config import CSV_COLUMNS, RESUMABLE_CHANGES, TIMING_COLUMNS, Arm, ExperimentConfig
from acquire.data import ImageSet
from acquire.digests import image_set_digest, model_digest
from acquire.rundir import CONFIG_FILE, RunDir, RunDirectoryError, config_changes, read_json

STATE_FORMAT = 2
MEASURED = {"pool_fingerprint", "test_fingerprint", "sources_provenance"}  # checked on their own, with their words


class RunStore:
    """The files of the run in `out_dir`. An owner locks the directory when opened; a worker (is_worker) locks the
    arms it advances (lock_arms). close() releases every lock."""

    def __init__(self, out_dir: Path, is_worker: bool, columns: list[str] = CSV_COLUMNS):
        self.out_dir, self.is_worker, self.columns = Path(out_dir), is_worker, columns
        self.csv_path = self.out_dir / "rounds.csv"
        self._locks = [] if is_worker else [RunDir(self.out_dir)]

    def close(self) -> None:
        for lock in self._locks:
            lock.close()

    def _arm_lock(self, arm: Arm) -> RunDir:
        return RunDir(self.out_dir, f"state/{arm.slug}.lock", sweep=False,
                      holder=f"another process is advancing arm {arm}")

    def lock_arms(self, arms: list[Arm]) -> None:
        """(A worker.) Hold the locks of its arms until close(): no two processes ever advance one arm."""
        self._locks += [self._arm_lock(arm) for arm in arms]

    @contextmanager
    def advancing(self, arm: Arm) -> Iterator[None]:
        """(The owner.) Hold the arm's lock while it advances, so one lock file is open at a time however many arms."""
        if self.is_worker:
            yield
            return
        with self._arm_lock(arm):
            yield

    # ---- paths and writing -------------------------------------------------------------------------------------
    def state_path(self, arm: Arm) -> Path:
        return self.out_dir / "state" / f"{arm.slug}.json"

    def model_path(self, arm: Arm) -> Path:
        return self.out_dir / "state" / "models" / f"{arm.slug}.pt"

    def write_start(self, config: ExperimentConfig, arms: list[ArmState]) -> None:
        """config.json (every setting) and rounds.csv rebuilt from the states."""
        write_json(self.out_dir / CONFIG_FILE, config.to_dict())
        write_csv(self.csv_path, self.columns, rows_in_order(arms))
        mark_as_cache(self.out_dir / "state" / "models", "runs re-derive these classifiers when absent")

    def save(self, state: ArmState, arms: list[ArmState]) -> None:
        """The classifier (local cache), then the arm's state; rounds.csv gets the row last: appended, or (where arms
        resumed at different rounds would put it out of a single process's order) rounds.csv rewritten from `arms`."""
        write_tensors(self.model_path(state.arm), {k: v.detach().cpu() for k, v in state.model.state_dict().items()})
        write_json(self.state_path(state.arm), {
            "format": STATE_FORMAT, "arm": dataclasses.asdict(state.arm), "rounds": state.record,
            "rows": state.rows, "model_sha256": model_digest(state.model)})
        if self.is_worker:
            return
        rows = rows_in_order(arms)
        if rows[-1] is state.rows[-1]:
            append_csv_row(self.csv_path, self.columns, state.rows[-1])
        else:
            write_csv(self.csv_path, self.columns, rows)

    def rebuild_csv(self, arms: list[ArmState]) -> int:
        """(The owner, while workers advance arms.) Re-read every arm's rows from its state file and rewrite
        rounds.csv from them, in a single process's order; returns the arm-rounds done."""
        for state in arms:
            path = self.state_path(state.arm)
            if path.exists():
                state.rows = read_json(path)["rows"]
        write_csv(self.csv_path, self.columns, rows_in_order(arms))
        return sum(state.rounds_done for state in arms)

    def load_model(self, state: ArmState, model: nn.Module) -> bool:
        """Load the cached classifier of the arm into `model`; False when absent, damaged or not the saved one."""
        path = self.model_path(state.arm)
        if not path.exists():
            return False
        try:
            model.load_state_dict(torch.load(path, map_location=next(model.parameters()).device, weights_only=True))
        except Exception:  # a damaged cache is only a cache: the caller re-derives it
            return False
        return model_digest(model) == state.model_sha256

    # ---- resume checks (read only) ----------------------------------------------------------------------------
    def check_resume(self, config: ExperimentConfig, resumable_provenance: frozenset[str]) -> None:
        """Check config.json against the run's `config` (with its measured fingerprints): the pools, the test set
        (a config that predates its fingerprint records it now), the sources' provenance and every setting."""
        path = self.out_dir / CONFIG_FILE
        raw = read_json(path)
        saved = ExperimentConfig.load(path, trusted=config.custom_acquisitions)
        where = f"cannot resume {self.out_dir}"
        for key in ("pool_fingerprint", "test_fingerprint"):
            if key in raw and not raw[key]:
                raise RunDirectoryError(f"{where}: its {CONFIG_FILE} has an empty {key}, so the data it ran on cannot "
                                        "be checked; restore the file (e.g. git checkout), or use another --out")
        if saved.pool_fingerprint and saved.pool_fingerprint != config.pool_fingerprint:
            raise RunDirectoryError(f"{where}: the candidate pool differs from the one it ran on "
                                    f"({pool_differences(saved.pool_fingerprint, config.pool_fingerprint)}). Use the "
                                    "same data and sources (a generator's samples may come from a local cache, e.g. "
                                    "gan_dir/pools/: delete it to sample them again), or another --out")
        if "pool_fingerprint" not in raw and (self.out_dir / "state").is_dir():
            raise RunDirectoryError(f"{where}: its {CONFIG_FILE} has no pool_fingerprint, which every run with saved "
                                    "state records, so the data it ran on cannot be checked; restore the file (e.g. "
                                    "git checkout), or use another --out")
        if saved.test_fingerprint and saved.test_fingerprint != config.test_fingerprint:
            raise RunDirectoryError(f"{where}: the test set differs from the one it ran on ({config.test_fingerprint}"
                                    f", saved {saved.test_fingerprint}); use the same test data, or another --out")
        changed = config_changes(saved.sources_provenance, config.sources_provenance, resumable_provenance)
        if changed:
            raise RunDirectoryError(f"{where}: its source sets were built differently ({changed}); use the same "
                                    "sources (generator weights, samples), or another --out")
        changes = config_changes(saved.to_dict(), config.to_dict(), RESUMABLE_CHANGES | MEASURED)
        if changes:
            raise RunDirectoryError(f"{where} with a different configuration ({changes}). Use the saved settings "
                                    f"(only {sorted(RESUMABLE_CHANGES)} may change) or another --out")

    def load_states(self, arms: list[ArmState], config: ExperimentConfig) -> None:
        """Check every arm's state against its pool, rounds.csv and the run's seed and initial images, and adopt
        them; writes nothing."""
        csv_rows = self._read_csv_rows()
        for state in arms:
            self._load_state(state, csv_rows.pop(str(state.arm), []))
            self._check_against_config(state, config)
        if csv_rows:
            raise RunDirectoryError(f"{self.csv_path} holds rows of arms that config.json does not list "
                                    f"({', '.join(sorted(csv_rows))}); restore the matching config.json, or use "
                                    "another --out")
        done, rounds = max(state.rounds_done for state in arms), config.rounds
        if rounds < done:
            raise RunDirectoryError(f"--rounds {rounds} is below the {done} rounds already done in {self.out_dir}; "
                                    f"rows are never deleted: give --rounds {done} or more (and plot a shorter "
                                    "curve from the rows instead)")

    def _read_csv_rows(self) -> dict[str, list[dict]]:
        """rounds.csv's complete rows by arm name ('sources/acquisition/repeat')."""
        try:
            rows = read_csv_rows(self.csv_path, self.columns)
        except UserError as error:
            raise RunDirectoryError(str(error)) from None
        by_arm: dict[str, list[dict]] = {}
        for row in rows:
            by_arm.setdefault(f"{row['sources']}/{row['acquisition']}/{row['repeat']}", []).append(row)
        return by_arm

    def _load_state(self, state: ArmState, csv_rows: list[dict]) -> None:
        """Adopt the arm's saved state after checking it against the pool and rounds.csv's rows of the arm."""
        path = self.state_path(state.arm)
        if not path.exists():
            if csv_rows:
                legacy = not (self.out_dir / "state").exists()
                raise RunDirectoryError(
                    f"cannot resume {self.out_dir}: rounds.csv holds {len(csv_rows)} row(s) of arm {state.arm} but "
                    f"{path} is missing" + (
                        " (the run was saved before run state was kept in its directory, so it cannot be "
                        "continued; its rows are untouched). Start a new run with another --out"
                        if legacy else "; restore it (e.g. git checkout), or start a new run with another --out"))
            return
        saved = read_json(path)
        try:
            rows, record = parse_state(saved, state.arm, len(state.pool), self.columns)
            for entry in record:
                state.pool.acquire(torch.tensor(entry["index"], dtype=torch.long))
        except (KeyError, TypeError, ValueError) as error:
            raise RunDirectoryError(f"{path} is damaged or belongs to another run ({error}); restore it (e.g. git "
                                    "checkout), or start a new run with another --out") from None
        labels_N = state.pool.labels_N.cpu()
        if any(entry["label"] != labels_N[entry["index"]].tolist() for entry in record):
            raise RunDirectoryError(f"{path} records labels that the pool's candidates do not have: the pool differs "
                                    "from the run's; resume with the same data, or use another --out")
        if len({"images_sha256" in entry for entry in record}) > 1:
            raise RunDirectoryError(f"{path} records the images' sha256 for some rounds but not others (the state was "
                                    "edited); restore it (e.g. git checkout), or use another --out")
        for entry in record:  # states saved before the images' digests were recorded gain them on their next save
            digest = state.pool.images_digest(torch.tensor(entry["index"], dtype=torch.long))
            if entry.setdefault("images_sha256", digest) != digest:
                raise RunDirectoryError(f"{path} records candidates whose images differ from the pool's at those "
                                        "indices (the state was edited, or the pool differs); restore it (e.g. git "
                                        "checkout), or use another --out")
        if len(csv_rows) > len(rows) or any(not same_row(a, b, self.columns) for a, b in zip(csv_rows, rows)):
            raise RunDirectoryError(f"{self.csv_path} and {path} disagree about arm {state.arm} (the CSV has rows the "
                                    "state lacks, or other values); restore both from the same commit, or use another "
                                    "--out")
        state.rows, state.record, state.model = rows, record, None
        state.model_sha256 = saved["model_sha256"]

    def _check_against_config(self, state: ArmState, config: ExperimentConfig) -> None:
        """The state's rows were made with the run's seed and initial images (a config.json edited after the run
        started would otherwise describe rounds it did not make)."""
        path, rows = self.state_path(state.arm), state.rows
        seeds = sorted({row["seed"] for row in rows if "seed" in row} - {config.seed})
        if seeds:
            raise RunDirectoryError(f"{path} holds rows made with seed {seeds[0]}, but {CONFIG_FILE} says seed "
                                    f"{config.seed} (was config.json edited?); restore it, or use another --out")
        starts_with_initial = bool(rows) and rows[0]["round"] == 0
        if rows and (starts_with_initial != (config.initial > 0)
                     or starts_with_initial and rows[0]["train_size"] != config.initial):
            found = rows[0]["train_size"] if starts_with_initial else 0
            raise RunDirectoryError(f"{path} started from {found} initial images, but {CONFIG_FILE} says initial "
                                    f"{config.initial} (was config.json edited?); restore it, or use another --out")


def rows_in_order(arms: list[ArmState]) -> list[dict]:
    """Every arm's rows, round by round in the arms' order: the order a single process appends them in."""
    return sorted((row for s in arms for row in s.rows), key=lambda row: row["round"])


def fingerprint_of(images: ImageSet) -> dict:
    """{images, sha256} of an ImageSet (the test set's fingerprint; acquire.digests.image_set_digest)."""
    return {"images": len(images), "sha256": image_set_digest(images)}


def parse_state(saved: dict, arm: Arm, pool_size: int,
                columns: list[str] = CSV_COLUMNS) -> tuple[list[dict], list[dict]]:
    """(rows, record) of a state file's dict, after checking its format, arm and consistency (UserError); its rows
    must have exactly `columns` (the run's ExperimentConfig.csv_columns)."""
    if saved.get("format") != STATE_FORMAT:
        raise UserError(f"state format {saved.get('format')!r}, expected {STATE_FORMAT}")
    if saved["arm"] != dataclasses.asdict(arm):
        raise UserError(f"it is the state of arm {saved['arm']}, not {dataclasses.asdict(arm)}")
    rows, record = saved["rows"], saved["rounds"]
    if not isinstance(saved["model_sha256"], str) or not isinstance(rows, list) or not isinstance(record, list):
        raise UserError("rows, rounds and model_sha256 have the wrong types")
    first_round = rows[0]["round"] if rows else 1
    if [row["round"] for row in rows] != list(range(first_round, first_round + len(rows))) or first_round not in (0, 1):
        raise UserError("its rows are not consecutive rounds")
    if len(record) != len(rows) or any(set(row) != set(columns) for row in rows):
        raise UserError("its rows and acquisition rounds do not match")
    for entry in record:
        index = entry["index"]
        if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < pool_size for i in index):
            raise UserError(f"acquired indices must be integers in [0, {pool_size})")
        if len(entry["label"]) != len(index) or len(entry["source"]) != len(index):
            raise UserError("a round's labels or sources do not match its indices")
    return rows, record


def same_row(csv_row: dict[str, str], row: dict, columns: list[str] = CSV_COLUMNS) -> bool:
    """Whether a row read back from rounds.csv (strings) is the state's row (the timings may differ in rounding)."""
    for column in set(columns) - set(TIMING_COLUMNS):
        value = row[column]
        same = float(csv_row[column]) == value if isinstance(value, float) else csv_row[column] == str(value)
        if not same:
            return False
    return True


def pool_differences(saved: dict, now: dict) -> str:
    """What differs between two pool fingerprints, in words."""
    parts = []
    for pool_name in sorted(set(saved) | set(now)):
        if pool_name not in saved or pool_name not in now:
            parts.append(f"source set {pool_name!r} {'added' if pool_name not in saved else 'missing'}")
            continue
        old, new = saved[pool_name], now[pool_name]
        for source in sorted(set(old) | set(new)):
            if old.get(source) != new.get(source):
                if source not in old or source not in new:
                    parts.append(f"{pool_name}: source {source!r} {'added' if source not in old else 'missing'}")
                elif old[source]["images"] != new[source]["images"]:
                    parts.append(f"{pool_name}: source {source!r} has {new[source]['images']} images, "
                                 f"saved {old[source]['images']}")
                else:
                    parts.append(f"{pool_name}: source {source!r} has other images or labels (sha256 "
                                 f"{new[source]['sha256'][:12]}, saved {old[source]['sha256'][:12]})")
    return "; ".join(parts) or "the fingerprints differ"
