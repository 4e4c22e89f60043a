"""Acquisition functions and their registry.

Two kinds, both plain functions:

* score functions ``fn(probs_NTK) -> scores_N`` (higher = more worth acquiring); the top k
  are taken, ties broken at random.
* selecting functions ``fn(probs_NTK, k, rng, pool_size) -> index_k`` that choose the k
  pool positions themselves (batch-aware or stochastic acquisition).

``probs_NTK`` holds the class probabilities of T MC-dropout networks for N candidates. A
function registered with ``needs_mc=False`` receives ``None`` instead and costs no inference.

What each kind receives (the loop streams where it can):

* a score function must score each candidate from its own rows probs_NTK[n] alone: the loop calls it
  chunk by chunk on contiguous probabilities [B, T, K] while MC dropout runs (``Acquisition.score``,
  ``acquire.mc_dropout.mc_scores``) and keeps only the N scores, never [N, T, K];
* a selecting function with ``needs_mc=True`` receives the full probs_NTK [N, T, K] of the whole
  (subset of the) pool, as BatchBALD's joint entropies and power_bald's global sampling need;
* a selecting function with ``needs_mc=False`` (random) receives ``None``.

Adding one takes a few lines::

    from acquire.functions import acquisition

    @acquisition("least_confident")
    def least_confident(probs_NTK):
        return 1 - probs_NTK.mean(1).max(-1).values

and then ``--acquisitions bald,least_confident`` (after importing the module), or, without
touching the registry, ``--acquisitions my_pkg.my_mod:least_confident``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from acquire.batchbald import batchbald
from acquire.diversity import gradient_embeddings, kcenter_greedy, kmeans_pp_select
from acquire.errors import UserError
from acquire.label_gate import gated_share_by_class, label_gate
from acquire.quotas import per_class_selection, quota_select
from acquire.round_context import RoundContext, probe_context


@dataclass(frozen=True)
class Acquisition:
    """A registered acquisition function. `selects`: it picks indices itself; `needs_mc`: it reads probs_NTK."""

    name: str
    fn: Callable
    selects: bool = False
    needs_mc: bool = True
    uses_context: bool = False

    def choose(self, probs_NTK: torch.Tensor | None, pool_size: int, k: int, rng: torch.Generator,
               context: RoundContext | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Positions index_k [k] (int64, distinct, in 0..pool_size-1) of the candidates to acquire, and their
        scores score_k [k] (float64) for a score function (None for a selecting one), both on the CPU, from all
        the probabilities probs_NTK [N, T, K] (None when not needs_mc).

        Whatever the function returns is checked: an exception, None, NaN, infinite or complex scores, scores of
        the wrong shape, or positions that are not k distinct integers in range are a UserError naming it.
        """
        self._check_k(pool_size, k)
        if not self.selects:
            return self.top_k(self.score(probs_NTK, pool_size), k, rng)
        if self.uses_context and context is None:
            raise UserError(f"acquisition function {self.name!r} reads the round's context (labels, features); "
                            "call it through the loop, or pass a RoundContext")
        extra = (context,) if self.uses_context else ()
        result = self._call(probs_NTK if self.needs_mc else None, k, rng, pool_size, *extra).cpu()
        if result.is_floating_point() or result.is_complex() or result.dtype == torch.bool:
            raise UserError(f"acquisition function {self.name!r} returned positions of dtype {result.dtype}; "
                            "it must return integer positions [k]")
        return self._checked_positions(result.long(), pool_size, k), None

    def score(self, probs_BTK: torch.Tensor | None, num_candidates: int | None = None) -> torch.Tensor:
        """A score function's scores [B] (float64, on the device it returns them on) of B candidates'
        probabilities probs_BTK [B, T, K] (a chunk or the whole pool; B = num_candidates when probs_BTK is None);
        an exception, None, complex scores or a wrong shape is a UserError naming it."""
        B = len(probs_BTK) if num_candidates is None else num_candidates
        scores_B = self._call(probs_BTK)
        if scores_B.is_complex():
            raise UserError(f"acquisition function {self.name!r} returned complex scores ({scores_B.dtype}); scores "
                            "must be real numbers, one per candidate [N]")
        scores_B = scores_B.double()
        if scores_B.shape != (B,):
            raise UserError(f"acquisition function {self.name!r} returned scores of shape "
                            f"{tuple(scores_B.shape)}, expected ({B},): one score per candidate")
        return scores_B

    def top_k(self, scores_N: torch.Tensor, k: int, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The k best positions index_k [k] (ties at random) of scores_N [N] and their scores score_k [k], float64
        on the CPU; NaN or infinite scores are a UserError naming the function."""
        scores_N = scores_N.cpu().double()
        self._check_k(len(scores_N), k)
        bad = int((~torch.isfinite(scores_N)).sum())
        if bad:
            raise UserError(f"acquisition function {self.name!r} returned {bad} NaN or infinite score(s) of "
                            f"{len(scores_N)}; scores must be finite")
        index_k = self._checked_positions(top_k_random_ties(scores_N, k, rng), len(scores_N), k)
        return index_k, scores_N[index_k]

    def _call(self, *args) -> torch.Tensor:
        """self.fn(*args) as a tensor; an exception (SystemExit too; KeyboardInterrupt passes), None, or a result that
        is no array of numbers (a str, a dict) is a UserError naming the function."""
        expected = "k positions [k]" if self.selects else "one score per candidate [N]"
        try:
            result = self.fn(*args)
        except KeyboardInterrupt:
            raise
        except BaseException as error:
            raise UserError(f"acquisition function {self.name!r} raised {type(error).__name__}: {error}") from error
        if result is None or isinstance(result, (str, bytes, dict)):
            raise UserError(f"acquisition function {self.name!r} returned {type(result).__name__}; it must return "
                            f"{expected}")
        try:
            return torch.as_tensor(result)
        except (TypeError, ValueError, RuntimeError) as error:
            raise UserError(f"acquisition function {self.name!r} returned a {type(result).__name__} that is no array "
                            f"of numbers ({error}); it must return {expected}") from None

    @staticmethod
    def _check_k(pool_size: int, k: int) -> None:
        if k > pool_size:
            raise UserError(f"cannot acquire {k} candidates from a pool of {pool_size}")

    def _checked_positions(self, index_k: torch.Tensor, pool_size: int, k: int) -> torch.Tensor:
        if index_k.shape != (k,) or len(index_k.unique()) != k or index_k.min() < 0 or index_k.max() >= pool_size:
            raise UserError(f"acquisition function {self.name!r} must return {k} distinct positions in "
                            f"[0, {pool_size}), got {index_k.tolist()}")
        return index_k

    def probe(self, k: int, num_samples: int, num_classes: int) -> None:
        """Run the function once on random MC probabilities [2k, T, K], so that one that fails (raises, returns
        None, NaN or the wrong shape) is refused before a run writes anything."""
        rng = torch.Generator().manual_seed(0)
        logits_NTK = torch.randn(2 * k, num_samples, num_classes, generator=rng)
        self.choose(logits_NTK.softmax(-1) if self.needs_mc else None, 2 * k, k, rng,
                    probe_context(2 * k, num_classes, rng) if self.uses_context else None)


REGISTRY: dict[str, Acquisition] = {}


def acquisition(name: str | None = None, *, selects: bool = False, needs_mc: bool = True, context: bool = False):
    """Decorator that registers an acquisition function under `name` (default: the function's name).

    selects=False: ``fn(probs_NTK) -> scores_N``;
    selects=True: ``fn(probs_NTK, k, rng, pool_size) -> index_k`` (k distinct positions);
    context=True (selecting functions): ``fn(probs_NTK, k, rng, pool_size, context)`` with the round's
    acquire.round_context.RoundContext (candidate labels, which are generated, features, a judge).
    needs_mc=False: the function gets ``probs_NTK=None`` and the pool is not scored (saves the MC pass).
    """
    if context and not selects:
        raise UserError("an acquisition function that reads the round's context must be a selecting one "
                        "(selects=True)")

    def register(fn: Callable) -> Callable:
        key = name or fn.__name__
        REGISTRY[key] = Acquisition(key, fn, selects=selects, needs_mc=needs_mc, uses_context=context)
        return fn
    return register


def get_acquisition(spec: str) -> Acquisition:
    """Look up a registered name, or import ``package.module:function`` (a score function, or one decorated
    with @acquisition, which is then used with its registered options)."""
    if not isinstance(spec, str):
        raise UserError(f"an acquisition function is named by a string, got {type(spec).__name__} {spec!r}")
    if spec in REGISTRY:
        return REGISTRY[spec]
    wrapper, _, inner = spec.partition(":")
    if wrapper in WRAPPERS:
        if not inner:
            raise UserError(f"{wrapper}: wraps an acquisition function; name it, e.g. {wrapper}:bald")
        return WRAPPERS[wrapper](spec, get_acquisition(inner))
    if ":" not in spec:
        raise UserError(f"unknown acquisition function {spec!r}; registered: {', '.join(sorted(REGISTRY))}. "
                        "A custom one is given as module:function")
    module_name, _, attr = spec.partition(":")
    if not (attr.isidentifier() and all(part.isidentifier() for part in module_name.split("."))):
        raise UserError(f"acquisition function {spec!r} is not of the form 'module:function' (e.g. "
                        "my_pkg.my_mod:least_confident): give a module on the Python path and a function in it")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise UserError(f"cannot load acquisition function {spec!r}: {error}") from error
    if not callable(fn):
        raise UserError(f"acquisition function {spec!r} is a {type(fn).__name__}, not a function; give "
                        "module:function naming a function fn(probs_NTK) -> scores_N")
    registered = next((a for a in REGISTRY.values() if a.fn is fn), None)
    if registered is None:
        return Acquisition(spec, fn)
    return Acquisition(spec, fn, registered.selects, registered.needs_mc, registered.uses_context)


def entropy(probs_NK: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats over the last axis, with 0·log 0 = 0 (in the input's precision)."""
    return -torch.special.xlogy(probs_NK, probs_NK).sum(-1)


def top_k_random_ties(scores_N: torch.Tensor, k: int, rng: torch.Generator) -> torch.Tensor:
    """Positions of the k largest scores; equal scores are ordered at random, not by position."""
    order_N = torch.randperm(len(scores_N), generator=rng, device=rng.device).to(scores_N.device)
    return order_N[torch.topk(scores_N[order_N], k, sorted=True).indices]


@acquisition("random", selects=True, needs_mc=False)
def select_random(probs_NTK: None, k: int, rng: torch.Generator, pool_size: int) -> torch.Tensor:
    """k positions uniformly at random without replacement; needs no MC inference."""
    return torch.randperm(pool_size, generator=rng, device=rng.device)[:k]


# The score functions below compute in float64: BALD and mean_std are small differences of large terms, and
# in float32 they lose up to three orders of magnitude on confident candidates.

@acquisition("max_entropy")
def max_entropy(probs_NTK: torch.Tensor) -> torch.Tensor:
    """Predictive entropy H[mean_t p_t(y|x)] [N], float64."""
    return entropy(probs_NTK.double().mean(1))


@acquisition("bald")
def bald(probs_NTK: torch.Tensor) -> torch.Tensor:
    """Mutual information between label and weights, H[mean_t p_t] - mean_t H[p_t] [N], float64."""
    probs_NTK = probs_NTK.double()
    return entropy(probs_NTK.mean(1)) - entropy(probs_NTK).mean(1)


@acquisition("variation_ratios")
def variation_ratios(probs_NTK: torch.Tensor) -> torch.Tensor:
    """1 - max_y p(y|x) [N], with p(y|x) the MC-dropout mean (Gal et al. 2017, eq. in sec. 3), float64."""
    return 1.0 - probs_NTK.double().mean(1).max(-1).values


@acquisition("variation_ratios_mode")
def variation_ratios_mode(probs_NTK: torch.Tensor) -> torch.Tensor:
    """1 - (votes for the modal class among the T samples' argmax)/T [N], float64: the form of Gal et al.'s
    code. A sample's argmax ties go to the lowest class, as numpy's argmax."""
    N, T, K = probs_NTK.shape
    votes_NK = torch.zeros(N, K, dtype=torch.float64, device=probs_NTK.device)
    votes_NK.scatter_add_(1, probs_NTK.argmax(-1), torch.ones(N, T, dtype=torch.float64, device=probs_NTK.device))
    return 1.0 - votes_NK.max(-1).values / T


@acquisition("mean_std")
def mean_std(probs_NTK: torch.Tensor) -> torch.Tensor:
    """Mean over classes of the std over MC samples of p_t(y|x) [N] (population std, two-pass, float64)."""
    probs_NTK = probs_NTK.double()
    return (probs_NTK - probs_NTK.mean(1, keepdim=True)).square().mean(1).sqrt().mean(-1)


@acquisition("power_bald", selects=True)
def power_bald(probs_NTK: torch.Tensor, k: int, rng: torch.Generator, pool_size: int,
               temperature: float = 1.0) -> torch.Tensor:
    """k positions sampled without replacement with probability ∝ BALD^(1/temperature) (Kirsch et al. 2023),
    via the Gumbel-top-k trick."""
    log_weight_N = bald(probs_NTK).clamp_min(1e-12).log() / temperature
    uniform_N = torch.rand(log_weight_N.shape, generator=rng, device=rng.device).to(log_weight_N.device)
    gumbel_N = -(-uniform_N.clamp_min(1e-20).log()).log()
    return torch.topk(log_weight_N + gumbel_N, k).indices


acquisition("batchbald", selects=True)(batchbald)  # greedy BatchBALD, see acquire/batchbald.py


# ----------------------------------------------------------------------------- wrappers and diversity
# A wrapper's name prefixes the function it wraps: quota:bald, gate:quota:bald, quota:my_pkg.my_mod:fn.

def quota(spec: str, inner: Acquisition) -> Acquisition:
    """`inner`, class by class: each round's picks follow the context's target class distribution (the running
    total, acquire.quotas.quota_counts), by each candidate's known label; a class short of candidates gives its
    picks to the best of the rest. A score function's top candidates are taken per class; a selecting function
    runs once per class."""
    def select(probs_NTK, k, rng, pool_size, context):
        classes_N = context.labels_N
        if not inner.selects:
            scores_N = inner.score(probs_NTK, pool_size)
            return quota_select(scores_N, classes_N.to(scores_N.device), k, context.target_K, rng, context.acquired_K)

        def pick(members_M: torch.Tensor, count: int) -> torch.Tensor:
            probs_MTK = None if probs_NTK is None else probs_NTK[members_M.to(probs_NTK.device)]
            return members_M[inner.choose(probs_MTK, len(members_M), count, rng, context.subset(members_M))[0]]
        return per_class_selection(pick, k, pool_size, classes_N, context.target_K, context.acquired_K)
    return Acquisition(spec, select, selects=True, needs_mc=inner.needs_mc, uses_context=True)


def gate(spec: str, inner: Acquisition) -> Acquisition:
    """`inner` over the candidates that pass the label-fidelity gate (acquire.label_gate): a generated candidate is
    left out when both the classifier's MC-mean prediction and the judge give its label less than the context's
    threshold. The share of each class's generated candidates left out goes into the round's record
    (notes["gated_share"], None for a class with none); if fewer than k pass, the round takes from all."""
    def select(probs_NTK, k, rng, pool_size, context):
        labels_N, generated_N = context.labels_N, context.is_generated_N
        keep_N = label_gate(labels_N, generated_N, probs_NTK.double().mean(1), context.judge_probs(),
                            context.gate_threshold).cpu()
        share_K = gated_share_by_class(keep_N, labels_N, generated_N, probs_NTK.shape[-1])
        context.notes["gated_share"] = [None if share != share else round(share, 6) for share in share_K.tolist()]
        kept_M = keep_N.nonzero().squeeze(1) if int(keep_N.sum()) >= k else torch.arange(pool_size)
        probs_MTK = probs_NTK[kept_M.to(probs_NTK.device)]
        return kept_M[inner.choose(probs_MTK, len(kept_M), k, rng, context.subset(kept_M))[0]]
    return Acquisition(spec, select, selects=True, needs_mc=True, uses_context=True)


WRAPPERS: dict[str, Callable[[str, Acquisition], Acquisition]] = {"quota": quota, "gate": gate}


def wrapped_name(spec: str) -> str:
    """The function a name wraps, wrappers removed: 'gate:quota:bald' -> 'bald', 'quota:pkg.mod:fn' -> 'pkg.mod:fn'."""
    while (head := spec.partition(":"))[0] in WRAPPERS and head[2]:
        spec = head[2]
    return spec


@acquisition("badge", selects=True, context=True)
def badge(probs_NTK: torch.Tensor, k: int, rng: torch.Generator, pool_size: int,
          context: RoundContext) -> torch.Tensor:
    """BADGE (Ash et al. 2020): k-means++ seeding on the gradient embeddings of the last layer, at the MC-mean
    prediction (acquire.diversity)."""
    features_ND = context.features()
    embeddings_NE = gradient_embeddings(features_ND, probs_NTK.mean(1).to(features_ND.device))
    return kmeans_pp_select(embeddings_NE, k, rng)


@acquisition("coreset", selects=True, context=True)
def coreset(probs_NTK: torch.Tensor, k: int, rng: torch.Generator, pool_size: int,
            context: RoundContext) -> torch.Tensor:
    """Core-set k-center greedy (Sener & Savarese 2018) on the classifier's features: each pick the candidate
    farthest from the training set and the picks before it (acquire.diversity)."""
    return kcenter_greedy(context.features(), k, context.labelled_features())
