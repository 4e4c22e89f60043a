"""An arm's round: the seed keys its draws come from, training a fresh classifier, acquiring, and the row it records.

Every draw is derived from a key tuple (acquire.seeding), never carried, so a resumed arm draws what an
uninterrupted one would. Under "paired" seeding the model initialisations, training draws and initial images are
keyed by (seed, repeat): shared by every source set and acquisition of a repeat. Acquisition tie-breaks, pool
subsets and MC-dropout masks are keyed by the whole arm and the round.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cache

import torch
from torch import nn

from acquire.data import ImageSet, class_balanced_indices
from acquire.device import synchronize
from acquire.functions import Acquisition
from acquire.inference import last_linear_inputs, probabilities
from acquire.judge import train_judge
from acquire.mc_dropout import mc_probs, mc_scores
from acquire.factories import ModelFactory, make_model
from acquire.precision import autocast
from acquire.training import TrainFn, evaluate, train_classifier
from acquire.pool import REAL_SOURCE, CandidatePool
from acquire.round_context import RoundContext, target_distribution
from acquire.seeding import derive_seed, make_generator, seeded_global_rng
from acquire.loop.config import Arm, ExperimentConfig


@dataclass
class ArmState:
    """An arm's pool (with its acquisitions), the classifier it holds, its rows and its acquisition record."""

    arm: Arm
    acquisition: Acquisition
    pool: CandidatePool
    model: nn.Module | None = None
    rows: list[dict] = field(default_factory=list)
    record: list[dict] = field(default_factory=list)  # per round: index, label, source, score, images_sha256
    model_sha256: str = ""  # digest of the classifier a saved state holds (checked when it is restored)

    @property
    def rounds_done(self) -> int:
        return self.rows[-1]["round"] if self.rows else 0


@dataclass(frozen=True)
class ArmKeys:
    """The key tuples of an arm's draws: the seeding scheme, in one place."""

    seed: int
    seeding: str
    arm: Arm

    def shared(self) -> tuple:
        """What a repeat's shared draws (model init, training, initial images) are keyed by."""
        if self.seeding == "paired":
            return (self.seed, self.arm.repeat)
        return (self.seed, self.arm.sources, self.arm.repeat)

    def init_seed(self, round_index: int) -> int:
        return derive_seed(*self.shared(), round_index, "init")

    def train(self, round_index: int) -> tuple:
        return (*self.shared(), round_index, "train")

    def initial(self) -> tuple:
        return (*self.shared(), "initial")

    def acquire(self, round_index: int) -> tuple:
        return (self.seed, self.arm.sources, self.arm.acquisition, self.arm.repeat, round_index)


def initial_indices(pool: CandidatePool, n: int, rng: torch.Generator, num_classes: int) -> torch.Tensor:
    """n real candidates, n/K per class, drawn at random: global indices [n]."""
    real_M = (pool.source_N.cpu() == pool.source_names.index(REAL_SOURCE)).nonzero().squeeze(1)
    return real_M[class_balanced_indices(pool.labels_N.cpu()[real_M], n, rng, num_classes)]


