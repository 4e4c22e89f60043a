"""Diversity-aware batch selection: BADGE (Ash et al. 2020) and core-set k-center greedy (Sener & Savarese 2018).

Both read a candidate's features: the input of the classifier's last linear layer, computed deterministically
(dropout off); with MC dropout, BADGE's probabilities are the MC-mean ones. Memory stays O(N) beyond the inputs:
distances to a new centre are computed chunk by chunk and only each candidate's nearest distance is kept.
"""

from __future__ import annotations

import torch

from acquire.errors import UserError

CHUNK_ELEMENTS = 2 ** 16
"""Elements of the largest temporary a chunked step allocates (256 KiB in float32: it stays in cache)."""


def gradient_embeddings(features_ND: torch.Tensor, probs_NK: torch.Tensor) -> torch.Tensor:
    """BADGE's gradient embeddings emb_N(KD) [N, K·D]: the gradient of the cross-entropy with respect to the last
    linear layer's weights [K, D] at the hypothetical label ŷ = argmax probs_NK, (p - onehot(ŷ)) ⊗ features,
    class-major (entry c·D + d). Its norm grows with the model's uncertainty and with the features' norm.

    features_ND [N, D]: last-layer inputs; probs_NK [N, K]: predicted probabilities (MC-mean). The outer product is
    written straight into the output, so the only temporary is p - onehot(ŷ) [N, K], the size of the probabilities.
    """
    if features_ND.dim() != 2 or probs_NK.dim() != 2 or len(probs_NK) != len(features_ND):
        raise UserError(f"BADGE needs features [N, D] and probabilities [N, K] of the same N candidates, got "
                        f"{tuple(features_ND.shape)} and {tuple(probs_NK.shape)}")
    (N, D), K = features_ND.shape, probs_NK.shape[1]
    dtype = torch.promote_types(features_ND.dtype, probs_NK.dtype)
    residual_NK = probs_NK.to(features_ND.device, dtype, copy=True)
    residual_NK[torch.arange(N, device=residual_NK.device), residual_NK.argmax(1)] -= 1
    emb_NKD = torch.empty(N, K, D, dtype=dtype, device=features_ND.device)
    torch.mul(residual_NK.unsqueeze(2), features_ND.to(dtype).unsqueeze(1), out=emb_NKD)
    return emb_NKD.view(N, K * D)


def kmeans_pp_select(emb_NE: torch.Tensor, k: int, rng: torch.Generator) -> torch.Tensor:
    """k-means++ seeding as BADGE selects its batch: positions index_k [k] (int64, in the order chosen).

    The first point is the one of largest norm, as BADGE's published code does (the most uncertain candidate with
    the largest gradient; equal norms at random); each next point is drawn with probability proportional to its
    squared distance to the nearest point chosen so far (D² sampling, one uniform draw from `rng` per point). If every
    remaining candidate duplicates a chosen one (all distances 0), the next point is drawn uniformly among them.
    """
    N = _check_selection(emb_NE, k)
    device = emb_NE.device
    if k == 0:
        return torch.zeros(0, dtype=torch.long, device=device)
    norm_N = squared_distances(emb_NE, torch.zeros(emb_NE.shape[1]))
    shuffled_N = torch.randperm(N, generator=rng, device=rng.device).to(device)
    chosen = [int(shuffled_N[norm_N[shuffled_N].argmax()])]
    nearest_N = torch.full((N,), float("inf"), dtype=torch.float64, device=device)
    for _ in range(k - 1):
        nearest_N = torch.minimum(nearest_N, squared_distances(emb_NE, emb_NE[chosen[-1]]))  # exactly 0 at chosen
        weight_N = nearest_N
        if not bool((weight_N > 0).any()):
            weight_N = torch.ones(N, dtype=torch.float64, device=device)
            weight_N[chosen] = 0.0
        chosen.append(_draw(weight_N, rng))
    return torch.tensor(chosen, dtype=torch.long, device=device)


