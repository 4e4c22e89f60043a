"""Class quotas: each round's k acquisitions follow a target class distribution.

A candidate's class is its known label when it has one (a generated candidate's conditioning label, or the label of
a candidate in the labelled-pool protocol) and otherwise the class predicted by the MC-mean probabilities
(`candidate_classes`). `quota_counts` apportions k picks to the classes; `quota_select` takes the top-scored
candidates class by class (the wrapper for any score function); `quota_wrap_selecting` runs a selecting function
once per class with that class's count (the wrapper for BatchBALD, power_bald, random, BADGE ...).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from acquire.errors import UserError
from acquire.validate import check_int

SelectingFn = Callable[[torch.Tensor | None, int, torch.Generator, int], torch.Tensor]


def quota_counts(k: int, target_K: torch.Tensor, acquired_K: torch.Tensor | None = None) -> torch.Tensor:
    """How many of k picks go to each of K classes: counts_K [K] (int64, summing to k), by largest remainder.

    target_K [K] holds non-negative weights of the target distribution: torch.ones(K) for uniform, or the labelled
    set's class counts. Class c's exact share k·w_c/Σw is rounded down, and the picks left over go one each to the
    classes with the largest remainders; equal remainders go to the larger weight, then to the lower class index
    (deterministic: the same inputs always give the same counts). Integer weights are apportioned in exact integer
    arithmetic, float weights in float64. A class of weight 0 gets no pick.

    acquired_K [K] (optional): what earlier rounds acquired per class. Then the run's running total follows the
    target, not each round alone: the counts are those that bring the total to its apportionment
    quota_counts(Σacquired + k, target_K) (so rounding does not favour the same classes round after round, and a
    class that came short earlier catches up); classes already above theirs get none, and if the rest need more
    than k, k is apportioned over their needs.
    """
    k = check_int("the number of picks k", k)
    if acquired_K is not None:
        acquired_K = torch.as_tensor(acquired_K).cpu()
        if acquired_K.shape != torch.as_tensor(target_K).shape or acquired_K.is_floating_point() or \
                acquired_K.dtype == torch.bool or bool((acquired_K < 0).any()):
            raise UserError(f"the classes' acquired counts must be one whole number >= 0 per target class, got "
                            f"{acquired_K.tolist()} for {len(torch.as_tensor(target_K))} classes")
        need_K = (quota_counts(int(acquired_K.sum()) + k, target_K) - acquired_K).clamp_min(0)
        return need_K if int(need_K.sum()) == k else quota_counts(k, need_K)
    target_K = torch.as_tensor(target_K).cpu()
    if target_K.dim() != 1 or len(target_K) == 0 or target_K.dtype == torch.bool or target_K.is_complex():
        raise UserError(f"the target class distribution must be one real weight per class [K], got shape "
                        f"{tuple(target_K.shape)} of {target_K.dtype}")
    if target_K.is_floating_point() and not bool(torch.isfinite(target_K).all()):
        raise UserError(f"the target class weights must be finite, got {target_K.tolist()}")
    if bool((target_K < 0).any()) or not bool((target_K > 0).any()):
        raise UserError(f"the target class weights must be >= 0 with at least one > 0, got {target_K.tolist()}; "
                        "give e.g. torch.ones(K) for a uniform target")
    if target_K.is_floating_point():
        exact_K = k * target_K.double() / target_K.double().sum()
        floor_K = exact_K.floor()
        remainder_K = exact_K - floor_K
        counts_K = floor_K.long()
    else:
        weight_K = target_K.long()
        counts_K = (k * weight_K).div(weight_K.sum(), rounding_mode="floor")
        remainder_K = (k * weight_K) % weight_K.sum()  # in units of 1/Σw
    left = k - int(counts_K.sum())
    by_weight_K = torch.sort(target_K.double(), descending=True, stable=True).indices  # equal: lower class first
    order_K = by_weight_K[torch.sort(remainder_K[by_weight_K].double(), descending=True, stable=True).indices]
    order_K = order_K[target_K[order_K] > 0]
    counts_K[order_K[:left]] += 1
    return counts_K


def quota_select(scores_N: torch.Tensor, classes_N: torch.Tensor, k: int, target_K: torch.Tensor,
                 rng: torch.Generator, acquired_K: torch.Tensor | None = None) -> torch.Tensor:
    """The k positions index_k [k] (int64, best score first) that take the top-scored candidates class by class.

    scores_N [N]: higher is better; classes_N [N]: each candidate's class in 0..K-1 (`candidate_classes`);
    target_K [K], acquired_K [K] | None: as in `quota_counts`. Class c contributes its counts_K[c] best candidates;
    when a class has fewer candidates than its count, all of them are taken and the picks it could not use go to the
    best remaining candidates overall, of any class. Equal scores are ordered at random by `rng` (on its device).
    """
    counts_K = quota_counts(k, target_K, acquired_K)
    K, N = len(counts_K), len(scores_N)
    _check_candidates(classes_N, N, K, k)
    if scores_N.shape != (N,) or not bool(torch.isfinite(scores_N).all()):
        raise UserError(f"quota selection needs one finite score per candidate [N], got shape {tuple(scores_N.shape)}")
    device = scores_N.device
    shuffled_N = torch.randperm(N, generator=rng, device=rng.device).to(device)
    ranked_N = shuffled_N[torch.sort(scores_N[shuffled_N], descending=True, stable=True).indices]
    class_ranked_N = classes_N.to(device).long()[ranked_N]
    by_class_N = torch.sort(class_ranked_N, stable=True).indices  # ranked positions grouped by class, best first
    per_class_K = torch.bincount(class_ranked_N, minlength=K)
    start_K = per_class_K.cumsum(0) - per_class_K
    rank_in_class_N = torch.empty(N, dtype=torch.long, device=device)
    rank_in_class_N[by_class_N] = torch.arange(N, device=device) - start_K[class_ranked_N[by_class_N]]
    taken_N = rank_in_class_N < counts_K.to(device)[class_ranked_N]
    shortfall = k - int(taken_N.sum())
    taken_N[(~taken_N).nonzero().squeeze(1)[:shortfall]] = True
    return ranked_N[taken_N]


def candidate_classes(labels_N: torch.Tensor | None, probs_NTK: torch.Tensor | None) -> torch.Tensor:
    """Each candidate's class classes_N [N] (int64): its label where known, else the argmax of the MC-mean
    probabilities mean_t probs_NTK [N, T, K] (ties to the lower class).

    labels_N [N] is None when no label is known (unlabelled real candidates), or holds the known labels with -1 for
    the candidates whose label is unknown (a pool mixing generated and unlabelled real images); probs_NTK may be
    None when every label is known.
    """
    if labels_N is not None:
        labels_N = torch.as_tensor(labels_N).long()
        if labels_N.dim() != 1 or bool((labels_N < -1).any()):
            raise UserError("candidate labels must be [N] class indices, with -1 where the label is unknown")
        if bool((labels_N >= 0).all()):
            return labels_N
    if probs_NTK is None:
        raise UserError("some candidates have no known label, so their predicted class is needed: pass their "
                        "MC-dropout probabilities probs_NTK [N, T, K]")
    predicted_N = probs_NTK.mean(1).argmax(-1)
    if labels_N is None:
        return predicted_N
    if len(labels_N) != len(predicted_N):
        raise UserError(f"{len(labels_N)} candidate labels for {len(predicted_N)} candidates' probabilities")
    return torch.where(labels_N >= 0, labels_N.to(predicted_N.device), predicted_N)


def quota_wrap_selecting(fn: SelectingFn, probs_NTK: torch.Tensor | None, k: int, rng: torch.Generator,
                         pool_size: int, classes_N: torch.Tensor, target_K: torch.Tensor,
                         acquired_K: torch.Tensor | None = None) -> torch.Tensor:
    """A selecting function run class by class: positions index_k [k] (int64, class 0's picks first).

    fn(probs_NTK, k, rng, pool_size) -> positions is called on each class's candidates (their rows of probs_NTK
    [N, T, K], or None for a function that needs none) with that class's count (see `per_class_selection`).
    """
    def pick(members_M: torch.Tensor, count: int) -> torch.Tensor:
        probs_MTK = None if probs_NTK is None else probs_NTK[members_M.to(probs_NTK.device)]
        return members_M[torch.as_tensor(fn(probs_MTK, count, rng, len(members_M))).long().cpu()]
    return per_class_selection(pick, k, pool_size, classes_N, target_K, acquired_K)


def per_class_selection(pick: Callable[[torch.Tensor, int], torch.Tensor], k: int, pool_size: int,
                        classes_N: torch.Tensor, target_K: torch.Tensor,
                        acquired_K: torch.Tensor | None = None) -> torch.Tensor:
    """k pool positions [k] (int64, CPU, class 0's picks first) chosen class by class.

    pick(members_M, count) -> `count` pool positions among members_M [M] (CPU int64) is called once per class with
    that class's count from `quota_counts(k, target_K, acquired_K)` (capped at its candidates), and, when some class
    has fewer candidates than its count, once more on all candidates not yet chosen for the picks left over.
    classes_N [N] gives each candidate's class (`candidate_classes`), N = pool_size.
    """
    counts_K = quota_counts(k, target_K, acquired_K)
    _check_candidates(classes_N, pool_size, len(counts_K), k)
    classes_N = classes_N.long().cpu()
    chosen = [torch.zeros(0, dtype=torch.long)]
    for c, count in enumerate(counts_K.tolist()):
        members_M = (classes_N == c).nonzero().squeeze(1)
        if min(count, len(members_M)):
            chosen.append(pick(members_M, min(count, len(members_M))).long().cpu())
    shortfall = k - sum(len(positions) for positions in chosen)
    if shortfall:
        free_N = torch.ones(pool_size, dtype=torch.bool)
        free_N[torch.cat(chosen)] = False
        chosen.append(pick(free_N.nonzero().squeeze(1), shortfall).long().cpu())
    return torch.cat(chosen)


def _check_candidates(classes_N: torch.Tensor, N: int, K: int, k: int) -> None:
    """Refuse classes that are not N indices in 0..K-1, and k > N."""
    if classes_N.shape != (N,) or classes_N.is_floating_point() or classes_N.dtype == torch.bool:
        raise UserError(f"candidate classes must be {N} integer class indices [N], got {tuple(classes_N.shape)} "
                        f"of {classes_N.dtype}")
    if N and (int(classes_N.min()) < 0 or int(classes_N.max()) >= K):
        raise UserError(f"candidate classes must lie in 0..{K - 1} (the target has {K} classes), got "
                        f"{int(classes_N.min())}..{int(classes_N.max())}")
    if k > N:
        raise UserError(f"cannot acquire {k} candidates from a pool of {N}")