class ArmRounds:
    """Advances one arm at a time by a round: score its pool, acquire, train a fresh classifier, record a row.

    model_factory: (seed, device) -> nn.Module, float images [N,C,H,W] in [0, 1] -> logits [N,K].
    train_fn: (model, uint8 images [N,C,H,W], labels [N], config.train, generator) -> model; torch's global RNG is
    seeded per arm and round around both. test_set: uint8 images [N,C,H,W] and labels [N] on `device`.
    """

    def __init__(self, config: ExperimentConfig, device: torch.device, model_factory: ModelFactory,
                 train_fn: TrainFn | None, test_set: ImageSet, num_classes: int):
        self.config, self.device, self.model_factory = config, device, model_factory
        self.train_fn, self.test_set, self.num_classes = train_fn, test_set, num_classes
        self.judges: dict[str, nn.Module] = {}  # source set -> the gate's judge, trained on first use

    def keys(self, arm: Arm) -> ArmKeys:
        return ArmKeys(self.config.seed, self.config.seeding, arm)

    def untrained(self, arm: Arm) -> nn.Module:
        return make_model(self.model_factory, self.keys(arm).init_seed(0), self.device)

    def train(self, state: ArmState, round_index: int) -> None:
        """A fresh classifier, initialised and trained from draws keyed by the arm's shared keys and the round."""
        state.model = self.fit(state.arm, round_index, state.pool.training_set())

    def fit(self, arm: Arm, round_index: int, training: ImageSet) -> nn.Module:
        """A fresh classifier for `arm`'s round, its initialisation and training draws keyed by the arm's shared keys
        and the round, trained on `training` (left untrained when it is empty)."""
        keys = self.keys(arm)
        model = make_model(self.model_factory, keys.init_seed(round_index), self.device)
        if len(training) == 0:
            return model
        with seeded_global_rng(derive_seed(*keys.train(round_index), "global"), self.device), \
                autocast(self.config.precision, self.device):
            (self.train_fn or train_classifier)(model, training.images_NCHW, training.labels_N, self.config.train,
                                                make_generator(*keys.train(round_index), device=self.device))
        return model

    def real_only_scores(self, state: ArmState, round_index: int) -> dict:
        """The counterfactual of config.real_only: the round's classifier trained on the arm's real images alone (the
        same initialisation and draws), its test scores and what the generated images added."""
        pool = state.pool
        index_n = pool.acquired_index.to(pool.device)
        real_n = index_n[pool.is_real_N[index_n]]
        model = self.fit(state.arm, round_index, ImageSet(pool.images_NCHW[real_n], pool.labels_N[real_n]))
        scores = evaluate(model, self.test_set.images_NCHW, self.test_set.labels_N)
        return {"balanced_accuracy_real_only": scores["balanced_accuracy"], "accuracy_real_only": scores["accuracy"],
                "generated_gain": state.rows[-1]["balanced_accuracy"] - scores["balanced_accuracy"]}

    def start(self, state: ArmState) -> bool:
        """A new arm: its untrained classifier, and with config.initial, the class-balanced initial images trained
        on and recorded as round 0 (returns whether that row was made)."""
        state.model = self.untrained(state.arm)
        if not self.config.initial:
            return False
        rng = make_generator(*self.keys(state.arm).initial())
        self.record(state, initial_indices(state.pool, self.config.initial, rng, self.num_classes), None)
        self.train_and_evaluate(state, 0, score_seconds=0.0)
        return True

    def advance(self, state: ArmState, round_index: int) -> None:
        """Round `round_index`: acquire with the classifier the arm holds, then train and evaluate a fresh one."""
        start = time.perf_counter()
        notes: dict = {}
        self.record(state, *self.choose(state, round_index, self.config.precision, notes), notes)
        synchronize(self.device)
        self.train_and_evaluate(state, round_index, score_seconds=time.perf_counter() - start)

    def record(self, state: ArmState, index_k: torch.Tensor, score_k: torch.Tensor | None,
               notes: dict | None = None) -> None:
        """Acquire global indices [k] and remember what they were (label, source, score, the images' digest), with
        what the acquisition reported (`notes`, e.g. the gate's share per class)."""
        pool = state.pool
        pool.acquire(index_k)
        on_device_k = index_k.to(pool.device)  # only the k entries cross to the CPU, not the pool's columns
        state.record.append({"index": index_k.tolist(), "label": pool.labels_N[on_device_k].tolist(),
                             "source": [pool.source_names[i] for i in pool.source_N[on_device_k].tolist()],
                             "score": None if score_k is None else score_k.tolist(),
                             "images_sha256": pool.images_digest(index_k), **(notes or {})})

    def choose(self, state: ArmState, round_index: int, precision: str,
               notes: dict | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What the arm acquires in round `round_index` with the classifier it holds, MC dropout in `precision`:
        global indices [k] and their scores [k] (None for a selecting function); what the function reports about
        the round goes into `notes`."""
        config, keys = self.config, self.keys(state.arm).acquire(round_index)
        rng = make_generator(*keys, "acquire")
        candidates_M = state.pool.available_index().cpu()
        acquisition = state.acquisition
        if acquisition.needs_mc and config.pool_subset and len(candidates_M) > config.pool_subset:
            candidates_M = candidates_M[torch.randperm(len(candidates_M), generator=rng)[:config.pool_subset]]
        context = self.context(state, candidates_M) if acquisition.uses_context else None
        if not acquisition.needs_mc:
            chosen_k, score_k = acquisition.choose(None, len(candidates_M), config.per_round, rng, context)
        else:
            scoring = (state.model, state.pool.images_NCHW[candidates_M.to(self.device)], config.mc_samples)
            options = dict(rng=make_generator(*keys, "masks", device=self.device),
                           chunk_size=config.score_chunk or None, precision=precision, masking=config.mc_masks)
            if acquisition.selects:  # it needs every candidate's probabilities [M, T, K]
                chosen_k, score_k = acquisition.choose(mc_probs(*scoring, **options), len(candidates_M),
                                                       config.per_round, rng, context)
            else:  # streamed: only the M scores are kept
                scores_M = mc_scores(*scoring, acquisition.score, **options)
                chosen_k, score_k = acquisition.top_k(scores_M, config.per_round, rng)
        if context is not None and notes is not None:
            notes.update(context.notes)
        return candidates_M[chosen_k], score_k

    def context(self, state: ArmState, candidates_M: torch.Tensor) -> RoundContext:
        """The round's context for the candidates at global indices candidates_M [M] (CPU): their labels, which
        are generated, the quota target, the arm's classes so far; features and judge computed on first use."""
        pool, on_device_M = state.pool, candidates_M.to(state.pool.device)
        training = pool.training_set()
        images_M = pool.images_NCHW[on_device_M]
        return RoundContext(
            pool.labels_N[on_device_M].cpu(), (~pool.is_real_N[on_device_M]).cpu(),
            target_distribution(self.config.quota_target, training.labels_N, self.num_classes),
            torch.bincount(training.labels_N.cpu(), minlength=self.num_classes),
            cache(lambda: last_linear_inputs(state.model, images_M)),
            cache(lambda: last_linear_inputs(state.model, training.images_NCHW)),
            cache(lambda: probabilities(self.judge(state), images_M)), self.config.gate_threshold)

    def judge(self, state: ArmState) -> nn.Module:
        """The gate's judge for the arm's source set: trained once per process on the pool's real candidates."""
        sources = state.arm.sources
        if sources not in self.judges:
            pool = state.pool
            real_N = pool.is_real_N
            real = ImageSet(pool.images_NCHW[real_N], pool.labels_N[real_N])
            self.judges[sources] = train_judge(real, self.model_factory, self.train_fn, self.config.train,
                                               self.config.gate_judge_epochs, self.config.seed, self.device)
        return self.judges[sources]

    def train_and_evaluate(self, state: ArmState, round_index: int, score_seconds: float) -> None:
        """Train the round's classifier on the arm's training set and append its row (test-set scores, timings)."""
        arm, train_start = state.arm, time.perf_counter()
        self.train(state, round_index)
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
        if self.config.real_only:
            state.rows[-1].update(self.real_only_scores(state, round_index))
