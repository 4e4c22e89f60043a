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
from acquire.errors import UserError


@dataclass(frozen=True)
class Acquisition:
    """A registered acquisition function. `selects`: it picks indices itself; `needs_mc`: it reads probs_NTK."""

    name: str
    fn: Callable
    selects: bool = False
    needs_mc: bool = True

    def choose(self, probs_NTK: torch.Tensor | None, pool_size: int, k: int,
               rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Positions index_k [k] (int64, distinct, in 0..pool_size-1) of the candidates to acquire, and their
        scores score_k [k] (float64) for a score function (None for a selecting one), both on the CPU, from all
        the probabilities probs_NTK [N, T, K] (None when not needs_mc).

        Whatever the function returns is checked: an exception, None, NaN or infinite scores, scores of
        the wrong shape, or positions that are not k distinct integers in range are a UserError naming it.
        """
        self._check_k(pool_size, k)
        if not self.selects:
            return self.top_k(self.score(probs_NTK, pool_size), k, rng)
        result = self._call(probs_NTK if self.needs_mc else None, k, rng, pool_size).cpu()
        if result.is_floating_point() or result.is_complex() or result.dtype == torch.bool:
            raise UserError(f"acquisition function {self.name!r} returned positions of dtype {result.dtype}; "
                            "it must return integer positions [k]")
        return self._checked_positions(result.long(), pool_size, k), None

    def score(self, probs_BTK: torch.Tensor | None, num_candidates: int | None = None) -> torch.Tensor:
        """A score function's scores [B] (float64, on the device it returns them on) of B candidates'
        probabilities probs_BTK [B, T, K] (a chunk or the whole pool; B = num_candidates when probs_BTK is None);
        an exception, None or a wrong shape is a UserError naming it."""
        B = len(probs_BTK) if num_candidates is None else num_candidates
        scores_B = self._call(probs_BTK).double()
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
        self.choose(logits_NTK.softmax(-1) if self.needs_mc else None, 2 * k, k, rng)


REGISTRY: dict[str, Acquisition] = {}


def acquisition(name: str | None = None, *, selects: bool = False, needs_mc: bool = True):
    """Decorator that registers an acquisition function under `name` (default: the function's name).

    selects=False: ``fn(probs_NTK) -> scores_N``;
    selects=True: ``fn(probs_NTK, k, rng, pool_size) -> index_k`` (k distinct positions).
    needs_mc=False: the function gets ``probs_NTK=None`` and the pool is not scored (saves the MC pass).
    """
    def register(fn: Callable) -> Callable:
        key = name or fn.__name__
        REGISTRY[key] = Acquisition(key, fn, selects=selects, needs_mc=needs_mc)
        return fn
    return register


def get_acquisition(spec: str) -> Acquisition:
    """Look up a registered name, or import ``package.module:function`` (a score function, or one decorated
    with @acquisition, which is then used with its registered options)."""
    if not isinstance(spec, str):
        raise UserError(f"an acquisition function is named by a string, got {type(spec).__name__} {spec!r}")
    if spec in REGISTRY:
        return REGISTRY[spec]
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
    return Acquisition(spec, fn, registered.selects, registered.needs_mc)


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