def kcenter_greedy(features_ND: torch.Tensor, k: int,
                   labelled_features_MD: torch.Tensor | None = None) -> torch.Tensor:
    """Core-set k-center greedy: positions index_k [k] (int64, in the order chosen) of candidates each farthest
    (Euclidean) from everything labelled or chosen before it.

    labelled_features_MD [M, D]: the labelled set's features, or None (or M = 0) for an empty start, where the first
    point is the candidate farthest from the candidates' mean. Deterministic: equal distances go to the lower
    position. O(N) memory per step; distances to the labelled set are computed in chunks of candidates.
    """
    N = _check_selection(features_ND, k)
    device = features_ND.device
    if k == 0:
        return torch.zeros(0, dtype=torch.long, device=device)
    if labelled_features_MD is None or labelled_features_MD.numel() == 0:
        # the first point: the one farthest from the candidates' mean, which counts for this choice only
        first_N = squared_distances(features_ND, features_ND.mean(0, dtype=torch.float64))
        nearest_N = torch.full((N,), float("inf"), dtype=torch.float64, device=device)
    elif labelled_features_MD.dim() == 2 and labelled_features_MD.shape[1] == features_ND.shape[1]:
        first_N = nearest_N = _nearest_squared_distances(features_ND, labelled_features_MD.to(device))
    else:
        raise UserError(f"the labelled features must be [M, D] with D = {features_ND.shape[1]} as the candidates', "
                        f"got {tuple(labelled_features_MD.shape)}; compute both with the same model")
    chosen = []
    for _ in range(k):
        chosen.append(int((nearest_N if chosen else first_N).argmax()))
        nearest_N = torch.minimum(nearest_N, squared_distances(features_ND, features_ND[chosen[-1]]))
        nearest_N[chosen] = -1.0  # never again, even when every candidate left duplicates a chosen one
    return torch.tensor(chosen, dtype=torch.long, device=device)


def squared_distances(points_ND: torch.Tensor, centre_D: torch.Tensor) -> torch.Tensor:
    """||points_n - centre||² [N] (float64): differences in the points' dtype (no cancellation; exactly 0 at the
    centre), summed in float64, in chunks of rows."""
    centre_D = centre_D.to(points_ND.device, points_ND.dtype)
    chunk = max(1, CHUNK_ELEMENTS // max(1, points_ND.shape[1]))
    return torch.cat([(points_ND[start:start + chunk] - centre_D).square().sum(1, dtype=torch.float64)
                      for start in range(0, len(points_ND), chunk)])


def _nearest_squared_distances(points_ND: torch.Tensor, others_MD: torch.Tensor) -> torch.Tensor:
    """min_m ||points_n - others_m||² [N] (float64), in blocks of at most CHUNK_ELEMENTS distances."""
    rows = max(1, CHUNK_ELEMENTS // max(1, len(others_MD)))
    others_MD = others_MD.double()
    return torch.cat([torch.cdist(points_ND[start:start + rows].double(), others_MD).square().min(1).values
                      for start in range(0, len(points_ND), rows)])


def _draw(weight_N: torch.Tensor, rng: torch.Generator) -> int:
    """One position drawn with probability weight_N / Σ weight_N (float64, >= 0, not all 0), by inverse CDF."""
    cdf_N = weight_N.cumsum(0)
    u = torch.rand((), dtype=torch.float64, generator=rng, device=rng.device).to(weight_N.device)
    position = int(torch.searchsorted(cdf_N, u * cdf_N[-1], right=True))
    return min(position, int(weight_N.nonzero().max()))


def _check_selection(points_NE: torch.Tensor, k: int) -> int:
    """N, after refusing points that are not [N, E] floats or k outside 0..N."""
    if points_NE.dim() != 2 or not points_NE.is_floating_point():
        raise UserError(f"diversity selection needs float features [N, E], got {tuple(points_NE.shape)} of "
                        f"{points_NE.dtype}")
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= len(points_NE):
        raise UserError(f"cannot select {k!r} of {len(points_NE)} candidates; k must lie in 0..{len(points_NE)}")
    if not bool(torch.isfinite(points_NE).all()):
        raise UserError("the candidates' features hold NaN or infinite values; check the model that computed them")
    return len(points_NE)
