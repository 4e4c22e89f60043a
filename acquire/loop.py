"""The active-learning loop of Nielsen & Okoniewski (Algorithm 1), for many arms in lockstep.

An arm is (source set, acquisition function, repeat). Each round every arm
  1. scores its pool with the classifier it holds (round 1: an untrained one) by MC dropout,
  2. acquires the top `per_round` candidates (or what a selecting function picks),
  3. trains a fresh classifier from scratch on everything acquired so far, and
  4. measures balanced accuracy and accuracy on the full test set: one CSV row.
Arms advance round by round together, so a run stopped early still has comparable curves.
The classifier is Gal et al.'s CNN trained with Adam unless the run is given a model factory and a training
function; the number of classes K and the image shape [C,H,W] come from the data.

Files in the output directory, all small enough to commit, so that a clone anywhere continues the run:
  config.json        every setting, the seeding scheme and the pool's fingerprint (see `acquire.pool`)
  rounds.csv         one row per arm and round, appended and flushed (a view of the states, rebuilt on resume)
  state/<arm>.json   the arm's record, written atomically after every round: per round the acquired
                     candidates (pool index, label, source, score) and the row; the digest of the classifier
                     it holds
  state/models/      the classifiers themselves (float32, git-ignored): a cache. Without it a resume
                     re-derives each arm's classifier by retraining its last round, which gives the same
                     weights on the same hardware and thread count (it warns where it does not).
Arms are independent (their draws are keyed by arm and round, never by what other arms did), so several
processes may advance one run: the owner (the run opened normally) writes config.json and rounds.csv, and
workers (worker_arms=...) each advance and save only their arms; see acquire.ray_executor.
Every random draw is derived from (seed, arm, round), so a resumed run produces the rows an uninterrupted
run would. A resume checks config.json, every state and rounds.csv before it writes anything, and never
drops a row: it continues, or refuses saying why.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from acquire.errors import UserError
from acquire.data import ImageSet, class_balanced_indices
from acquire.device import canonical, synchronize
from acquire.files import append_csv_row, read_csv_rows, mark_as_cache, write_csv, write_json, write_tensors
from acquire.functions import Acquisition, get_acquisition
from acquire.mc_dropout import MASKINGS, check_mc_dropout, mc_probs, mc_scores
from acquire.builtins import builtin_name
from acquire.factories import ModelFactory, check_model, make_model, seeded_global_rng
from acquire.networks import new_model
from acquire.precision import PRECISIONS, autocast, check_precision
from acquire.training import TrainConfig, TrainFn, check_trainable, evaluate, train_classifier
from acquire.pool import REAL_SOURCE, CandidatePool
from acquire.rundir import CONFIG_FILE, RunDir, RunDirectoryError, config_changes, read_json
from acquire.seeding import derive_seed, make_generator

CSV_COLUMNS = ["sources", "acquisition", "repeat", "seed", "round", "train_size", "n_real", "n_generated",
               "acquired_by_source", "balanced_accuracy", "accuracy", "train_seconds", "score_seconds",
               "eval_seconds"]
TIMING_COLUMNS = ["train_seconds", "score_seconds", "eval_seconds"]
RESUMABLE_CHANGES = {"rounds", "gan_dir", "dataset"}  # config fields a resumed run may change
STATE_FORMAT = 2
DEFAULT_MODEL = "acquire.model:new_model"            # Gal et al.'s CNN for the data's K and [C,H,W]
DEFAULT_TRAINER = "acquire.model:train_classifier"   # its Adam recipe (TrainConfig)
# Seeding schemes. "paired": a repeat's model initialisations, training draws and initial images are shared by
# every source set and acquisition function, so arms compare pairwise. "per_source": they were keyed by the
# source set too (runs saved before the scheme was recorded).
SEEDING_SCHEMES = ("paired", "per_source")


@dataclass
class ExperimentConfig:
    """One run: every (source set, acquisition, repeat) arm. Defaults are the paper's protocol.

    pool_subset: score a random subset of this many candidates per round (0: the whole pool).
    score_chunk: images per MC-dropout chunk (0: 256 on CPU, 8192 on GPU).
    precision: "fp32", or "bf16" (training under bfloat16 autocast, MC-dropout GEMMs in bfloat16; see
    acquire.precision.PRECISIONS). Configs saved before it existed load as fp32.
    mc_masks: "shared" (one mask per MC sample for every candidate, the default) or "per_image" (each candidate
    its own masks, as Gal et al.'s Keras code; acquire.mc_dropout.MASKINGS). Configs saved before it load as shared.
    generated_per_class, gan_checkpoints, gan_dir: how GAN source sets were built (samples per digit, each
    checkpoint's weights sha256, and the directory they were read from, which a resume may change).
    seeding: how arms share random draws (SEEDING_SCHEMES).
    dataset: the data set's name for figures (the data directory's name; the pool fingerprint identifies it).
    pool_fingerprint: source set -> source -> {images, sha256}, filled in by the run from its pools.
    model, trainer: the model factory and training function ('module:name'), filled in by the run; a resume must
    be given the same ones.
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
    precision: str = "fp32"
    mc_masks: str = "shared"
    generated_per_class: int = 0
    gan_checkpoints: dict[str, str] = field(default_factory=dict)
    gan_dir: str = ""
    seeding: str = "paired"
    dataset: str = ""
    pool_fingerprint: dict = field(default_factory=dict)
    model: str = DEFAULT_MODEL
    trainer: str = DEFAULT_TRAINER

    def __post_init__(self):
        if isinstance(self.train, dict):
            self.train = TrainConfig(**self.train)
        for name in ("rounds", "per_round", "repeats", "mc_samples"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise UserError(f"{name} must be a positive integer, got {value!r}")
        for name in ("initial", "pool_subset", "score_chunk", "generated_per_class", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise UserError(f"{name} must be an integer >= 0, got {value!r}")
        if self.pool_subset and self.pool_subset < self.per_round:
            raise UserError(f"pool_subset ({self.pool_subset}) must be 0 (whole pool) or >= per_round ({self.per_round})")
        if not self.sources or not self.acquisitions:
            raise UserError("need at least one source set and one acquisition function")
        for name in ("sources", "acquisitions"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise UserError(f"{name} lists a name twice: {values}")
        if any(s != REAL_SOURCE for s in self.sources) and self.generated_per_class <= 0:
            raise UserError(f"GAN source sets need generated_per_class > 0, got {self.generated_per_class}")
        if self.precision not in PRECISIONS:
            raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.mc_masks not in MASKINGS:
            raise UserError(f"mc_masks must be one of {', '.join(MASKINGS)}, got {self.mc_masks!r}")
        if self.seeding not in SEEDING_SCHEMES:
            raise UserError(f"seeding must be one of {SEEDING_SCHEMES}, got {self.seeding!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def load(cls, path: Path) -> "ExperimentConfig":
        """The config saved at `path` (config.json); a damaged file or unknown setting is a RunDirectoryError."""
        values = read_json(path)
        values.setdefault("seeding", "per_source")  # saved before the scheme was recorded
        known = {f.name for f in dataclasses.fields(cls)}
        train_known = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(values) - known) + sorted(f"train.{k}" for k in set(values.get("train") or {}) - train_known)
        if unknown:
            raise RunDirectoryError(f"{path} has unknown setting(s) {unknown}: it was written by another version "
                                    "or edited; fix or restore it, or start a new run with another --out")
        try:
            return cls(**values)
        except (TypeError, ValueError) as error:
            raise RunDirectoryError(f"{path} holds an invalid configuration ({error}); fix or restore it, or start "
                                    "a new run with another --out") from None


@dataclass(frozen=True)
class Arm:
    sources: str
    acquisition: str
    repeat: int

    @property
    def slug(self) -> str:
        """A file-name-safe identifier."""
        return re.sub(r"[^A-Za-z0-9_.+-]", "_", f"{self.sources}__{self.acquisition}__{self.repeat}")

    def __str__(self) -> str:
        return f"{self.sources}/{self.acquisition}/{self.repeat}"


@dataclass
class ArmState:
    """An arm's pool (with its acquisitions), the classifier it holds, its rows and its acquisition record."""

    arm: Arm
    acquisition: Acquisition
    pool: CandidatePool
    model: nn.Module | None = None
    rows: list[dict] = field(default_factory=list)
    record: list[dict] = field(default_factory=list)  # per round: index, label, source, score lists
    model_sha256: str = ""  # digest of the classifier a saved state holds (checked when it is restored)

    @property
    def rounds_done(self) -> int:
        return self.rows[-1]["round"] if self.rows else 0


def model_digest(model: nn.Module) -> str:
    """sha256 over the classifier's parameters and buffers (names, shapes, float32 bytes)."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(f"{name}{tuple(tensor.shape)}".encode())
        h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def initial_indices(pool: CandidatePool, n: int, generator: torch.Generator, num_classes: int) -> torch.Tensor:
    """n real candidates, n/K per class, drawn at random: global indices [n]."""
    real_M = (pool.source_N.cpu() == pool.source_names.index(REAL_SOURCE)).nonzero().squeeze(1)
    return real_M[class_balanced_indices(pool.labels_N.cpu()[real_M], n, generator, num_classes)]


def data_classes(named_sets: dict[str, ImageSet]) -> tuple[tuple[int, int, int], int]:
    """The image shape [C,H,W] all the sets share and their number of classes K (largest label + 1)."""
    shapes = {name: tuple(images.images_NCHW.shape[1:]) for name, images in named_sets.items()}
    if len(set(shapes.values())) > 1:
        raise UserError("the pools and the test set need one image shape [C,H,W]; got "
                         + ", ".join(f"{name} {list(shape)}" for name, shape in shapes.items()))
    highest = max(int(images.labels_N.max()) for images in named_sets.values() if len(images))
    return next(iter(shapes.values())), highest + 1


def check_labels(name: str, images: ImageSet, num_classes: int) -> None:
    """Refuse labels the model cannot predict: outside 0..num_classes-1."""
    if len(images):
        low, high = int(images.labels_N.min()), int(images.labels_N.max())
        if low < 0 or high >= num_classes:
            raise UserError(f"{name} has labels from {low} to {high}, but the model has {num_classes} classes: labels "
                             f"must lie in 0..{num_classes - 1}; check the labels, or give a model with {high + 1} "
                             "outputs")


def callable_name(fn) -> str:
    """'module:qualname' of a function (of the one a functools.partial wraps; of the class of other callables); a
    built-in model or trainer by its stored name (acquire.builtins)."""
    if builtin_name(fn):
        return builtin_name(fn)
    target = fn.func if isinstance(fn, partial) else fn
    target = target if hasattr(target, "__qualname__") else type(target)
    return f"{target.__module__}:{target.__qualname__}"


class ActiveLearningRun:
    """Runs (or resumes) every arm of `config` on the given pools, writing into `out_dir`.

    pools: source-set name -> CandidatePool on `device` (shared candidates; each arm gets `fresh()` state).
    test_set: the full test set (uint8 images [N,C,H,W], labels [N]).
    model_factory: (seed, device) -> nn.Module, float images [N,C,H,W] in [0, 1] -> logits [N,K] (default: Gal et
    al.'s CNN for the data's K and [C,H,W]); MC dropout samples its nn.Dropout layers (GalCNN: the fused scorer).
    train_fn: (model, uint8 images [N,C,H,W], labels [N], config.train, generator) -> model (default:
    train_classifier, Adam); torch's global RNG is seeded per arm and round around both.
    worker_arms: open the run already started in out_dir as a worker that advances only these arms (names
    'sources/acquisition/repeat'), beside the owner that started it: it locks only its arms, writes only their
    state files, and leaves config.json and rounds.csv to the owner (rebuild_csv).
    Everything is checked before a file is written. Use as a context manager, or call close(), to release
    the directory's lock.
    """

    def __init__(self, config: ExperimentConfig, pools: dict[str, CandidatePool], test_set: ImageSet,
                 out_dir: Path, device: torch.device | str = "cpu", resume: bool = False,
                 model_factory: ModelFactory | None = None, train_fn: TrainFn | None = None,
                 worker_arms: Collection[str] | None = None):
        self.device = canonical(device)
        check_precision(config.precision, self.device)
        config = self._with_fingerprint(config, pools)
        data = {**{f"the pool of {name!r}": pools[name].candidates() for name in config.sources},
                "the test set": test_set}
        image_shape, self.data_classes = data_classes(data)
        self.model_factory = model_factory or partial(new_model, num_classes=self.data_classes, image_shape=image_shape)
        self.train_fn = train_fn or train_classifier
        self.config = dataclasses.replace(
            config, model=callable_name(model_factory) if model_factory else DEFAULT_MODEL,
            trainer=callable_name(self.train_fn) if train_fn else DEFAULT_TRAINER)
        acquisitions = {name: get_acquisition(name) for name in config.acquisitions}
        num_classes = self._check_model(config, data, image_shape, acquisitions.values())
        for acquisition in acquisitions.values():
            acquisition.probe(config.per_round, config.mc_samples, num_classes)
        self.out_dir = Path(out_dir)
        self.csv_path = self.out_dir / "rounds.csv"
        self.test_set = test_set.to(self.device)
        self.arms = [ArmState(Arm(src, acq, r), acquisitions[acq], pools[src].fresh())
                     for src in config.sources for acq in config.acquisitions for r in range(config.repeats)]
        self.is_worker = worker_arms is not None
        self.active = self._select_arms(worker_arms)
        self._locks, self._arms_locked = ([] if self.is_worker else [RunDir(self.out_dir)]), False
        try:
            if self.is_worker:
                self._lock_arms()
            if resume or self.is_worker:
                self._load_saved()
            elif (self.out_dir / CONFIG_FILE).exists():
                raise RunDirectoryError(f"{self.out_dir} already holds a run ({CONFIG_FILE}); pass --resume to "
                                        "continue it, or choose another --out")
            if not self.is_worker:
                self._write_start()
        except BaseException:
            self.close()
            raise

    def _select_arms(self, names: Collection[str] | None) -> list[ArmState]:
        """The arms this process advances: all, or (a worker) those named."""
        if names is None:
            return self.arms
        unknown = sorted(set(names) - {str(s.arm) for s in self.arms})
        if unknown or not names:
            raise UserError(f"worker_arms must name arms of the run ({', '.join(str(s.arm) for s in self.arms)}); "
                             f"got {sorted(names)}")
        return [s for s in self.arms if str(s.arm) in names]

    def _lock_arms(self) -> None:
        """Lock the arms this process advances (out_dir/state/<arm>.lock), once: no two processes, a worker
        left running by a killed owner included, ever advance one arm."""
        if not self._arms_locked:
            self._locks += [RunDir(self.out_dir, f"state/{s.arm.slug}.lock", sweep=False,
                                   holder=f"another process is advancing arm {s.arm}") for s in self.active]
            self._arms_locked = True

    def close(self) -> None:
        """Release the run directory's lock and the arms' locks."""
        for lock in self._locks:
            lock.close()

    def __enter__(self) -> "ActiveLearningRun":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ---- checks --------------------------------------------------------------------------
    def _with_fingerprint(self, config: ExperimentConfig, pools: dict[str, CandidatePool]) -> ExperimentConfig:
        """The config with its pools' fingerprint, after checking every pool the arms need."""
        missing = [s for s in config.sources if s not in pools]
        if missing:
            raise UserError(f"no pool built for source set(s) {missing}")
        needed = config.initial + config.rounds * config.per_round
        for name in config.sources:
            pool = pools[name]
            if pool.device != self.device:
                raise UserError(f"the pool of {name!r} lives on {pool.device} but the run on {self.device}; build "
                                 f"it with CandidatePool(..., device={str(self.device)!r})")
            if needed > len(pool):
                raise UserError(f"{config.rounds} rounds of {config.per_round} (+{config.initial} initial) need "
                                 f"{needed} candidates but source set {name!r} holds {len(pool)}")
        fingerprint = {name: pools[name].fingerprint for name in config.sources}
        return dataclasses.replace(config, pool_fingerprint=fingerprint)

    def _check_model(self, config: ExperimentConfig, data: dict[str, ImageSet], image_shape: tuple[int, int, int],
                     acquisitions) -> int:
        """The model's K, after checking that one made by the factory takes the data's images (`data`: the pools and
        the test set by name), predicts their labels, can be trained with config.train and (if an acquisition needs
        it) sampled by MC dropout."""
        model = make_model(self.model_factory, 0, self.device)
        num_classes = check_model(model, data["the test set"].images_NCHW[:2].to(self.device), image_shape)
        for name, images in data.items():
            check_labels(name, images, num_classes)
        if self.train_fn is train_classifier:
            check_trainable(model, config.train)
        if any(acquisition.needs_mc for acquisition in acquisitions):
            check_mc_dropout(model, image_shape, config.mc_masks)
        if config.initial % self.data_classes:
            raise UserError(f"initial must be a multiple of the {self.data_classes} classes (class-balanced), "
                             f"got {config.initial}")
        return num_classes

    def _load_saved(self) -> None:
        """Read and check config.json, every arm's state and rounds.csv; adopt the states. Writes nothing."""
        config_path = self.out_dir / CONFIG_FILE
        saved = ExperimentConfig.load(config_path)
        now = self.config.to_dict()
        saved_dict = saved.to_dict()
        if saved.pool_fingerprint and saved.pool_fingerprint != self.config.pool_fingerprint:  # {}: saved before
            raise RunDirectoryError(f"cannot resume {self.out_dir}: the candidate pool differs from the one it ran "
                                    f"on ({pool_differences(saved.pool_fingerprint, self.config.pool_fingerprint)}). "
                                    "Use the same data, GAN checkpoints and --generated-per-class, or another --out")
        changes = config_changes(saved_dict, now, RESUMABLE_CHANGES | {"pool_fingerprint"})
        if changes:
            raise RunDirectoryError(f"cannot resume {self.out_dir} with a different configuration ({changes}). Use "
                                    f"the saved settings (only {sorted(RESUMABLE_CHANGES)} may change) or another --out")
        csv_rows = self._read_csv_rows()
        for state in self.arms:
            self._load_state(state, csv_rows.pop(str(state.arm), []))
        if csv_rows:
            raise RunDirectoryError(f"{self.csv_path} holds rows of arms that config.json does not list "
                                    f"({', '.join(sorted(csv_rows))}); restore the matching config.json, or use another --out")
        done = max(state.rounds_done for state in self.arms)
        if self.config.rounds < done:
            raise RunDirectoryError(f"--rounds {self.config.rounds} is below the {done} rounds already done in "
                                    f"{self.out_dir}; rows are never deleted: give --rounds {done} or more "
                                    "(plot a shorter curve with runners.plot --max-train-size)")

    def _read_csv_rows(self) -> dict[str, list[dict]]:
        """rounds.csv's complete rows by arm name ('sources/acquisition/repeat')."""
        try:
            rows = read_csv_rows(self.csv_path, CSV_COLUMNS)
        except ValueError as error:
            raise RunDirectoryError(str(error)) from None
        by_arm: dict[str, list[dict]] = {}
        for row in rows:
            by_arm.setdefault(f"{row['sources']}/{row['acquisition']}/{row['repeat']}", []).append(row)
        return by_arm

    def _load_state(self, state: ArmState, csv_rows: list[dict]) -> None:
        """Adopt the arm's saved state after checking it against the pool and rounds.csv's rows of the arm."""
        path = self._state_path(state.arm)
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
            rows, record = parse_state(saved, state.arm, len(state.pool))
            for entry in record:
                state.pool.acquire(torch.tensor(entry["index"], dtype=torch.long))
        except (KeyError, TypeError, ValueError) as error:
            raise RunDirectoryError(f"{path} is damaged or belongs to another run ({error}); restore it (e.g. git "
                                    "checkout), or start a new run with another --out") from None
        labels_N = state.pool.labels_N.cpu()
        if any(entry["label"] != labels_N[entry["index"]].tolist() for entry in record):
            raise RunDirectoryError(f"{path} records labels that the pool's candidates do not have: the pool differs "
                                    "from the run's; resume with the same data, or use another --out")
        if len(csv_rows) > len(rows) or any(not same_row(a, b) for a, b in zip(csv_rows, rows)):
            raise RunDirectoryError(f"{self.csv_path} and {path} disagree about arm {state.arm} (the CSV has rows the "
                                    "state lacks, or other values); restore both from the same commit, or use another --out")
        state.rows, state.record, state.model = rows, record, None
        state.model_sha256 = saved["model_sha256"]

    # ---- files ---------------------------------------------------------------------------
    def _state_path(self, arm: Arm) -> Path:
        return self.out_dir / "state" / f"{arm.slug}.json"

    def _model_path(self, arm: Arm) -> Path:
        return self.out_dir / "state" / "models" / f"{arm.slug}.pt"

    def _write_start(self) -> None:
        """config.json (every setting; a resume may only have raised rounds) and rounds.csv rebuilt from the states."""
        write_json(self.out_dir / CONFIG_FILE, self.config.to_dict())
        write_csv(self.csv_path, CSV_COLUMNS, self._rows_in_order())
        mark_as_cache(self.out_dir / "state" / "models", "runs re-derive these classifiers when absent")

    def _save(self, state: ArmState) -> None:
        """The classifier (local cache), then the arm's state; rounds.csv gets the row last."""
        weights = {k: v.detach().cpu() for k, v in state.model.state_dict().items()}
        write_tensors(self._model_path(state.arm), weights)
        write_json(self._state_path(state.arm), {
            "format": STATE_FORMAT, "arm": dataclasses.asdict(state.arm), "rounds": state.record,
            "rows": state.rows, "model_sha256": model_digest(state.model)})
        if not self.is_worker:
            append_csv_row(self.csv_path, CSV_COLUMNS, state.rows[-1])

    def _rows_in_order(self) -> list[dict]:
        """Every arm's rows, round by round in the arms' order: the order a single process appends them in."""
        return sorted((row for s in self.arms for row in s.rows), key=lambda row: row["round"])

    def rebuild_csv(self) -> int:
        """(The owner, while workers advance arms.) Re-read every arm's rows from its state file and rewrite
        rounds.csv from them, in a single process's order; returns the arm-rounds done."""
        for state in self.arms:
            path = self._state_path(state.arm)
            if path.exists():
                state.rows = read_json(path)["rows"]
        write_csv(self.csv_path, CSV_COLUMNS, self._rows_in_order())
        return sum(state.rounds_done for state in self.arms)

    # ---- classifiers -------------------------------------------------------------------
    def _seed_keys(self, arm: Arm) -> tuple:
        """What a repeat's shared draws (model init, training, initial images) are keyed by."""
        if self.config.seeding == "paired":
            return (self.config.seed, arm.repeat)
        return (self.config.seed, arm.sources, arm.repeat)

    def _train(self, state: ArmState, round_index: int) -> None:
        """A fresh classifier, initialised and trained from draws keyed by (seed, repeat, round), on the
        arm's training set."""
        training = state.pool.training_set()
        state.model = make_model(self.model_factory, self._init_seed(state.arm, round_index), self.device)
        keys = (*self._seed_keys(state.arm), round_index, "train")
        precision = autocast(self.config.precision, self.device)
        with seeded_global_rng(derive_seed(*keys, "global"), self.device), precision:
            self.train_fn(state.model, training.images_NCHW, training.labels_N, self.config.train,
                          make_generator(*keys, device=self.device))

    def _restore_model(self, state: ArmState) -> None:
        """The classifier the arm held when saved: from the local cache if its digest matches, else re-derived
        by retraining its last round (a warning says if the weights differ from the saved digest)."""
        path, expected = self._model_path(state.arm), state.model_sha256
        if path.exists():
            try:
                model = make_model(self.model_factory, 0, self.device)
                model.load_state_dict(torch.load(path, map_location=self.device, weights_only=True))
                if model_digest(model) == expected:
                    state.model = model
                    return
            except Exception:  # a damaged cache is only a cache: re-derive below
                pass
        self._train(state, state.rounds_done)
        if model_digest(state.model) != expected:
            print(f"warning: the re-derived classifier of arm {state.arm} differs from the saved one (other "
                  "hardware, torch version or thread count); the rounds that follow may differ from an "
                  "uninterrupted run", file=sys.stderr)

    def _init_seed(self, arm: Arm, round_index: int) -> int:
        return derive_seed(*self._seed_keys(arm), round_index, "init")

    def _start(self, state: ArmState) -> None:
        """A new arm: its untrained classifier, and with config.initial, the class-balanced initial images
        trained on and recorded as round 0."""
        state.model = make_model(self.model_factory, self._init_seed(state.arm, 0), self.device)
        if self.config.initial:
            chosen = initial_indices(state.pool, self.config.initial,
                                     make_generator(*self._seed_keys(state.arm), "initial"), self.data_classes)
            self._record(state, chosen, None)
            self._train_and_record(state, 0, score_seconds=0.0)

    # ---- one round -----------------------------------------------------------------------
    def _record(self, state: ArmState, index_k: torch.Tensor, score_k: torch.Tensor | None) -> None:
        """Acquire global indices [k] and remember what they were (label, source, score)."""
        state.pool.acquire(index_k)
        on_device_k = index_k.to(state.pool.device)  # only the k entries cross to the CPU, not the pool's columns
        state.record.append({"index": index_k.tolist(), "label": state.pool.labels_N[on_device_k].tolist(),
                             "source": [state.pool.source_names[i] for i in state.pool.source_N[on_device_k].tolist()],
                             "score": None if score_k is None else score_k.tolist()})

    def _acquire(self, state: ArmState, round_index: int) -> float:
        """Score the pool and move the chosen candidates to the training set; returns seconds spent."""
        start = time.perf_counter()
        self._record(state, *self._choose(state, round_index, self.config.precision))
        synchronize(self.device)
        return time.perf_counter() - start

    def _choose(self, state: ArmState, round_index: int, precision: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What the arm acquires in round `round_index` with the classifier it holds, MC dropout in `precision`:
        global indices [k] and their scores [k] (None for a selecting function)."""
        config, arm = self.config, state.arm
        keys = (config.seed, arm.sources, arm.acquisition, arm.repeat, round_index)
        generator = make_generator(*keys, "acquire")
        candidates_M = state.pool.available_index().cpu()
        acquisition = state.acquisition
        if not acquisition.needs_mc:
            chosen_k, score_k = acquisition.choose(None, len(candidates_M), config.per_round, generator)
        else:
            if config.pool_subset and len(candidates_M) > config.pool_subset:
                candidates_M = candidates_M[torch.randperm(len(candidates_M), generator=generator)[:config.pool_subset]]
            scoring = (state.model, state.pool.images_NCHW[candidates_M.to(self.device)], config.mc_samples)
            options = dict(rng=make_generator(*keys, "masks", device=self.device),
                           chunk_size=config.score_chunk or None, precision=precision, masking=config.mc_masks)
            if acquisition.selects:  # it needs every candidate's probabilities [M, T, K]
                chosen_k, score_k = acquisition.choose(mc_probs(*scoring, **options), len(candidates_M),
                                                       config.per_round, generator)
            else:  # streamed: only the M scores are kept
                scores_M = mc_scores(*scoring, acquisition.score, **options)
                chosen_k, score_k = acquisition.top_k(scores_M, config.per_round, generator)
        return candidates_M[chosen_k], score_k

    def replay_choice(self, arm: str, round_index: int, precisions: tuple[str, ...]) -> dict[str, list[int]]:
        """What arm `arm` ('sources/acquisition/repeat') would acquire in its round `round_index` (done or not) if
        the classifier it held then scored in each of `precisions`: precision -> global pool indices [k]. The
        classifier is re-derived from the saved state (the pool before that round; the round before's training
        draws), so with the run's own precision it gives the acquisitions recorded. Writes nothing."""
        state = next((s for s in self.arms if str(s.arm) == arm), None)
        if state is None:
            raise UserError(f"no arm {arm!r} in this run; its arms are {', '.join(str(s.arm) for s in self.arms)}")
        if not 1 <= round_index <= state.rounds_done + 1:
            raise UserError(f"arm {arm} has done {state.rounds_done} rounds: replay one of rounds 1 to "
                             f"{state.rounds_done + 1}")
        replica = ArmState(state.arm, state.acquisition, state.pool.fresh())
        for row, entry in zip(state.rows, state.record):
            if row["round"] < round_index:
                replica.pool.acquire(torch.tensor(entry["index"], dtype=torch.long))
        if replica.pool.num_available == len(replica.pool):
            replica.model = make_model(self.model_factory, self._init_seed(state.arm, 0), self.device)
        else:
            self._train(replica, round_index - 1)
        return {precision: self._choose(replica, round_index, precision)[0].tolist() for precision in precisions}

    def _train_and_record(self, state: ArmState, round_index: int, score_seconds: float) -> None:
        arm, train_start = state.arm, time.perf_counter()
        self._train(state, round_index)
        synchronize(self.device)
        eval_start = time.perf_counter()
        scores = evaluate(state.model, self.test_set.images_NCHW, self.test_set.labels_N)
        counts = state.pool.counts_by_source()
        n_real, train_size = counts.get(REAL_SOURCE, 0), sum(counts.values())
        state.rows.append({
            "sources": arm.sources, "acquisition": arm.acquisition, "repeat": arm.repeat, "seed": self.config.seed,
            "round": round_index, "train_size": train_size, "n_real": n_real, "n_generated": train_size - n_real,
            "acquired_by_source": ";".join(f"{k}={v}" for k, v in counts.items()),
            "balanced_accuracy": scores["balanced_accuracy"], "accuracy": scores["accuracy"],
            "train_seconds": round(eval_start - train_start, 4), "score_seconds": round(score_seconds, 4),
            "eval_seconds": round(time.perf_counter() - eval_start, 4),
        })
        self._save(state)

    def _round_cost(self, round_index: int) -> int:
        """Rough relative cost of one arm-round (training grows with the training set), for an honest ETA."""
        train_size = self.config.initial + round_index * self.config.per_round
        return self.config.train.epochs * train_size + 5000

    def run(self, progress: bool = True) -> Path:
        """Advance every arm (a worker: its arms) to config.rounds, with a progress bar; returns the CSV path."""
        self._lock_arms()
        for state in self.active:
            if state.model is None and state.rows:
                self._restore_model(state)
            elif state.model is None:
                self._start(state)
        todo = [(r, s) for r in range(1, self.config.rounds + 1) for s in self.active if s.rounds_done < r]
        with tqdm(total=sum(self._round_cost(r) for r, _ in todo), disable=not progress, dynamic_ncols=True,
                  bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}") as bar:
            for round_index, state in todo:
                bar.set_description(f"round {round_index}/{self.config.rounds} {state.arm}")
                score_seconds = self._acquire(state, round_index)
                self._train_and_record(state, round_index, score_seconds)
                bar.set_postfix(bal_acc=f"{state.rows[-1]['balanced_accuracy']:.3f}", n=state.rows[-1]["train_size"])
                bar.update(self._round_cost(round_index))
        return self.csv_path


def parse_state(saved: dict, arm: Arm, pool_size: int) -> tuple[list[dict], list[dict]]:
    """(rows, record) of a state file's dict, after checking its format, arm and consistency (ValueError)."""
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
    if len(record) != len(rows) or any(set(row) != set(CSV_COLUMNS) for row in rows):
        raise UserError("its rows and acquisition rounds do not match")
    for entry in record:
        index = entry["index"]
        if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < pool_size for i in index):
            raise UserError(f"acquired indices must be integers in [0, {pool_size})")
        if len(entry["label"]) != len(index) or len(entry["source"]) != len(index):
            raise UserError("a round's labels or sources do not match its indices")
    return rows, record


def same_row(csv_row: dict[str, str], row: dict) -> bool:
    """Whether a row read back from rounds.csv (strings) is the state's row (the timings may differ in rounding)."""
    for column in set(CSV_COLUMNS) - set(TIMING_COLUMNS):
        value = row[column]
        same = float(csv_row[column]) == value if isinstance(value, float) else csv_row[column] == str(value)
        if not same:
            return False
    return True


def pool_differences(saved: dict, now: dict) -> str:
    """What differs between two pool fingerprints, in words."""
    parts = []
    for pool_name in sorted(set(saved) | set(now)):
        old, new = saved.get(pool_name, {}), now.get(pool_name, {})
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
