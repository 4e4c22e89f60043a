"""A run's settings, built once and frozen: ExperimentConfig, the arms it names, and what a resume may change."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from acquire.errors import UserError
from acquire.functions import WRAPPERS, wrapped_name
from acquire.mc_dropout import MASKINGS
from acquire.precision import PRECISIONS
from acquire.training import TrainConfig
from acquire.rundir import RunDirectoryError, read_json
from acquire.round_context import QUOTA_TARGETS
from acquire.validate import check_choice, check_float, check_int, check_positive_int

CSV_COLUMNS = ["sources", "acquisition", "repeat", "seed", "round", "train_size", "n_real", "n_generated",
               "acquired_by_source", "balanced_accuracy", "accuracy", "train_seconds", "score_seconds",
               "eval_seconds"]
TIMING_COLUMNS = ["train_seconds", "score_seconds", "eval_seconds"]
# With real_only: the same round's classifier trained on the arm's real images alone, and what the generated added
REAL_ONLY_COLUMNS = ["balanced_accuracy_real_only", "accuracy_real_only", "generated_gain"]
RESUMABLE_CHANGES = {"rounds", "dataset"}  # config fields a resumed run may change (besides declared provenance)
DEFAULT_MODEL = "acquire.model:new_model"            # Gal et al.'s CNN for the data's K and [C,H,W]
DEFAULT_TRAINER = "acquire.model:train_classifier"   # its Adam recipe (TrainConfig)
# Seeding schemes. "paired": a repeat's model initialisations, training draws and initial images are shared by
# every source set and acquisition function, so arms compare pairwise. "per_source": they were keyed by the
# source set too (runs saved before the scheme was recorded).
SEEDING_SCHEMES = ("paired", "per_source")
# Top-level provenance fields of configs saved before `sources_provenance` (read into it when set).
LEGACY_PROVENANCE = ("generated_per_class", "gan_checkpoints", "gan_dir")
CUSTOM_NAME = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


def check_names(name: str, values: object) -> list[str]:
    """A non-empty list of distinct non-empty strings (a bare string is refused, not read letter by letter)."""
    if isinstance(values, str):
        raise UserError(f"{name} must be a list of names, e.g. [{values!r}], not the string {values!r}")
    if not isinstance(values, (list, tuple)):
        raise UserError(f"{name} must be a list of names, got {type(values).__name__} {values!r}")
    if not values or not all(isinstance(v, str) and v for v in values):
        raise UserError(f"{name} must list at least one name, each a non-empty string; got {values!r}")
    if len(set(values)) != len(values):
        raise UserError(f"{name} lists a name twice: {list(values)}")
    return list(values)


@dataclass(frozen=True)
class ExperimentConfig:
    """One run: every (source set, acquisition, repeat) arm. Defaults are the paper's protocol. Frozen: built
    once by its caller; the run records the fingerprints and the model's names with `recorded()`.

    pool_subset: score a random subset of this many candidates per round (0: the whole pool).
    score_chunk: images per MC-dropout chunk (0: 256 on CPU, 8192 on GPU).
    precision: "fp32" or "bf16" (acquire.precision.PRECISIONS). mc_masks: acquire.mc_dropout.MASKINGS.
    seeding: how arms share random draws (SEEDING_SCHEMES).
    sources_provenance: how whoever built the pools made them (any JSON values, e.g. a generator's weights digest);
    a resume refuses a change to it except in the keys its caller declares resumable.
    dataset: the data set's name for figures (the fingerprints identify the data).
    pool_fingerprint, test_fingerprint: source set -> source -> {images, sha256}, and {images, sha256} of the test
    set, recorded by the run. model, trainer: 'module:name' of the model factory and training function, recorded
    by the run (a name, never imported).
    quota_target: the class distribution quota:X follows (acquire.round_context.QUOTA_TARGETS).
    gate_threshold: gate:X drops a generated candidate when the classifier and the judge both give its label less
    (acquire.label_gate). gate_judge_epochs: the judge (the run's model, trained once per process on the pool's
    real candidates) is trained this many epochs with the run's other training settings.
    real_only: each round also trains the counterfactual classifier: the same initialisation and training draws on
    the arm's real images alone (an untrained one when it holds none), so each row carries its accuracy and
    generated_gain = balanced_accuracy − balanced_accuracy_real_only (REAL_ONLY_COLUMNS): did the generated images
    help?
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
    sources_provenance: dict = field(default_factory=dict)
    seeding: str = "paired"
    dataset: str = ""
    pool_fingerprint: dict = field(default_factory=dict)
    test_fingerprint: dict = field(default_factory=dict)
    model: str = DEFAULT_MODEL
    trainer: str = DEFAULT_TRAINER
    quota_target: str = "uniform"
    gate_threshold: float = 0.5
    gate_judge_epochs: int = 10
    real_only: bool = False

    def __post_init__(self):
        if isinstance(self.train, dict):
            object.__setattr__(self, "train", TrainConfig(**self.train))
        if not isinstance(self.train, TrainConfig):
            raise UserError(f"train must be a TrainConfig, got {type(self.train).__name__}")
        for name in ("rounds", "per_round", "repeats", "mc_samples"):
            check_positive_int(name, getattr(self, name))
        for name in ("initial", "pool_subset", "score_chunk", "seed"):
            check_int(name, getattr(self, name))
        if self.pool_subset and self.pool_subset < self.per_round:
            raise UserError(f"pool_subset ({self.pool_subset}) must be 0 (whole pool) or >= per_round "
                            f"({self.per_round})")
        object.__setattr__(self, "sources", check_names("sources", self.sources))
        object.__setattr__(self, "acquisitions", check_names("acquisitions", self.acquisitions))
        for name in map(wrapped_name, self.acquisitions):
            if name.endswith(":") and name[:-1] in WRAPPERS:
                raise UserError(f"{name} wraps an acquisition function; name it, e.g. {name}bald")
            if ":" in name and not CUSTOM_NAME.fullmatch(name):
                raise UserError(f"acquisition {name!r} is not a registered name nor package.module:function "
                                "(both parts non-empty); check the list of acquisitions")
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("mc_masks", self.mc_masks, MASKINGS)
        check_choice("seeding", self.seeding, SEEDING_SCHEMES)
        check_choice("quota_target", self.quota_target, QUOTA_TARGETS)
        check_float("gate_threshold", self.gate_threshold, above=0, maximum=1)
        check_positive_int("gate_judge_epochs", self.gate_judge_epochs)
        if not isinstance(self.real_only, bool):
            raise UserError(f"real_only must be true or false, got {self.real_only!r}")
        for name in ("sources_provenance", "pool_fingerprint", "test_fingerprint"):
            if not isinstance(getattr(self, name), dict):
                raise UserError(f"{name} must be a dict, got {getattr(self, name)!r}")

    @property
    def csv_columns(self) -> list[str]:
        """The columns of rounds.csv and of every row: CSV_COLUMNS, then REAL_ONLY_COLUMNS with real_only."""
        return CSV_COLUMNS + (REAL_ONLY_COLUMNS if self.real_only else [])

    @property
    def custom_acquisitions(self) -> list[str]:
        """The acquisitions that name a 'package.module:function' (wrapped or not; imported when the run starts)."""
        return [name for name in self.acquisitions if ":" in wrapped_name(name)]

    def recorded(self, **measured) -> "ExperimentConfig":
        """This config with what the run measured (fingerprints, model and trainer names): what config.json holds."""
        return dataclasses.replace(self, **measured)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def load(cls, path: Path, trusted: tuple[str, ...] | list[str] = ()) -> "ExperimentConfig":
        """The config saved at `path` (config.json), importing nothing. A custom acquisition it names must be in
        `trusted` (what the user named on their own command line), so that a run directory never runs code; a
        damaged file, unknown setting or untrusted name is a RunDirectoryError."""
        values = read_json(path)
        values.setdefault("seeding", "per_source")  # saved before the scheme was recorded
        legacy = {k: values.pop(k) for k in LEGACY_PROVENANCE if k in values}
        if "sources_provenance" not in values:
            values["sources_provenance"] = {k: v for k, v in legacy.items() if v}
        known = {f.name for f in dataclasses.fields(cls)}
        train_known = {f.name for f in dataclasses.fields(TrainConfig)}
        train = values.get("train")
        if not isinstance(train, dict):
            raise RunDirectoryError(f"{path} holds no training settings (\"train\" is {train!r}); restore it, or "
                                    "start a new run with another --out")
        unknown = sorted(set(values) - known) + sorted(f"train.{k}" for k in set(train) - train_known)
        if unknown:
            raise RunDirectoryError(f"{path} has unknown setting(s) {unknown}: it was written by another version "
                                    "or edited; fix or restore it, or start a new run with another --out")
        names = values.get("acquisitions")
        untrusted = [n for n in names if isinstance(n, str) and ":" in wrapped_name(n) and n not in trusted] \
            if isinstance(names, list) else []
        if untrusted:
            raise RunDirectoryError(
                f"{path} names the custom acquisition(s) {untrusted}, which this resume was not given: code named by a "
                "run directory is never imported; if you trust it, name it yourself (--acquisitions with the saved "
                "list, or register it with @acquisition in your own script)")
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


def arms_of(config: ExperimentConfig) -> list[Arm]:
    """Every arm of the run, in the order a single process advances and writes them."""
    return [Arm(s, a, r) for s in config.sources for a in config.acquisitions for r in range(config.repeats)]
