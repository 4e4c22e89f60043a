"""The scheduler: ActiveLearningRun checks its inputs, opens the run directory and advances every arm in lockstep.

Each round every arm scores its pool by MC dropout with the classifier it holds, acquires `per_round` candidates,
trains a fresh classifier on everything acquired so far and records balanced accuracy on the full test set
(acquire.loop.arm). Arms advance round by round together, so a run stopped early still has comparable curves.
Arms are independent (their draws depend on their keys, never on what other arms did), so other processes may
advance some of them: a worker (worker_arms=...) advances and saves only its arms (acquire.ray_executor).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Collection
from functools import partial
from pathlib import Path

import torch
from tqdm.auto import tqdm

from acquire.data import ImageSet
from acquire.device import canonical
from acquire.errors import UserError
from acquire.functions import get_acquisition
from acquire.mc_dropout import check_mc_dropout
from acquire.builtins import builtin_name
from acquire.factories import ModelFactory, check_model, make_model
from acquire.networks import new_model
from acquire.precision import check_precision
from acquire.training import TrainFn, check_trainable
from acquire.pool import CandidatePool
from acquire.rundir import CONFIG_FILE, RunDirectoryError
from acquire.loop.arm import ArmRounds, ArmState
from acquire.loop.config import DEFAULT_MODEL, DEFAULT_TRAINER, ExperimentConfig, arms_of
from acquire.digests import model_digest
from acquire.loop.store import RunStore, fingerprint_of


def callable_name(fn) -> str:
    """'module:qualname' of a function (of the one a functools.partial wraps; of the class of other callables); a
    built-in model or trainer by its stored name (acquire.builtins)."""
    if builtin_name(fn):
        return builtin_name(fn)
    target = fn.func if isinstance(fn, partial) else fn
    target = target if hasattr(target, "__qualname__") else type(target)
    return f"{target.__module__}:{target.__qualname__}"


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


def warn_class_mismatch(data: dict[str, ImageSet]) -> None:
    """One line when a pool lacks classes the test set has, or the other way round."""
    test = set(data["the test set"].labels_N.unique().tolist())
    for name, images in data.items():
        classes = set(images.labels_N.unique().tolist())
        if name != "the test set" and classes != test:
            missing, extra = sorted(test - classes), sorted(classes - test)
            warnings.warn(f"{name} " + (f"lacks classes {missing} that the test set has" if missing else "")
                          + (" and " if missing and extra else "")
                          + (f"has classes {extra} that the test set lacks" if extra else ""), stacklevel=4)


def warn_unused_classes(data: dict[str, ImageSet], num_classes: int, model_classes: int) -> None:
    """One line when classes of 0..K-1 (K = num_classes, the largest label + 1) occur in no set of `data` (the
    pools and the test set), and one when the model has more outputs than K: classes no image has."""
    present = set().union(*(images.labels_N.unique().tolist() for images in data.values()))
    absent = sorted(set(range(num_classes)) - present)
    if absent:
        warnings.warn(f"classes {absent} occur neither in the pools nor in the test set, yet count among the "
                      f"{num_classes} classes 0..{num_classes - 1} (the largest label + 1): number the classes 0..K-1 "
                      "without gaps (numpy.unique(y, return_inverse=True)[1])", stacklevel=4)
    if model_classes > num_classes:
        warnings.warn(f"the model has {model_classes} outputs but the data {num_classes} classes (labels "
                      f"0..{num_classes - 1}), so outputs {num_classes}..{model_classes - 1} are classes no image has; "
                      f"give a model with {num_classes} outputs", stacklevel=4)


class ActiveLearningRun:
    """Runs (or resumes) every arm of `config` on the given pools, writing into `out_dir` (acquire.loop.store).

    pools: source-set name -> CandidatePool on `device` (shared candidates; each arm gets `fresh()` state).
    test_set: the full test set (uint8 images [N,C,H,W], labels [N]).
    model_factory, train_fn: see acquire.loop.arm.ArmRounds (default: Gal et al.'s CNN for the data's K and [C,H,W],
    trained by acquire.training.train_classifier); MC dropout samples the model's nn.Dropout layers.
    resumable_provenance: keys of config.sources_provenance that a resume may change (e.g. where files were read).
    worker_arms: open the run already started in out_dir as a worker that advances only these arms (names
    'sources/acquisition/repeat'): it locks only its arms, writes only their states, and leaves config.json and
    rounds.csv to the owner (rebuild_csv).
    Everything is checked before a file is written. Use as a context manager, or call close(), to release the locks.
    """

    def __init__(self, config: ExperimentConfig, pools: dict[str, CandidatePool], test_set: ImageSet,
                 out_dir: Path, device: torch.device | str = "cpu", resume: bool = False,
                 model_factory: ModelFactory | None = None, train_fn: TrainFn | None = None,
                 worker_arms: Collection[str] | None = None, resumable_provenance: Collection[str] = ()):
        self.device = canonical(device)
        check_precision(config.precision, self.device)
        self._check_pools(config, pools)
        data = {**{f"the pool of {name!r}": pools[name].candidates() for name in config.sources},
                "the test set": test_set}
        image_shape, num_classes = data_classes(data)
        self.config = config.recorded(
            pool_fingerprint={name: pools[name].fingerprint for name in config.sources},
            test_fingerprint=fingerprint_of(test_set),
            model=callable_name(model_factory) if model_factory else DEFAULT_MODEL,
            trainer=callable_name(train_fn) if train_fn else DEFAULT_TRAINER)
        model_factory = model_factory or partial(new_model, num_classes=num_classes, image_shape=image_shape)
        acquisitions = {name: get_acquisition(name) for name in config.acquisitions}
        self._check_model(model_factory, train_fn, data, image_shape, num_classes, acquisitions.values())
        self.rounds = ArmRounds(self.config, self.device, model_factory, train_fn, test_set.to(self.device),
                                num_classes)
        self.arms = [ArmState(arm, acquisitions[arm.acquisition], pools[arm.sources].fresh())
                     for arm in arms_of(config)]
        self.is_worker = worker_arms is not None
        self.active = self._select_arms(worker_arms)
        self.out_dir = Path(out_dir)
        self.store = RunStore(self.out_dir, self.is_worker, self.config.csv_columns)
        try:
            if self.is_worker:
                self.store.lock_arms([s.arm for s in self.active])
            if resume or self.is_worker:
                self.store.check_resume(self.config, frozenset(resumable_provenance))
                self.store.load_states(self.arms, self.config)
            elif (self.out_dir / CONFIG_FILE).exists():
                raise RunDirectoryError(f"{self.out_dir} already holds a run ({CONFIG_FILE}); pass --resume to "
                                        "continue it, or choose another --out")
            if not self.is_worker:
                self.store.write_start(self.config, self.arms)
        except BaseException:
            self.close()
            raise

    @property
    def csv_path(self) -> Path:
        return self.store.csv_path

    def _select_arms(self, names: Collection[str] | None) -> list[ArmState]:
        """The arms this process advances: all, or (a worker) those named."""
        if names is None:
            return self.arms
        unknown = sorted(set(names) - {str(s.arm) for s in self.arms})
        if unknown or not names:
            raise UserError(f"worker_arms must name arms of the run ({', '.join(str(s.arm) for s in self.arms)}); "
                            f"got {sorted(names)}")
        return [s for s in self.arms if str(s.arm) in names]

    def close(self) -> None:
        """Release the run directory's lock and the arms' locks."""
        self.store.close()

    def __enter__(self) -> "ActiveLearningRun":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _check_pools(self, config: ExperimentConfig, pools: dict[str, CandidatePool]) -> None:
        """Every source set has a pool on the run's device, large enough for every round."""
        if not isinstance(pools, dict) or not all(isinstance(p, CandidatePool) for p in pools.values()):
            raise UserError(f"pools must map source-set names to CandidatePools, got {type(pools).__name__}")
        missing = [s for s in config.sources if s not in pools]
        if missing:
            raise UserError(f"no pool built for source set(s) {missing} (pools were given for {sorted(pools)}); "
                            "build one per name in config.sources")
        needed = config.initial + config.rounds * config.per_round
        for name in config.sources:
            pool = pools[name]
            if pool.device != self.device:
                raise UserError(f"the pool of {name!r} lives on {pool.device} but the run on {self.device}; build "
                                f"it with CandidatePool(..., device={str(self.device)!r})")
            if needed > len(pool):
                raise UserError(f"{config.rounds} rounds of {config.per_round} (+{config.initial} initial) need "
                                f"{needed} candidates but source set {name!r} holds {len(pool)}")

    def _check_model(self, model_factory, train_fn, data: dict[str, ImageSet], image_shape, num_classes: int,
                     acquisitions) -> None:
        """Check that a model made by the factory takes the data's images, returns logits for their labels, can be
        trained with config.train, can be sampled by MC dropout (if an acquisition needs it), and that every
        acquisition works for the run's k, T and K."""
        config = self.config
        model = make_model(model_factory, 0, self.device)
        example_NCHW = data["the test set"].images_NCHW[:4].to(self.device)
        model_classes = check_model(model, example_NCHW, image_shape)
        for name, images in data.items():
            check_labels(name, images, model_classes)
        warn_class_mismatch(data)
        warn_unused_classes(data, num_classes, model_classes)
        if train_fn is None:
            check_trainable(model, config.train)
        if any(acquisition.needs_mc for acquisition in acquisitions):
            check_mc_dropout(model, image_shape, config.mc_masks)
        if config.initial % num_classes:
            raise UserError(f"initial must be a multiple of the {num_classes} classes (class-balanced), "
                            f"got {config.initial}")
        for acquisition in acquisitions:
            acquisition.probe(config.per_round, config.mc_samples, model_classes)

    def _restore_model(self, state: ArmState) -> None:
        """The classifier the arm held when saved: from the local cache if its digest matches, else re-derived by
        retraining its last round (a warning says if the weights differ from the saved digest)."""
        model = make_model(self.rounds.model_factory, 0, self.device)
        if self.store.load_model(state, model):
            state.model = model
            return
        self.rounds.train(state, state.rounds_done)
        if model_digest(state.model) != state.model_sha256:
            print(f"warning: the re-derived classifier of arm {state.arm} differs from the saved one (other hardware, "
                  "torch version or thread count, or an edited state); the rounds that follow may differ from an "
                  "uninterrupted run", file=sys.stderr)

    def rebuild_csv(self) -> int:
        """(The owner, while workers advance arms.) rounds.csv rebuilt from the states; returns the arm-rounds done."""
        return self.store.rebuild_csv(self.arms)

    def _round_cost(self, round_index: int) -> int:
        """Rough relative cost of one arm-round (training grows with the training set), for an honest ETA."""
        return self.config.train.epochs * (self.config.initial + round_index * self.config.per_round) + 5000

    def run(self, progress: bool = True) -> Path:
        """Advance every arm (a worker: its arms) to config.rounds, with a progress bar; returns the CSV path."""
        for state in self.active:
            if state.model is not None or (state.rows and state.rounds_done >= self.config.rounds):
                continue  # finished arms need no classifier
            if state.rows:
                self._restore_model(state)
            else:
                with self.store.advancing(state.arm):
                    if self.rounds.start(state):
                        self.store.save(state, self.arms)
        todo = [(r, s) for r in range(1, self.config.rounds + 1) for s in self.active if s.rounds_done < r]
        with tqdm(total=sum(self._round_cost(r) for r, _ in todo), disable=not progress, dynamic_ncols=True,
                  bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}") as bar:
            for round_index, state in todo:
                bar.set_description(f"round {round_index}/{self.config.rounds} {state.arm}")
                with self.store.advancing(state.arm):
                    self.rounds.advance(state, round_index)
                    self.store.save(state, self.arms)
                bar.set_postfix(bal_acc=f"{state.rows[-1]['balanced_accuracy']:.3f}", n=state.rows[-1]["train_size"])
                bar.update(self._round_cost(round_index))
        return self.csv_path
