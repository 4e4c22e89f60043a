"""The active-learning loop of Nielsen & Okoniewski (Algorithm 1), for many arms in lockstep.

An arm is (source set, acquisition function, repeat). Each round every arm
  1. scores its pool with the classifier it holds (round 1: an untrained one) by MC dropout,
  2. acquires the top `per_round` candidates (or what a selecting function picks),
  3. trains a fresh classifier from scratch on everything acquired so far, and
  4. measures balanced accuracy and accuracy on the full test set: one CSV row.
Arms advance round by round together, so a run stopped early still has comparable curves.

Files in the output directory: config.json, rounds.csv (one row per arm and round, appended and
flushed), state/<arm>.pt (the arm's acquisitions, rows and current classifier, written atomically
after every round). A resumed run rebuilds rounds.csv from the states and carries on; since
every random draw is derived from (seed, arm, round), it produces the rows an uninterrupted run would.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from acquire.data import ImageSet, class_balanced_indices
from acquire.files import append_csv_row, write_atomic, write_csv, write_json
from acquire.functions import Acquisition, get_acquisition
from acquire.mc_dropout import draw_head_masks, mc_dropout_probs
from acquire.metrics import accuracy, balanced_accuracy
from acquire.model import GalCNN, TrainConfig, new_model, predict, train_classifier
from acquire.pool import REAL_SOURCE, CandidatePool
from acquire.rundir import RunDirectoryError, lock_run_dir
from acquire.seeding import derive_seed, make_generator

CSV_COLUMNS = ["sources", "acquisition", "repeat", "seed", "round", "train_size", "n_real", "n_generated",
               "acquired_by_source", "balanced_accuracy", "accuracy", "train_seconds", "score_seconds",
               "eval_seconds"]
TIMING_COLUMNS = ["train_seconds", "score_seconds", "eval_seconds"]
RESUMABLE_CHANGES = {"rounds"}  # config fields a resumed run may change


@dataclass
class ExperimentConfig:
    """One run: every (source set, acquisition, repeat) arm. Defaults are the paper's protocol.

    pool_subset: score a random subset of this many candidates per round (0: the whole pool).
    score_chunk: images per MC-dropout chunk (0: 256 on CPU, 8192 on GPU).
    generated_per_class, gan_checkpoints: how GAN source sets were built (samples per digit, and each
    checkpoint's sha256), recorded so that a resume cannot silently mix generators.
    """

    sources: list[str] = field(default_factory=lambda: ["raw"])
    acquisitions: list[str] = field(default_factory=lambda: ["random", "bald"])
    rounds: int = 50
    per_round: int = 10
    repeats: int = 4
    initial: int = 0
    mc_samples: int = 20
    pool_subset: int = 0
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)
    score_chunk: int = 0
    generated_per_class: int = 0
    gan_checkpoints: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.train, dict):
            self.train = TrainConfig(**self.train)
        for name in ("rounds", "per_round", "repeats", "mc_samples"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("initial", "pool_subset", "score_chunk"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.initial % 10:
            raise ValueError(f"initial must be a multiple of the 10 classes (class-balanced), got {self.initial}")
        if self.pool_subset and self.pool_subset < self.per_round:
            raise ValueError(f"pool_subset ({self.pool_subset}) must be 0 (whole pool) or >= per_round ({self.per_round})")
        if not self.sources or not self.acquisitions:
            raise ValueError("need at least one source set and one acquisition function")
        for name in ("sources", "acquisitions"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ValueError(f"{name} lists a name twice: {values}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Arm:
    sources: str
    acquisition: str
    repeat: int

    @property
    def slug(self) -> str:
        """A file-name-safe identifier."""
        return re.sub(r"[^A-Za-z0-9_.+-]", "_", f"{self.sources}__{self.acquisition}__{self.repeat}")


@dataclass
class ArmState:
    arm: Arm
    acquisition: Acquisition
    pool: CandidatePool
    model: GalCNN
    rows: list[dict] = field(default_factory=list)

    @property
    def rounds_done(self) -> int:
        return self.rows[-1]["round"] if self.rows else 0


def prepare_run_dir(out_dir: Path, config: ExperimentConfig, resume: bool) -> None:
    """Create out_dir with config.json, or check a resumed run's config against the saved one."""
    out_dir = Path(out_dir)
    config_path = out_dir / "config.json"
    if config_path.exists():
        if not resume:
            raise RunDirectoryError(f"{out_dir} already holds a run (config.json); pass --resume to continue it, "
                                    "or choose another --out")
        saved = ExperimentConfig(**json.loads(config_path.read_text())).to_dict()  # fills fields added since
        changed = {k for k in set(saved) | set(config.to_dict()) if saved.get(k) != config.to_dict().get(k)}
        if changed - RESUMABLE_CHANGES:
            details = "; ".join(f"{k}: saved {saved.get(k)!r}, now {config.to_dict().get(k)!r}"
                                for k in sorted(changed - RESUMABLE_CHANGES))
            raise RunDirectoryError(f"cannot resume {out_dir} with a different configuration ({details}). "
                                    f"Use the saved settings (only {sorted(RESUMABLE_CHANGES)} may change) or another --out")
    elif resume and (out_dir / "rounds.csv").exists():
        raise RunDirectoryError(f"{out_dir} has rounds.csv but no config.json: not a gan-acquire run directory")
    write_json(config_path, config.to_dict())


def initial_indices(pool: CandidatePool, n: int, generator: torch.Generator) -> torch.Tensor:
    """n real candidates, n/10 per class, drawn at random: global indices [n]."""
    real_M = (pool.source_N.cpu() == pool.source_names.index(REAL_SOURCE)).nonzero().squeeze(1)
    return real_M[class_balanced_indices(pool.labels_N.cpu()[real_M], n, generator)]


class ActiveLearningRun:
    """Runs (or resumes) every arm of `config` on the given pools, writing into `out_dir`.

    pools: source-set name -> CandidatePool (shared candidates; each arm gets `fresh()` state).
    test_set: the full test set (uint8 images [N,1,28,28], labels [N]).
    """

    def __init__(self, config: ExperimentConfig, pools: dict[str, CandidatePool], test_set: ImageSet,
                 out_dir: Path, device: torch.device | str = "cpu", resume: bool = False):
        missing = [s for s in config.sources if s not in pools]
        if missing:
            raise ValueError(f"no pool built for source set(s) {missing}")
        acquisitions = {name: get_acquisition(name) for name in config.acquisitions}
        for name, pool in pools.items():
            needed = config.initial + config.rounds * config.per_round
            if name in config.sources and needed > len(pool):
                raise ValueError(f"{config.rounds} rounds of {config.per_round} (+{config.initial} initial) need "
                                 f"{needed} candidates but source set {name!r} holds {len(pool)}")
        self.config, self.device = config, torch.device(device)
        self.out_dir = Path(out_dir)
        self.csv_path = self.out_dir / "rounds.csv"
        self.test_set = test_set.to(self.device)
        self._lock = lock_run_dir(self.out_dir)
        try:
            prepare_run_dir(self.out_dir, config, resume)
            self.arms = [ArmState(arm, acquisitions[acq], pools[src].fresh(), model=None)
                         for src in config.sources for acq in config.acquisitions
                         for arm in [Arm(src, acq, r) for r in range(config.repeats)]]
            for state in self.arms:
                self._load_or_start(state, resume)
            write_csv(self.csv_path, CSV_COLUMNS, self._rows_in_order())
        except BaseException:
            self._lock.close()
            raise

    # ---- state ---------------------------------------------------------------------------
    def _state_path(self, arm: Arm) -> Path:
        return self.out_dir / "state" / f"{arm.slug}.pt"

    def _load_or_start(self, state: ArmState, resume: bool) -> None:
        path = self._state_path(state.arm)
        if resume and path.exists():
            saved = torch.load(path, map_location=self.device, weights_only=True)
            for index_k in saved["acquired"]:
                state.pool.acquire(index_k)
            state.rows = saved["rows"]
            state.model = new_model(0, self.device)
            state.model.load_state_dict(saved["model"])
            return
        state.model = new_model(self._seed_for("init", state.arm, 0), self.device)
        if self.config.initial:
            state.pool.acquire(initial_indices(state.pool, self.config.initial, make_generator(
                self.config.seed, state.arm.sources, state.arm.repeat, "initial")))
            self._train_and_record(state, 0, score_seconds=0.0)

    def _save(self, state: ArmState) -> None:
        payload = {"acquired": state.pool.rounds, "rows": state.rows,
                   "model": {k: v.cpu() for k, v in state.model.state_dict().items()}}
        write_atomic(self._state_path(state.arm), lambda tmp: torch.save(payload, tmp))

    def _rows_in_order(self) -> list[dict]:
        return sorted((row for s in self.arms for row in s.rows), key=lambda row: row["round"])

    def _seed_for(self, purpose: str, arm: Arm, round_index: int) -> int:
        """Model initialisation and training draws are shared by the arms of one repeat (paired design)."""
        return derive_seed(self.config.seed, arm.sources, arm.repeat, round_index, purpose)

    # ---- one round -----------------------------------------------------------------------
    def _acquire(self, state: ArmState, round_index: int) -> float:
        """Score the pool and move the chosen candidates to the training set; returns seconds spent."""
        start = time.perf_counter()
        config, arm = self.config, state.arm
        generator = make_generator(config.seed, arm.sources, arm.acquisition, arm.repeat, round_index, "acquire")
        candidates_M = state.pool.available_index().cpu()
        probs_MTK = None
        if state.acquisition.needs_mc:
            if config.pool_subset and len(candidates_M) > config.pool_subset:
                candidates_M = candidates_M[torch.randperm(len(candidates_M), generator=generator)[:config.pool_subset]]
            masks = draw_head_masks(state.model, config.mc_samples,
                                    make_generator(config.seed, arm.sources, arm.acquisition, arm.repeat,
                                                   round_index, "masks", device=self.device))
            probs_MTK = mc_dropout_probs(state.model, state.pool.images_NCHW[candidates_M.to(self.device)], masks,
                                         chunk_size=config.score_chunk or None)
        chosen_k = state.acquisition.choose(probs_MTK, len(candidates_M), config.per_round, generator)
        state.pool.acquire(candidates_M[chosen_k])
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start

    def _train_and_record(self, state: ArmState, round_index: int, score_seconds: float) -> None:
        arm, train_start = state.arm, time.perf_counter()
        training = state.pool.training_set()
        state.model = new_model(self._seed_for("init", arm, round_index), self.device)
        train_classifier(state.model, training.images_NCHW, training.labels_N, self.config.train,
                         make_generator(self.config.seed, arm.sources, arm.repeat, round_index, "train",
                                        device=self.device))
        eval_start = time.perf_counter()
        predicted_N = predict(state.model, self.test_set.images_NCHW)
        counts = state.pool.counts_by_source()
        n_real = counts.get(REAL_SOURCE, 0)
        state.rows.append({
            "sources": arm.sources, "acquisition": arm.acquisition, "repeat": arm.repeat, "seed": self.config.seed,
            "round": round_index, "train_size": len(training), "n_real": n_real,
            "n_generated": len(training) - n_real,
            "acquired_by_source": ";".join(f"{k}={v}" for k, v in counts.items()),
            "balanced_accuracy": balanced_accuracy(predicted_N, self.test_set.labels_N),
            "accuracy": accuracy(predicted_N, self.test_set.labels_N),
            "train_seconds": round(eval_start - train_start, 4), "score_seconds": round(score_seconds, 4),
            "eval_seconds": round(time.perf_counter() - eval_start, 4),
        })
        self._save(state)
        append_csv_row(self.csv_path, CSV_COLUMNS, state.rows[-1])

    def _round_cost(self, round_index: int) -> int:
        """Rough relative cost of one arm-round (training grows with the training set), for an honest ETA."""
        train_size = self.config.initial + round_index * self.config.per_round
        return self.config.train.epochs * train_size + 5000

    def run(self, progress: bool = True) -> Path:
        """Advance every arm to config.rounds, with a progress bar; returns the CSV path."""
        todo = [(r, s) for r in range(1, self.config.rounds + 1) for s in self.arms if s.rounds_done < r]
        with tqdm(total=sum(self._round_cost(r) for r, _ in todo), disable=not progress, dynamic_ncols=True,
                  bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}") as bar:
            for round_index, state in todo:
                bar.set_description(f"round {round_index}/{self.config.rounds} "
                                    f"{state.arm.sources}/{state.arm.acquisition}/{state.arm.repeat}")
                score_seconds = self._acquire(state, round_index)
                self._train_and_record(state, round_index, score_seconds)
                bar.set_postfix(bal_acc=f"{state.rows[-1]['balanced_accuracy']:.3f}", n=state.rows[-1]["train_size"])
                bar.update(self._round_cost(round_index))
        return self.csv_path
